//! The Chia node's web side on its worker port: the status page (its Chia view, chosen by
//! `/kind`), the JSON API (`/chia/*`, P2Pool's `/users` and `/current_payouts` shapes) and
//! `/metrics`. Read-only; every figure is read under one short lock (the farmer endpoint's, or
//! the share service's tracker), and the costly part (proof qualities) is computed after, off
//! the async threads, and cached by share hash.
//!
//! Shares are listed with every field needed to check one independently: a share rebuilt from
//! its JSON (`ShareContent` + signature) has the same hash, and `check_share` over its signage
//! point gives the same quality and required iterations (`tests/chia_page.rs` does it).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sharechain::pospace_share::check::check_proof;
use sharechain::pospace_share::{
    pool_reward_part, split_reward, ChiaNetwork, PoSpaceShare, Quality,
};
use sharechain::ShareHash;

use super::address::encode_address;
use super::farmer::blocks::BlockPayout;
use super::farmer::{Farmer, HarvesterInfo};
use crate::shares::pospace::RECENT_SHARES;
use crate::shares::PoSpaceService;

/// The block reward the payouts are figured on: 1 XCH, Chia's reward per block since the 2024
/// halving (heights 5,045,760 to 10,091,519). The share chain pays the pool part, 7/8 of it.
pub const BLOCK_REWARD_MOJOS: u64 = 1_000_000_000_000;
/// Mojos in one XCH.
const MOJOS_PER_XCH: f64 = 1e12;
/// Shares `/chia/shares` lists when no `limit` is asked.
const DEFAULT_SHARES: usize = 50;
/// Most shares `/chia/shares` lists.
const MAX_SHARES: usize = RECENT_SHARES;
/// Qualities remembered (computing one checks the proof again).
const QUALITY_CACHE: usize = 4096;

/// What the web side reads.
pub struct ChiaWeb {
    farmer: Arc<Farmer>,
    service: PoSpaceService,
    extra_metrics: ExtraMetrics,
    started: Instant,
    qualities: Mutex<HashMap<ShareHash, Quality>>,
}

impl std::fmt::Debug for ChiaWeb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChiaWeb").finish_non_exhaustive()
    }
}

/// A share as the tracker holds it, read under its lock.
struct Held {
    share: PoSpaceShare,
    height: u32,
    verified: bool,
}

/// One payee of `/chia/payouts`.
#[derive(Debug, Clone, Serialize)]
pub struct PayoutView {
    /// The payee's address on the share chain's network (`xch…` or `txch…`).
    pub address: String,
    /// The payee's puzzle hash, hex.
    pub puzzle_hash: String,
    /// Sum of the difficulties of its shares in the window.
    pub difficulty: u64,
    /// Its part of the pool reward (0 to 1).
    pub fraction: f64,
    /// Its mojos of one block's pool reward, as `sharechain`'s split gives them.
    pub mojos: u64,
    /// `mojos` in XCH (10^12 mojos), for display.
    pub xch: f64,
}

impl ChiaWeb {
    /// The web side of a Chia node: the farmer endpoint and its share service.
    pub fn new(farmer: Arc<Farmer>, service: PoSpaceService) -> Arc<ChiaWeb> {
        ChiaWeb::with_metrics(farmer, service, Arc::new(String::new))
    }

    /// [`ChiaWeb::new`], with `extra` appended to `/metrics` (e.g. the full node link's).
    pub fn with_metrics(
        farmer: Arc<Farmer>,
        service: PoSpaceService,
        extra: ExtraMetrics,
    ) -> Arc<ChiaWeb> {
        Arc::new(ChiaWeb {
            farmer,
            service,
            extra_metrics: extra,
            started: Instant::now(),
            qualities: Mutex::new(HashMap::new()),
        })
    }

    fn network(&self) -> &'static ChiaNetwork {
        self.farmer.config().network
    }

    /// The newest `limit` shares of the best chain, newest first.
    /// From the share service's published view (at most [`RECENT_SHARES`]).
    fn best_chain(&self, limit: usize) -> Vec<Held> {
        self.service
            .view()
            .kind
            .recent
            .iter()
            .take(limit)
            .map(|h| Held {
                share: PoSpaceShare::clone(&h.share),
                height: h.height,
                verified: h.verified,
            })
            .collect()
    }

    /// Asks the share worker (a read-only query between its jobs).
    async fn held(&self, hash: &ShareHash) -> Option<Held> {
        let hash = *hash;
        self.service
            .query(move |t| {
                let chain = t.chain();
                let share = PoSpaceShare::clone(chain.get(&hash)?);
                Some(Held {
                    height: chain.height(&hash).unwrap_or(0),
                    verified: chain.is_verified(&hash),
                    share,
                })
            })
            .await
            .ok()
            .flatten()
    }

    /// Quality and required iterations of each share (cached; computed on a blocking thread).
    async fn qualities(&self, shares: &[Held]) -> Vec<Option<Quality>> {
        let missing: Vec<PoSpaceShare> = {
            let cache = self.qualities.lock();
            shares
                .iter()
                .filter(|h| !cache.contains_key(&h.share.hash()))
                .map(|h| h.share.clone())
                .collect()
        };
        if !missing.is_empty() {
            let network = self.network();
            let computed = tokio::task::spawn_blocking(move || {
                missing
                    .iter()
                    .filter_map(|s| Some((s.hash(), check_proof(s, network).ok()?)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let mut cache = self.qualities.lock();
            if cache.len() + computed.len() > QUALITY_CACHE {
                cache.clear();
            }
            cache.extend(computed);
        }
        let cache = self.qualities.lock();
        shares
            .iter()
            .map(|h| cache.get(&h.share.hash()).copied())
            .collect()
    }

    fn share_json(
        &self,
        held: &Held,
        quality: Option<Quality>,
        local: Option<&(u64, u64)>,
    ) -> Value {
        let network = self.network();
        let share = &held.share;
        let c = share.content();
        let pos = &c.proof_of_space;
        let hash = share.hash();
        let seen = self.service.first_seen(&hash);
        let received = local
            .map(|&(_, received)| received)
            .or_else(|| seen.as_ref().map(|s| s.time));
        json!({
            "hash": hash.to_string(),
            "prev_share_hash": c.prev_share.map(|h| h.to_string()),
            "height": held.height,
            "verified": held.verified,
            "version": c.version,
            "timestamp": c.timestamp,
            "signage_point": {
                "challenge_hash": hex::encode(c.challenge_hash),
                "sp_hash": hex::encode(c.sp_hash),
                "index": c.signage_point_index,
                "peak_height": c.peak_height,
            },
            "proof_of_space": {
                "challenge": hex::encode(pos.challenge.to_bytes()),
                "k": pos.size,
                "plot_public_key": hex::encode(pos.plot_public_key.to_bytes()),
                "pool_public_key": pos.pool_public_key.as_ref().map(|k| hex::encode(k.to_bytes())),
                "pool_contract_puzzle_hash": pos.pool_contract_puzzle_hash.as_ref().map(|h| hex::encode(h.to_bytes())),
                "proof": hex::encode(pos.proof.as_slice()),
            },
            "plot_id": hex::encode(share.plot_id()),
            "difficulty": c.difficulty,
            "quality": quality.map(|q| hex::encode(q.quality)),
            "required_iterations": quality.map(|q| q.iters),
            "iterations_limit": network.iters_limit(),
            "payout_puzzle_hash": hex::encode(c.payout_puzzle_hash),
            "payout_address": encode_address(&c.payout_puzzle_hash, network),
            "signature": hex::encode(share.signature().to_bytes()),
            "message": hex::encode(share.message()),
            "harvester": local.map(|&(harvester, _)| harvester),
            "peer": seen.and_then(|s| s.peer).map(|p| p.to_string()),
            "received": received,
            "share": hex::encode(share.to_bytes()),
        })
    }

    async fn shares(&self, limit: usize) -> Value {
        let held = self.best_chain(limit.min(MAX_SHARES));
        let qualities = self.qualities(&held).await;
        let local = self.farmer.share_origins();
        let shares: Vec<Value> = held
            .iter()
            .zip(qualities)
            .map(|(h, q)| self.share_json(h, q, local.get(&h.share.hash().to_string())))
            .collect();
        json!({ "shares": shares })
    }

    async fn share(&self, hash: &str) -> Option<Value> {
        let hash = ShareHash::from_str(hash).ok()?;
        let held = self.held(&hash).await?;
        let quality = self.qualities(std::slice::from_ref(&held)).await[0];
        let local = self.farmer.share_origins();
        Some(self.share_json(&held, quality, local.get(&hash.to_string())))
    }

    /// PPLNS over the best share's window: each payout puzzle hash's part of a block's pool
    /// reward ([`BLOCK_REWARD_MOJOS`]), by `sharechain`'s own window and split.
    pub fn payouts(&self) -> (Value, Vec<PayoutView>) {
        let network = self.network();
        let view = self.service.view();
        let (best, weights, shares) = (view.best, &*view.kind.weights, view.kind.window_shares);
        let pool_part = pool_reward_part(BLOCK_REWARD_MOJOS);
        let total: u128 = weights.values().map(|&w| u128::from(w)).sum();
        let payouts: Vec<PayoutView> = split_reward(pool_part, weights)
            .into_iter()
            .map(|p| {
                let difficulty = weights.get(&p.puzzle_hash).copied().unwrap_or(0);
                PayoutView {
                    address: encode_address(&p.puzzle_hash, network),
                    puzzle_hash: hex::encode(p.puzzle_hash),
                    difficulty,
                    fraction: if total == 0 {
                        0.0
                    } else {
                        difficulty as f64 / total as f64
                    },
                    mojos: p.mojos,
                    xch: p.mojos as f64 / MOJOS_PER_XCH,
                }
            })
            .collect();
        let head = json!({
            "best": best.map(|b| b.to_string()),
            "window": network.window,
            "shares": shares,
            "total_difficulty": total as u64,
            "block_reward_mojos": BLOCK_REWARD_MOJOS,
            "pool_part_mojos": pool_part,
        });
        (head, payouts)
    }

    /// The pool part of a block won now, split by the PPLNS window (recorded with a farmed
    /// block).
    pub fn block_split(&self) -> Vec<BlockPayout> {
        self.payouts()
            .1
            .into_iter()
            .map(|p| BlockPayout {
                address: p.address,
                puzzle_hash: p.puzzle_hash,
                mojos: p.mojos,
                fraction: p.fraction,
            })
            .collect()
    }

    fn harvesters(&self) -> Value {
        let harvesters: Vec<Value> = self
            .farmer
            .harvesters()
            .into_iter()
            .map(harvester_json)
            .collect();
        json!({
            "harvesters": harvesters,
            "counters": self.farmer.counters(),
            "refusing_proofs": self.farmer.gate(),
        })
    }

    fn signage_points(&self) -> Value {
        let now = super::farmer::now_secs();
        let announced = self.farmer.announced_points();
        let latest = announced.last().map(|a| {
            json!({
                "number": a.number,
                "index": a.point.index,
                "time": a.time,
                "age": now.saturating_sub(a.time),
                "difficulty": a.difficulty,
            })
        });
        let points: Vec<Value> = announced
            .into_iter()
            .map(|a| {
                json!({
                    "number": a.number,
                    "index": a.point.index,
                    "challenge_hash": hex::encode(a.point.challenge_hash),
                    "sp_hash": hex::encode(a.point.sp_hash),
                    "peak_height": a.point.peak_height,
                    "time": a.time,
                    "difficulty": a.difficulty,
                })
            })
            .collect();
        json!({
            "network_id": self.farmer.config().network_id,
            "latest": latest,
            "signage_points": points,
        })
    }

    fn kind(&self) -> Value {
        let network = self.network();
        let view = self.service.view();
        json!({
            "kind": "chia",
            "network": network.name,
            "network_id": self.farmer.config().network_id,
            "payout_address": encode_address(&self.farmer.config().payout_puzzle_hash, network),
            "share_chain": json!({ "shares": view.shares, "best": view.best.map(|b| b.to_string()) }),
            "uptime": self.started.elapsed().as_secs(),
            "version": crate::http::VERSION,
        })
    }
}

/// A harvester with its plots summed up (count, bytes, k sizes) and its lookup times.
fn harvester_json(h: HarvesterInfo) -> Value {
    let mut k_sizes: BTreeMap<u8, usize> = BTreeMap::new();
    for p in &h.plots {
        *k_sizes.entry(p.size).or_default() += 1;
    }
    let total_size: u64 = h.plots.iter().map(|p| p.file_size).sum();
    let mut times: Vec<u64> = h.lookup_times_us.iter().copied().collect();
    times.sort_unstable();
    let lookup = json!({
        "samples": times.len(),
        "median_ms": times.get(times.len() / 2).map(|&us| us as f64 / 1000.0),
        "max_ms": times.last().map(|&us| us as f64 / 1000.0),
    });
    let mut v = serde_json::to_value(&h).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("plot_count".into(), json!(h.plots.len()));
        map.insert("plots_size".into(), json!(total_size));
        map.insert("k_sizes".into(), json!(k_sizes));
        map.insert("lookup".into(), lookup);
    }
    v
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

/// More Prometheus text for `/metrics`, written after the farmer endpoint's.
pub type ExtraMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The routes: the page, `/kind`, `/chia/*`, `/users`, `/current_payouts`, `/metrics`.
pub fn router(web: Arc<ChiaWeb>) -> Router {
    router_with(web, Router::new())
}

/// [`router`] with `extra` routes (served behind the same layers).
pub fn router_with(web: Arc<ChiaWeb>, extra: Router) -> Router {
    let routes = crate::http::page_routes()
        .route(
            "/kind",
            get(|s: axum::extract::State<Arc<ChiaWeb>>| async move { Json(s.kind()) }),
        )
        .route(
            "/chia/shares",
            get(
                |s: axum::extract::State<Arc<ChiaWeb>>, Query(q): Query<Limit>| async move {
                    Json(s.shares(q.limit.unwrap_or(DEFAULT_SHARES)).await)
                },
            ),
        )
        .route(
            "/chia/share/{hash}",
            get(
                |s: axum::extract::State<Arc<ChiaWeb>>, Path(hash): Path<String>| async move {
                    match s.share(&hash).await {
                        Some(v) => Json(v).into_response(),
                        None => crate::http::error(StatusCode::NOT_FOUND, "no such share"),
                    }
                },
            ),
        )
        .route(
            "/chia/payouts",
            get(|s: axum::extract::State<Arc<ChiaWeb>>| async move {
                let (mut head, payouts) = s.payouts();
                head["payouts"] = json!(payouts);
                Json(head)
            }),
        )
        .route(
            "/users",
            get(|s: axum::extract::State<Arc<ChiaWeb>>| async move {
                let (_, payouts) = s.payouts();
                Json(
                    payouts
                        .into_iter()
                        .map(|p| (p.address, p.fraction))
                        .collect::<BTreeMap<_, _>>(),
                )
            }),
        )
        .route(
            "/current_payouts",
            get(|s: axum::extract::State<Arc<ChiaWeb>>| async move {
                let (_, payouts) = s.payouts();
                Json(
                    payouts
                        .into_iter()
                        .map(|p| (p.address, p.xch))
                        .collect::<BTreeMap<_, _>>(),
                )
            }),
        )
        .route(
            "/chia/blocks",
            // The node's block attempts with a full node, newest first (none on the regtest
            // clock: it has no chain to win blocks on).
            get(|s: axum::extract::State<Arc<ChiaWeb>>| async move {
                Json(json!({ "blocks": s.farmer.blocks().attempts() }))
            }),
        )
        .route(
            "/chia/harvesters",
            get(|s: axum::extract::State<Arc<ChiaWeb>>| async move { Json(s.harvesters()) }),
        )
        .route(
            "/chia/signage_points",
            get(|s: axum::extract::State<Arc<ChiaWeb>>| async move { Json(s.signage_points()) }),
        )
        .route(
            "/metrics",
            get(|s: axum::extract::State<Arc<ChiaWeb>>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    super::farmer::metrics_text(&s.farmer) + &(s.extra_metrics)(),
                )
                    .into_response()
            }),
        );
    crate::http::api_layers(routes.with_state(web).merge(extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chia::farmer::PlotSummary;

    fn plot(k: u8, file_size: u64) -> PlotSummary {
        PlotSummary {
            filename: format!("k{k}.plot"),
            size: k,
            plot_id: "00".repeat(32),
            plot_public_key: "11".repeat(48),
            pool_contract_puzzle_hash: None,
            file_size,
        }
    }

    #[test]
    fn a_harvester_shows_its_plots_summed_and_its_lookup_times() {
        let h = HarvesterInfo {
            id: 3,
            peer: "127.0.0.1:5000".into(),
            node_id: "ab".into(),
            software_version: "2.7.5".into(),
            connected_at: 1,
            last_seen: 2,
            plots: vec![plot(18, 100), plot(18, 150), plot(32, 1000)],
            invalid: Vec::new(),
            keys_missing: Vec::new(),
            duplicates: Vec::new(),
            plot_syncs: 1,
            proofs: 4,
            shares: 2,
            late_proofs: 1,
            duplicate_proofs: 0,
            refused_proofs: 1,
            refused_by_reason: BTreeMap::from([("proof_late", 1), ("proof_duplicate", 1)]),
            lookup_times_us: [9000, 1000, 3000, 2000].into(),
        };
        let v = harvester_json(h.clone());
        assert_eq!(v["plot_count"], 3);
        assert_eq!(v["plots_size"], 1250);
        assert_eq!(v["k_sizes"], json!({ "18": 2, "32": 1 }));
        assert_eq!(
            v["lookup"],
            json!({ "samples": 4, "median_ms": 3.0, "max_ms": 9.0 })
        );
        assert_eq!(v["refused_by_reason"]["proof_late"], 1);
        let none = harvester_json(HarvesterInfo {
            plots: Vec::new(),
            lookup_times_us: Default::default(),
            ..h
        });
        assert_eq!(none["plot_count"], 0);
        assert_eq!(none["lookup"]["median_ms"], Value::Null);
    }
}
