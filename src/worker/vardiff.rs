//! Per-connection difficulty adjustment aiming at one pseudo-share every few seconds.
//!
//! The rate is measured over a window that closes after `retarget_shares` pseudo-shares or after
//! `window` (whichever comes first); the new difficulty is the old one scaled by the measured
//! rate over the aimed rate, moved by at most ×16 up per step, and left alone when within 25% of
//! the old one (so miners do not see a difficulty change every window). Downward it moves by at
//! most ÷4 per window that timed out (a miner that pauses is not a slow miner), but all the way
//! when the window closed on `retarget_shares` pseudo-shares: that many measure the hash rate
//! well enough, and a fast miner first sent an easier difficulty than vardiff's (the share or
//! block floor) should not take minutes of ÷4 steps to reach its own.

use std::time::{Duration, Instant};

/// Settings of the difficulty adjustment.
#[derive(Debug, Clone)]
pub struct VardiffConfig {
    /// Difficulty of a new connection (before any suggestion).
    pub initial: f64,
    /// Lowest difficulty handed out.
    pub min: f64,
    /// Highest difficulty handed out.
    pub max: f64,
    /// Aimed time between pseudo-shares.
    pub target_interval: Duration,
    /// Pseudo-shares that close a measuring window early.
    pub retarget_shares: u32,
    /// Longest measuring window.
    pub window: Duration,
}

impl Default for VardiffConfig {
    fn default() -> Self {
        VardiffConfig {
            initial: 1.0,
            min: 1e-12,
            max: 1e15,
            target_interval: Duration::from_secs(5),
            retarget_shares: 12,
            window: Duration::from_secs(60),
        }
    }
}

/// The adjustment state of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Vardiff {
    config: VardiffConfig,
    difficulty: f64,
    fixed: bool,
    window_start: Instant,
    shares: u32,
    /// Sum of the difficulties the window's pseudo-shares were found at: the miner may have
    /// worked at an easier difficulty than this one (the job's floor), and its hash rate is
    /// what counts.
    work: f64,
    /// A measuring window has closed: `difficulty` reflects the miner's hash rate, not a guess.
    measured: bool,
    /// The miner suggested the difficulty (until a window measures it).
    suggested: bool,
}

impl Vardiff {
    pub(crate) fn new(config: VardiffConfig, now: Instant) -> Self {
        let difficulty = config.initial.clamp(config.min, config.max);
        Vardiff {
            config,
            difficulty,
            fixed: false,
            window_start: now,
            shares: 0,
            work: 0.0,
            measured: false,
            suggested: false,
        }
    }

    /// Whether the difficulty is the miner's choice (fixed in its username, or suggested and
    /// not yet measured) rather than vardiff's.
    pub(crate) fn chosen_by_miner(&self) -> bool {
        self.fixed || (self.suggested && !self.measured)
    }

    /// Whether a measuring window has closed on this miner's own pseudo-shares.
    pub(crate) fn measured(&self) -> bool {
        self.measured
    }

    /// How far below this difficulty a flooding miner may be held so that it sends at most
    /// `max_rate` pseudo-shares a second: this difficulty aims at one per `target_interval`.
    pub(crate) fn flood_factor(&self, max_rate: f64) -> f64 {
        (self.config.target_interval.as_secs_f64() * max_rate).max(1.0)
    }

    pub(crate) fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Set the difficulty (a suggestion, clamped); `fixed` turns adjustment off.
    pub(crate) fn set(&mut self, difficulty: f64, fixed: bool, now: Instant) {
        if difficulty.is_finite() && difficulty > 0.0 {
            self.difficulty = if fixed {
                difficulty
            } else {
                difficulty.clamp(self.config.min, self.config.max)
            };
        }
        self.fixed = fixed;
        self.suggested = true;
        self.measured = false;
        self.window_start = now;
        self.shares = 0;
        self.work = 0.0;
    }

    /// Count a pseudo-share found at difficulty `found_at` (the one the miner was sent); the
    /// new difficulty when it changed.
    pub(crate) fn on_share(&mut self, now: Instant, found_at: f64) -> Option<f64> {
        self.shares = self.shares.saturating_add(1);
        if found_at.is_finite() && found_at > 0.0 {
            self.work += found_at;
        }
        if self.shares >= self.config.retarget_shares
            || now.duration_since(self.window_start) >= self.config.window
        {
            self.retarget(now)
        } else {
            None
        }
    }

    /// Periodic check, so a miner finding nothing at its difficulty gets an easier one.
    pub(crate) fn on_tick(&mut self, now: Instant) -> Option<f64> {
        if now.duration_since(self.window_start) >= self.config.window {
            self.retarget(now)
        } else {
            None
        }
    }

    fn retarget(&mut self, now: Instant) -> Option<f64> {
        let elapsed = now
            .duration_since(self.window_start)
            .as_secs_f64()
            .max(1e-3);
        // Shares found, in units of this difficulty.
        let shares = self.work / self.difficulty;
        let counted = self.shares >= self.config.retarget_shares;
        self.measured |= self.shares > 0;
        self.window_start = now;
        self.shares = 0;
        self.work = 0.0;
        if self.fixed {
            return None;
        }
        let wanted = self.config.target_interval.as_secs_f64();
        let lowest = if counted { 0.0 } else { 0.25 };
        let factor = (shares * wanted / elapsed).clamp(lowest, 16.0);
        let new = (self.difficulty * factor).clamp(self.config.min, self.config.max);
        if (new / self.difficulty - 1.0).abs() < 0.25 {
            return None;
        }
        self.difficulty = new;
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VardiffConfig {
        VardiffConfig {
            initial: 1.0,
            target_interval: Duration::from_secs(5),
            retarget_shares: 10,
            window: Duration::from_secs(60),
            ..VardiffConfig::default()
        }
    }

    #[test]
    fn fast_miner_goes_up_slow_miner_goes_down() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(config(), t0);
        let mut changed = None;
        for i in 1..=10 {
            changed = v.on_share(t0 + Duration::from_millis(100 * i), 1.0);
        }
        assert_eq!(changed, Some(16.0), "×16 at most per step");
        assert_eq!(v.on_tick(t0 + Duration::from_secs(10)), None);
        assert_eq!(
            v.on_tick(t0 + Duration::from_secs(62)),
            Some(4.0),
            "÷4 per empty window"
        );
    }

    #[test]
    fn on_target_rate_keeps_difficulty_and_fixed_never_moves() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(config(), t0);
        let mut last = None;
        for i in 1..=10 {
            last = v.on_share(t0 + Duration::from_secs(5 * i), 1.0);
        }
        assert_eq!(last, None);
        v.set(0.5, true, t0);
        assert_eq!(v.on_tick(t0 + Duration::from_secs(600)), None);
        assert_eq!(v.difficulty(), 0.5);
    }

    /// A miner held at an easier difficulty than vardiff's (the job's floor) finds shares
    /// faster; counted in work, the rate it reaches at the difficulty it was sent is on target,
    /// so vardiff does not run away upward.
    #[test]
    fn shares_found_below_the_difficulty_count_as_their_work() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(config(), t0);
        v.set(1000.0, false, t0);
        let mut last = None;
        // One share every 5 ms at difficulty 1: the hash rate of one every 5 s at 1000.
        for i in 1..=10 {
            last = v.on_share(t0 + Duration::from_millis(5 * i), 1.0);
        }
        // Ten shares at 1/1000 of the difficulty in 50 ms: 0.01 shares of 1000 per 50 ms,
        // i.e. one per 5 s: on target.
        assert_eq!(last, None);
        assert_eq!(v.difficulty(), 1000.0);
        assert_eq!(v.flood_factor(100.0), 500.0);
    }

    /// A miner sent the block's far easier difficulty while vardiff still guesses 1: the first
    /// full window measures it and vardiff goes straight to its rate, not ÷4 a window.
    #[test]
    fn a_full_window_moves_down_all_the_way() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(config(), t0);
        assert!(!v.measured());
        let mut last = None;
        // Ten shares at difficulty 1e-6 in 10 ms: 1e-5 of difficulty 1 per 10 ms, i.e. one
        // share of difficulty 0.005 per 5 s.
        for i in 1..=10 {
            last = v.on_share(t0 + Duration::from_millis(i), 1e-6);
        }
        let d = last.expect("moved");
        assert!((d - 0.005).abs() < 1e-9, "{d}");
        assert!(v.measured());
    }
}
