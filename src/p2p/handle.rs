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
    /// The peer's libp2p identity.
    pub peer: PeerId,
    /// The address of the connection (the remote's for an incoming one, the dialled one otherwise).
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
    /// The peer did not answer (not connected, timed out, stream error); holds the reason.
    #[error("request failed: {0}")]
    Failed(String),
    /// The event loop has stopped.
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
    pub(crate) overflow: std::sync::Arc<Overflow>,
}

/// Commands from threads outside the runtime that found the command queue full: kept in order,
/// at most [`Overflow::CAP`], and fed to the queue by one task while any are waiting.
#[derive(Debug)]
pub(crate) struct Overflow {
    queue: parking_lot::Mutex<OverflowQueue>,
    full_log: crate::logging::RateLimited,
}

#[derive(Debug, Default)]
struct OverflowQueue {
    commands: std::collections::VecDeque<Command>,
    /// A task is feeding `commands` to the command queue.
    draining: bool,
    dropped: u64,
}

impl Overflow {
    /// About a second of a busy share network's commands.
    pub(crate) const CAP: usize = 4096;

    pub(crate) fn new() -> Self {
        Overflow {
            queue: parking_lot::Mutex::new(OverflowQueue::default()),
            full_log: crate::logging::RateLimited::new(std::time::Duration::from_secs(10)),
        }
    }

    /// Commands dropped because the overflow was full too (the log line carries it).
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.queue.lock().dropped
    }
}

impl P2pHandle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Sends a command from a thread outside the runtime (the share service's worker) without
    /// ever blocking it. Blocking here could close a cycle (loop → inbound → worker → commands →
    /// loop) into a deadlock; so when the queue is full the command waits, in order, in the
    /// bounded [`Overflow`], which one task on `rt` feeds to the queue. When that is full too the
    /// command is dropped, counted and logged: a share then reaches peers by sync, a
    /// validation verdict by gossipsub's timeout.
    fn send_nowait(&self, cmd: Command, rt: &tokio::runtime::Handle) {
        let overflow = &self.overflow;
        let mut q = overflow.queue.lock();
        // Behind commands already waiting: they go first.
        let cmd = if q.commands.is_empty() && !q.draining {
            match self.tx.try_send(cmd) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(cmd)) => cmd,
            }
        } else {
            cmd
        };
        if q.commands.len() >= Overflow::CAP {
            q.dropped += 1;
            let dropped = q.dropped;
            drop(q);
            crate::log_limited!(
                overflow.full_log,
                warn,
                dropped,
                "share network command queue full; a command was dropped"
            );
            return;
        }
        q.commands.push_back(cmd);
        if !q.draining {
            q.draining = true;
            let tx = self.tx.clone();
            let overflow = std::sync::Arc::clone(overflow);
            rt.spawn(async move {
                loop {
                    let next = {
                        let mut q = overflow.queue.lock();
                        let next = q.commands.pop_front();
                        if next.is_none() {
                            q.draining = false;
                        }
                        next
                    };
                    let Some(cmd) = next else { return };
                    if tx.send(cmd).await.is_err() {
                        // The loop is gone (shutdown): what waits is moot.
                        let mut q = overflow.queue.lock();
                        q.commands.clear();
                        q.draining = false;
                        return;
                    }
                }
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
            overflow: std::sync::Arc::new(Overflow::new()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(n: u32) -> Command {
        Command::Publish {
            topic: Topic::Shares,
            data: n.to_le_bytes().to_vec(),
        }
    }

    fn number(cmd: Command) -> u32 {
        match cmd {
            Command::Publish { data, .. } => u32::from_le_bytes(data.try_into().expect("4 bytes")),
            other => panic!("{other:?}"),
        }
    }

    /// A full queue: later commands wait in order behind it, no task per command, and beyond
    /// the cap they are dropped and counted.
    #[test]
    fn a_full_queue_keeps_order_and_bounds_what_waits() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (handle, mut rx) = P2pHandle::detached(2);
        let total = 2 + Overflow::CAP as u32 + 3;
        for n in 0..total {
            handle.send_nowait(publish(n), rt.handle());
        }
        assert_eq!(handle.overflow.dropped(), 3);
        let got: Vec<u32> = rt.block_on(async {
            let mut got = Vec::new();
            while got.len() < total as usize - 3 {
                got.push(number(rx.recv().await.expect("command")));
            }
            got
        });
        assert_eq!(got, (0..total - 3).collect::<Vec<_>>());
        rt.block_on(async {
            while handle.overflow.queue.lock().draining {
                tokio::task::yield_now().await;
            }
        });
        // Drained: the next command goes straight to the queue.
        handle.send_nowait(publish(7), rt.handle());
        assert_eq!(rx.try_recv().map(number).ok(), Some(7));
    }
}
