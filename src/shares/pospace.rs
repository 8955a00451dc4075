//! The Chia proof-of-space share kind: [`PoSpaceShare`]s under [`PoSpaceVerifier`], in the
//! store's `pospace_shares` table, on their own gossip topic and sync protocol
//! (`/p2pool-rs/<network>/pospace-shares/1`, `/p2pool-rs/<network>/pospace-sync/1`).
//!
//! A share answers a Chia signage point; the verifier holds it as pending until the node knows
//! that signage point ([`super::Service::update_rules`] gives the verifier new ones).

use std::collections::BTreeMap;
use std::sync::Arc;

use libp2p::StreamProtocol;
use sharechain::chain::Chain;
use sharechain::pospace_share::{
    check_time, new_pospace_tracker, precheck, window_weights, ChiaNetwork, DecodeError,
    PoSpaceShare, PoSpaceVerifier, ShareError,
};
use sharechain::ShareHash;
use thiserror::Error;

use super::kind::{KindTracker, Precheck, Refusal, ShareKind};
use crate::p2p::Names;

/// Shares of the best chain a [`PoSpaceView`] keeps (the status page's share list).
pub const RECENT_SHARES: usize = 500;

/// A held share with where it stands in the chain.
#[derive(Debug, Clone)]
pub struct HeldShare {
    /// The share.
    pub share: Arc<PoSpaceShare>,
    /// Its local height in the held chain.
    pub height: u32,
    /// Whether it is verified.
    pub verified: bool,
}

/// The PoSpace kind's published view of the chain: what the farmer and the Chia HTTP API read,
/// derived once per change of the best share by the share worker.
#[derive(Debug, Clone)]
pub struct PoSpaceView {
    /// The best share (the parent of new shares).
    pub best: Option<ShareHash>,
    /// The difficulty the chain requires of a share on `best`.
    pub difficulty: u64,
    /// The newest [`RECENT_SHARES`] shares of the best chain, newest first.
    pub recent: Arc<Vec<HeldShare>>,
    /// Difficulty per payout puzzle hash over the PPLNS window ending with `best`
    /// (`sharechain::pospace_share::window_weights`).
    pub weights: Arc<BTreeMap<[u8; 32], u64>>,
    /// Shares in that window.
    pub window_shares: usize,
}

/// The Chia proof-of-space share kind.
#[derive(Debug, Clone, Copy)]
pub struct PoSpace;

/// Why bytes are not a PoSpace share this node takes in now.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ArrivalError {
    /// The bytes are not a well-formed PoSpace share of this network.
    #[error("undecodable PoSpace share: {0}")]
    Decode(#[from] DecodeError),
    /// The share decodes but fails the arrival check: its timestamp is too far in the future.
    #[error("PoSpace share: {0}")]
    Check(#[from] ShareError),
}

impl ShareKind for PoSpace {
    const NAME: &'static str = "pospace";
    const TABLE: &'static str = "pospace_shares";

    type Params = ChiaNetwork;
    type Tip = ();
    type Share = PoSpaceShare;
    type Verifier = PoSpaceVerifier;
    type VerifyError = ShareError;
    type DecodeError = ArrivalError;
    type View = PoSpaceView;

    fn network_name(params: &ChiaNetwork) -> &'static str {
        params.name
    }

    fn new_tracker(params: &'static ChiaNetwork) -> KindTracker<Self> {
        new_pospace_tracker(params)
    }

    fn encode(share: &PoSpaceShare) -> Vec<u8> {
        share.to_bytes()
    }

    fn decode(
        bytes: &[u8],
        params: &'static ChiaNetwork,
        now: u64,
    ) -> Result<PoSpaceShare, ArrivalError> {
        let share = PoSpaceShare::decode(bytes, params)?;
        check_time(&share, params, now)?;
        Ok(share)
    }

    fn refusal(error: &ArrivalError) -> Refusal {
        match error {
            ArrivalError::Decode(_) => Refusal::Malformed,
            ArrivalError::Check(ShareError::FutureTimestamp { .. }) => Refusal::Early,
            ArrivalError::Check(_) => Refusal::Invalid,
        }
    }

    fn view(
        params: &'static ChiaNetwork,
        tracker: &KindTracker<Self>,
        previous: Option<&PoSpaceView>,
    ) -> PoSpaceView {
        let best = tracker.best();
        let chain = tracker.chain();
        let difficulty = tracker.verifier().required_difficulty(chain, best.as_ref());
        if let Some(prev) = previous.filter(|p| p.best == best) {
            return PoSpaceView {
                difficulty,
                ..prev.clone()
            };
        }
        let (recent, weights, window_shares) = match best {
            Some(b) => (
                chain
                    .ancestors(&b)
                    .take(RECENT_SHARES)
                    .map(|s| {
                        let hash = s.hash();
                        HeldShare {
                            share: Arc::clone(s),
                            height: chain.height(&hash).unwrap_or(0),
                            verified: chain.is_verified(&hash),
                        }
                    })
                    .collect(),
                window_weights(chain, &b, params.window),
                chain.ancestors(&b).take(params.window as usize).count(),
            ),
            None => (Vec::new(), BTreeMap::new(), 0),
        };
        PoSpaceView {
            best,
            difficulty,
            recent: Arc::new(recent),
            weights: Arc::new(weights),
            window_shares,
        }
    }

    /// PoSpace shares carry no height: the local height of the held chain below the share.
    fn height(chain: &Chain<PoSpaceShare>, hash: &ShareHash) -> u32 {
        chain.height(hash).unwrap_or(0)
    }

    /// Proofs over up to 4 threads and the BLS signatures in one multi-pairing.
    fn precheck(params: &'static ChiaNetwork, shares: &[&PoSpaceShare]) -> Option<Precheck<Self>> {
        if shares.is_empty() {
            return None;
        }
        let threads = crate::cores().min(4);
        let results: Vec<_> = shares
            .iter()
            .map(|s| s.hash())
            .zip(precheck(shares, params, threads))
            .collect();
        Some(Box::new(move |verifier: &mut PoSpaceVerifier| {
            verifier.add_prechecked(results);
        }))
    }

    fn names(params: &ChiaNetwork) -> Names {
        let base = format!(
            "p2pool-rs/{}-{}/pospace",
            params.name,
            hex::encode(params.identity)
        );
        let name = |what: &str| format!("/p2pool-rs/{}/pospace-{what}/1", params.name);
        let proto = |what: &str| {
            StreamProtocol::try_from_owned(name(what)).expect("protocol names start with '/'")
        };
        Names {
            sync: proto("sync"),
            kad: proto("kad"),
            shares_topic: name("shares"),
            blocks_topic: name("blocks"),
            tips_topic: name("tips"),
            base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shares::Bitcoin;

    #[test]
    fn pospace_names_differ_from_bitcoin_and_between_networks() {
        let chia = ChiaNetwork::ALL.map(PoSpace::names);
        assert_eq!(chia[3].shares_topic, "/p2pool-rs/regtest/pospace-shares/1");
        for (i, a) in chia.iter().enumerate() {
            for b in &chia[i + 1..] {
                assert_ne!(a.sync, b.sync);
                assert_ne!(a.shares_topic, b.shares_topic);
                assert_ne!(a.identify_version(), b.identify_version());
            }
            for b in sharechain::NetworkParams::all().map(Bitcoin::names) {
                assert_ne!(a.sync, b.sync);
                assert_ne!(a.shares_topic, b.shares_topic);
                assert_ne!(a.identify_version(), b.identify_version());
            }
        }
    }

    #[test]
    fn malformed_bytes_are_refused_as_malformed() {
        let e = PoSpace::decode(&[1, 2, 3], &ChiaNetwork::REGTEST, 0).unwrap_err();
        assert_eq!(PoSpace::refusal(&e), Refusal::Malformed);
        let e = PoSpace::decode(&[], &ChiaNetwork::REGTEST, 0).unwrap_err();
        assert_eq!(PoSpace::refusal(&e), Refusal::Malformed);
    }
}
