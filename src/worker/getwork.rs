//! getwork over HTTP JSON-RPC, with long polling.
//!
//! Each `getwork` request gets its own extranonce (a reserved extranonce1 plus a counter), so
//! every piece of work has its own merkle root; a submission is matched back to its work by
//! that root. `data` is the 80-byte header plus SHA-256 padding (128 bytes) with every 32-bit
//! word byte-swapped; `target` is the pseudo-share target as 256-bit little-endian hex.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::Target;
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::job::{
    difficulty_to_target, easier, meets, ntime_ok, target_to_difficulty, wire_difficulty,
    Extranonce1, Extranonces, PreparedJob,
};
use super::stats::Reject;
use super::username::parse_username;
use super::{Found, FoundOutcome, Miner, Shared, Via, WorkProvider};

/// Work remembered for matching submissions.
const MAX_WORKS: usize = 8192;
/// Submissions remembered per work for duplicate detection (a full work is refused as
/// exhausted: the miner asks for new work).
const MAX_SEEN: usize = 256;

const HASH1: &str = "00000000000000000000000000000000000000000000000000000000000000000000008000000000000000000000000000000000000000000000000000010000";

struct Work {
    job: Arc<PreparedJob>,
    miner: Arc<Miner>,
    extranonce: [u8; 8],
    target: Target,
    difficulty: f64,
    seen: HashSet<(u32, u32, u32)>,
}

#[derive(Default)]
struct Works {
    by_root: HashMap<[u8; 32], Work>,
    order: VecDeque<[u8; 32]>,
}

/// getwork state of a worker port.
pub(crate) struct GetworkState {
    extranonce1: Extranonce1,
    counter: AtomicU32,
    works: Mutex<Works>,
}

impl GetworkState {
    pub(crate) fn new(extranonces: &Extranonces) -> Self {
        GetworkState {
            extranonce1: extranonces.allocate(None),
            counter: AtomicU32::new(0),
            works: Mutex::new(Works::default()),
        }
    }
}

/// The getwork routes: `POST /` and the long-polling path.
pub(crate) fn router<P: WorkProvider>(shared: Arc<Shared<P>>) -> Router {
    let path = shared.config.long_poll_path.clone();
    Router::new()
        .route("/", post(rpc::<P>))
        .route(&path, get(long_poll::<P>).post(long_poll::<P>))
        .with_state(shared)
}

/// 80-byte header → getwork `data` (padded to 128 bytes, words byte-swapped).
pub(crate) fn encode_data(header: &Header) -> String {
    let mut data = serialize(header);
    data.push(0x80);
    data.resize(128, 0);
    data[120..128].copy_from_slice(&640u64.to_be_bytes());
    for word in data.chunks_exact_mut(4) {
        word.reverse();
    }
    hex::encode(data)
}

/// getwork `data` → header.
pub(crate) fn decode_data(data: &str) -> Option<Header> {
    let mut bytes = hex::decode(data.trim()).ok()?;
    if bytes.len() < 80 || bytes.len() % 4 != 0 {
        return None;
    }
    for word in bytes.chunks_exact_mut(4) {
        word.reverse();
    }
    deserialize(&bytes[..80]).ok()
}

fn rpc_reply(id: &Value, result: Result<Value, (i32, String)>, long_poll_path: &str) -> Response {
    let body = match result {
        Ok(r) => json!({"result": r, "error": null, "id": id}),
        Err((code, message)) => {
            json!({"result": null, "error": {"code": code, "message": message}, "id": id})
        }
    };
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(long_poll_path) {
        h.insert("x-long-polling", v);
    }
    h.insert("x-roll-ntime", HeaderValue::from_static("expire=100"));
    response
}

fn username(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.as_str(), |(u, _)| u)
            .to_owned(),
    )
}

fn miner<P: WorkProvider>(
    shared: &Shared<P>,
    headers: &HeaderMap,
) -> Result<Arc<Miner>, (i32, String)> {
    let Some(user) = username(headers) else {
        return Err((
            24,
            "HTTP basic authentication required: the username is a payout address".to_owned(),
        ));
    };
    parse_username(&user, shared.provider.network())
        .map(Arc::new)
        .map_err(|e| (24, e.to_string()))
}

/// What a getwork request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// New work (no parameters).
    Fetch,
    /// Check this `data` (the first parameter).
    Submit(String),
}

/// Parse a JSON-RPC request body: its id (`null` when absent or unparsable) and the call, or the
/// JSON-RPC error to answer with.
pub(crate) fn parse_request(body: &[u8]) -> (Value, Result<Call, (i32, String)>) {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return (Value::Null, Err((-32700, "parse error".to_owned())));
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    if request.get("method").and_then(Value::as_str) != Some("getwork") {
        return (id, Err((-32601, "method not found".to_owned())));
    }
    let data = request
        .get("params")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
        .and_then(Value::as_str)
        .map(str::to_owned);
    (id, Ok(data.map_or(Call::Fetch, Call::Submit)))
}

async fn rpc<P: WorkProvider>(
    State(shared): State<Arc<Shared<P>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lp = shared.config.long_poll_path.as_str();
    let (id, call) = parse_request(&body);
    match call {
        Err(e) => rpc_reply(&id, Err(e), lp),
        Ok(Call::Fetch) => {
            let result = miner(&shared, &headers).and_then(|m| new_work(&shared, m));
            rpc_reply(&id, result, lp)
        }
        Ok(Call::Submit(data)) => {
            let (ok, reason) = submit(&shared, &data).await;
            let mut response = rpc_reply(&id, Ok(Value::Bool(ok)), lp);
            if let Some(reason) = reason.and_then(|r| HeaderValue::from_str(&r).ok()) {
                response.headers_mut().insert("x-reject-reason", reason);
            }
            response
        }
    }
}

async fn long_poll<P: WorkProvider>(
    State(shared): State<Arc<Shared<P>>>,
    headers: HeaderMap,
) -> Response {
    let lp = shared.config.long_poll_path.as_str();
    let miner = match miner(&shared, &headers) {
        Ok(m) => m,
        Err(e) => return rpc_reply(&Value::Null, Err(e), lp),
    };
    let mut updates = shared.provider.updates();
    updates.borrow_and_update();
    let _ = tokio::time::timeout(shared.config.long_poll_timeout, updates.changed()).await;
    rpc_reply(&Value::Null, new_work(&shared, miner), lp)
}

fn new_work<P: WorkProvider>(
    shared: &Shared<P>,
    miner: Arc<Miner>,
) -> Result<Value, (i32, String)> {
    let job = shared.provider.job(&miner).map_err(|e| {
        shared.stats.no_work(&e.reason);
        (-32000, e.to_string())
    })?;
    let prepared = shared.jobs.prepare(job, || shared.next_job_id());
    let gw = &shared.getwork;
    let mut extranonce = [0u8; 8];
    extranonce[..4].copy_from_slice(&gw.extranonce1.value.to_be_bytes());
    extranonce[4..].copy_from_slice(&gw.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let job = &prepared.job;
    let header = prepared.header(&extranonce, job.ntime, 0, job.version);
    let floor = prepared.floor_target;
    let wanted = miner
        .pseudo_difficulty
        .unwrap_or(shared.config.getwork_difficulty);
    let difficulty = wire_difficulty(wanted.min(target_to_difficulty(&floor)));
    let target = easier(difficulty_to_target(difficulty), floor);
    let result = json!({
        "data": encode_data(&header),
        "target": hex::encode(target.to_le_bytes()),
        "hash1": HASH1,
    });
    let root = header.merkle_root.to_byte_array();
    let mut works = gw.works.lock();
    if works.order.len() >= MAX_WORKS {
        if let Some(old) = works.order.pop_front() {
            works.by_root.remove(&old);
        }
    }
    works.order.push_back(root);
    works.by_root.insert(
        root,
        Work {
            job: Arc::clone(&prepared),
            miner,
            extranonce,
            target,
            difficulty,
            seen: HashSet::new(),
        },
    );
    Ok(result)
}

/// Check a submission; `(accepted, reject reason)`.
async fn submit<P: WorkProvider>(shared: &Shared<P>, data: &str) -> (bool, Option<String>) {
    let Some(header) = decode_data(data) else {
        return (false, Some("invalid data".to_owned()));
    };
    let mask = shared.config.version_mask;
    let checked = {
        let mut works = shared.getwork.works.lock();
        let Some(work) = works.by_root.get_mut(&header.merkle_root.to_byte_array()) else {
            return (false, Some("unknown work".to_owned()));
        };
        let job = &work.job.job;
        let version = header.version.to_consensus() as u32;
        let reject = |reason: Reject, text: &str| {
            shared
                .stats
                .reject(&work.miner.address, &work.miner.worker, reason);
            (false, Some(text.to_owned()))
        };
        if header.prev_blockhash != job.prev_hash || header.bits != job.bits {
            return reject(Reject::Invalid, "header does not match the work");
        }
        if (version ^ job.version) & !mask != 0 {
            return reject(Reject::Invalid, "bad version bits");
        }
        if !ntime_ok(job, header.time) {
            return reject(Reject::Invalid, "ntime out of range");
        }
        let current = shared.provider.job(&work.miner).map(|j| j.prev_hash).ok();
        if current.is_some_and(|p| p != job.prev_hash) {
            return reject(Reject::Stale, "stale");
        }
        let hash = header.block_hash();
        if !meets(&hash, &work.target) {
            return reject(Reject::LowDifficulty, "low difficulty");
        }
        let key = (header.time, header.nonce, version);
        if work.seen.contains(&key) {
            return reject(Reject::Duplicate, "duplicate");
        }
        if work.seen.len() >= MAX_SEEN {
            return reject(Reject::Stale, "work exhausted");
        }
        work.seen.insert(key);
        shared
            .stats
            .pseudo_share(&work.miner.address, &work.miner.worker, work.difficulty);
        let meets_share = meets(&hash, &job.share_target);
        let meets_block = meets(&hash, &job.block_target);
        (meets_share || meets_block).then(|| Found {
            job: Arc::clone(job),
            miner: Arc::clone(&work.miner),
            header,
            coinbase: work.job.coinbase(&work.extranonce),
            extranonce: work.extranonce,
            hash,
            meets_share,
            meets_block,
            via: Via::Getwork,
        })
    };
    let Some(found) = checked else {
        return (true, None);
    };
    let miner = Arc::clone(&found.miner);
    let (share, block) = (found.meets_share, found.meets_block);
    match shared.provider.found(found).await {
        FoundOutcome::Accepted => {
            shared
                .stats
                .found(&miner.address, &miner.worker, share, block);
            (true, None)
        }
        FoundOutcome::Stale { reason } => {
            shared
                .stats
                .reject(&miner.address, &miner.worker, Reject::Stale);
            (false, Some(reason))
        }
        FoundOutcome::Rejected { reason } => {
            shared
                .stats
                .reject(&miner.address, &miner.worker, Reject::Invalid);
            (false, Some(reason))
        }
        FoundOutcome::Failed { reason } => (false, Some(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::block::Version;
    use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};

    #[test]
    fn data_round_trip_and_layout() {
        let header = Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: BlockHash::from_byte_array([7; 32]),
            merkle_root: TxMerkleNode::from_byte_array([9; 32]),
            time: 0x6000_0001,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0x0102_0304,
        };
        let data = encode_data(&header);
        assert_eq!(data.len(), 256);
        assert!(
            data.starts_with("20000000"),
            "version word is big-endian hex"
        );
        assert!(
            data.ends_with("80020000"),
            "length word, swapped like the rest"
        );
        assert_eq!(&data[160..168], "00000080", "padding byte, swapped");
        assert_eq!(decode_data(&data), Some(header));
        assert_eq!(decode_data(&data[..160]), Some(header));
        assert_eq!(decode_data("zz"), None);
    }

    #[test]
    fn request_bodies() {
        let (id, call) = parse_request(br#"{"id":3,"method":"getwork","params":[]}"#);
        assert_eq!((id, call), (Value::from(3), Ok(Call::Fetch)));
        let (_, call) = parse_request(br#"{"method":"getwork","params":["00ff"]}"#);
        assert_eq!(call, Ok(Call::Submit("00ff".to_owned())));
        let (id, call) = parse_request(br#"{"id":"a","method":"getblocktemplate"}"#);
        assert_eq!(id, Value::from("a"));
        assert_eq!(call.unwrap_err().0, -32601);
        let (id, call) = parse_request(b"{");
        assert_eq!((id, call.unwrap_err().0), (Value::Null, -32700));
    }
}
