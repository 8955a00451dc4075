//! One harvester connection: TLS (client certificate from the farmer's CA), websocket `/ws`,
//! chia handshake (same network id, or refused with both names logged), `harvester_handshake`
//! with the farmer and pool keys, plot sync answered, signage points sent as announced, proofs
//! checked ([`super::intake`]) and signed through `request_signatures`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use chia_protocol::{Bytes32, Handshake, NodeType};
use futures::SinkExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::blocks::{BlockProof, SessionCommand};
use super::cpu;
use super::intake::{self, Candidate, Refused};
use super::messages;
use super::sink::SinkError;
use super::{Announced, Farmer, HarvesterInfo, PlotSummary, ShareRecord};
use crate::chia::protocol::{self as p, msg, Frame, ProtocolError};
use crate::chia::wss::{self, Incoming};

/// TLS and websocket handshakes must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A harvester silent (no message, no pong) this long is dropped.
const SILENCE_LIMIT: Duration = Duration::from_secs(90);
const PING_EVERY: Duration = Duration::from_secs(30);
/// Signature requests waiting for an answer; more are refused.
const MAX_PENDING_SIGNATURES: usize = 256;
/// A signature request unanswered this long is forgotten.
const SIGNATURE_TIMEOUT: Duration = Duration::from_secs(30);
/// Plots one harvester may report (far above any real farm's per-harvester count); more are
/// ignored, so a harvester cannot grow the node's memory without bound.
const MAX_PLOTS: usize = 1_000_000;
/// Shares handed to the share service and not yet answered, per connection.
const MAX_SUBMITTING: usize = 64;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("TLS: {reason}: {source}")]
    Tls {
        reason: super::tls::TlsRefusal,
        source: std::io::Error,
    },
    #[error("handshake timed out")]
    Timeout,
    #[error("websocket: {0}")]
    Websocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("text frame (chia sends binary frames only)")]
    TextFrame,
    #[error("expected a handshake, got message type {0}")]
    NoHandshake(u8),
    #[error("harvester is on network {theirs:?}, this node on {ours:?}")]
    NetworkMismatch { ours: String, theirs: String },
    #[error("peer is node type {0:?}, not a harvester")]
    NotHarvester(NodeType),
    #[error("harvester silent for {0:?}")]
    Silent(Duration),
    #[error("closed")]
    Closed,
}

impl SessionError {
    fn counter(&self) -> &'static str {
        match self {
            SessionError::Tls { reason, .. } => reason.counter(),
            SessionError::Timeout => "refused_handshake_timeout",
            SessionError::Websocket(tokio_tungstenite::tungstenite::Error::Capacity(_)) => {
                "dropped_oversize_message"
            }
            SessionError::Websocket(_) => "dropped_websocket",
            SessionError::Protocol(ProtocolError::Oversize(_)) => "dropped_oversize_message",
            SessionError::Protocol(_) => "dropped_malformed_message",
            SessionError::TextFrame => "dropped_text_frame",
            SessionError::NoHandshake(_) => "refused_no_handshake",
            SessionError::NetworkMismatch { .. } => "refused_network_id",
            SessionError::NotHarvester(_) => "refused_not_harvester",
            SessionError::Silent(_) => "dropped_silent",
            SessionError::Closed => "closed",
        }
    }
}

static SESSION_LOG: crate::logging::RateLimited =
    crate::logging::RateLimited::new(Duration::from_secs(5));
static NETWORK_LOG: crate::logging::RateLimited =
    crate::logging::RateLimited::new(Duration::from_secs(5));
static PROOF_LOG: crate::logging::RateLimited =
    crate::logging::RateLimited::new(Duration::from_secs(5));

/// Serves one connection to its end; the outcome is counted and logged.
pub(super) async fn run(farmer: Arc<Farmer>, stream: TcpStream, peer: SocketAddr) {
    let result = serve(&farmer, stream, peer).await;
    let error = match result {
        Ok(()) => SessionError::Closed,
        Err(e) => e,
    };
    farmer.count(error.counter());
    match &error {
        SessionError::Closed => tracing::info!(%peer, "harvester disconnected"),
        SessionError::NetworkMismatch { ours, theirs } => crate::log_limited!(
            NETWORK_LOG,
            warn,
            %peer,
            harvester_network = %theirs,
            node_network = %ours,
            "harvester refused: it is on network {theirs:?}, this node on {ours:?}"
        ),
        e => {
            crate::log_limited!(SESSION_LOG, warn, %peer, error = %e, "harvester connection ended")
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::server::TlsStream<TcpStream>>;

async fn serve(
    farmer: &Arc<Farmer>,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), SessionError> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, farmer.acceptor.accept(stream))
        .await
        .map_err(|_| SessionError::Timeout)?
        .map_err(|source| SessionError::Tls {
            reason: super::tls::classify(&source),
            source,
        })?;
    let node_id = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| hex::encode(sha256::Hash::hash(c.as_ref()).to_byte_array()))
        .unwrap_or_default();
    let mut ws = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_hdr_async_with_config(tls, only_ws_path, Some(wss::ws_config())),
    )
    .await
    .map_err(|_| SessionError::Timeout)??;

    let mut last_seen = Instant::now();
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, recv(&mut ws, &mut last_seen, farmer))
        .await
        .map_err(|_| SessionError::Timeout)??
        .ok_or(SessionError::Closed)?;
    if first.msg_type != msg::HANDSHAKE {
        return Err(SessionError::NoHandshake(first.msg_type));
    }
    let theirs: Handshake = first.payload("handshake")?;
    let ours = messages::handshake(
        &farmer.config.network_id,
        farmer.config.server_port,
        &messages::software_version(),
    );
    // Answered even on a mismatch, so the harvester logs the networks too.
    send(
        &mut ws,
        &Frame::new(msg::HANDSHAKE, None, "handshake", &ours)?,
    )
    .await?;
    if theirs.network_id != farmer.config.network_id {
        let _ = ws.close(None).await;
        return Err(SessionError::NetworkMismatch {
            ours: farmer.config.network_id.clone(),
            theirs: theirs.network_id,
        });
    }
    if theirs.node_type != NodeType::Harvester {
        return Err(SessionError::NotHarvester(theirs.node_type));
    }
    let id = farmer.next_id();
    tracing::info!(
        %peer,
        harvester = id,
        version = %theirs.software_version,
        protocol = %theirs.protocol_version,
        "harvester connected"
    );
    farmer.harvesters.lock().insert(
        id,
        HarvesterInfo {
            id,
            peer: peer.to_string(),
            node_id,
            software_version: theirs.software_version.clone(),
            connected_at: super::now_secs(),
            last_seen: super::now_secs(),
            plots: Vec::new(),
            invalid: Vec::new(),
            keys_missing: Vec::new(),
            duplicates: Vec::new(),
            plot_syncs: 0,
            proofs: 0,
            shares: 0,
            late_proofs: 0,
            duplicate_proofs: 0,
            refused_proofs: 0,
            refused_by_reason: BTreeMap::new(),
            lookup_times_us: Default::default(),
        },
    );
    let mut session = Session {
        farmer: farmer.clone(),
        id,
        sync: BTreeMap::new(),
        pending: HashMap::new(),
        next_message_id: 1,
        submitting: Arc::new(tokio::sync::Semaphore::new(MAX_SUBMITTING)),
        contracts: Vec::new(),
    };
    let commands = farmer.blocks.register_session(id);
    let result = session.serve(&mut ws, last_seen, commands).await;
    farmer.blocks.unregister_session(id);
    farmer.harvesters.lock().remove(&id);
    result
}

/// What a signature request was for.
enum Pending {
    /// A proof: its share (when it makes one) and its block (when good enough for the chain);
    /// one request signs the messages of both.
    Proof {
        share: Option<Candidate>,
        block: Option<Box<BlockProof>>,
    },
    /// The foliage of a block attempt the full node asked signed values for.
    Values {
        attempt: u64,
        messages: Vec<Bytes32>,
    },
}

struct Session {
    farmer: Arc<Farmer>,
    id: u64,
    /// Plots of the sync in progress, by file name.
    sync: BTreeMap<String, PlotSummary>,
    /// Signature requests by message id, with when each was sent.
    pending: HashMap<u16, (Pending, Instant)>,
    next_message_id: u16,
    submitting: Arc<tokio::sync::Semaphore>,
    /// Pool contract puzzle hashes of the plot-NFT plots of the last completed plot sync.
    contracts: Vec<Bytes32>,
}

/// The distinct pool contracts of `plots`, sorted.
fn contracts_of(plots: &[PlotSummary]) -> Vec<Bytes32> {
    let set: std::collections::BTreeSet<[u8; 32]> = plots
        .iter()
        .filter_map(|p| p.pool_contract_puzzle_hash.as_deref())
        .filter_map(|h| <[u8; 32]>::try_from(hex::decode(h).ok()?).ok())
        .collect();
    set.into_iter().map(Bytes32::new).collect()
}

fn summary(plot: &p::Plot2) -> PlotSummary {
    PlotSummary {
        filename: plot.filename.clone(),
        size: plot.size,
        plot_id: hex::encode(plot.plot_id),
        plot_public_key: hex::encode(plot.plot_public_key.to_bytes()),
        pool_contract_puzzle_hash: plot.pool_contract_puzzle_hash.map(hex::encode),
        file_size: plot.file_size,
    }
}

impl Session {
    async fn serve(
        &mut self,
        ws: &mut Ws,
        mut last_seen: Instant,
        mut commands: tokio::sync::mpsc::Receiver<SessionCommand>,
    ) -> Result<(), SessionError> {
        let keys = messages::harvester_handshake(&self.farmer.config.keys);
        send(
            ws,
            &Frame::new(msg::HARVESTER_HANDSHAKE, None, "harvester_handshake", &keys)?,
        )
        .await?;
        let mut announced = self.farmer.announced.subscribe();
        announced.mark_changed();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_ping = Instant::now();
        loop {
            tokio::select! {
                frame = recv(ws, &mut last_seen, &self.farmer) => {
                    let Some(frame) = frame? else { return Ok(()) };
                    let received = Instant::now();
                    let now = super::now_secs();
                    self.farmer.with_harvester(self.id, |h| h.last_seen = now);
                    self.on_frame(ws, frame, received).await?;
                }
                Some(command) = commands.recv() => {
                    self.on_command(ws, command).await?;
                }
                changed = announced.changed() => {
                    if changed.is_err() { return Ok(()) }
                    let latest = *announced.borrow_and_update();
                    if let Some(a) = latest {
                        self.send_signage_point(ws, &a).await?;
                    }
                }
                _ = tick.tick() => {
                    if last_seen.elapsed() > SILENCE_LIMIT {
                        return Err(SessionError::Silent(SILENCE_LIMIT));
                    }
                    if last_ping.elapsed() >= PING_EVERY {
                        last_ping = Instant::now();
                        ws.send(WsMessage::Ping(Vec::new().into())).await?;
                    }
                    self.pending.retain(|_, (_, sent)| sent.elapsed() < SIGNATURE_TIMEOUT);
                }
            }
        }
    }

    async fn send_signage_point(&mut self, ws: &mut Ws, a: &Announced) -> Result<(), SessionError> {
        let sp =
            messages::new_signage_point_harvester(self.farmer.config.network, a, &self.contracts);
        send(
            ws,
            &Frame::new(
                msg::NEW_SIGNAGE_POINT_HARVESTER,
                None,
                "new_signage_point_harvester",
                &sp,
            )?,
        )
        .await
    }

    async fn on_frame(
        &mut self,
        ws: &mut Ws,
        frame: Frame,
        received: Instant,
    ) -> Result<(), SessionError> {
        match frame.msg_type {
            msg::PLOT_SYNC_START => {
                let m: p::PlotSyncStart = frame.payload("plot_sync_start")?;
                self.sync = if m.initial {
                    BTreeMap::new()
                } else {
                    self.farmer
                        .harvesters
                        .lock()
                        .get(&self.id)
                        .map(|h| {
                            h.plots
                                .iter()
                                .map(|p| (p.filename.clone(), p.clone()))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                self.ack(ws, &m.identifier, frame.msg_type).await
            }
            msg::PLOT_SYNC_LOADED2 => {
                let m: p::PlotSyncPlotList2 = frame.payload("plot_sync_loaded2")?;
                for plot in &m.data {
                    if self.sync.len() >= MAX_PLOTS && !self.sync.contains_key(&plot.filename) {
                        self.farmer.count("plot_sync_over_limit");
                        break;
                    }
                    self.sync.insert(plot.filename.clone(), summary(plot));
                }
                self.ack(ws, &m.identifier, frame.msg_type).await
            }
            msg::PLOT_SYNC_REMOVED
            | msg::PLOT_SYNC_INVALID
            | msg::PLOT_SYNC_KEYS_MISSING
            | msg::PLOT_SYNC_DUPLICATES => {
                let m: p::PlotSyncPathList = frame.payload("plot_sync_path_list")?;
                let kind = frame.msg_type;
                if kind == msg::PLOT_SYNC_REMOVED {
                    for path in &m.data {
                        self.sync.remove(path);
                    }
                } else {
                    self.farmer.with_harvester(self.id, |h| {
                        let list = match kind {
                            msg::PLOT_SYNC_INVALID => &mut h.invalid,
                            msg::PLOT_SYNC_KEYS_MISSING => &mut h.keys_missing,
                            _ => &mut h.duplicates,
                        };
                        list.clone_from(&m.data);
                    });
                }
                self.ack(ws, &m.identifier, frame.msg_type).await
            }
            msg::PLOT_SYNC_DONE => {
                let m: p::PlotSyncDone = frame.payload("plot_sync_done")?;
                let plots: Vec<PlotSummary> =
                    std::mem::take(&mut self.sync).into_values().collect();
                self.contracts = contracts_of(&plots);
                tracing::info!(
                    harvester = self.id,
                    plots = plots.len(),
                    pool_contracts = self.contracts.len(),
                    "plot sync done"
                );
                self.farmer.with_harvester(self.id, |h| {
                    h.plots = plots;
                    h.plot_syncs += 1;
                });
                self.ack(ws, &m.identifier, frame.msg_type).await
            }
            msg::FARMING_INFO => {
                let m: p::FarmingInfo = frame.payload("farming_info")?;
                self.farmer.with_harvester(self.id, |h| {
                    h.lookup_times_us.push_back(m.lookup_time);
                    while h.lookup_times_us.len() > super::lookup_times() {
                        h.lookup_times_us.pop_front();
                    }
                });
                Ok(())
            }
            msg::NEW_PROOF_OF_SPACE => {
                // Keys checked where they are used as points (`intake::complete`, and the
                // block's signatures): most proofs never are (duplicates, below difficulty).
                let m: p::NewProofOfSpace = frame.payload_unchecked_points("new_proof_of_space")?;
                self.on_proof(ws, &m, received).await
            }
            msg::RESPOND_SIGNATURES => {
                let m: p::RespondSignatures = frame.payload("respond_signatures")?;
                self.on_signatures(frame.id, m);
                Ok(())
            }
            other => {
                tracing::debug!(harvester = self.id, msg_type = other, "message ignored");
                Ok(())
            }
        }
    }

    async fn ack(
        &mut self,
        ws: &mut Ws,
        identifier: &p::PlotSyncIdentifier,
        msg_type: u8,
    ) -> Result<(), SessionError> {
        let response = messages::plot_sync_response(identifier, msg_type);
        send(
            ws,
            &Frame::new(
                msg::PLOT_SYNC_RESPONSE,
                None,
                "plot_sync_response",
                &response,
            )?,
        )
        .await
    }

    fn refuse(&self, refused: &Refused) {
        refuse(&self.farmer, self.id, refused);
    }

    async fn on_proof(
        &mut self,
        ws: &mut Ws,
        m: &p::NewProofOfSpace,
        received: Instant,
    ) -> Result<(), SessionError> {
        self.farmer.count("proofs");
        self.farmer.with_harvester(self.id, |h| h.proofs += 1);
        // A proof good enough for the chain is declared to the full node, whether or not it
        // also makes a share (chia's farmer checks it first).
        let block = self.farmer.block_check(m).map(Box::new);
        let share = match intake::check_proof(&self.farmer, m, received) {
            Ok(c) => Some(c),
            Err(refused) => {
                self.refuse(&refused);
                None
            }
        };
        if share.is_none() && block.is_none() {
            return Ok(());
        }
        if self.pending.len() >= MAX_PENDING_SIGNATURES {
            self.farmer.count("proof_signatures_backlog");
            return Ok(());
        }
        let mut sign: Vec<[u8; 32]> = Vec::with_capacity(3);
        if let Some(c) = &share {
            sign.push(c.message);
        }
        if let Some(b) = &block {
            sign.push(b.point.sp_hash);
            sign.push(b.chain.reward_chain_sp);
        }
        let request = messages::request_signatures_of(m, &sign);
        let id = self.next_id();
        self.pending
            .insert(id, (Pending::Proof { share, block }, Instant::now()));
        request_signatures(ws, id, &request).await
    }

    fn next_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        id
    }

    async fn on_command(
        &mut self,
        ws: &mut Ws,
        command: SessionCommand,
    ) -> Result<(), SessionError> {
        match command {
            SessionCommand::SignValues { attempt, request } => {
                let id = self.next_id();
                let messages = request.messages.clone();
                self.pending
                    .insert(id, (Pending::Values { attempt, messages }, Instant::now()));
                request_signatures(ws, id, &request).await
            }
        }
    }

    fn on_signatures(&mut self, id: Option<u16>, reply: p::RespondSignatures) {
        let Some((pending, requested)) = id.and_then(|id| self.pending.remove(&id)) else {
            self.farmer.count("signature_unrequested");
            return;
        };
        let (share, block) = match pending {
            Pending::Values { attempt, messages } => {
                self.farmer.block_signed_values(attempt, &messages, &reply);
                return;
            }
            Pending::Proof { share, block } => (share, block),
        };
        if let Some(block) = &block {
            self.farmer.declare_block(self.id, block, &reply);
        }
        let Some(candidate) = share else { return };
        let signature_wait_ms = requested.elapsed().as_secs_f64() * 1e3;
        let Ok(permit) = self.submitting.clone().try_acquire_owned() else {
            self.farmer.count("share_backlog");
            return;
        };
        let farmer = self.farmer.clone();
        let harvester = self.id;
        tokio::spawn(async move {
            let _permit = permit;
            // The farmer key's signature (curve arithmetic) off the connection's task.
            let completing = farmer.clone();
            let completed = cpu::run(move || {
                let share = intake::complete(&completing, &candidate, &reply);
                (share, candidate)
            })
            .await;
            let Some((completed, candidate)) = completed else {
                farmer.count("share_completion_failed");
                return;
            };
            let share = match completed {
                Ok(s) => s,
                Err(refused) => {
                    refuse(&farmer, harvester, &refused);
                    return;
                }
            };
            let record = ShareRecord {
                hash: share.hash().to_string(),
                harvester,
                plot_id: hex::encode(share.plot_id()),
                k: share.k(),
                challenge_hash: hex::encode(share.content().challenge_hash),
                sp_hash: hex::encode(share.content().sp_hash),
                signage_point_index: share.content().signage_point_index,
                difficulty: share.content().difficulty,
                proof_to_share_ms: 0.0,
                signature_wait_ms,
                received: candidate.received_at,
                share: hex::encode(share.to_bytes()),
            };
            farmer
                .submitting
                .lock()
                .insert(record.hash.clone(), (harvester, record.received));
            let submitted = farmer.sink.submit(share).await;
            let hash = record.hash.clone();
            match submitted {
                Ok(_) => {
                    farmer.count("shares");
                    farmer.with_harvester(harvester, |h| h.shares += 1);
                    let record = ShareRecord {
                        proof_to_share_ms: candidate.received.elapsed().as_secs_f64() * 1e3,
                        ..record
                    };
                    tracing::info!(harvester, share = %record.hash, difficulty = record.difficulty, "PoSpace share");
                    farmer.record_share(record);
                    farmer.submitting.lock().remove(&hash);
                }
                // The harvester's signature (or the proof) does not check: the harvester's
                // fault, counted as its refused proof.
                Err(SinkError::Invalid(e)) => {
                    farmer.submitting.lock().remove(&hash);
                    refuse(&farmer, harvester, &Refused::Share(e));
                }
                Err(e) => {
                    farmer.submitting.lock().remove(&hash);
                    farmer.count("share_refused_by_service");
                    crate::log_limited!(PROOF_LOG, warn, harvester, error = %e, "share refused");
                }
            }
        });
    }
}

/// Counts and logs a refused proof (or share) of harvester `id`.
fn refuse(farmer: &Farmer, id: u64, refused: &Refused) {
    let reason = refused.counter();
    farmer.count(reason);
    farmer.with_harvester(id, |h| {
        *h.refused_by_reason.entry(reason).or_insert(0) += 1;
        match refused {
            Refused::Late { .. } => h.late_proofs += 1,
            Refused::DuplicatePlotSignagePoint => h.duplicate_proofs += 1,
            _ => h.refused_proofs += 1,
        }
    });
    crate::log_limited!(PROOF_LOG, info, harvester = id, reason = %refused, "proof refused");
}

/// The websocket upgrade is served at `/ws` only (chia's path).
#[allow(clippy::result_large_err)] // reason: the signature is tungstenite's callback's
fn only_ws_path(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() == "/ws" {
        Ok(response)
    } else {
        let mut refusal = ErrorResponse::new(Some("not found".into()));
        *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
        Err(refusal)
    }
}

/// Sends `request_signatures` with message id `id` (the id its answer carries).
async fn request_signatures(
    ws: &mut Ws,
    id: u16,
    request: &p::RequestSignatures,
) -> Result<(), SessionError> {
    let frame = Frame::new(
        msg::REQUEST_SIGNATURES,
        Some(id),
        "request_signatures",
        request,
    )?;
    send(ws, &frame).await
}

async fn send(ws: &mut Ws, frame: &Frame) -> Result<(), SessionError> {
    ws.send(WsMessage::Binary(frame.encode()?.into())).await?;
    Ok(())
}

/// The next chia message, `None` when the harvester closed.
async fn recv(
    ws: &mut Ws,
    last_seen: &mut Instant,
    farmer: &Farmer,
) -> Result<Option<Frame>, SessionError> {
    match wss::next_incoming(ws, last_seen).await? {
        Incoming::Message(b) => {
            let frame = Frame::decode(&b)?;
            farmer.record_frame(frame.msg_type, &b);
            Ok(Some(frame))
        }
        Incoming::Closed => Ok(None),
        Incoming::Text => Err(SessionError::TextFrame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharechain::pospace_share::{ChiaNetwork, SignagePoint};

    fn plot(name: &str, contract: Option<[u8; 32]>) -> PlotSummary {
        PlotSummary {
            filename: name.into(),
            size: 18,
            plot_id: hex::encode([1; 32]),
            plot_public_key: String::new(),
            pool_contract_puzzle_hash: contract.map(hex::encode),
            file_size: 0,
        }
    }

    #[test]
    fn every_reported_contract_gets_the_share_difficulty() {
        let network = &ChiaNetwork::REGTEST;
        let plots = [
            plot("og.plot", None),
            plot("b1.plot", Some([0xbb; 32])),
            plot("a.plot", Some([0xaa; 32])),
            plot("b2.plot", Some([0xbb; 32])),
        ];
        let contracts = contracts_of(&plots);
        assert_eq!(
            contracts,
            vec![Bytes32::new([0xaa; 32]), Bytes32::new([0xbb; 32])]
        );
        let a = Announced {
            number: 7,
            point: SignagePoint {
                challenge_hash: [1; 32],
                sp_hash: [2; 32],
                index: 7,
                peak_height: 3,
            },
            difficulty: 42,
            time: 0,
            chain: None,
        };
        let sp = messages::new_signage_point_harvester(network, &a, &contracts);
        assert_eq!(sp.difficulty, 42);
        assert_eq!(sp.sub_slot_iters, network.pool_sub_slot_iters);
        assert_eq!(sp.pool_difficulties.len(), 2);
        for (entry, hash) in sp.pool_difficulties.iter().zip(&contracts) {
            assert_eq!(entry.difficulty, 42);
            assert_eq!(entry.sub_slot_iters, network.pool_sub_slot_iters);
            assert_eq!(&entry.pool_contract_puzzle_hash, hash);
        }
        // No plot-NFT plots: no entries (chia's harvester then uses `difficulty` for all).
        assert!(
            messages::new_signage_point_harvester(network, &a, &contracts_of(&plots[..1]))
                .pool_difficulties
                .is_empty()
        );
    }
}
