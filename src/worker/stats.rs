//! Hashrate statistics from pseudo-shares, per miner address and worker and in total.
//!
//! Work is kept in 10-second buckets over a 10-minute window; a pseudo-share of difficulty D
//! stands for D·2^32 hashes.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

const BUCKET_SECS: u64 = 10;
const BUCKETS: usize = 60;
const WINDOW_SECS: f64 = (BUCKET_SECS as f64) * (BUCKETS as f64);
const HASHES_PER_DIFF1: f64 = 4_294_967_296.0;

/// Rejected submits by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RejectCounts {
    /// Job from before the last new block, or refused by the node as stale.
    pub stale: u64,
    /// Same header twice.
    pub duplicate: u64,
    /// Hash above the pseudo-share target.
    pub low_difficulty: u64,
    /// Unknown job, bad ntime, bad version bits, malformed parameters.
    pub invalid: u64,
}

/// Why a submit was rejected (for statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    Stale,
    Duplicate,
    LowDifficulty,
    Invalid,
}

/// Statistics of one worker of one payout address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinerStats {
    /// Payout address.
    pub address: String,
    /// Worker name (may be empty).
    pub worker: String,
    /// Estimated hashes per second over the last 10 minutes.
    pub hashrate: f64,
    /// Accepted pseudo-shares.
    pub accepted: u64,
    /// Rejected submits.
    pub rejected: RejectCounts,
    /// Submits that met the share target.
    pub shares: u64,
    /// Submits that met the block target.
    pub blocks: u64,
    /// Open connections of this worker.
    pub connections: u32,
}

/// A snapshot of the whole port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStats {
    /// Open connections (stratum and HTTP).
    pub connections: usize,
    /// Estimated hashes per second of all miners over the last 10 minutes.
    pub hashrate: f64,
    /// Accepted pseudo-shares.
    pub accepted: u64,
    /// Rejected submits.
    pub rejected: RejectCounts,
    /// Submits that met the share target.
    pub shares: u64,
    /// Submits that met the block target.
    pub blocks: u64,
    /// Connections closed because the port was full.
    pub refused_connections: u64,
    /// Times the provider had no work, and its last reason.
    pub no_work: u64,
    /// The provider's last reason for having no work.
    pub last_no_work: Option<String>,
    /// Per address and worker, sorted.
    pub miners: Vec<MinerStats>,
}

#[derive(Debug, Clone)]
struct Entry {
    work: [f64; BUCKETS],
    slot: [u64; BUCKETS],
    first_slot_secs: u64,
    last_seen_secs: u64,
    accepted: u64,
    rejected: RejectCounts,
    shares: u64,
    blocks: u64,
    connections: u32,
}

impl Entry {
    fn new(now: u64) -> Self {
        Entry {
            work: [0.0; BUCKETS],
            slot: [u64::MAX; BUCKETS],
            first_slot_secs: now,
            last_seen_secs: now,
            accepted: 0,
            rejected: RejectCounts::default(),
            shares: 0,
            blocks: 0,
            connections: 0,
        }
    }

    fn add_work(&mut self, now: u64, difficulty: f64) {
        let slot = now / BUCKET_SECS;
        let i = (slot % BUCKETS as u64) as usize;
        if self.slot[i] != slot {
            self.slot[i] = slot;
            self.work[i] = 0.0;
        }
        self.work[i] += difficulty * HASHES_PER_DIFF1;
        self.accepted += 1;
        self.last_seen_secs = now;
    }

    fn hashrate(&self, now: u64) -> f64 {
        let slot = now / BUCKET_SECS;
        let oldest = slot.saturating_sub(BUCKETS as u64 - 1);
        let work: f64 = (0..BUCKETS)
            .filter(|&i| self.slot[i] != u64::MAX && self.slot[i] >= oldest)
            .map(|i| self.work[i])
            .sum();
        let span = ((now - self.first_slot_secs.min(now)) as f64).clamp(1.0, WINDOW_SECS);
        work / span
    }

    fn reject(&mut self, reason: Reject) {
        let r = &mut self.rejected;
        match reason {
            Reject::Stale => r.stale += 1,
            Reject::Duplicate => r.duplicate += 1,
            Reject::LowDifficulty => r.low_difficulty += 1,
            Reject::Invalid => r.invalid += 1,
        }
    }
}

struct Inner {
    total: Entry,
    miners: HashMap<String, HashMap<String, Entry>>,
    refused: u64,
    no_work: u64,
    last_no_work: Option<String>,
}

/// The port's statistics.
pub(crate) struct Stats {
    start: Instant,
    inner: Mutex<Inner>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                total: Entry::new(0),
                miners: HashMap::new(),
                refused: 0,
                no_work: 0,
                last_no_work: None,
            }),
        }
    }
}

impl Stats {
    fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    fn with_entry(&self, address: &str, worker: &str, f: impl Fn(&mut Entry, u64)) {
        let now = self.now();
        let mut inner = self.inner.lock();
        f(&mut inner.total, now);
        let workers = match inner.miners.get_mut(address) {
            Some(w) => w,
            None => inner.miners.entry(address.to_owned()).or_default(),
        };
        let entry = match workers.get_mut(worker) {
            Some(e) => e,
            None => workers
                .entry(worker.to_owned())
                .or_insert_with(|| Entry::new(now)),
        };
        f(entry, now);
    }

    pub(crate) fn connected(&self, address: &str, worker: &str) {
        self.with_entry(address, worker, |e, _| e.connections += 1);
    }

    /// One connection of `address.worker` fewer. A worker that leaves without any accepted
    /// work is forgotten at once, so authorizing with ever new names fills nothing.
    pub(crate) fn disconnected(&self, address: &str, worker: &str) {
        let mut inner = self.inner.lock();
        inner.total.connections = inner.total.connections.saturating_sub(1);
        let Some(workers) = inner.miners.get_mut(address) else {
            return;
        };
        let forget = workers.get_mut(worker).is_some_and(|e| {
            e.connections = e.connections.saturating_sub(1);
            e.connections == 0 && e.accepted == 0 && e.shares == 0 && e.blocks == 0
        });
        if forget {
            workers.remove(worker);
            if workers.is_empty() {
                inner.miners.remove(address);
            }
        }
    }

    pub(crate) fn pseudo_share(&self, address: &str, worker: &str, difficulty: f64) {
        self.with_entry(address, worker, |e, now| e.add_work(now, difficulty));
    }

    pub(crate) fn reject(&self, address: &str, worker: &str, reason: Reject) {
        self.with_entry(address, worker, |e, _| e.reject(reason));
    }

    pub(crate) fn found(&self, address: &str, worker: &str, share: bool, block: bool) {
        self.with_entry(address, worker, |e, _| {
            e.shares += u64::from(share);
            e.blocks += u64::from(block);
        });
    }

    pub(crate) fn refused(&self) {
        self.inner.lock().refused += 1;
    }

    pub(crate) fn no_work(&self, reason: &str) {
        let mut inner = self.inner.lock();
        inner.no_work += 1;
        if inner.last_no_work.as_deref() != Some(reason) {
            inner.last_no_work = Some(reason.to_owned());
        }
    }

    pub(crate) fn snapshot(&self, connections: usize) -> WorkerStats {
        let now = self.now();
        let mut inner = self.inner.lock();
        // Forget workers gone for longer than the window.
        for workers in inner.miners.values_mut() {
            workers.retain(|_, e| {
                e.connections > 0 || now.saturating_sub(e.last_seen_secs) < WINDOW_SECS as u64
            });
        }
        inner.miners.retain(|_, w| !w.is_empty());
        let mut miners: Vec<MinerStats> = inner
            .miners
            .iter()
            .flat_map(|(address, workers)| {
                workers.iter().map(move |(worker, e)| MinerStats {
                    address: address.clone(),
                    worker: worker.clone(),
                    hashrate: e.hashrate(now),
                    accepted: e.accepted,
                    rejected: e.rejected,
                    shares: e.shares,
                    blocks: e.blocks,
                    connections: e.connections,
                })
            })
            .collect();
        miners.sort_by(|a, b| (&a.address, &a.worker).cmp(&(&b.address, &b.worker)));
        let t = &inner.total;
        WorkerStats {
            connections,
            hashrate: t.hashrate(now),
            accepted: t.accepted,
            rejected: t.rejected,
            shares: t.shares,
            blocks: t.blocks,
            refused_connections: inner.refused,
            no_work: inner.no_work,
            last_no_work: inner.last_no_work.clone(),
            miners,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_hashrate() {
        let s = Stats::default();
        s.connected("a", "w");
        s.pseudo_share("a", "w", 1.0);
        s.pseudo_share("a", "w", 1.0);
        s.reject("a", "w", Reject::Duplicate);
        s.found("a", "w", true, false);
        let snap = s.snapshot(1);
        assert_eq!(snap.accepted, 2);
        assert_eq!(snap.rejected.duplicate, 1);
        assert_eq!(snap.shares, 1);
        assert_eq!(snap.miners.len(), 1);
        assert_eq!(snap.miners[0].connections, 1);
        assert!(snap.hashrate > 0.0);
        assert!((snap.miners[0].hashrate - 2.0 * HASHES_PER_DIFF1).abs() < 1.0);
    }

    #[test]
    fn workers_leaving_without_work_are_forgotten_at_once() {
        let s = Stats::default();
        for i in 0..1000 {
            let worker = format!("w{i}");
            s.connected("a", &worker);
            s.reject("a", &worker, Reject::Invalid);
            s.disconnected("a", &worker);
        }
        s.connected("b", "kept");
        s.pseudo_share("b", "kept", 1.0);
        s.disconnected("b", "kept");
        s.connected("c", "on");
        assert_eq!(s.inner.lock().miners.len(), 2, "only b and c are left");
        let snap = s.snapshot(1);
        let names: Vec<_> = snap.miners.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"b") && names.contains(&"c"));
        assert_eq!(
            snap.rejected.invalid, 1000,
            "the port's totals keep everything"
        );
    }
}
