//! The cloneable handle to the swarm's event loop: commands over a bounded channel, replies on
//! oneshots (rust-libp2p's file-sharing example's `Client`).

use bitcoin::block::Header;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::{Multiaddr, PeerId};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::peers::Offence;
use super::protocol::{SyncRequest, SyncResponse};
use super::ReplyChannel;

/// Which gossip topic a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic {
    Shares,
    Blocks,
    Tips,
}

#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
    },
    Validated {
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    Request {
        peer: PeerId,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, RequestError>>,
    },
    Respond {
        reply: ReplyChannel,
        response: SyncResponse,
    },
    Penalise {
        peer: PeerId,
        offence: Offence,
    },
    Dial(Multiaddr),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Shutdown,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer: PeerId,
    pub addr: Multiaddr,
    /// Identify confirmed it is on our network.
    pub ready: bool,
    /// It dialled us (else we dialled it).
    pub incoming: bool,
    /// The software it runs, as identify reported it.
    pub agent_version: Option<String>,
}

/// Why a sync request got no answer.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("request failed: {0}")]
    Failed(String),
    #[error("network stopped")]
    Stopped,
}

/// Talks to the swarm's event loop. Cheap to clone.
#[derive(Debug, Clone)]
pub struct P2pHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) peer_id: PeerId,
    pub(crate) blocks: broadcast::Sender<(PeerId, Vec<u8>)>,
    pub(crate) tips: broadcast::Sender<(PeerId, Header)>,
}

impl P2pHandle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Sends a command from a thread outside the runtime (the share service's worker) without
    /// ever blocking it: when the queue is full the send waits in a task on `rt`. Blocking here
    /// could close a cycle (loop → inbound → worker → commands → loop) into a deadlock.
    fn send_nowait(&self, cmd: Command, rt: &tokio::runtime::Handle) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(cmd) {
            let tx = self.tx.clone();
            rt.spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }

    /// Gossips an encoded share from a thread outside the runtime, never blocking it.
    pub(crate) fn publish_share_nowait(&self, bytes: Vec<u8>, rt: &tokio::runtime::Handle) {
        self.send_nowait(
            Command::Publish {
                topic: Topic::Shares,
                data: bytes,
            },
            rt,
        );
    }

    /// [`Self::validated`] from a thread outside the runtime, never blocking it.
    pub(crate) fn validated_nowait(
        &self,
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
        rt: &tokio::runtime::Handle,
    ) {
        self.send_nowait(
            Command::Validated {
                id,
                source,
                acceptance,
            },
            rt,
        );
    }

    /// [`Self::penalise`] from a thread outside the runtime, never blocking it.
    pub(crate) fn penalise_nowait(
        &self,
        peer: PeerId,
        offence: Offence,
        rt: &tokio::runtime::Handle,
    ) {
        self.send_nowait(Command::Penalise { peer, offence }, rt);
    }

    /// A handle to no network: what it is asked goes to the returned receiver (for tests of
    /// what uses the network).
    #[cfg(test)]
    pub(crate) fn detached(capacity: usize) -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(capacity);
        let handle = P2pHandle {
            tx,
            peer_id: PeerId::random(),
            blocks: broadcast::channel(1).0,
            tips: broadcast::channel(1).0,
        };
        (handle, rx)
    }

    async fn send(&self, cmd: Command) {
        // The loop is gone only at shutdown; commands after it are moot.
        let _ = self.tx.send(cmd).await;
    }

    /// Gossips an encoded share (already verified and stored by the caller).
    pub async fn publish_share(&self, bytes: Vec<u8>) {
        self.send(Command::Publish {
            topic: Topic::Shares,
            data: bytes,
        })
        .await;
    }

    /// Gossips a found block (consensus encoding) so every node submits it to its bitcoind.
    pub async fn publish_block(&self, block: &bitcoin::Block) {
        let data = bitcoin::consensus::serialize(block);
        self.send(Command::Publish {
            topic: Topic::Blocks,
            data,
        })
        .await;
    }

    /// Gossips a new bitcoin tip so peers switch work before their own bitcoind tells them.
    pub async fn publish_tip(&self, header: &Header) {
        let data = bitcoin::consensus::serialize(header);
        self.send(Command::Publish {
            topic: Topic::Tips,
            data,
        })
        .await;
    }

    /// Found blocks gossiped by peers (decoded and proof-of-work checked by the loop).
    pub fn subscribe_blocks(&self) -> broadcast::Receiver<(PeerId, Vec<u8>)> {
        self.blocks.subscribe()
    }

    /// New bitcoin tips gossiped by peers (proof of work checked against their own bits).
    pub fn subscribe_tips(&self) -> broadcast::Receiver<(PeerId, Header)> {
        self.tips.subscribe()
    }

    /// Reports the verdict on a gossip message: `Accept` forwards it, `Reject`/`Ignore` drop it.
    pub async fn validated(&self, id: MessageId, source: PeerId, acceptance: MessageAcceptance) {
        self.send(Command::Validated {
            id,
            source,
            acceptance,
        })
        .await;
    }

    /// Sends a sync request to `peer` and waits for its answer.
    pub async fn request(
        &self,
        peer: PeerId,
        request: SyncRequest,
    ) -> Result<SyncResponse, RequestError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request {
            peer,
            request,
            reply,
        })
        .await;
        rx.await.map_err(|_| RequestError::Stopped)?
    }

    /// Answers a peer's sync request.
    pub async fn respond(&self, reply: ReplyChannel, response: SyncResponse) {
        self.send(Command::Respond { reply, response }).await;
    }

    /// Disconnects and bans `peer` for the configured time.
    pub async fn penalise(&self, peer: PeerId, offence: Offence) {
        self.send(Command::Penalise { peer, offence }).await;
    }

    /// Dials an address (with or without `/p2p/<id>`).
    pub async fn dial(&self, addr: Multiaddr) {
        self.send(Command::Dial(addr)).await;
    }

    /// The connected peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Peers(tx)).await;
        rx.await.unwrap_or_default()
    }

    /// The addresses the node listens on (with the port the OS chose for port 0).
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::ListenAddrs(tx)).await;
        rx.await.unwrap_or_default()
    }

    /// Stops the event loop (connections close).
    pub async fn shutdown(&self) {
        self.send(Command::Shutdown).await;
    }
}
