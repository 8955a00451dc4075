//! The Bitcoin P2P side: inbound peers, handshake, block relay and tip announcements.
//!
//! Each peer gets one task. It answers `version`/`verack`, `ping`, `sendheaders`, `getheaders`
//! and `getdata` (blocks), fetches announced blocks it lacks (`inv`/`headers` → `getdata`),
//! hands received `block`s to the kernel exactly as sent (no witness is added: a committing
//! coinbase without its reserved value is mutated, as in Core), and announces every new tip with
//! `headers` (after `sendheaders`) or `inv`. A wrong network magic or an oversized message ends
//! the connection, as in Core; a payload that does not decode is logged and skipped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::{Block, BlockHash};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::chain::{now, ChainHandle};
use super::submit::SubmitOutcome;

pub const PROTOCOL_VERSION: u32 = 70016;
pub const USER_AGENT: &str = "/p2pool-devchain:0.1.0/";
/// Core's `MAX_PROTOCOL_MESSAGE_LENGTH`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a peer connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Reading a message failed (i/o, wrong magic, oversized).
    #[error(transparent)]
    Frame(#[from] p2pool_common::wire::FrameError),
    #[error("no version message in time")]
    HandshakeTimeout,
    #[error("chainstate stopped")]
    ChainStopped,
}

/// Accept peers on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    chain: ChainHandle,
    peers: Arc<AtomicUsize>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = super::wait_stop(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let chain = chain.clone();
                    let peers = peers.clone();
                    let local = listener.local_addr().ok();
                    tasks.spawn(async move {
                        peers.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%addr, "p2p peer connected");
                        let result = Peer::new(stream, addr, local, chain).run().await;
                        peers.fetch_sub(1, Ordering::Relaxed);
                        match result {
                            Ok(()) => tracing::info!(%addr, "p2p peer disconnected"),
                            Err(e) => tracing::info!(%addr, error = %e, "p2p peer dropped"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "p2p accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
}

struct Peer {
    reader: Option<tokio::net::tcp::OwnedReadHalf>,
    writer: OwnedWriteHalf,
    addr: SocketAddr,
    local: Option<SocketAddr>,
    chain: ChainHandle,
    got_version: bool,
    send_headers: bool,
    last_announced: BlockHash,
}

impl Peer {
    fn new(
        stream: TcpStream,
        addr: SocketAddr,
        local: Option<SocketAddr>,
        chain: ChainHandle,
    ) -> Self {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let last_announced = chain.tip().hash;
        Self {
            reader: Some(reader),
            writer,
            addr,
            local,
            chain,
            got_version: false,
            send_headers: false,
            last_announced,
        }
    }

    async fn send(&mut self, message: NetworkMessage) -> Result<(), PeerError> {
        let raw = RawNetworkMessage::new(Magic::REGTEST, message);
        self.writer.write_all(&serialize(&raw)).await?;
        Ok(())
    }

    async fn run(mut self) -> Result<(), PeerError> {
        let mut tips = self.chain.subscribe();
        tips.borrow_and_update();
        // Reading lives in its own task: a frame half read must not be lost when a tip change
        // wins the select below.
        let (frames_tx, mut frames) = tokio::sync::mpsc::channel(16);
        let mut reader_task = JoinSet::new();
        if let Some(reader) = self.reader.take() {
            reader_task.spawn(read_frames(reader, self.addr, frames_tx));
        }
        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(Ok(Some(message))) => self.handle(message).await?,
                    Some(Ok(None)) => {}
                    Some(Err(PeerError::Frame(p2pool_common::wire::FrameError::Io(e))))
                        if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Ok(())
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
                changed = tips.changed() => {
                    if changed.is_err() {
                        return Err(PeerError::ChainStopped);
                    }
                    let tip = tips.borrow_and_update().clone();
                    if self.got_version && tip.hash != self.last_announced {
                        self.announce(tip.hash, tip.header).await?;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if !self.got_version => {
                    return Err(PeerError::HandshakeTimeout);
                }
            }
        }
    }

    async fn announce(
        &mut self,
        tip: BlockHash,
        tip_header: bitcoin::block::Header,
    ) -> Result<(), PeerError> {
        let since = self.last_announced;
        self.last_announced = tip;
        if self.send_headers {
            let headers = self
                .chain
                .call(move |s| s.headers_after(&[since], tip))
                .await
                .map_err(|_| PeerError::ChainStopped)?;
            if !headers.is_empty() && headers.len() <= 8 && headers.last() == Some(&tip_header) {
                return self.send(NetworkMessage::Headers(headers)).await;
            }
        }
        self.send(NetworkMessage::Inv(vec![Inventory::Block(tip)]))
            .await
    }

    async fn handle(&mut self, message: NetworkMessage) -> Result<(), PeerError> {
        match message {
            NetworkMessage::Version(version) => {
                if self.got_version {
                    return Ok(());
                }
                self.got_version = true;
                tracing::debug!(addr = %self.addr, agent = %version.user_agent, "p2p version");
                let height = self.chain.tip().height as i32;
                let local = self.local.unwrap_or(self.addr);
                let ours = VersionMessage {
                    version: PROTOCOL_VERSION,
                    services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
                    timestamp: i64::from(now()),
                    receiver: Address::new(&self.addr, ServiceFlags::NONE),
                    sender: Address::new(&local, ServiceFlags::NETWORK | ServiceFlags::WITNESS),
                    nonce: rand_nonce(),
                    user_agent: USER_AGENT.into(),
                    start_height: height,
                    relay: true,
                };
                self.send(NetworkMessage::Version(ours)).await?;
                self.send(NetworkMessage::Verack).await?;
            }
            NetworkMessage::Ping(nonce) => self.send(NetworkMessage::Pong(nonce)).await?,
            NetworkMessage::SendHeaders => self.send_headers = true,
            NetworkMessage::GetHeaders(request) => {
                let locator = request.locator_hashes;
                let stop = request.stop_hash;
                let headers = self
                    .chain
                    .call(move |s| s.headers_after(&locator, stop))
                    .await
                    .map_err(|_| PeerError::ChainStopped)?;
                if let Some(last) = headers.last() {
                    self.last_announced = last.block_hash();
                }
                self.send(NetworkMessage::Headers(headers)).await?;
            }
            NetworkMessage::GetData(items) => {
                let mut not_found = Vec::new();
                for item in items {
                    let (hash, witness) = match item {
                        Inventory::Block(h) => (h, false),
                        Inventory::WitnessBlock(h) => (h, true),
                        other => {
                            not_found.push(other);
                            continue;
                        }
                    };
                    let block = self
                        .chain
                        .call(move |s| s.block(&hash))
                        .await
                        .map_err(|_| PeerError::ChainStopped)?;
                    match block {
                        Some(block) if witness => self.send(NetworkMessage::Block(block)).await?,
                        Some(block) => {
                            self.send(NetworkMessage::Block(strip_witness(block)))
                                .await?
                        }
                        None => not_found.push(item),
                    }
                }
                if !not_found.is_empty() {
                    self.send(NetworkMessage::NotFound(not_found)).await?;
                }
            }
            NetworkMessage::Inv(items) => {
                let hashes = items
                    .iter()
                    .filter_map(|i| match i {
                        Inventory::Block(h) | Inventory::WitnessBlock(h) => Some(*h),
                        _ => None,
                    })
                    .collect();
                self.fetch_unknown(hashes).await?;
            }
            NetworkMessage::Headers(headers) => {
                let hashes = headers.iter().map(|h| h.block_hash()).collect();
                self.fetch_unknown(hashes).await?;
            }
            NetworkMessage::Tx(tx) => {
                let txid = tx.compute_txid();
                let result = self
                    .chain
                    .call(move |s| s.send_transaction(tx, None))
                    .await
                    .map_err(|_| PeerError::ChainStopped)?;
                tracing::debug!(addr = %self.addr, %txid, ?result, "p2p transaction received");
            }
            NetworkMessage::Block(block) => {
                let hash = block.block_hash();
                let outcome = self
                    .chain
                    .call(move |s| s.submit_block(block, false))
                    .await
                    .map_err(|_| PeerError::ChainStopped)?;
                tracing::info!(addr = %self.addr, %hash, ?outcome, "p2p block received");
                match outcome {
                    // The sender has it: do not announce it back.
                    SubmitOutcome::Accepted => self.last_announced = hash,
                    // A gap: ask the sender for the headers in between, as Core does.
                    SubmitOutcome::Rejected(reason) if reason == "prev-blk-not-found" => {
                        let locator = self
                            .chain
                            .call(|s| s.locator())
                            .await
                            .map_err(|_| PeerError::ChainStopped)?;
                        let request = GetHeadersMessage::new(locator, BlockHash::all_zeros());
                        self.send(NetworkMessage::GetHeaders(request)).await?;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Ask for the blocks among `hashes` the kernel does not have.
    async fn fetch_unknown(&mut self, hashes: Vec<BlockHash>) -> Result<(), PeerError> {
        let unknown: Vec<BlockHash> = self
            .chain
            .call(move |s| {
                hashes
                    .into_iter()
                    .filter(|h| s.block(h).is_none())
                    .collect()
            })
            .await
            .map_err(|_| PeerError::ChainStopped)?;
        if unknown.is_empty() {
            return Ok(());
        }
        let items = unknown.into_iter().map(Inventory::WitnessBlock).collect();
        self.send(NetworkMessage::GetData(items)).await
    }
}

type Frame = Result<Option<NetworkMessage>, PeerError>;

/// Read framed messages until the connection fails; `Ok(None)` for a payload that does not decode.
async fn read_frames(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    addr: SocketAddr,
    frames: tokio::sync::mpsc::Sender<Frame>,
) {
    loop {
        let frame = read_frame(&mut reader, addr).await;
        let failed = frame.is_err();
        if frames.send(frame).await.is_err() || failed {
            return;
        }
    }
}

async fn read_frame(reader: &mut tokio::net::tcp::OwnedReadHalf, addr: SocketAddr) -> Frame {
    p2pool_common::wire::read_message(reader, Magic::REGTEST)
        .await
        .map_err(|e| {
            tracing::debug!(%addr, error = %e, "p2p peer read failed");
            PeerError::Frame(e)
        })
}

fn strip_witness(mut block: Block) -> Block {
    for tx in &mut block.txdata {
        for input in &mut tx.input {
            input.witness.clear();
        }
    }
    block
}

fn rand_nonce() -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&bitcoin::hashes::sha256::Hash::hash(&now().to_le_bytes())[..8]);
    u64::from_le_bytes(bytes) ^ u64::from(std::process::id())
}
