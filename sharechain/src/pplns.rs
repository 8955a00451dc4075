//! PPLNS weights, incremental, and the payout rule.
//!
//! # The window
//! A share `S` pays the shares of its window: its ancestors from the grandparent back, at most
//! `max_shares` of them and at most `max_weight` of work×65535 in total, whole shares only (if even
//! the newest one exceeds the cap it alone counts). Each share weighs `work × (65535 − donation)`
//! for its payout script and `work × donation` for the donation.
//!
//! # Incremental
//! Windows are cached by their newest share. The window for the child of a cached start is the
//! cached one with one share pushed at the front and shares trimmed from the back; it is never
//! rebuilt by walking the whole chain (only a window whose neighbour is not cached is, e.g. on a
//! deep fork). Trimming and then extending yields exactly the fresh walk because the limits are
//! monotone in the number of shares.
//!
//! # Payouts
//! `subsidy × 199/200` is split by weight; the finder of the share gets `subsidy/200` plus
//! rounding. Outputs below the dust limit of their script are not created and the output count is
//! capped at `max_payouts`: the smallest payees beyond it (ties broken by script bytes) are cut.
//! What cut and dust payees would have had goes to the finder, so the outputs always add up to
//! exactly the subsidy. Outputs are ordered by amount (largest first), then script bytes.
//! The donation weight is paid to the finder too (there is no developer address).

use std::collections::{HashMap, VecDeque};

use bitcoin::{Amount, ScriptBuf};

use crate::share::{CheckedShare, ShareHash};

/// Read access to shares by hash (the tracker's chain, or a map in tests).
pub trait ShareLookup {
    fn lookup(&self, hash: &ShareHash) -> Option<&CheckedShare>;
}

impl<B: std::hash::BuildHasher> ShareLookup for HashMap<ShareHash, CheckedShare, B> {
    fn lookup(&self, hash: &ShareHash) -> Option<&CheckedShare> {
        self.get(hash)
    }
}

/// The limits of one share's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    pub max_shares: u32,
    pub max_weight: u128,
}

#[derive(Debug, Clone)]
struct Entry {
    hash: ShareHash,
    script: u32,
    weight: u128,
    donation: u128,
}

impl Entry {
    fn full(&self) -> u128 {
        self.weight + self.donation
    }
}

/// Weights of the shares in one window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    start: Option<ShareHash>,
    entries: VecDeque<Entry>,
    per_script: HashMap<u32, u128>,
    total: u128,
    donation: u128,
}

impl Window {
    /// Number of shares in the window.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for an empty window.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total weight (work × 65535) of the window.
    pub fn total_weight(&self) -> u128 {
        self.total
    }

    /// The oldest share of the window.
    pub fn oldest(&self) -> Option<ShareHash> {
        self.entries.back().map(|e| e.hash)
    }

    fn holds(&self, n: usize, total: u128, limits: WindowLimits) -> bool {
        n <= limits.max_shares as usize && (n <= 1 || total <= limits.max_weight)
    }

    fn push_back(&mut self, e: Entry) {
        self.add(&e);
        self.entries.push_back(e);
    }

    fn add(&mut self, e: &Entry) {
        *self.per_script.entry(e.script).or_default() += e.weight;
        self.total += e.full();
        self.donation += e.donation;
    }

    fn pop_back(&mut self) {
        if let Some(e) = self.entries.pop_back() {
            if let Some(w) = self.per_script.get_mut(&e.script) {
                *w -= e.weight;
                if *w == 0 {
                    self.per_script.remove(&e.script);
                }
            }
            self.total -= e.full();
            self.donation -= e.donation;
        }
    }
}

/// Cache of recent windows plus the payout-script interner.
#[derive(Debug)]
pub struct Pplns {
    scripts: Vec<ScriptBuf>,
    /// Dust limit of each interned script, in satoshis.
    dust: Vec<u64>,
    /// First 8 script bytes, big-endian: orders most scripts without touching their bytes.
    sort_keys: Vec<u64>,
    script_ids: HashMap<ScriptBuf, u32>,
    cache: VecDeque<Window>,
    capacity: usize,
}

impl Default for Pplns {
    fn default() -> Self {
        Self::new(8)
    }
}

impl Pplns {
    /// A cache keeping up to `capacity` windows.
    pub fn new(capacity: usize) -> Self {
        Pplns {
            scripts: Vec::new(),
            dust: Vec::new(),
            sort_keys: Vec::new(),
            script_ids: HashMap::new(),
            cache: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn intern(&mut self, script: &ScriptBuf) -> u32 {
        if let Some(&id) = self.script_ids.get(script) {
            return id;
        }
        let id = self.scripts.len() as u32;
        self.scripts.push(script.clone());
        self.dust.push(script.minimal_non_dust().to_sat());
        let mut key = [0u8; 8];
        let n = script.len().min(8);
        key[..n].copy_from_slice(&script.as_bytes()[..n]);
        self.sort_keys.push(u64::from_be_bytes(key));
        self.script_ids.insert(script.clone(), id);
        id
    }

    fn entry(&mut self, share: &CheckedShare) -> Entry {
        let data = &share.share().share_info.share_data;
        let donation = u128::from(data.donation);
        Entry {
            hash: share.hash(),
            script: self.intern(&data.payout_script),
            weight: share.work().saturating_mul(65535 - donation),
            donation: share.work().saturating_mul(donation),
        }
    }

    /// The window whose newest share is `start` (`None`: the empty chain), within `limits`.
    pub fn window(
        &mut self,
        chain: &impl ShareLookup,
        start: Option<ShareHash>,
        limits: WindowLimits,
    ) -> &Window {
        let mut window = self.take_nearby(chain, start);
        // Trim while the limits are exceeded, then extend while they allow.
        while !window.is_empty() && !window.holds(window.len(), window.total, limits) {
            window.pop_back();
        }
        loop {
            let next = match window.entries.back() {
                None => start,
                Some(back) => chain.lookup(&back.hash).and_then(|s| s.prev_hash()),
            };
            let Some(share) = next.and_then(|h| chain.lookup(&h)) else {
                break;
            };
            let e = self.entry(share);
            if !window.holds(window.len() + 1, window.total + e.full(), limits) {
                break;
            }
            window.push_back(e);
        }
        if self.cache.len() >= self.capacity {
            self.cache.pop_front();
        }
        self.cache.push_back(window);
        self.cache.back().expect("just pushed")
    }

    /// A cached window for `start` or for its parent (slid forward by one), else an empty one.
    fn take_nearby(&mut self, chain: &impl ShareLookup, start: Option<ShareHash>) -> Window {
        if let Some(i) = self.cache.iter().position(|w| w.start == start) {
            return self.cache.remove(i).expect("index is valid");
        }
        let Some(start_hash) = start else {
            return Window::default();
        };
        let Some(start_share) = chain.lookup(&start_hash) else {
            return Window {
                start,
                ..Window::default()
            };
        };
        let parent = start_share.prev_hash();
        if let Some(i) = self
            .cache
            .iter()
            .position(|w| w.start == parent && parent.is_some())
        {
            let mut window = self.cache.remove(i).expect("index is valid");
            let e = self.entry(start_share);
            window.add(&e);
            window.entries.push_front(e);
            window.start = start;
            return window;
        }
        Window {
            start,
            ..Window::default()
        }
    }

    /// Forgets cached windows that include `hash` (a pruned or removed share).
    pub fn forget(&mut self, hash: &ShareHash) {
        self.cache
            .retain(|w| w.start != Some(*hash) && w.oldest() != Some(*hash));
    }

    /// The payout script with this id.
    pub fn script(&self, id: u32) -> &ScriptBuf {
        &self.scripts[id as usize]
    }

    /// The interned payout scripts, indexed by id.
    pub fn scripts(&self) -> &[ScriptBuf] {
        &self.scripts
    }

    /// The coinbase payouts of a share with this window, as `(script id, satoshis)` (see the
    /// module docs for the rule). The finder's script is interned if new.
    ///
    /// Amounts are fixed-point: with weights scaled below 2^64 (`w' = w >> s`, `T' = T >> s`),
    /// `factor = ⌊subsidy·199·2^64 / (200·T')⌋` and a payee with weight `w` gets
    /// `⌊w'·factor / 2^64⌋` — a multiplication per payee instead of a division, at most one
    /// satoshi below the exact quotient, and the same on every node.
    pub fn payouts(
        &mut self,
        window_start: Option<ShareHash>,
        subsidy: Amount,
        finder: &ScriptBuf,
        max_payouts: usize,
    ) -> Vec<(u32, u64)> {
        let finder_id = self.intern(finder);
        let Some(window) = self.cache.iter().find(|w| w.start == window_start) else {
            return vec![(finder_id, subsidy.to_sat())];
        };
        let shift = (128 - window.total.leading_zeros()).saturating_sub(64);
        let total = window.total >> shift;
        let factor = if total == 0 {
            0
        } else {
            (u128::from(subsidy.to_sat()) * 199 << 64) / (200 * total)
        };
        let mut payouts: Vec<(u32, u64)> = Vec::with_capacity(window.per_script.len() + 1);
        let mut paid: u64 = 0;
        let mut finder_listed = false;
        for (&id, &weight) in &window.per_script {
            let amount = (((weight >> shift) * factor) >> 64) as u64;
            if id == finder_id {
                finder_listed = true;
            } else if amount == 0 || amount < self.dust[id as usize] {
                continue;
            }
            paid += amount;
            payouts.push((id, amount));
        }
        if !finder_listed {
            payouts.push((finder_id, 0));
        }
        let (scripts, keys) = (&self.scripts, &self.sort_keys);
        let order = |a: &(u32, u64), b: &(u32, u64)| {
            b.1.cmp(&a.1)
                .then_with(|| keys[a.0 as usize].cmp(&keys[b.0 as usize]))
                .then_with(|| {
                    scripts[a.0 as usize]
                        .as_bytes()
                        .cmp(scripts[b.0 as usize].as_bytes())
                })
        };
        payouts.sort_unstable_by(order);
        // Cut the smallest payees beyond the cap, but never the finder.
        let cap = max_payouts.max(1);
        if payouts.len() > cap {
            let finder_pos = payouts
                .iter()
                .position(|p| p.0 == finder_id)
                .expect("finder listed");
            let finder_payout = payouts.remove(finder_pos);
            for cut in payouts.drain(cap - 1..) {
                paid -= cut.1;
            }
            payouts.push(finder_payout);
        }
        // The finder gets subsidy/200, rounding, cut and dust payees: outputs add up exactly.
        let pos = payouts
            .iter()
            .position(|p| p.0 == finder_id)
            .expect("finder listed");
        let mut finder_payout = payouts.remove(pos);
        finder_payout.1 += subsidy.to_sat() - paid;
        let at = payouts.partition_point(|p| order(p, &finder_payout).is_lt());
        payouts.insert(at, finder_payout);
        payouts
    }
}
