//! The full node's RPC (HTTPS, 8555 on mainnet), as chia's own RPC clients call it: a POST of a
//! JSON object to `/<command>`, TLS 1.3 presenting the chia root's private full-node certificate
//! (`config/ssl/full_node/private_full_node.{crt,key}`, issued by its private CA). One connection
//! per call (the node is polled every few seconds).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

/// Largest RPC answer read.
const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;
/// A call that takes longer fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an RPC call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The TCP connection failed or timed out.
    #[error("cannot connect to the full node's RPC at {addr}: {reason}")]
    Connect {
        /// `HOST:PORT`.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS handshake failed (e.g. a certificate from another chia root's CA).
    #[error("TLS with the full node's RPC failed: {0}")]
    Tls(std::io::Error),
    /// HTTP failed.
    #[error("RPC over HTTP failed: {0}")]
    Http(String),
    /// A status other than 200.
    #[error("RPC {command} answered HTTP {status}")]
    Status {
        /// The command.
        command: &'static str,
        /// The status.
        status: u16,
    },
    /// The answer is not the JSON expected.
    #[error("RPC {command}: malformed answer: {reason}")]
    Malformed {
        /// The command.
        command: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The node answered `success: false`.
    #[error("RPC {command} failed: {error}")]
    Failed {
        /// The command.
        command: &'static str,
        /// The node's `error`.
        error: String,
    },
    /// No answer in time.
    #[error("RPC {0} timed out")]
    Timeout(&'static str),
}

/// `get_blockchain_state`'s answer, the fields the link uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockchainState {
    /// The peak's height (`None` before the first block).
    pub peak_height: Option<u32>,
    /// The block difficulty.
    pub difficulty: u64,
    /// Sub-slot iterations.
    pub sub_slot_iters: u64,
    /// The node believes it is at the network's tip.
    pub synced: bool,
    /// It is syncing now.
    pub sync_mode: bool,
    /// The height a sync has reached (0 when not syncing).
    pub sync_progress_height: u32,
    /// The height a sync is heading for (0 when not syncing).
    pub sync_tip_height: u32,
}

/// `get_network_info`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkInfo {
    /// `mainnet`, `testnet11`, …
    pub network_name: String,
    /// `xch`, `txch`.
    pub network_prefix: String,
}

#[derive(Deserialize)]
struct Envelope {
    success: Option<bool>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct RawPeak {
    height: u32,
}

#[derive(Deserialize)]
struct RawSync {
    synced: bool,
    sync_mode: bool,
    #[serde(default)]
    sync_progress_height: u32,
    #[serde(default)]
    sync_tip_height: u32,
}

#[derive(Deserialize)]
struct RawState {
    peak: Option<RawPeak>,
    difficulty: u64,
    sub_slot_iters: u64,
    sync: RawSync,
}

#[derive(Deserialize)]
struct StateReply {
    blockchain_state: RawState,
}

/// A client of one full node's RPC.
#[derive(Clone)]
pub struct RpcClient {
    addr: String,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client of the RPC at `addr` (`HOST:PORT`) with this TLS configuration.
    pub fn new(addr: String, tls: Arc<rustls::ClientConfig>) -> RpcClient {
        RpcClient { addr, tls }
    }

    /// Where it calls.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `get_blockchain_state`.
    pub async fn blockchain_state(&self) -> Result<BlockchainState, RpcError> {
        const COMMAND: &str = "get_blockchain_state";
        let body = self.call(COMMAND).await?;
        parse_blockchain_state(&body)
    }

    /// `get_network_info`.
    pub async fn network_info(&self) -> Result<NetworkInfo, RpcError> {
        const COMMAND: &str = "get_network_info";
        let body = self.call(COMMAND).await?;
        parse(COMMAND, &body)
    }

    /// Any command without arguments, its answer as JSON (e.g. `get_connections`).
    pub async fn call_json(&self, command: &'static str) -> Result<serde_json::Value, RpcError> {
        let body = self.call(command).await?;
        parse(command, &body)
    }

    /// `get_recent_signage_point_or_eos` for a signage point (`sp_hash`), or for an end of
    /// sub-slot (index 0: its challenge hash): `None` when the full node does not have it in its
    /// cache of recent ones.
    pub async fn recent_signage_point(
        &self,
        hash: &[u8; 32],
        end_of_slot: bool,
    ) -> Result<Option<RecentSignagePoint>, RpcError> {
        const COMMAND: &str = "get_recent_signage_point_or_eos";
        let key = if end_of_slot {
            "challenge_hash"
        } else {
            "sp_hash"
        };
        let body = serde_json::json!({ key: hex::encode(hash) });
        match self.call_with(COMMAND, body.to_string().into()).await {
            Ok(body) => parse_recent_signage_point(&body).map(Some),
            // chia: "Did not find sp … in cache" / "Did not find eos … in cache".
            Err(RpcError::Failed { error, .. }) if error.contains("Did not find") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A command with arguments (`{"height": 7}`, say), its answer as JSON (e.g.
    /// `get_block_record_by_height`).
    pub async fn call_json_with(
        &self,
        command: &'static str,
        arguments: &serde_json::Value,
    ) -> Result<serde_json::Value, RpcError> {
        let body = self
            .call_with(command, Bytes::from(arguments.to_string()))
            .await?;
        parse(command, &body)
    }

    /// POSTs `{}` to `/<command>`; the answer's bytes when it says `success: true`.
    async fn call(&self, command: &'static str) -> Result<Bytes, RpcError> {
        self.call_with(command, Bytes::from_static(b"{}")).await
    }

    /// POSTs `body` to `/<command>`, bounded by [`CALL_TIMEOUT`].
    async fn call_with(&self, command: &'static str, body: Bytes) -> Result<Bytes, RpcError> {
        tokio::time::timeout(CALL_TIMEOUT, self.call_once(command, body))
            .await
            .map_err(|_| RpcError::Timeout(command))?
    }

    async fn call_once(&self, command: &'static str, body: Bytes) -> Result<Bytes, RpcError> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| RpcError::Connect {
                addr: self.addr.clone(),
                reason: e.to_string(),
            })?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(crate::chia::wss::server_name(&self.addr), tcp)
            .await
            .map_err(RpcError::Tls)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| RpcError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::post(format!("/{command}"))
            .header(hyper::header::HOST, self.addr.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| RpcError::Http(e.to_string()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| RpcError::Http(e.to_string()))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
                .collect()
                .await
                .map_err(|e| RpcError::Http(e.to_string()))?
                .to_bytes();
            if status != 200 {
                return Err(RpcError::Status { command, status });
            }
            let envelope: Envelope = parse(command, &body)?;
            if envelope.success != Some(true) {
                return Err(RpcError::Failed {
                    command,
                    error: envelope.error.unwrap_or_else(|| "no reason given".into()),
                });
            }
            Ok(body)
        }
        .await;
        driver.abort();
        result
    }
}

fn parse<T: for<'de> Deserialize<'de>>(command: &'static str, body: &[u8]) -> Result<T, RpcError> {
    serde_json::from_slice(body).map_err(|e| RpcError::Malformed {
        command,
        reason: e.to_string(),
    })
}

/// `get_recent_signage_point_or_eos`'s answer, the fields the link uses.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentSignagePoint {
    /// The sub-slot challenge the signage point's challenge-chain VDF starts from (for an end
    /// of sub-slot: `None`).
    pub cc_challenge: Option<[u8; 32]>,
    /// When the full node received it (Unix seconds).
    pub time_received: f64,
    /// It is no longer on the full node's chain.
    pub reverted: bool,
}

#[derive(Deserialize)]
struct RawVdf {
    challenge: String,
}

#[derive(Deserialize)]
struct RawSp {
    cc_vdf: Option<RawVdf>,
}

#[derive(Deserialize)]
struct RecentReply {
    signage_point: Option<RawSp>,
    time_received: f64,
    reverted: bool,
}

/// A hash as chia's JSON writes it (`0x` and 64 hex digits).
fn hash_of(command: &'static str, text: &str) -> Result<[u8; 32], RpcError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim_start_matches("0x"), &mut out).map_err(|e| {
        RpcError::Malformed {
            command,
            reason: format!("hash {text:?}: {e}"),
        }
    })?;
    Ok(out)
}

/// Parses a `get_recent_signage_point_or_eos` answer.
pub fn parse_recent_signage_point(body: &[u8]) -> Result<RecentSignagePoint, RpcError> {
    const COMMAND: &str = "get_recent_signage_point_or_eos";
    let reply: RecentReply = parse(COMMAND, body)?;
    let cc_challenge = match reply.signage_point.and_then(|sp| sp.cc_vdf) {
        Some(vdf) => Some(hash_of(COMMAND, &vdf.challenge)?),
        None => None,
    };
    Ok(RecentSignagePoint {
        cc_challenge,
        time_received: reply.time_received,
        reverted: reply.reverted,
    })
}

/// Parses a `get_blockchain_state` answer.
pub fn parse_blockchain_state(body: &[u8]) -> Result<BlockchainState, RpcError> {
    let reply: StateReply = parse("get_blockchain_state", body)?;
    let s = reply.blockchain_state;
    Ok(BlockchainState {
        peak_height: s.peak.map(|p| p.height),
        difficulty: s.difficulty,
        sub_slot_iters: s.sub_slot_iters,
        synced: s.sync.synced,
        sync_mode: s.sync.sync_mode,
        sync_progress_height: s.sync.sync_progress_height,
        sync_tip_height: s.sync.sync_tip_height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh chia 2.7.5 mainnet node's answer (no peak yet).
    const FRESH: &str = r#"{"blockchain_state": {"average_block_time": null, "block_max_cost": 11000000000, "difficulty": 7, "genesis_challenge_initialized": true, "mempool_cost": 0, "mempool_fees": 0, "mempool_max_total_cost": 110000000000, "mempool_min_fees": {"cost_5000000": 0}, "mempool_size": 0, "node_id": "3c61749ea5f93b804eea7e6deabf839dc408b3f94f87665de3f13c9a6a86be00", "peak": null, "space": 0, "sub_slot_iters": 134217728, "sync": {"sync_mode": false, "sync_progress_height": 0, "sync_tip_height": 0, "synced": false}}, "success": true}"#;

    #[test]
    fn blockchain_state_of_a_fresh_node() {
        let s = parse_blockchain_state(FRESH.as_bytes()).unwrap();
        assert_eq!(
            s,
            BlockchainState {
                peak_height: None,
                difficulty: 7,
                sub_slot_iters: 134_217_728,
                synced: false,
                sync_mode: false,
                sync_progress_height: 0,
                sync_tip_height: 0,
            }
        );
        let with_peak = FRESH.replace(r#""peak": null"#, r#""peak": {"height": 42, "weight": 9}"#);
        assert_eq!(
            parse_blockchain_state(with_peak.as_bytes())
                .unwrap()
                .peak_height,
            Some(42)
        );
        assert!(matches!(
            parse_blockchain_state(b"{\"success\": true}"),
            Err(RpcError::Malformed { .. })
        ));
        assert!(parse_blockchain_state(b"\xff").is_err());
    }

    #[test]
    fn recent_signage_point_answers() {
        let sp = format!(
            r#"{{"signage_point": {{"cc_vdf": {{"challenge": "0x{}", "number_of_iterations": 5, "output": {{"data": "0x00"}}}}, "cc_proof": null, "rc_vdf": null, "rc_proof": null}}, "time_received": 1700000000.5, "reverted": true, "success": true}}"#,
            "ab".repeat(32)
        );
        let r = parse_recent_signage_point(sp.as_bytes()).unwrap();
        assert_eq!(r.cc_challenge, Some([0xab; 32]));
        assert!(r.reverted);
        let eos = r#"{"eos": {}, "time_received": 1.0, "reverted": false, "success": true}"#;
        let r = parse_recent_signage_point(eos.as_bytes()).unwrap();
        assert_eq!(r.cc_challenge, None);
        assert!(!r.reverted);
        let bad = sp.replace(&"ab".repeat(32), "zz");
        assert!(parse_recent_signage_point(bad.as_bytes()).is_err());
    }
}
