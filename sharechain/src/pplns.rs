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

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

use bitcoin::{Amount, ScriptBuf};

use crate::share::{CheckedShare, ShareHash};

/// Read access to shares by hash (the tracker's chain, or a map in tests).
pub trait ShareLookup {
    /// The share with this hash, if known.
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
    /// Most shares in the window.
    pub max_shares: u32,
    /// Most total weight in the window, in work × 65535 (the newest share counts even if it alone exceeds it).
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

/// Interned payout scripts with what ordering and dust checks need.
#[derive(Debug, Default)]
struct Scripts {
    scripts: Vec<ScriptBuf>,
    /// Dust limit of each script, in satoshis.
    dust: Vec<u64>,
    /// First 8 script bytes, big-endian: orders most scripts without touching their bytes.
    keys: Vec<u64>,
    ids: HashMap<ScriptBuf, u32>,
}

impl Scripts {
    fn intern(&mut self, script: &ScriptBuf) -> u32 {
        if let Some(&id) = self.ids.get(script) {
            return id;
        }
        let id = self.scripts.len() as u32;
        let mut key = [0u8; 8];
        let n = script.len().min(8);
        key[..n].copy_from_slice(&script.as_bytes()[..n]);
        self.keys.push(u64::from_be_bytes(key));
        self.dust.push(script.minimal_non_dust().to_sat());
        self.scripts.push(script.clone());
        self.ids.insert(script.clone(), id);
        id
    }

    /// Script order for equal amounts or weights: by bytes.
    fn cmp(&self, a: u32, b: u32) -> Ordering {
        self.keys[a as usize]
            .cmp(&self.keys[b as usize])
            .then_with(|| {
                self.scripts[a as usize]
                    .as_bytes()
                    .cmp(self.scripts[b as usize].as_bytes())
            })
    }
}

/// Weights of the shares in one window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    start: Option<ShareHash>,
    entries: VecDeque<Entry>,
    /// Weight per script id (zero for scripts not in the window).
    weights: Vec<u128>,
    /// Script ids with weight, heaviest first (ties by script bytes): kept sorted as shares
    /// enter and leave, so payouts never sort the whole list.
    order: Vec<u32>,
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

    fn weight(&self, id: u32) -> u128 {
        self.weights.get(id as usize).copied().unwrap_or(0)
    }

    /// Changes a script's weight and moves it to its place in `order`.
    fn reweigh(&mut self, id: u32, weight: u128, scripts: &Scripts) {
        if self.weights.len() <= id as usize {
            self.weights.resize(id as usize + 1, 0);
        }
        let old = std::mem::replace(&mut self.weights[id as usize], weight);
        if old > 0 {
            if let Some(pos) = self.order.iter().position(|&x| x == id) {
                self.order.remove(pos);
            }
        }
        if weight > 0 {
            let weights = &self.weights;
            let pos = self.order.partition_point(|&x| {
                weights[x as usize]
                    .cmp(&weight)
                    .reverse()
                    .then_with(|| scripts.cmp(x, id))
                    == Ordering::Less
            });
            self.order.insert(pos, id);
        }
    }

    fn add(&mut self, e: &Entry, scripts: &Scripts) {
        let w = self.weight(e.script) + e.weight;
        self.reweigh(e.script, w, scripts);
        self.total += e.full();
        self.donation += e.donation;
    }

    fn push_back(&mut self, e: Entry, scripts: &Scripts) {
        self.add(&e, scripts);
        self.entries.push_back(e);
    }

    fn pop_back(&mut self, scripts: &Scripts) {
        if let Some(e) = self.entries.pop_back() {
            let w = self.weight(e.script) - e.weight;
            self.reweigh(e.script, w, scripts);
            self.total -= e.full();
            self.donation -= e.donation;
        }
    }
}

/// The interner is emptied (with the window cache) once it holds more scripts than this, and
/// more than [`SCRIPTS_PER_LIVE`] times those of the cached windows: finders' scripts of jobs
/// (any address a miner authorizes with) would otherwise pile up for ever.
const MIN_SCRIPTS_BEFORE_RESET: usize = 1 << 16;
const SCRIPTS_PER_LIVE: usize = 4;

/// Cache of recent windows plus the payout-script interner.
#[derive(Debug)]
pub struct Pplns {
    scripts: Scripts,
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
            scripts: Scripts::default(),
            cache: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn entry(&mut self, share: &CheckedShare) -> Entry {
        let data = &share.share().share_info.share_data;
        let donation = u128::from(data.donation);
        Entry {
            hash: share.hash(),
            script: self.scripts.intern(&data.payout_script),
            weight: share.work().saturating_mul(65535 - donation),
            donation: share.work().saturating_mul(donation),
        }
    }

    /// Payout scripts interned now (those of cached windows and of recent finders).
    pub fn interned(&self) -> usize {
        self.scripts.scripts.len()
    }

    /// The window whose newest share is `start` (`None`: the empty chain), within `limits`.
    ///
    /// Script ids from earlier calls are void after this call (the interner may be emptied).
    pub fn window(
        &mut self,
        chain: &impl ShareLookup,
        start: Option<ShareHash>,
        limits: WindowLimits,
    ) -> &Window {
        let live: usize = self.cache.iter().map(|w| w.order.len()).sum();
        if self.scripts.scripts.len() > MIN_SCRIPTS_BEFORE_RESET.max(SCRIPTS_PER_LIVE * live) {
            self.cache.clear();
            self.scripts = Scripts::default();
        }
        let mut window = self.take_nearby(chain, start);
        // Trim while the limits are exceeded, then extend while they allow.
        while !window.is_empty() && !window.holds(window.len(), window.total, limits) {
            window.pop_back(&self.scripts);
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
            window.push_back(e, &self.scripts);
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
            window.add(&e, &self.scripts);
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
        &self.scripts.scripts[id as usize]
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
        let finder_id = self.scripts.intern(finder);
        let scripts = &self.scripts;
        let Some(window) = self.cache.iter().find(|w| w.start == window_start) else {
            return vec![(finder_id, subsidy.to_sat())];
        };
        split(
            window
                .order
                .iter()
                .map(|&id| (id, window.weights[id as usize])),
            window.total,
            |id| scripts.dust[id as usize],
            |a, b| scripts.cmp(a, b),
            finder_id,
            subsidy,
            max_payouts,
        )
    }
}

/// The payout rule (see the module docs) over the weights of a window: `order` gives each
/// payee with weight, heaviest first (ties by script bytes), `total` the window's weight with
/// the donation, `dust` a payee's dust limit and `cmp` the script order of two payees. Returns
/// `(payee, satoshis)`, the finder included, in coinbase order.
fn split(
    order: impl Iterator<Item = (u32, u128)>,
    total: u128,
    dust: impl Fn(u32) -> u64,
    cmp: impl Fn(u32, u32) -> Ordering,
    finder_id: u32,
    subsidy: Amount,
    max_payouts: usize,
) -> Vec<(u32, u64)> {
    let shift = (128 - total.leading_zeros()).saturating_sub(64);
    let total = total >> shift;
    let factor = if total == 0 {
        0
    } else {
        ((u128::from(subsidy.to_sat()) * 199) << 64) / (200 * total)
    };
    let mut payouts: Vec<(u32, u64)> = Vec::with_capacity(order.size_hint().0 + 1);
    let mut paid: u64 = 0;
    let mut finder_amount = 0;
    // Heaviest first, so amounts come out non-increasing.
    for (id, weight) in order {
        let amount = (((weight >> shift) * factor) >> 64) as u64;
        if id == finder_id {
            finder_amount = amount;
            paid += amount;
        } else if amount > 0 && amount >= dust(id) {
            paid += amount;
            payouts.push((id, amount));
        }
    }
    let order = |a: &(u32, u64), b: &(u32, u64)| b.1.cmp(&a.1).then_with(|| cmp(a.0, b.0));
    // Equal amounts from unequal weights may need their script order fixed: the list is
    // sorted but for such runs, which an insertion pass mends in linear time.
    for i in 1..payouts.len() {
        let mut j = i;
        while j > 0 && order(&payouts[j - 1], &payouts[j]) == Ordering::Greater {
            payouts.swap(j - 1, j);
            j -= 1;
        }
    }
    // Cut the smallest payees beyond the cap; the finder always has an output.
    let cap = max_payouts.max(1);
    if payouts.len() > cap - 1 {
        for cut in payouts.drain(cap - 1..) {
            paid -= cut.1;
        }
    }
    // The finder gets subsidy/200, rounding, cut and dust payees: outputs add up exactly.
    let finder_payout = (finder_id, finder_amount + subsidy.to_sat() - paid);
    let at = payouts.partition_point(|p| order(p, &finder_payout) == Ordering::Less);
    payouts.insert(at, finder_payout);
    payouts
}

/// One share's whole window walked once, for building on that share many times: the weights of
/// its shares newest first, so the window of any weight cap is a prefix of it. Immutable once
/// built (`Send + Sync`): [`Self::payouts`] takes `&self`.
///
/// Built by [`crate::build::prepare`]; gives exactly what [`Pplns::window`] and
/// [`Pplns::payouts`] give for the same start and limits.
#[derive(Debug, Clone, Default)]
pub struct WindowWeights {
    scripts: Vec<ScriptBuf>,
    /// Dust limit of each script, in satoshis.
    dust: Vec<u64>,
    ids: HashMap<ScriptBuf, u32>,
    /// `(script id, weight, weight with the donation)`, newest share first.
    entries: Vec<(u32, u128, u128)>,
    /// Total weight with the donation of the first `i + 1` entries.
    cumulative: Vec<u128>,
    /// Weight per script id over all entries.
    weights: Vec<u128>,
    /// Script ids with weight over all entries, heaviest first (ties by script bytes).
    order: Vec<u32>,
}

/// The finder's id when its script is not in the window.
const NEW_FINDER: u32 = u32::MAX;

impl WindowWeights {
    /// Walks the window whose newest share is `start` (`None`: the empty chain), at most
    /// `max_shares` shares, stopping at the first share `chain` does not hold.
    pub fn walk(chain: &impl ShareLookup, start: Option<ShareHash>, max_shares: u32) -> Self {
        let mut w = WindowWeights::default();
        let mut next = start;
        let mut total = 0u128;
        while w.entries.len() < max_shares as usize {
            let Some(share) = next.and_then(|h| chain.lookup(&h)) else {
                break;
            };
            let data = &share.share().share_info.share_data;
            let id = match w.ids.get(&data.payout_script) {
                Some(&id) => id,
                None => {
                    let id = w.scripts.len() as u32;
                    w.scripts.push(data.payout_script.clone());
                    w.dust.push(data.payout_script.minimal_non_dust().to_sat());
                    w.ids.insert(data.payout_script.clone(), id);
                    w.weights.push(0);
                    id
                }
            };
            let donation = u128::from(data.donation);
            let weight = share.work().saturating_mul(65535 - donation);
            let full = weight + share.work().saturating_mul(donation);
            total += full;
            w.weights[id as usize] += weight;
            w.entries.push((id, weight, full));
            w.cumulative.push(total);
            next = share.prev_hash();
        }
        w.order = w.sorted(&w.weights);
        w
    }

    /// Script ids with weight, heaviest first, ties by script bytes.
    fn sorted(&self, weights: &[u128]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..weights.len() as u32)
            .filter(|&id| weights[id as usize] > 0)
            .collect();
        order.sort_by(|&a, &b| {
            weights[b as usize].cmp(&weights[a as usize]).then_with(|| {
                self.scripts[a as usize]
                    .as_bytes()
                    .cmp(self.scripts[b as usize].as_bytes())
            })
        });
        order
    }

    /// Shares walked (the window without a weight cap).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no share was walked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many of the walked shares the window within `limits` holds.
    pub fn len_within(&self, limits: WindowLimits) -> usize {
        let n = self
            .cumulative
            .partition_point(|&c| c <= limits.max_weight)
            .max(self.entries.len().min(1));
        n.min(limits.max_shares as usize)
    }

    /// The coinbase payouts of a share whose window is this one within `limits`, paying the
    /// finder `finder`: `(script, satoshis)` in coinbase order, as [`Pplns::payouts`].
    pub fn payouts<'a>(
        &'a self,
        limits: WindowLimits,
        subsidy: Amount,
        finder: &'a ScriptBuf,
        max_payouts: usize,
    ) -> Vec<(&'a ScriptBuf, u64)> {
        let n = self.len_within(limits);
        let total = n.checked_sub(1).map_or(0, |i| self.cumulative[i]);
        let finder_id = self.ids.get(finder).copied().unwrap_or(NEW_FINDER);
        let script = |id: u32| -> &'a ScriptBuf {
            if id == NEW_FINDER {
                finder
            } else {
                &self.scripts[id as usize]
            }
        };
        let dust = |id: u32| self.dust[id as usize];
        let cmp = |a: u32, b: u32| script(a).as_bytes().cmp(script(b).as_bytes());
        let (order, weights): (Cow<'_, [u32]>, Cow<'_, [u128]>) = if n == self.entries.len() {
            (Cow::Borrowed(&self.order), Cow::Borrowed(&self.weights))
        } else {
            // A shorter window: from its own shares or by taking the rest off the whole one,
            // whichever walks fewer.
            let weights = if n <= self.entries.len() / 2 {
                let mut w = vec![0u128; self.scripts.len()];
                for &(id, weight, _) in &self.entries[..n] {
                    w[id as usize] += weight;
                }
                w
            } else {
                let mut w = self.weights.clone();
                for &(id, weight, _) in &self.entries[n..] {
                    w[id as usize] -= weight;
                }
                w
            };
            (Cow::Owned(self.sorted(&weights)), Cow::Owned(weights))
        };
        let ids = split(
            order.iter().map(|&id| (id, weights[id as usize])),
            total,
            dust,
            cmp,
            finder_id,
            subsidy,
            max_payouts,
        );
        ids.into_iter().map(|(id, sat)| (script(id), sat)).collect()
    }
}
