//! `p2pool harvester --farmer HOST:PORT`: one connection to a chia farmer as chia's harvester
//! keeps it (`wss://HOST:PORT/ws`, TLS 1.3 with private-CA certificates), reconnecting every 3 s.
//! A session owns the websocket: it answers `harvester_handshake` with a plot sync
//! ([`super::sync`]), runs signage point lookups on blocking threads (at most
//! [`MAX_LOOKUPS`] at once; their messages come back over a bounded channel) and signature
//! requests ([`super::answer`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chia_bls::PublicKey;
use chia_protocol::{Handshake, NodeType};
use futures::SinkExt;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::answer::{answer_signage_point, sign, unix_now};
use super::plots::{Consensus, Plot};
use super::protocol::{self as p, msg, Frame, ProtocolError};
use super::sync::PlotSync;
pub use super::tls::CertSource;
use super::tls::{self, TlsError};
use crate::chia::wss::{self, DialError, Incoming};

/// Signage point lookups running at once; a signage point arriving past this is dropped.
pub const MAX_LOOKUPS: usize = 4;
/// Messages waiting to be written to the farmer.
const OUTBOX: usize = 256;
/// Wait between connection attempts (chia's harvester retries every 3 s).
const RECONNECT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A websocket ping goes out this often (aiohttp, under chia's farmer, answers it).
const PING_EVERY: Duration = Duration::from_secs(30);
/// Silence (no message, no pong) after which the farmer is taken for gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(90);

/// What the harvester needs to run.
#[derive(Debug, Clone)]
pub struct FarmConfig {
    /// `HOST:PORT` of the farmer's harvester port (8447 on mainnet).
    pub farmer: String,
    /// Plot files or directories.
    pub plots: Vec<PathBuf>,
    /// Where the certificates come from.
    pub certs: CertSource,
    /// Network id announced and required of the farmer ("mainnet").
    pub network_id: String,
    /// Network constants.
    pub consensus: Consensus,
}

/// Why a session with the farmer ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to the farmer at {addr}: {reason}")]
    Connect {
        /// `HOST:PORT`.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// TLS handshake failed (e.g. the farmer's certificate is not from the private CA, or ours
    /// is refused).
    #[error("TLS handshake with the farmer failed: {0}")]
    Tls(std::io::Error),
    /// Websocket upgrade or transport failure.
    #[error("websocket: {0}")]
    Websocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// A malformed, oversize or unexpected message.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The farmer sent a text frame (chia sends only binary frames).
    #[error("farmer sent a text frame")]
    TextFrame,
    /// The farmer is on another network.
    #[error("farmer is on network {theirs:?}, this harvester on {ours:?}")]
    NetworkMismatch {
        /// Our network id.
        ours: String,
        /// The farmer's.
        theirs: String,
    },
    /// The peer is not a farmer.
    #[error("peer is node type {0:?}, not a farmer")]
    NotFarmer(NodeType),
    /// The first message was not a handshake.
    #[error("expected a handshake, got message type {0}")]
    NoHandshake(u8),
    /// No handshake in time.
    #[error("no handshake from the farmer within {0:?}")]
    HandshakeTimeout(Duration),
    /// The farmer closed the connection.
    #[error("farmer closed the connection")]
    Closed,
    /// Nothing from the farmer, not even a pong, for too long.
    #[error("farmer silent for {0:?}")]
    Silent(Duration),
}

/// The harvester: plots opened once, then connections to the farmer forever.
#[derive(Debug)]
pub struct Harvester {
    config: FarmConfig,
    tls: Arc<rustls::ClientConfig>,
    plots: Vec<Arc<Plot>>,
    invalid: Vec<String>,
    /// Plots reported by plot sync but not farmed (see [`Harvester::announce_only`]).
    announced_only: Vec<p::Plot2>,
    lookups: Arc<Semaphore>,
    /// Shared with other harvesters of this process (see [`Harvester::lookup_gate`]).
    gate: Option<LookupGate>,
}

/// Lets the signage point lookups of the harvesters holding it run one at a time.
#[derive(Debug, Clone, Default)]
pub struct LookupGate(Arc<parking_lot::Mutex<()>>);

impl Harvester {
    /// Loads the TLS identity and opens the plots (plots that fail are reported to the farmer
    /// as invalid).
    pub fn new(config: FarmConfig) -> Result<Harvester, TlsError> {
        let identity = tls::Identity::load(&config.certs)?;
        let tls = Arc::new(tls::client_config(&identity)?);
        let (mut plots, mut invalid) = (Vec::new(), Vec::new());
        for path in super::plots::plot_paths(&config.plots) {
            match Plot::open(&path) {
                Ok(plot) => plots.push(Arc::new(plot)),
                Err(e) => {
                    tracing::warn!(plot = %path.display(), error = %e, "plot not farmed");
                    invalid.push(path.display().to_string());
                }
            }
        }
        tracing::info!(plots = plots.len(), invalid = invalid.len(), "plots opened");
        Ok(Harvester {
            config,
            tls,
            plots,
            invalid,
            announced_only: Vec::new(),
            lookups: Arc::new(Semaphore::new(MAX_LOOKUPS)),
            gate: None,
        })
    }

    /// Also reports `plots` in plot sync (and `respond_plots`) without farming them: a load
    /// generator announcing a large farm with no disk behind it. They are never looked up, so
    /// every proof still comes from an opened plot.
    pub fn announce_only(mut self, plots: Vec<p::Plot2>) -> Harvester {
        self.announced_only = plots;
        self
    }

    /// Runs this harvester's signage point lookups behind `gate`: harvesters given the same gate
    /// look up one signage point at a time between them. A load generator whose connections
    /// stand for harvesters on machines of their own shares one, so that a connection's
    /// signature reply (a few hundred microseconds, waited on by the farmer) is not
    /// time-sliced behind every other connection's lookup on the same cores.
    pub fn lookup_gate(mut self, gate: LookupGate) -> Harvester {
        self.gate = Some(gate);
        self
    }

    /// Plots opened.
    pub fn plots(&self) -> &[Arc<Plot>] {
        &self.plots
    }

    /// Connects and reconnects forever.
    pub async fn run(&self) {
        loop {
            match self.session().await {
                Ok(()) | Err(SessionError::Closed) => {
                    tracing::info!(farmer = %self.config.farmer, "farmer connection closed");
                }
                Err(e) => {
                    tracing::warn!(farmer = %self.config.farmer, error = %e, "farmer session ended")
                }
            }
            tokio::time::sleep(RECONNECT).await;
        }
    }

    /// One connection: handshake, then serve the farmer until it closes or misbehaves.
    pub async fn session(&self) -> Result<(), SessionError> {
        let addr = self.config.farmer.clone();
        let mut ws = wss::dial(&addr, self.tls.clone(), CONNECT_TIMEOUT, None)
            .await
            .map_err(|e| match e {
                DialError::Connect { addr, reason } => SessionError::Connect { addr, reason },
                DialError::Tls(e) => SessionError::Tls(e),
                DialError::Websocket(e) => SessionError::Websocket(e),
                // Not asked for a bound on the upgrade: only a future kind of failure.
                other => SessionError::Connect {
                    addr: addr.clone(),
                    reason: other.to_string(),
                },
            })?;

        let hello = Handshake {
            network_id: self.config.network_id.clone(),
            protocol_version: p::PROTOCOL_VERSION.to_owned(),
            software_version: format!("p2pool-rs {}", env!("CARGO_PKG_VERSION")),
            server_port: 0,
            node_type: NodeType::Harvester,
            capabilities: vec![(1, "1".into()), (2, "1".into()), (3, "1".into())],
        };
        send(
            &mut ws,
            &Frame::new(msg::HANDSHAKE, None, "handshake", &hello)?,
        )
        .await?;
        let mut last_seen = Instant::now();
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, recv(&mut ws, &mut last_seen))
            .await
            .map_err(|_| SessionError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??
            .ok_or(SessionError::Closed)?;
        if first.msg_type != msg::HANDSHAKE {
            return Err(SessionError::NoHandshake(first.msg_type));
        }
        let theirs: Handshake = first.payload("handshake")?;
        if theirs.network_id != self.config.network_id {
            tracing::error!(ours = %self.config.network_id, theirs = %theirs.network_id, "network id mismatch");
            return Err(SessionError::NetworkMismatch {
                ours: self.config.network_id.clone(),
                theirs: theirs.network_id,
            });
        }
        if theirs.node_type != NodeType::Farmer {
            return Err(SessionError::NotFarmer(theirs.node_type));
        }
        tracing::info!(
            farmer = %addr,
            network = %theirs.network_id,
            protocol = %theirs.protocol_version,
            version = %theirs.software_version,
            "connected to farmer"
        );
        self.serve(&mut ws, last_seen).await
    }

    async fn serve<S>(&self, ws: &mut S, mut last_seen: Instant) -> Result<(), SessionError>
    where
        S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
            + futures::Sink<WsMessage, Error = tokio_tungstenite::tungstenite::Error>
            + Unpin,
    {
        let (out_tx, mut out_rx) = mpsc::channel::<Frame>(OUTBOX);
        let mut farmable: Arc<Vec<Arc<Plot>>> = Arc::new(Vec::new());
        let mut sync: Option<PlotSync> = None;
        // As chia's harvester: no signage point is answered until the farmer has sent both
        // farmer and pool keys.
        let mut keys_available = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_ping = Instant::now();
        loop {
            tokio::select! {
                frame = recv(ws, &mut last_seen) => {
                    let Some(frame) = frame? else { return Err(SessionError::Closed) };
                    match frame.msg_type {
                        msg::HARVESTER_HANDSHAKE => {
                            let keys: p::HarvesterHandshake = frame.payload("harvester_handshake")?;
                            let (ok, missing) = self.partition(&keys.farmer_public_keys, &keys.pool_public_keys);
                            tracing::info!(
                                farmer_keys = keys.farmer_public_keys.len(),
                                pool_keys = keys.pool_public_keys.len(),
                                plots = ok.len(),
                                keys_missing = missing.len(),
                                "farmer keys received"
                            );
                            keys_available = !keys.farmer_public_keys.is_empty() && !keys.pool_public_keys.is_empty();
                            let infos = ok.iter().map(|p| p.info()).chain(self.announced_only.iter().cloned()).collect();
                            farmable = Arc::new(ok);
                            let mut s = PlotSync::new(infos, self.invalid.clone(), missing, unix_now());
                            if let Some(f) = s.next_frame(unix_now())? { send(ws, &f).await?; }
                            sync = Some(s);
                        }
                        msg::PLOT_SYNC_RESPONSE => {
                            let response: p::PlotSyncResponse = frame.payload("plot_sync_response")?;
                            if let Some(s) = sync.as_mut() {
                                s.on_response(&response);
                                if let Some(f) = s.next_frame(unix_now())? { send(ws, &f).await?; }
                            }
                        }
                        msg::NEW_SIGNAGE_POINT_HARVESTER => {
                            let sp: p::NewSignagePointHarvester2 = frame.payload("new_signage_point_harvester")?;
                            if !keys_available {
                                tracing::debug!("signage point without the farmer's keys: ignored");
                                continue;
                            }
                            let Ok(permit) = self.lookups.clone().try_acquire_owned() else {
                                tracing::warn!(max = MAX_LOOKUPS, "signage point dropped: lookups still running");
                                continue;
                            };
                            let (plots, tx, consensus) = (farmable.clone(), out_tx.clone(), self.config.consensus);
                            let gate = self.gate.clone();
                            tokio::task::spawn_blocking(move || {
                                let _permit = permit;
                                let _turn = gate.as_ref().map(|g| g.0.lock());
                                answer_signage_point(&plots, &sp, &consensus, &tx);
                            });
                        }
                        msg::REQUEST_SIGNATURES => {
                            let request: p::RequestSignatures = frame.payload("request_signatures")?;
                            if let Some(reply) = sign(&farmable, &request) {
                                send(ws, &Frame::new(msg::RESPOND_SIGNATURES, frame.id, "respond_signatures", &reply)?).await?;
                            }
                        }
                        msg::REQUEST_PLOTS => {
                            let reply = p::RespondPlots2 {
                                plots: farmable.iter().map(|p| p.info()).chain(self.announced_only.iter().cloned()).collect(),
                                failed_to_open_filenames: self.invalid.clone(),
                                no_key_filenames: Vec::new(),
                            };
                            send(ws, &Frame::new(msg::RESPOND_PLOTS2, frame.id, "respond_plots2", &reply)?).await?;
                        }
                        other => tracing::debug!(msg_type = other, "message ignored"),
                    }
                }
                Some(frame) = out_rx.recv() => send(ws, &frame).await?,
                _ = tick.tick() => {
                    if last_seen.elapsed() > SILENCE_LIMIT {
                        return Err(SessionError::Silent(SILENCE_LIMIT));
                    }
                    if last_ping.elapsed() >= PING_EVERY {
                        last_ping = Instant::now();
                        ws.send(WsMessage::Ping(Vec::new().into())).await?;
                    }
                    if let Some(s) = sync.as_mut() {
                        if let Some(f) = s.check_timeout(unix_now())? { send(ws, &f).await?; }
                    }
                }
            }
        }
    }

    /// Plots the farmer has keys for, and the paths of the others.
    fn partition(
        &self,
        farmer_keys: &[PublicKey],
        pool_keys: &[PublicKey],
    ) -> (Vec<Arc<Plot>>, Vec<String>) {
        let (ok, missing): (Vec<_>, Vec<_>) = self
            .plots
            .iter()
            .cloned()
            .partition(|p| p.has_keys(farmer_keys, pool_keys));
        (ok, missing.iter().map(|p| p.filename()).collect())
    }
}

async fn send<S>(ws: &mut S, frame: &Frame) -> Result<(), SessionError>
where
    S: futures::Sink<WsMessage, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    ws.send(WsMessage::Binary(frame.encode()?.into())).await?;
    Ok(())
}

/// The next chia message, `None` when the farmer closed; `last_seen` is set at any message
/// (pongs included).
async fn recv<S>(ws: &mut S, last_seen: &mut Instant) -> Result<Option<Frame>, SessionError>
where
    S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match wss::next_incoming(ws, last_seen).await? {
        Incoming::Message(b) => Ok(Some(Frame::decode(&b)?)),
        Incoming::Closed => Ok(None),
        Incoming::Text => Err(SessionError::TextFrame),
    }
}
