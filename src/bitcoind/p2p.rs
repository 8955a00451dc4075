//! A Bitcoin P2P connection to our own bitcoind: the fastest way to hear of a new tip and a
//! second path, independent of RPC, for a found block.
//!
//! One task owns the connection. It does the handshake (`version`/`verack`, then
//! `sendheaders`, with `relay` off so bitcoind sends no transactions), answers `ping`, publishes
//! every block announced by `inv` or `headers` on a `watch`, and writes the `block` messages
//! handles ask for. Asked whether a block it sent is on bitcoind's active chain, it sends
//! `getheaders` from the block's parent up to the block, then a `ping`: bitcoind handles a
//! peer's messages in order, so by the `pong` it has processed the block and answered the
//! question. It reconnects with back-off whenever the connection fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::consensus::encode::serialize;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::{Block, BlockHash, Network};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::{AbortOnDrop, Backoff};

/// Version 70016: `wtxidrelay`-aware, like current Core.
const PROTOCOL_VERSION: u32 = 70016;
/// bitcoind pings every 2 minutes; this long without a message means the link is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(5 * 60);

/// Why the link is down or a message could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P2pError {
    /// No connection is up right now.
    #[error("not connected to bitcoind's p2p port")]
    NotConnected,
    /// The link's task has stopped (its handle was dropped).
    #[error("the p2p link was stopped")]
    Stopped,
    /// The TCP connection to bitcoind failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// bitcoind's P2P address.
        addr: SocketAddr,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("p2p i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A step took too long; names it (`connect`, `handshake`, or bitcoind's silence).
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// Reading a message failed (i/o, wrong magic, oversized).
    #[error("p2p {0}")]
    Frame(#[from] super::wire::FrameError),
    /// bitcoind closed the connection.
    #[error("bitcoind closed the connection")]
    Closed,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// bitcoind's P2P address (`127.0.0.1:8333` on mainnet).
    pub addr: SocketAddr,
    /// The network whose message magic the link uses.
    pub network: Network,
    /// The user agent sent in `version` (`/p2pool-rs:<version>/` by default).
    pub user_agent: String,
    /// Between reconnection attempts.
    pub backoff: Backoff,
    /// For the TCP connect and the handshake each.
    pub timeout: Duration,
}

impl P2pConfig {
    /// Defaults for `addr` on `network`: back-off 0.5 s to 30 s between reconnections, 10 s timeouts.
    pub fn new(addr: SocketAddr, network: Network) -> Self {
        Self {
            addr,
            network,
            user_agent: format!("/p2pool-rs:{}/", env!("CARGO_PKG_VERSION")),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            timeout: Duration::from_secs(10),
        }
    }
}

enum Command {
    SendBlock(Box<Block>, oneshot::Sender<Result<(), P2pError>>),
    InActiveChain {
        hash: BlockHash,
        parent: BlockHash,
        reply: oneshot::Sender<Result<bool, P2pError>>,
    },
}

impl Command {
    /// Answer without doing anything: the link is down.
    fn refuse(self) {
        match self {
            Command::SendBlock(_, reply) => {
                let _ = reply.send(Err(P2pError::NotConnected));
            }
            Command::InActiveChain { reply, .. } => {
                let _ = reply.send(Err(P2pError::NotConnected));
            }
        }
    }
}

/// An [`BitcoindP2p::in_active_chain`] question waiting for its `pong`.
struct Question {
    nonce: u64,
    hash: BlockHash,
    seen: bool,
    reply: oneshot::Sender<Result<bool, P2pError>>,
}

/// A handle to the P2P link; cheap to clone. The link stops with the last clone.
#[derive(Debug, Clone)]
pub struct BitcoindP2p {
    commands: mpsc::Sender<Command>,
    tips: watch::Receiver<Option<BlockHash>>,
    connected: watch::Receiver<bool>,
    _task: Arc<AbortOnDrop>,
}

impl BitcoindP2p {
    /// Start connecting (and reconnecting) in the background.
    pub fn spawn(config: P2pConfig) -> Self {
        let (commands, commands_rx) = mpsc::channel(16);
        let (tips_tx, tips) = watch::channel(None);
        let (connected_tx, connected) = watch::channel(false);
        let task = tokio::spawn(run(config, commands_rx, tips_tx, connected_tx));
        Self {
            commands,
            tips,
            connected,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// The last block bitcoind announced (`None` before the first announcement).
    pub fn tips(&self) -> watch::Receiver<Option<BlockHash>> {
        self.tips.clone()
    }

    /// `true` while the handshake is done and the connection is up.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// Whether the handshake is done and the connection is up now.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Send `block` (with its witnesses) as a `block` message. `Ok` once written to the socket;
    /// fails at once when the link is down.
    pub async fn send_block(&self, block: Block) -> Result<(), P2pError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::SendBlock(Box::new(block), reply))
            .await
            .map_err(|_| P2pError::Stopped)?;
        done.await.map_err(|_| P2pError::Stopped)?
    }

    /// Whether block `hash` (child of `parent`) is on bitcoind's active chain once bitcoind has
    /// handled everything sent before on this link, such as the `block` message of
    /// [`Self::send_block`]. `false` also when bitcoind does not answer `getheaders` (Core
    /// ignores it during initial block download). Fails when the link is down.
    pub async fn in_active_chain(
        &self,
        hash: BlockHash,
        parent: BlockHash,
    ) -> Result<bool, P2pError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::InActiveChain {
                hash,
                parent,
                reply,
            })
            .await
            .map_err(|_| P2pError::Stopped)?;
        done.await.map_err(|_| P2pError::Stopped)?
    }
}

async fn run(
    config: P2pConfig,
    mut commands: mpsc::Receiver<Command>,
    tips: watch::Sender<Option<BlockHash>>,
    connected: watch::Sender<bool>,
) {
    let mut backoff = config.backoff.clone();
    loop {
        let result = session(&config, &mut commands, &tips, &connected, &mut backoff).await;
        connected.send_replace(false);
        match result {
            Err(P2pError::Stopped) => return,
            Err(e) => tracing::warn!(addr = %config.addr, error = %e, "bitcoind p2p link down"),
            Ok(()) => {}
        }
        // Refuse sends while waiting: the submitter must not wait on a dead link.
        let retry = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(retry);
        loop {
            tokio::select! {
                () = &mut retry => break,
                command = commands.recv() => match command {
                    Some(command) => command.refuse(),
                    None => return,
                },
            }
        }
    }
}

async fn session(
    config: &P2pConfig,
    commands: &mut mpsc::Receiver<Command>,
    tips: &watch::Sender<Option<BlockHash>>,
    connected: &watch::Sender<bool>,
    backoff: &mut Backoff,
) -> Result<(), P2pError> {
    let addr = config.addr;
    let stream = tokio::time::timeout(config.timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| P2pError::Timeout("connect"))?
        .map_err(|source| P2pError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr()?;
    let (reader, mut writer) = stream.into_split();
    let magic = Magic::from(config.network);
    // Reading lives in its own task: a half-read frame must not be lost to the select below.
    let (frames_tx, mut frames) = mpsc::channel(16);
    let _reader = AbortOnDrop(tokio::spawn(read_frames(reader, magic, frames_tx)));
    send(&mut writer, magic, version_message(config, local)).await?;
    let handshake_deadline = tokio::time::Instant::now() + config.timeout;
    let (mut got_version, mut got_verack) = (false, false);
    let mut heard_at = tokio::time::Instant::now();
    // Answered in order; dropped (so failed) with the connection.
    let mut questions: Vec<Question> = Vec::new();
    loop {
        let ready = got_version && got_verack;
        tokio::select! {
            frame = frames.recv() => {
                heard_at = tokio::time::Instant::now();
                let message = match frame {
                    Some(Ok(Some(message))) => message,
                    Some(Ok(None)) => continue,
                    Some(Err(e)) => return Err(e),
                    None => return Err(P2pError::Closed),
                };
                match message {
                    NetworkMessage::Version(version) => {
                        tracing::debug!(%addr, agent = %version.user_agent, height = version.start_height, "bitcoind p2p version");
                        got_version = true;
                        send(&mut writer, magic, NetworkMessage::Verack).await?;
                    }
                    NetworkMessage::Verack => got_verack = true,
                    NetworkMessage::Ping(nonce) => {
                        send(&mut writer, magic, NetworkMessage::Pong(nonce)).await?;
                    }
                    NetworkMessage::Inv(items) => {
                        let last = items.iter().rev().find_map(|item| match item {
                            Inventory::Block(h) | Inventory::WitnessBlock(h) => Some(*h),
                            _ => None,
                        });
                        if let Some(hash) = last {
                            announce(tips, hash);
                        }
                    }
                    NetworkMessage::Headers(headers) => {
                        for question in &mut questions {
                            question.seen |= headers.iter().any(|h| h.block_hash() == question.hash);
                        }
                        if let Some(header) = headers.last() {
                            announce(tips, header.block_hash());
                        }
                    }
                    NetworkMessage::Pong(nonce) => {
                        if let Some(i) = questions.iter().position(|q| q.nonce == nonce) {
                            let question = questions.remove(i);
                            let _ = question.reply.send(Ok(question.seen));
                        }
                    }
                    _ => {}
                }
                if !ready && got_version && got_verack {
                    send(&mut writer, magic, NetworkMessage::SendHeaders).await?;
                    connected.send_replace(true);
                    backoff.reset();
                    tracing::info!(%addr, "bitcoind p2p link up");
                }
            }
            command = commands.recv() => match command {
                None => return Err(P2pError::Stopped),
                Some(command) if !ready => command.refuse(),
                Some(Command::InActiveChain { hash, parent, reply }) => {
                    let nonce = rand::random();
                    let request = GetHeadersMessage::new(vec![parent], hash);
                    send(&mut writer, magic, NetworkMessage::GetHeaders(request)).await?;
                    send(&mut writer, magic, NetworkMessage::Ping(nonce)).await?;
                    questions.push(Question { nonce, hash, seen: false, reply });
                }
                Some(Command::SendBlock(block, reply)) => {
                    let hash = block.block_hash();
                    let result = send(&mut writer, magic, NetworkMessage::Block(*block)).await;
                    let failed = result.as_ref().err().map(ToString::to_string);
                    let _ = reply.send(result);
                    if let Some(e) = failed {
                        return Err(P2pError::Io(std::io::Error::other(e)));
                    }
                    tracing::info!(%hash, "block sent to bitcoind over p2p");
                }
            },
            () = tokio::time::sleep_until(handshake_deadline), if !ready => {
                return Err(P2pError::Timeout("handshake"));
            }
            () = tokio::time::sleep_until(heard_at + SILENCE_LIMIT) => {
                return Err(P2pError::Timeout("no message from bitcoind in 5 minutes"));
            }
        }
    }
}

fn announce(tips: &watch::Sender<Option<BlockHash>>, hash: BlockHash) {
    tips.send_if_modified(|tip| {
        let new = *tip != Some(hash);
        if new {
            tracing::debug!(%hash, "bitcoind announced a block");
            *tip = Some(hash);
        }
        new
    });
}

fn version_message(config: &P2pConfig, local: SocketAddr) -> NetworkMessage {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let nonce = now ^ u64::from(std::process::id()).rotate_left(32) ^ u64::from(local.port());
    NetworkMessage::Version(VersionMessage {
        version: PROTOCOL_VERSION,
        services: ServiceFlags::NONE,
        timestamp: i64::try_from(now).unwrap_or(0),
        receiver: Address::new(&config.addr, ServiceFlags::NONE),
        sender: Address::new(&local, ServiceFlags::NONE),
        nonce,
        user_agent: config.user_agent.clone(),
        start_height: 0,
        relay: false,
    })
}

async fn send(
    writer: &mut OwnedWriteHalf,
    magic: Magic,
    message: NetworkMessage,
) -> Result<(), P2pError> {
    let raw = RawNetworkMessage::new(magic, message);
    writer.write_all(&serialize(&raw)).await?;
    Ok(())
}

/// A frame: a message, `None` for one that does not decode (skipped), or the error that ends
/// the connection.
type Frame = Result<Option<NetworkMessage>, P2pError>;

async fn read_frames(mut reader: OwnedReadHalf, magic: Magic, frames: mpsc::Sender<Frame>) {
    loop {
        let frame = read_frame(&mut reader, magic).await;
        let failed = frame.is_err();
        if frames.send(frame).await.is_err() || failed {
            return;
        }
    }
}

async fn read_frame(reader: &mut OwnedReadHalf, magic: Magic) -> Frame {
    Ok(super::wire::read_message(reader, magic).await?)
}
