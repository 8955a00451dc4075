//! P2Pool's JSON endpoints, same names and shapes where the concept exists here (see
//! `docs/API.md`), plus the node's own `/web/node_status` and `/web/peers`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use sharechain::ShareHash;

use super::{error, WebState, VERSION};
use crate::stats::{unix_now, Period};
use crate::work::ShareChain;

/// How long `/web/node_status` waits for bitcoind.
const RPC_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) async fn rate(State(s): State<WebState>) -> Json<Option<f64>> {
    Json(s.chain_summary().pool_hash_rate)
}

pub(super) async fn difficulty(State(s): State<WebState>) -> Json<f64> {
    let c = s.chain_summary();
    Json(if c.best.is_some() {
        c.min_difficulty
    } else {
        sharechain::target::difficulty_of(s.inner.work.params().max_target())
    })
}

pub(super) async fn users(State(s): State<WebState>) -> Json<BTreeMap<String, f64>> {
    Json(s.users())
}

pub(super) async fn fee(State(s): State<WebState>) -> Json<f64> {
    Json(s.inner.fee_percent)
}

pub(super) async fn current_payouts(State(s): State<WebState>) -> Json<BTreeMap<String, f64>> {
    Json(s.current_payouts())
}

pub(super) async fn global_stats(State(s): State<WebState>) -> Json<Value> {
    let c = s.chain_summary();
    let (network_difficulty, network_hashrate) = s.network_hashrate();
    Json(json!({
        "pool_hash_rate": c.pool_hash_rate.unwrap_or(0.0),
        "pool_nonstale_hash_rate": c.pool_nonstale_hash_rate.unwrap_or(0.0),
        "pool_stale_prop": c.pool_stale_prop.unwrap_or(0.0),
        "min_difficulty": c.min_difficulty,
        "network_block_difficulty": network_difficulty,
        "network_hashrate": network_hashrate,
    }))
}

fn miner_name(address: &str, worker: &str) -> String {
    if worker.is_empty() {
        address.to_owned()
    } else {
        format!("{address}.{worker}")
    }
}

pub(super) async fn local_stats(State(s): State<WebState>) -> Json<Value> {
    let w = s.inner.port.stats();
    let c = s.chain_summary();
    let peers = s.peer_list();
    let incoming = peers.iter().filter(|p| p.incoming).count();
    let template = s.inner.templates.borrow().clone();
    let work = &s.inner.work;
    let g = work.blocks().counts();
    let miner_hash_rates: BTreeMap<String, f64> = w
        .miners
        .iter()
        .map(|m| (miner_name(&m.address, &m.worker), m.hashrate.max(0.0)))
        .collect();
    // Dead work is estimated per worker from its share of stale submits.
    let miner_dead_hash_rates: BTreeMap<String, f64> = w
        .miners
        .iter()
        .map(|m| {
            let all = m.accepted + m.rejected.stale;
            let dead = if all == 0 {
                0.0
            } else {
                m.hashrate.max(0.0) * m.rejected.stale as f64 / all as f64
            };
            (miner_name(&m.address, &m.worker), dead)
        })
        .collect();
    let efficiency = c.pool_stale_prop.map(|pool| {
        let all = w.accepted + w.rejected.stale;
        let mine = if all == 0 {
            0.0
        } else {
            w.rejected.stale as f64 / all as f64
        };
        if pool < 1.0 {
            (1.0 - mine) / (1.0 - pool)
        } else {
            0.0
        }
    });
    let addresses = w.miners.iter().map(|m| m.address.clone()).collect();
    let (own_orphan, own_dead) = s.stale_reports(&addresses);
    let mut warnings = Vec::new();
    if let Some(reason) = work.chain().refuse_work() {
        warnings.push(reason);
    }
    if let Some(reason) = &w.last_no_work {
        warnings.push(format!("no work: {reason}"));
    }
    Json(json!({
        "uptime": s.inner.started.elapsed().as_secs_f64(),
        "network": work.params().name,
        "version": VERSION,
        "protocol_version": work.params().current_share_version(),
        "peers": { "incoming": incoming, "outgoing": peers.len() - incoming },
        "hashrate": w.hashrate.max(0.0),
        "miner_hash_rates": miner_hash_rates,
        "miner_dead_hash_rates": miner_dead_hash_rates,
        "connections": w.connections,
        // P2Pool's: this node's shares; the pool's over the last hour of the chain.
        "shares": {
            "total": w.shares,
            "orphan": own_orphan,
            "dead": own_dead,
            "held": c.len,
            "verified_heads": c.verified_heads,
            "best": c.best,
            "best_height": c.best_height,
        },
        "pool_shares": { "total": c.lookbehind, "orphan": c.orphan, "dead": c.dead },
        "accepted": w.accepted,
        "rejected": w.rejected,
        "stale": w.rejected.stale,
        "found_shares": w.shares,
        // Blocks bitcoind accepted; candidates and what became of them are counted apart.
        "found_blocks": g.accepted,
        "block_candidates": w.blocks,
        "blocks": {
            "candidates": g.candidates,
            "sent": g.sent,
            "accepted": g.accepted,
            "rejected": g.rejected,
            "unjudged": g.unjudged,
            "dropped_siblings": g.dropped_siblings,
            "dropped_stale": g.dropped_stale,
            "peer_blocks": g.peer_blocks,
            "peer_accepted": g.peer_accepted,
            "submitblock_calls": s.inner.submitter.rpc_calls(),
        },
        // Expected hashes per share at the easiest allowed share target, and per block.
        "attempts_to_share": c.min_difficulty * 4_294_967_296.0,
        "attempts_to_block": sharechain::target::work_of(template.target) as f64,
        "block_value": template.coinbase_value.to_btc(),
        "fee": s.inner.fee_percent,
        "donation_proportion": 0.0,
        "efficiency": efficiency,
        "efficiency_if_miner_perfect": c.pool_stale_prop.map(|p| if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 }),
        "warnings": warnings,
        "work_refused": work.chain().refuse_work(),
    }))
}

pub(super) async fn peer_addresses(State(s): State<WebState>) -> Response {
    let text = s
        .peer_list()
        .iter()
        .map(|p| p.addr.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

pub(super) async fn peers(State(s): State<WebState>) -> Json<Value> {
    Json(json!(s.peer_list()))
}

pub(super) async fn recent_blocks(State(s): State<WebState>) -> Json<Vec<Value>> {
    // Newest first, as P2Pool lists them. A share's hash is its block header's hash.
    let mut blocks = s.inner.submitter.recent();
    blocks.sort_by_key(|b| std::cmp::Reverse(b.time));
    Json(
        blocks
            .into_iter()
            .map(|b| {
                json!({
                    "ts": b.time,
                    "hash": b.hash.to_string(),
                    "number": b.height,
                    "share": b.hash.to_string(),
                    "accepted": b.accepted,
                    "rpc": b.rpc,
                    "p2p": b.p2p,
                })
            })
            .collect(),
    )
}

pub(super) async fn uptime(State(s): State<WebState>) -> Json<f64> {
    Json(s.inner.started.elapsed().as_secs_f64())
}

/// Which share kind this node runs: the status page picks its view by it.
pub(super) async fn kind(State(s): State<WebState>) -> Json<Value> {
    Json(json!({
        "kind": "bitcoin",
        "network": s.inner.work.params().name,
        "version": VERSION,
    }))
}

pub(super) async fn version() -> Json<&'static str> {
    Json(VERSION)
}

pub(super) async fn best_share_hash(State(s): State<WebState>) -> Json<Option<String>> {
    Json(s.chain_summary().best)
}

pub(super) async fn heads(State(s): State<WebState>) -> Json<Vec<String>> {
    Json(s.heads(false))
}

pub(super) async fn verified_heads(State(s): State<WebState>) -> Json<Vec<String>> {
    Json(s.heads(true))
}

pub(super) async fn share(State(s): State<WebState>, Path(hash): Path<String>) -> Response {
    let Ok(hash) = ShareHash::from_str(&hash) else {
        return error(StatusCode::NOT_FOUND, "not a share hash");
    };
    match s.share_json(&hash).await {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, "share not known"),
    }
}

pub(super) async fn graph_data(
    State(s): State<WebState>,
    Path((stream, period)): Path<(String, String)>,
) -> Response {
    let Some(period) = Period::from_name(&period) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown period (last_hour, last_day, last_week)",
        );
    };
    match s.inner.stats.graph_data(&stream, period, unix_now()) {
        Some(points) => Json(points).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown stream"),
    }
}

pub(super) async fn node_status(State(s): State<WebState>) -> Json<Value> {
    let bitcoind = match tokio::time::timeout(RPC_TIMEOUT, s.inner.rpc.get_blockchain_info()).await
    {
        Ok(Ok(i)) => json!({
            "connected": true,
            "chain": i.chain,
            "blocks": i.blocks,
            "headers": i.headers,
            "best_block_hash": i.best_block_hash.to_string(),
            "initial_block_download": i.initial_block_download,
            "verification_progress": i.verification_progress,
            "synced": !i.initial_block_download && i.blocks >= i.headers,
        }),
        Ok(Err(e)) => json!({ "connected": false, "error": e.to_string() }),
        Err(_) => json!({ "connected": false, "error": "no answer in time" }),
    };
    let t = s.inner.templates.borrow().clone();
    let c = s.chain_summary();
    let w = s.inner.port.stats();
    Json(json!({
        "version": VERSION,
        "network": s.inner.work.params().name,
        "uptime": s.inner.started.elapsed().as_secs_f64(),
        "bitcoind": bitcoind,
        "template": {
            "height": t.height,
            "previous_block": t.previous_block_hash.to_string(),
            "transactions": t.transactions.len(),
            "coinbase_value": t.coinbase_value.to_btc(),
            "age": unix_now().saturating_sub(u64::from(t.cur_time)),
        },
        "share_chain": c,
        "work_refused": s.inner.work.chain().refuse_work(),
        "worker": {
            "connections": w.connections,
            "refused_connections": w.refused_connections,
            "no_work": w.no_work,
            "last_no_work": w.last_no_work,
        },
        "peers": s.peer_list().len(),
    }))
}
