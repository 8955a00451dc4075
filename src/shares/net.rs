//! The share network as the worker sees it: a small trait ([`ShareNet`]) for what the worker
//! tells the network (publish a share, the verdict on a gossip message, penalise a peer), so the
//! pipeline is tested without sockets. `Live` is the real network, through [`P2pHandle`]'s own
//! methods; none of them blocks the worker.

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;

use crate::p2p::{Offence, P2pHandle};

/// What the share worker tells the share network. Implementations never block the caller (the
/// worker is a thread outside the async runtime, and the network waits on the worker).
pub trait ShareNet: Send + Sync + 'static {
    /// Gossips an encoded share (already verified and stored).
    fn publish_share(&self, bytes: Vec<u8>);
    /// The verdict on a gossip message: `Accept` forwards it, `Reject`/`Ignore` drop it.
    fn validated(&self, id: MessageId, source: PeerId, acceptance: MessageAcceptance);
    /// Disconnects and bans `peer`.
    fn penalise(&self, peer: PeerId, offence: Offence);
}

/// The live share network.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) p2p: P2pHandle,
    pub(super) rt: tokio::runtime::Handle,
}

impl ShareNet for Live {
    fn publish_share(&self, bytes: Vec<u8>) {
        self.p2p.publish_share_nowait(bytes, &self.rt);
    }

    fn validated(&self, id: MessageId, source: PeerId, acceptance: MessageAcceptance) {
        self.p2p.validated_nowait(id, source, acceptance, &self.rt);
    }

    fn penalise(&self, peer: PeerId, offence: Offence) {
        self.p2p.penalise_nowait(peer, offence, &self.rt);
    }
}
