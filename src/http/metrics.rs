//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::WebState;

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn value(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let v = if v.is_finite() { v } else { 0.0 };
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, val)| format!("{k}=\"{}\"", label(val)))
                .collect();
            let _ = writeln!(self.0, "{name}{{{}}} {v}", l.join(","));
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.family(name, kind, help);
        self.value(name, &[], v);
    }
}

pub(super) async fn metrics(State(s): State<WebState>) -> Response {
    let w = s.inner.port.stats();
    let c = s.chain_summary();
    let (_, network_hashrate) = s.network_hashrate();
    let peers = s.peer_list();
    let incoming = peers.iter().filter(|p| p.incoming).count();
    let blocks = s.inner.submitter.recent();
    let template = s.inner.templates.borrow().clone();
    let mut o = Out(String::new());
    o.one(
        "p2pool_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        s.inner.started.elapsed().as_secs_f64(),
    );
    o.one(
        "p2pool_local_hashrate",
        "gauge",
        "Hashes per second of this node's miners (last 10 minutes).",
        w.hashrate.max(0.0),
    );
    o.one(
        "p2pool_pool_hashrate",
        "gauge",
        "Hashes per second of the whole pool, from the share chain.",
        c.pool_hash_rate.unwrap_or(0.0),
    );
    o.one(
        "p2pool_pool_stale_ratio",
        "gauge",
        "Proportion of stale shares in the share chain's last hour.",
        c.pool_stale_prop.unwrap_or(0.0),
    );
    o.one(
        "p2pool_network_hashrate",
        "gauge",
        "Hashes per second of the Bitcoin network, from the block target.",
        network_hashrate,
    );
    o.one(
        "p2pool_share_chain_shares",
        "gauge",
        "Shares held in the share chain.",
        c.len as f64,
    );
    o.one(
        "p2pool_share_chain_height",
        "gauge",
        "Absolute height of the best share.",
        c.best_height.map_or(0.0, f64::from),
    );
    o.one(
        "p2pool_share_difficulty",
        "gauge",
        "Difficulty of the easiest share allowed now.",
        c.min_difficulty,
    );
    o.one(
        "p2pool_block_height",
        "gauge",
        "Height of the block being mined.",
        f64::from(template.height),
    );
    o.one(
        "p2pool_connections",
        "gauge",
        "Open connections on the worker port.",
        w.connections as f64,
    );
    o.one(
        "p2pool_pseudo_shares_accepted_total",
        "counter",
        "Pseudo-shares accepted from miners.",
        w.accepted as f64,
    );
    o.family(
        "p2pool_pseudo_shares_rejected_total",
        "counter",
        "Submits rejected, by reason.",
    );
    for (reason, n) in [
        ("stale", w.rejected.stale),
        ("duplicate", w.rejected.duplicate),
        ("low_difficulty", w.rejected.low_difficulty),
        ("invalid", w.rejected.invalid),
    ] {
        o.value(
            "p2pool_pseudo_shares_rejected_total",
            &[("reason", reason)],
            n as f64,
        );
    }
    o.one(
        "p2pool_shares_found_total",
        "counter",
        "Shares found by this node's miners.",
        w.shares as f64,
    );
    let g = s.inner.work.blocks().counts();
    o.one(
        "p2pool_blocks_found_total",
        "counter",
        "Blocks found by this node's miners that bitcoind accepted.",
        g.accepted as f64,
    );
    o.one(
        "p2pool_block_candidates_total",
        "counter",
        "Submits of this node's miners that met the block target.",
        w.blocks as f64,
    );
    o.family(
        "p2pool_blocks_total",
        "counter",
        "Found and gossiped blocks by what became of them.",
    );
    for (outcome, n) in [
        ("sent", g.sent),
        ("rejected", g.rejected),
        ("unjudged", g.unjudged),
        ("dropped_sibling", g.dropped_siblings),
        ("dropped_stale", g.dropped_stale),
        ("peer_received", g.peer_blocks),
        ("peer_accepted", g.peer_accepted),
    ] {
        o.value("p2pool_blocks_total", &[("outcome", outcome)], n as f64);
    }
    o.one(
        "p2pool_submitblock_calls_total",
        "counter",
        "submitblock calls made to bitcoind, retries included.",
        s.inner.submitter.rpc_calls() as f64,
    );
    o.one(
        "p2pool_recent_blocks",
        "gauge",
        "Found blocks remembered by the submitter.",
        blocks.len() as f64,
    );
    o.family("p2pool_peers", "gauge", "Connected share-network peers.");
    o.value(
        "p2pool_peers",
        &[("direction", "incoming")],
        incoming as f64,
    );
    o.value(
        "p2pool_peers",
        &[("direction", "outgoing")],
        (peers.len() - incoming) as f64,
    );
    o.family(
        "p2pool_miner_hashrate",
        "gauge",
        "Hashes per second per payout address and worker.",
    );
    for m in &w.miners {
        o.value(
            "p2pool_miner_hashrate",
            &[("address", &m.address), ("worker", &m.worker)],
            m.hashrate.max(0.0),
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        o.0,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
