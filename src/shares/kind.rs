//! What the share service, the store and the share network need from a share kind.
//!
//! A kind names its share and rules (a [`TrackedShare`] and a [`Verifier`] from the `sharechain`
//! crate), how its shares travel (encoding, decoding that refuses malformed input with a typed
//! error), where they are stored (a table of the share store) and what the share network calls
//! them (gossip topic, sync protocol). [`super::Service`] is generic over it: a node runs one
//! service per kind. The Bitcoin kind is [`super::Bitcoin`], the Chia proof-of-space kind
//! [`super::PoSpace`].

use std::fmt::Debug;

use sharechain::chain::Chain;
use sharechain::tracker::{ShareTracker, TrackedShare, Verifier};
use sharechain::ShareHash;

use crate::p2p::Names;

/// What a refused share on arrival says about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Clock skew between honest nodes (a share slightly from the future): drop the share, keep
    /// the peer.
    Early,
    /// Bytes that are not a share of this kind: the sender is penalised as undecodable.
    Malformed,
    /// A share that fails its stand-alone checks: the sender is penalised for an invalid share.
    Invalid,
}

/// A share kind: see the module documentation.
pub trait ShareKind: Send + Sync + 'static {
    /// The kind's name in logs and tables (`bitcoin`, `pospace`).
    const NAME: &'static str;
    /// The share store table holding this kind's shares (hash → wire bytes).
    const TABLE: &'static str;

    /// The network's constants (which chain, its identity, its limits).
    type Params: Debug + Send + Sync + 'static;
    /// The external tip shares build on (a Bitcoin block hash; `()` for kinds without one).
    type Tip: Clone + Eq + Debug + Send + 'static;
    /// The decoded, stand-alone checked share.
    type Share: TrackedShare<Tip = Self::Tip> + Clone + Send + Sync + 'static;
    /// The chain rules.
    type Verifier: Verifier<Self::Share, Error = Self::VerifyError> + Send + 'static;
    /// Why a share is invalid on the chain.
    type VerifyError: std::error::Error + Clone + Send + Sync + 'static;
    /// Why bytes on arrival are not a share of this kind.
    type DecodeError: std::error::Error + Send + Sync + 'static;
    /// What the kind publishes of its chain after each change, for readers outside the share
    /// worker (work building, HTTP): immutable, computed once per change by [`Self::view`].
    type View: Debug + Send + Sync + 'static;

    /// The network's short name (logs).
    fn network_name(params: &Self::Params) -> &'static str;

    /// An empty tracker with the network's rules.
    fn new_tracker(params: &'static Self::Params) -> KindTracker<Self>;

    /// The wire encoding of a share (gossip, sync replies, the store).
    fn encode(share: &Self::Share) -> Vec<u8>;

    /// Decodes `bytes` and runs the stand-alone checks at local time `now` (Unix seconds).
    fn decode(
        bytes: &[u8],
        params: &'static Self::Params,
        now: u64,
    ) -> Result<Self::Share, Self::DecodeError>;

    /// What a decoding failure says about the sender.
    fn refusal(error: &Self::DecodeError) -> Refusal;

    /// The height of a held share as peers compare it (0 when not held).
    fn height(chain: &Chain<Self::Share>, hash: &ShareHash) -> u32;

    /// The kind's part of the published view of `tracker`'s chain. `previous` is the view
    /// published before, to reuse what did not change (the best share's derived data when the
    /// best share is the same).
    fn view(
        params: &'static Self::Params,
        tracker: &KindTracker<Self>,
        previous: Option<&Self::View>,
    ) -> Self::View;

    /// The share network's names for this kind on `params`' network: gossip topics, the sync
    /// protocol, identify and kad names. Swarms with different names never exchange shares.
    fn names(params: &Self::Params) -> Names;

    /// The costly stand-alone checks of shares about to be inserted together, run before the
    /// tracker's lock is taken (so readers of the tracker do not wait on them); the update
    /// hands the results to the verifier, which then does not repeat them. `None` (the
    /// default) when the kind has nothing to gain.
    fn precheck(
        _params: &'static Self::Params,
        _shares: &[&Self::Share],
    ) -> Option<Precheck<Self>> {
        None
    }
}

/// Results of [`ShareKind::precheck`], given to the verifier under the tracker's lock.
pub type Precheck<K> = Box<dyn FnOnce(&mut <K as ShareKind>::Verifier) + Send>;

/// The tracker of a kind.
pub type KindTracker<K> = ShareTracker<<K as ShareKind>::Share, <K as ShareKind>::Verifier>;
