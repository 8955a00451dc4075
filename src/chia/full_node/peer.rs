//! One connection to the full node's peer port as its farmer (chia's `node_type` 3):
//! `wss://HOST:PORT/ws`, TLS 1.3 presenting a certificate from the public `chia_ca`, the chia
//! handshake with the chain's network id, websocket pings as keepalive, and `new_signage_point`
//! messages turned into [`SourcePoint`]s. Nothing the full node sends can panic it: every
//! payload goes through the Streamable decoder, and a malformed one ends the connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chia_protocol::{Handshake, NodeType};
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::chia::farmer::blocks::Uplink;
use crate::chia::farmer::source::{ChainPoint, SourceEvent, SourcePoint};
use crate::chia::protocol::{self as p, msg, Frame, ProtocolError};
use crate::chia::wss::{self, DialError, Incoming};
use sharechain::pospace_share::SignagePoint;

use super::Shared;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A websocket ping goes out this often (aiohttp, under the full node, answers it).
const PING_EVERY: Duration = Duration::from_secs(20);
/// Silence (no message, no pong) after which the full node is taken for gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(75);
/// Signage points remembered to drop the full node's repeats.
const SEEN: usize = 32;

/// Why a connection to the full node ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to the chia full node at {addr}: {reason}")]
    Connect {
        /// `HOST:PORT`.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with the chia full node failed: {0}")]
    Tls(std::io::Error),
    /// Websocket upgrade or transport failure.
    #[error("websocket: {0}")]
    Websocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// A malformed, oversize or unencodable message.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The full node sent a text frame.
    #[error("the full node sent a text frame")]
    TextFrame,
    /// The full node is on another network.
    #[error("the chia full node is on network {theirs:?}, this node on {ours:?}")]
    NetworkMismatch {
        /// Our network id.
        ours: String,
        /// The full node's.
        theirs: String,
    },
    /// The full node closed the connection instead of answering the handshake (what a chia
    /// full node does when the network ids differ).
    #[error(
        "the chia full node closed the connection at the handshake (is it on network {ours:?}?)"
    )]
    ClosedAtHandshake {
        /// Our network id.
        ours: String,
    },
    /// The peer is not a full node.
    #[error("the peer is node type {0:?}, not a full node")]
    NotFullNode(NodeType),
    /// The first message was not a handshake.
    #[error("expected a handshake, got message type {0}")]
    NoHandshake(u8),
    /// No handshake in time.
    #[error("no handshake from the full node within {0:?}")]
    HandshakeTimeout(Duration),
    /// The full node closed the connection.
    #[error("the chia full node closed the connection")]
    Closed,
    /// Nothing from the full node, not even a pong, for too long.
    #[error("the chia full node was silent for {0:?}")]
    Silent(Duration),
    /// The farmer endpoint is gone (shutting down).
    #[error("the farmer endpoint stopped")]
    Stopped,
}

impl LinkError {
    /// The link state this error leaves.
    pub fn state(&self) -> &'static str {
        match self {
            LinkError::NetworkMismatch { .. } | LinkError::ClosedAtHandshake { .. } => "refused",
            _ => "down",
        }
    }
}

/// The signage point a `new_signage_point` carries.
pub fn source_point(number: u64, m: &p::NewSignagePoint) -> SourcePoint {
    SourcePoint {
        number,
        point: SignagePoint {
            challenge_hash: m.challenge_hash.to_bytes(),
            sp_hash: m.challenge_chain_sp.to_bytes(),
            index: m.signage_point_index,
            peak_height: m.peak_height,
        },
        chain: Some(ChainPoint {
            difficulty: m.difficulty,
            sub_slot_iters: m.sub_slot_iters,
            reward_chain_sp: m.reward_chain_sp.to_bytes(),
            last_tx_height: m.last_tx_height,
            filter_challenge: m.filter_challenge.map(|h| h.to_bytes()),
        }),
    }
}

/// The next message for the full node; never, without block farming.
async fn next_uplink(uplink: &mut Option<tokio::sync::mpsc::Receiver<Uplink>>) -> Option<Uplink> {
    match uplink {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One connection: connect, handshake, then pass signage points on until it ends (and, when
/// farming, block messages both ways). `on_up` is called once the handshake is done.
pub(super) async fn session(
    shared: &Arc<Shared>,
    tls: &Arc<rustls::ClientConfig>,
    uplink: &mut Option<tokio::sync::mpsc::Receiver<Uplink>>,
    on_up: impl FnOnce(),
) -> Result<(), LinkError> {
    let addr = shared.config.peer.clone();
    let mut ws = wss::dial(&addr, tls.clone(), CONNECT_TIMEOUT, Some(HANDSHAKE_TIMEOUT))
        .await
        .map_err(|e| match e {
            DialError::Connect { addr, reason } => LinkError::Connect { addr, reason },
            DialError::Tls(e) => LinkError::Tls(e),
            DialError::Websocket(e) => LinkError::Websocket(e),
            DialError::Timeout(t) => LinkError::HandshakeTimeout(t),
        })?;

    let ours = shared.config.network_id.clone();
    let hello = Handshake {
        network_id: ours.clone(),
        protocol_version: p::PROTOCOL_VERSION.to_owned(),
        software_version: format!("p2pool-rs {}", env!("CARGO_PKG_VERSION")),
        server_port: shared.config.server_port,
        node_type: NodeType::Farmer,
        // BASE, BLOCK_HEADERS, RATE_LIMITS_V2 as chia's farmer, and HARD_FORK_2 (a full node
        // past that fork refuses peers without it).
        capabilities: vec![
            (1, "1".into()),
            (2, "1".into()),
            (3, "1".into()),
            (6, "1".into()),
        ],
    };
    ws.send(WsMessage::Binary(
        Frame::new(msg::HANDSHAKE, None, "handshake", &hello)?
            .encode()?
            .into(),
    ))
    .await?;
    let mut last_seen = Instant::now();
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, recv(&mut ws, &mut last_seen))
        .await
        .map_err(|_| LinkError::HandshakeTimeout(HANDSHAKE_TIMEOUT))?;
    let first = match first {
        Ok(Some(frame)) => frame,
        // A chia full node on another network drops the connection without a word.
        Ok(None) | Err(LinkError::Websocket(_)) => {
            return Err(LinkError::ClosedAtHandshake { ours })
        }
        Err(e) => return Err(e),
    };
    if first.msg_type != msg::HANDSHAKE {
        return Err(LinkError::NoHandshake(first.msg_type));
    }
    let theirs: Handshake = first.payload("handshake")?;
    if theirs.network_id != ours {
        let _ = ws.close(None).await;
        return Err(LinkError::NetworkMismatch {
            ours,
            theirs: theirs.network_id,
        });
    }
    if theirs.node_type != NodeType::FullNode {
        return Err(LinkError::NotFullNode(theirs.node_type));
    }
    tracing::info!(
        full_node = %addr,
        network = %theirs.network_id,
        version = %theirs.software_version,
        protocol = %theirs.protocol_version,
        "connected to the chia full node"
    );
    on_up();
    if let Some(farmer) = &shared.farmer {
        // Messages queued for the previous connection are for signage points it had.
        if let Some(rx) = uplink.as_mut() {
            while let Ok(stale) = rx.try_recv() {
                tracing::debug!(
                    ?stale,
                    "block message for the previous full node connection dropped"
                );
            }
        }
        farmer.block_link_connected(shared.status.lock().connections);
    }

    let connected = Instant::now();
    let mut quiet_logged_at: Option<Instant> = None;
    let mut seen: std::collections::VecDeque<[u8; 32]> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_ping = Instant::now();
    loop {
        tokio::select! {
            frame = recv(&mut ws, &mut last_seen) => {
                let Some(frame) = frame? else { return Err(LinkError::Closed) };
                if frame.msg_type == msg::REQUEST_SIGNED_VALUES {
                    let m: p::RequestSignedValues = frame.payload("request_signed_values")?;
                    match &shared.farmer {
                        Some(farmer) => farmer.request_signed_values(&m),
                        None => tracing::debug!("request_signed_values without block farming"),
                    }
                    continue;
                }
                if frame.msg_type != msg::NEW_SIGNAGE_POINT {
                    tracing::debug!(msg_type = frame.msg_type, "full node message ignored");
                    continue;
                }
                let m: p::NewSignagePoint = frame.payload("new_signage_point")?;
                let sp = m.challenge_chain_sp.to_bytes();
                if seen.contains(&sp) {
                    continue;
                }
                seen.push_back(sp);
                if seen.len() > SEEN {
                    seen.pop_front();
                }
                let number = shared.next_number();
                let reverted = shared.signage_point_received(&m);
                if shared.events.send(SourceEvent::Point(source_point(number, &m))).await.is_err() {
                    return Err(LinkError::Stopped);
                }
                if let Some(old) = reverted {
                    if shared.events.send(SourceEvent::Reverted(old)).await.is_err() {
                        return Err(LinkError::Stopped);
                    }
                }
            }
            out = next_uplink(uplink) => {
                let Some(out) = out else { return Err(LinkError::Stopped) };
                let frame = match &out {
                    Uplink::Declare { message, .. } => Frame::new(
                        msg::DECLARE_PROOF_OF_SPACE,
                        None,
                        "declare_proof_of_space",
                        message.as_ref(),
                    )?,
                    Uplink::SignedValues { message, .. } => {
                        Frame::new(msg::SIGNED_VALUES, None, "signed_values", message)?
                    }
                };
                ws.send(WsMessage::Binary(frame.encode()?.into())).await?;
            }
            _ = tick.tick() => {
                if last_seen.elapsed() > SILENCE_LIMIT {
                    return Err(LinkError::Silent(SILENCE_LIMIT));
                }
                if last_ping.elapsed() >= PING_EVERY {
                    last_ping = Instant::now();
                    ws.send(WsMessage::Ping(Vec::new().into())).await?;
                }
                let quiet_since = shared.last_signage_point().map_or(connected, |at| at.max(connected));
                let quiet = shared.config.quiet_after;
                let due = quiet_logged_at.is_none_or(|at| at.elapsed() >= quiet * 10);
                if quiet_since.elapsed() >= quiet && due {
                    quiet_logged_at = Some(Instant::now());
                    let text = format!(
                        "connected to the chia full node at {addr}: {}, no signage point \
                         received in {} s (a simulator sends none; else a node without a \
                         timelord or cut off from its peers)",
                        shared.peak_text(),
                        quiet.as_secs()
                    );
                    tracing::warn!("{text}");
                    shared.status.lock().quiet = Some(text);
                } else if quiet_since.elapsed() < quiet {
                    quiet_logged_at = None;
                    shared.status.lock().quiet = None;
                }
            }
        }
    }
}

type Ws = crate::chia::wss::ClientWs;

/// The next chia message, `None` when the full node closed.
async fn recv(ws: &mut Ws, last_seen: &mut Instant) -> Result<Option<Frame>, LinkError> {
    match wss::next_incoming(ws, last_seen).await? {
        Incoming::Message(b) => Ok(Some(Frame::decode(&b)?)),
        Incoming::Closed => Ok(None),
        Incoming::Text => Err(LinkError::TextFrame),
    }
}
