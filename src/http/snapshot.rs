//! Figures read from the share chain's published view and the worker port: pool rate and stale
//! proportion (P2Pool's `get_pool_attempts_per_second` and `get_average_stale_prop`), PPLNS
//! weights per address, the payouts a block found now would make; one share's details come from
//! the share worker (a read-only query job).

use std::collections::BTreeMap;

use bitcoin::hashes::Hash;
use bitcoin::{Address, Amount, Network, ScriptBuf, Target, Txid};
use serde::Serialize;
use serde_json::{json, Value};
use sharechain::share::StaleInfo;
use sharechain::target::{difficulty_of, work_of};
use sharechain::{CheckedShare, ShareHash, ShareRequest, Tracker};

use super::WebState;
use crate::shares::{Bitcoin, ChainView, FirstSeen};
use crate::stats::{single, unix_now, Snapshot};

/// A connected share-network peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// `host:port`.
    pub addr: String,
    /// Whether the peer dialed this node (`false`: this node dialed it).
    pub incoming: bool,
    /// The peer's software version, when known.
    pub version: String,
}

/// The share chain at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChainSummary {
    /// Hash of the best share, the one new shares build on; `None` while the chain is empty.
    pub best: Option<String>,
    /// The best share's absolute height (`absheight`).
    pub best_height: Option<u32>,
    /// Shares held.
    pub len: usize,
    /// Shares without children: the chain's tips, forks included.
    pub heads: usize,
    /// Verified shares without verified children.
    pub verified_heads: usize,
    /// Hashes per second of the pool's accepted shares over the last hour of shares.
    pub pool_nonstale_hash_rate: Option<f64>,
    /// Including the share chain's stale (orphan and dead) shares.
    pub pool_hash_rate: Option<f64>,
    /// Stale proportion over the window: orphan and dead shares over all shares counted (P2Pool's
    /// `get_average_stale_prop`), 0 to 1.
    pub pool_stale_prop: Option<f64>,
    /// Orphan and dead shares the miners of the window reported.
    pub orphan: u64,
    /// Dead-on-arrival shares the miners of the window reported.
    pub dead: u64,
    /// Shares the rate was measured over.
    pub lookbehind: usize,
    /// Difficulty of the easiest share allowed now (the best share's `max_bits`).
    pub min_difficulty: f64,
    /// Difficulty of the best share.
    pub share_difficulty: f64,
}

/// Display form of a payout script: its address, else `script:<hex>`.
pub fn script_to_human(script: &ScriptBuf, network: Network) -> String {
    Address::from_script(script, network)
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("script:{}", hex::encode(script.as_bytes())))
}

fn summary(view: &ChainView<Bitcoin>, lookbehind_max: usize) -> ChainSummary {
    let best_share = view.kind.best_share();
    let mut s = ChainSummary {
        best: view.best.map(|b| b.to_string()),
        best_height: best_share.map(|s| s.share().share_info.absheight),
        len: view.shares,
        heads: view.heads.len(),
        verified_heads: view.verified_heads.len(),
        ..ChainSummary::default()
    };
    if view.best.is_none() {
        return s;
    }
    if let Some(b) = best_share {
        let info = &b.share().share_info;
        s.min_difficulty = difficulty_of(Target::from_compact(info.max_bits));
        s.share_difficulty = difficulty_of(Target::from_compact(info.bits));
    }
    let window: Vec<&CheckedShare> = view
        .kind
        .recent
        .iter()
        .take(lookbehind_max + 1)
        .map(|s| &**s)
        .collect();
    for share in &window {
        match share.share().share_info.share_data.stale_info {
            StaleInfo::Orphan => s.orphan += 1,
            StaleInfo::DeadOnArrival => s.dead += 1,
            StaleInfo::None => {}
        }
    }
    s.lookbehind = window.len().saturating_sub(1);
    if let (Some(newest), Some(oldest)) = (window.first(), window.last()) {
        if window.len() >= 2 {
            let work: f64 = window[..window.len() - 1]
                .iter()
                .map(|s| s.work() as f64)
                .sum();
            let span = newest
                .share()
                .share_info
                .timestamp
                .saturating_sub(oldest.share().share_info.timestamp)
                .max(1);
            let rate = work / f64::from(span);
            let stales = (s.orphan + s.dead) as f64;
            let prop = stales / (s.lookbehind as f64 + stales);
            s.pool_nonstale_hash_rate = Some(rate);
            s.pool_stale_prop = Some(prop);
            s.pool_hash_rate = Some(if prop < 1.0 {
                rate / (1.0 - prop)
            } else {
                rate
            });
        }
    }
    s
}

/// Each script's fraction of what a block found now pays the share chain's miners (the
/// finder's part left out): the same PPLNS window, dust rule and output cap as
/// [`current_payouts`], so `/users` and `/current_payouts` always agree.
fn weights(view: &ChainView<Bitcoin>, subsidy: Option<Amount>) -> BTreeMap<ScriptBuf, f64> {
    let payouts = current_payouts(view, subsidy);
    let total: u64 = payouts.iter().map(|(_, a)| a.to_sat()).sum();
    if total == 0 {
        return BTreeMap::new();
    }
    let mut w: BTreeMap<ScriptBuf, f64> = BTreeMap::new();
    for (script, amount) in payouts {
        *w.entry(script).or_default() += amount.to_sat() as f64 / total as f64;
    }
    w
}

/// What a block found on the best share would pay each script (without the finder's part).
/// Built from the best share's prepared work base in the chain's published view (the same
/// `sharechain` rule miners' work and verification use).
fn current_payouts(view: &ChainView<Bitcoin>, subsidy: Option<Amount>) -> Vec<(ScriptBuf, Amount)> {
    let Some(share) = view.kind.best_share() else {
        return Vec::new();
    };
    let mut req = ShareRequest::of_share(share.share());
    req.previous_share_hash = Some(share.hash());
    // A script no miner uses stands in for the finder, whose part is left out.
    req.payout_script = ScriptBuf::new();
    if let Some(s) = subsidy {
        req.subsidy = s;
    }
    let template = match &view.kind.work {
        Ok(base) => base.template(&req),
        Err(e) => Err(*e),
    };
    match template {
        Ok(template) => template
            .payouts
            .into_iter()
            .filter(|p| !p.script.is_empty())
            .map(|p| (p.script, p.amount))
            .collect(),
        Err(e) => {
            tracing::debug!(%e, "no current payouts");
            Vec::new()
        }
    }
}

/// One share as `/web/share/<hash>` shows it; `None` when unknown. `seen`: when it arrived
/// and from which peer (`None` peer: this node's miners).
fn share_json(t: &Tracker, hash: &ShareHash, network: Network, seen: FirstSeen) -> Option<Value> {
    let chain = t.chain();
    let c = chain.get(hash)?;
    let share = c.share();
    let info = &share.share_info;
    let data = &info.share_data;
    let header = c.header();
    let target = |bits| format!("{:x}", Target::from_compact(bits));
    Some(json!({
        "parent": data.previous_share_hash.map(|h| h.to_string()),
        "far_parent": info.far_share_hash.map(|h| h.to_string()),
        "children": chain.children(hash).iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "type_name": format!("ShareV{}", share.version),
        "local": {
            "verified": chain.is_verified(hash),
            "time_first_seen": seen.time,
            "peer_first_received_from": seen.peer.map(|p| p.to_string()),
        },
        "share_data": {
            "timestamp": info.timestamp,
            "target": target(info.bits),
            "max_target": target(info.max_bits),
            "difficulty": difficulty_of(Target::from_compact(info.bits)),
            "payout_address": script_to_human(&data.payout_script, network),
            "donation": f64::from(data.donation) / 65535.0,
            "stale_info": data.stale_info as u8,
            "nonce": data.nonce,
            "desired_version": data.desired_version,
            "absheight": info.absheight,
            "abswork": info.abswork.to_string(),
        },
        "block": {
            "hash": c.block_hash().to_string(),
            "is_block": c.is_block(),
            "header": {
                "version": header.version.to_consensus(),
                "previous_block": header.prev_blockhash.to_string(),
                "merkle_root": header.merkle_root.to_string(),
                "timestamp": header.time,
                "target": format!("{:x}", header.target()),
                "nonce": header.nonce,
            },
            "gentx": {
                "hash": Txid::from_byte_array(c.gentx_txid()).to_string(),
                "coinbase": hex::encode(&data.coinbase),
                "value": data.subsidy.to_btc(),
                "last_txout_nonce": share.last_txout_nonce,
            },
        },
    }))
}

impl WebState {
    fn network(&self) -> Network {
        self.inner.work.params().network
    }

    fn lookbehind(&self) -> usize {
        let p = self.inner.work.params();
        (3600 / p.share_period.max(1)) as usize
    }

    pub(crate) fn chain_summary(&self) -> ChainSummary {
        let n = self.lookbehind();
        summary(&self.inner.work.chain().view(), n)
    }

    /// Address → its fraction of what a block found now pays the miners (PPLNS).
    pub(crate) fn users(&self) -> BTreeMap<String, f64> {
        let subsidy = Some(self.inner.templates.borrow().coinbase_value);
        let network = self.network();
        weights(&self.inner.work.chain().view(), subsidy)
            .into_iter()
            .map(|(s, w)| (script_to_human(&s, network), w))
            .collect()
    }

    /// Address → BTC a block found now would pay.
    pub(crate) fn current_payouts(&self) -> BTreeMap<String, f64> {
        let subsidy = Some(self.inner.templates.borrow().coinbase_value);
        let network = self.network();
        current_payouts(&self.inner.work.chain().view(), subsidy)
            .into_iter()
            .map(|(s, a)| (script_to_human(&s, network), a.to_btc()))
            .collect()
    }

    /// Asks the share worker (a read-only query between its jobs).
    pub(crate) async fn share_json(&self, hash: &ShareHash) -> Option<Value> {
        let network = self.network();
        let chain = self.inner.work.chain();
        // Shares loaded from the store count as seen when the node started, as in P2Pool.
        let seen = chain.first_seen(hash).unwrap_or_else(|| FirstSeen {
            time: unix_now().saturating_sub(self.inner.started.elapsed().as_secs()),
            peer: None,
        });
        let hash = *hash;
        chain
            .query(move |t| share_json(t, &hash, network, seen))
            .await
            .ok()
            .flatten()
    }

    /// Orphan and dead-on-arrival reports in the last hour of shares paying one of `addresses`
    /// (a share's `stale_info` tells that its miner's previous share went stale).
    pub(crate) fn stale_reports(
        &self,
        addresses: &std::collections::BTreeSet<String>,
    ) -> (u64, u64) {
        let n = self.lookbehind();
        let network = self.network();
        let view = self.inner.work.chain().view();
        {
            let (mut orphan, mut dead) = (0, 0);
            for share in view.kind.recent.iter().take(n) {
                let data = &share.share().share_info.share_data;
                if data.stale_info == StaleInfo::None
                    || !addresses.contains(&script_to_human(&data.payout_script, network))
                {
                    continue;
                }
                match data.stale_info {
                    StaleInfo::Orphan => orphan += 1,
                    _ => dead += 1,
                }
            }
            (orphan, dead)
        }
    }

    pub(crate) fn heads(&self, verified: bool) -> Vec<String> {
        let view = self.inner.work.chain().view();
        let heads = if verified {
            &view.verified_heads
        } else {
            &view.heads
        };
        heads.iter().map(|h| h.to_string()).collect()
    }

    pub(crate) fn peer_list(&self) -> Vec<Peer> {
        let source = std::sync::Arc::clone(&self.inner.peers.read());
        source.peers()
    }

    /// Hashes per second the whole network spends, from the block target and a 10-minute block.
    pub(crate) fn network_hashrate(&self) -> (f64, f64) {
        let target = self.inner.templates.borrow().target;
        (difficulty_of(target), work_of(target) as f64 / 600.0)
    }

    /// One sample of every graph stream.
    pub(crate) fn sample(&self) -> Snapshot {
        let w = self.inner.port.stats();
        let chain = self.chain_summary();
        let dead_fraction = {
            let mut last = self.inner.last_counts.lock();
            let (acc, stale) = (
                w.accepted.saturating_sub(last.0),
                w.rejected.stale.saturating_sub(last.1),
            );
            *last = (w.accepted, w.rejected.stale);
            if acc + stale == 0 {
                0.0
            } else {
                stale as f64 / (acc + stale) as f64
            }
        };
        let local = w.hashrate.max(0.0);
        let mut miners = BTreeMap::new();
        for m in &w.miners {
            *miners.entry(m.address.clone()).or_insert(0.0) += m.hashrate.max(0.0);
        }
        let peers = self.peer_list();
        let incoming = peers.iter().filter(|p| p.incoming).count() as f64;
        let pool = chain.pool_nonstale_hash_rate.unwrap_or(0.0);
        let prop = chain.pool_stale_prop.unwrap_or(0.0);
        let stales = (chain.orphan + chain.dead).max(1) as f64;
        let stale_rate = chain.pool_hash_rate.unwrap_or(0.0) - pool;
        Snapshot::from([
            ("local_hash_rate", single(local)),
            ("local_dead_hash_rate", single(local * dead_fraction)),
            (
                "pool_rates",
                [
                    ("good".to_owned(), pool),
                    (
                        "orphan".to_owned(),
                        stale_rate * chain.orphan as f64 / stales,
                    ),
                    ("doa".to_owned(), stale_rate * chain.dead as f64 / stales),
                ]
                .into(),
            ),
            ("miner_hash_rates", miners),
            (
                "peers",
                [
                    ("incoming".to_owned(), incoming),
                    ("outgoing".to_owned(), peers.len() as f64 - incoming),
                ]
                .into(),
            ),
            (
                "shares",
                [
                    ("total".to_owned(), chain.lookbehind as f64),
                    ("stale_prop".to_owned(), prop),
                    ("own".to_owned(), w.shares as f64),
                ]
                .into(),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sharechain::params::NetworkParams;
    use sharechain::testkit::{build_chain, easy_params, p2wpkh};

    /// More payees than the output cap: `/users` lists exactly the scripts `/current_payouts`
    /// pays, in the same proportions.
    #[test]
    fn users_and_current_payouts_agree_beyond_the_output_cap() {
        let capped: &'static NetworkParams = Box::leak(Box::new(NetworkParams {
            max_payouts: 5,
            ..NetworkParams::REGTEST.clone()
        }));
        let params = easy_params(capped, 60, 10);
        let scripts: Vec<ScriptBuf> = (1..=12).map(p2wpkh).collect();
        let (t, _) = build_chain(params, 40, &scripts);
        let view = ChainView::<Bitcoin>::of(params, &t, None);
        let subsidy = Some(Amount::from_btc(50.0).expect("amount"));
        let payouts = current_payouts(&view, subsidy);
        let users = weights(&view, subsidy);
        assert!(payouts.len() < scripts.len(), "the cap cuts payees");
        assert_eq!(users.len(), payouts.len());
        let total: u64 = payouts.iter().map(|(_, a)| a.to_sat()).sum();
        for (script, amount) in &payouts {
            let fraction = users[script];
            assert!(
                (fraction - amount.to_sat() as f64 / total as f64).abs() < 1e-12,
                "{script:?}: {fraction} of {total} vs {amount}"
            );
        }
        assert!((users.values().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
