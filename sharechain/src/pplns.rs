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

use std::collections::{HashMap, VecDeque};

use bitcoin::{Amount, ScriptBuf};

use crate::gentx::Payout;
use crate::share::{CheckedShare, ShareHash};

/// Read access to shares by hash (the tracker's chain, or a map in tests).
pub trait ShareLookup {
    fn lookup(&self, hash: &ShareHash) -> Option<&CheckedShare>;
}

impl ShareLookup for HashMap<ShareHash, CheckedShare> {
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
    ) -> (&Window, &[ScriptBuf]) {
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
        (self.cache.back().expect("just pushed"), &self.scripts)
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

    /// The coinbase payouts of a share with this window (see the module docs for the rule).
    pub fn payouts(
        scripts: &[ScriptBuf],
        window: &Window,
        subsidy: Amount,
        finder: &ScriptBuf,
        donation_script: Option<&ScriptBuf>,
        max_payouts: usize,
    ) -> Vec<Payout> {
        let subsidy_sat = u128::from(subsidy.to_sat());
        // Normalise so that `subsidy × 199 × weight` fits in 128 bits (weights ≤ total < 2^64).
        let shift = (128 - window.total.leading_zeros()).saturating_sub(64);
        let denom = 200 * (window.total >> shift);
        let share_of = |weight: u128| -> u64 {
            if denom == 0 {
                0
            } else {
                (subsidy_sat * 199 * (weight >> shift) / denom) as u64
            }
        };
        let mut payouts: Vec<Payout> = Vec::with_capacity(window.per_script.len() + 2);
        let mut paid: u64 = 0;
        for (&id, &weight) in &window.per_script {
            let amount = share_of(weight);
            let script = &scripts[id as usize];
            if amount == 0 || script == finder {
                if script == finder {
                    paid += amount;
                    payouts.push(Payout {
                        script: script.clone(),
                        amount: Amount::from_sat(amount),
                    });
                }
                continue;
            }
            if Amount::from_sat(amount) < script.minimal_non_dust() {
                continue;
            }
            paid += amount;
            payouts.push(Payout {
                script: script.clone(),
                amount: Amount::from_sat(amount),
            });
        }
        if let Some(donation_script) = donation_script {
            let amount = share_of(window.donation);
            if amount > 0 && Amount::from_sat(amount) >= donation_script.minimal_non_dust() {
                paid += amount;
                merge(&mut payouts, donation_script, amount);
            }
        }
        if !payouts.iter().any(|p| &p.script == finder) {
            payouts.push(Payout {
                script: finder.clone(),
                amount: Amount::ZERO,
            });
        }
        payouts.sort_unstable_by(|a, b| {
            b.amount
                .cmp(&a.amount)
                .then_with(|| a.script.as_bytes().cmp(b.script.as_bytes()))
        });
        // Cut the smallest payees beyond the cap, but never the finder.
        let cap = max_payouts.max(1);
        if payouts.len() > cap {
            let finder_pos = payouts
                .iter()
                .position(|p| &p.script == finder)
                .expect("finder added");
            let finder_payout = payouts.remove(finder_pos);
            for cut in payouts.drain(cap - 1..) {
                paid -= cut.amount.to_sat();
            }
            payouts.push(finder_payout);
        }
        let finder_extra = subsidy.to_sat() - paid;
        merge(&mut payouts, finder, finder_extra);
        payouts.sort_unstable_by(|a, b| {
            b.amount
                .cmp(&a.amount)
                .then_with(|| a.script.as_bytes().cmp(b.script.as_bytes()))
        });
        payouts
    }
}

fn merge(payouts: &mut Vec<Payout>, script: &ScriptBuf, amount: u64) {
    match payouts.iter_mut().find(|p| &p.script == script) {
        Some(p) => p.amount += Amount::from_sat(amount),
        None => payouts.push(Payout {
            script: script.clone(),
            amount: Amount::from_sat(amount),
        }),
    }
}
