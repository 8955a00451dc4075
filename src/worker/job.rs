//! Per-job data the port derives once (notify text, coinb1 hash state), header rebuilding,
//! difficulty ↔ target, and extranonce1 allocation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::{sha256, sha256d, Hash, HashEngine};
use bitcoin::{BlockHash, Target, TxMerkleNode};
use parking_lot::Mutex;

use super::Job;

/// Difficulty 1 as a float: `0xFFFF · 2^208`.
const DIFF1: f64 = 65535.0 * 4.113_761_393_303_015e62; // 2^208

/// The target of a (possibly fractional) difficulty: `diff1_target / difficulty`, clamped to
/// `1..=2^256-1`. Non-finite or non-positive difficulties give the easiest target.
pub fn difficulty_to_target(difficulty: f64) -> Target {
    if !difficulty.is_finite() || difficulty <= 0.0 {
        return Target::from_be_bytes([0xff; 32]);
    }
    let value = 65535.0 / difficulty; // target = value · 2^208
    if !value.is_finite() {
        return Target::from_be_bytes([0xff; 32]);
    }
    // value = mantissa · 2^exponent with an integer mantissa below 2^53.
    let bits = value.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mantissa, exponent) = if raw_exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), raw_exp - 1075)
    };
    let shift = 208 + exponent;
    let mut limbs = [0u64; 4]; // little-endian limbs
    if shift >= 0 {
        let shift = shift as u32;
        let top_bit = 64 - mantissa.leading_zeros() + shift;
        if top_bit > 256 {
            return Target::from_be_bytes([0xff; 32]);
        }
        let limb = (shift / 64) as usize;
        let bit = shift % 64;
        limbs[limb] = mantissa << bit;
        if bit > 0 && limb + 1 < 4 {
            limbs[limb + 1] = mantissa >> (64 - bit);
        }
    } else {
        let right = shift.unsigned_abs();
        limbs[0] = if right >= 64 { 0 } else { mantissa >> right };
    }
    if limbs == [0; 4] {
        limbs[0] = 1;
    }
    let mut be = [0u8; 32];
    for (i, limb) in limbs.iter().enumerate() {
        be[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
    }
    Target::from_be_bytes(be)
}

/// The difficulty of a target: `diff1_target / target` (infinite for a zero target).
pub fn target_to_difficulty(target: &Target) -> f64 {
    let value = target
        .to_be_bytes()
        .iter()
        .fold(0.0f64, |acc, b| acc * 256.0 + f64::from(*b));
    if value == 0.0 {
        f64::INFINITY
    } else {
        DIFF1 / value
    }
}

/// The difficulty as sent to miners: an integer once it is at least 1 (some miners parse only
/// integers), the exact float below.
pub(crate) fn wire_difficulty(difficulty: f64) -> f64 {
    if difficulty >= 1.0 {
        difficulty.floor()
    } else {
        difficulty
    }
}

/// JSON text of a wire difficulty.
pub(crate) fn format_difficulty(difficulty: f64) -> String {
    if (1.0..1e18).contains(&difficulty) {
        format!("{}", difficulty as u64)
    } else {
        format!("{difficulty}")
    }
}

/// Whether a block hash (a little-endian 256-bit number) meets `target`.
pub(crate) fn meets(hash: &BlockHash, target: &Target) -> bool {
    Target::from_le_bytes(hash.to_byte_array()) <= *target
}

/// The easier (numerically larger) of two targets.
pub(crate) fn easier(a: Target, b: Target) -> Target {
    a.max(b)
}

/// A job with what the port derives from it once.
pub(crate) struct PreparedJob {
    pub(crate) job: Arc<Job>,
    /// Stratum job id of this job's first hand-out to any session (later ones get fresh ids).
    pub(crate) first_id: u64,
    /// The notify line with `first_id`, rendered once for all sessions: [clean=false, clean=true].
    first_lines: [std::sync::OnceLock<Box<[u8]>>; 2],
    /// `mining.notify` params after the job id, up to and including the comma before clean_jobs.
    notify_tail: String,
    /// SHA-256 state after coinb1.
    coinb1_state: sha256::HashEngine,
    /// The easiest target that still matters (share or block): pseudo-share targets never go
    /// below it, so no share is left unsubmitted.
    pub(crate) floor_target: Target,
}

impl PreparedJob {
    pub(crate) fn new(job: Arc<Job>, first_id: u64) -> Self {
        let mut tail = String::with_capacity(2 * (job.coinb1.len() + job.coinb2.len()) + 256);
        tail.push_str(",\"");
        let prev = job.prev_hash.to_byte_array();
        for word in prev.chunks_exact(4) {
            for b in word.iter().rev() {
                let _ = write!(tail, "{b:02x}");
            }
        }
        let _ = write!(
            tail,
            "\",\"{}\",\"{}\",[",
            hex::encode(&job.coinb1),
            hex::encode(&job.coinb2)
        );
        for (i, node) in job.merkle_branch.iter().enumerate() {
            if i > 0 {
                tail.push(',');
            }
            let _ = write!(tail, "\"{}\"", hex::encode(node.to_byte_array()));
        }
        let _ = write!(
            tail,
            "],\"{:08x}\",\"{:08x}\",\"{:08x}\",",
            job.version,
            job.bits.to_consensus(),
            job.ntime
        );
        let mut coinb1_state = sha256::HashEngine::default();
        coinb1_state.input(&job.coinb1);
        let floor_target = easier(job.share_target, job.block_target);
        PreparedJob {
            job,
            first_id,
            first_lines: Default::default(),
            notify_tail: tail,
            coinb1_state,
            floor_target,
        }
    }

    /// The `mining.notify` line with `first_id`, shared by every session.
    pub(crate) fn first_notify(&self, clean: bool) -> &[u8] {
        self.first_lines[usize::from(clean)].get_or_init(|| {
            let mut line = Vec::with_capacity(self.notify_tail.len() + 64);
            self.write_notify(&mut line, self.first_id, clean);
            line.into_boxed_slice()
        })
    }

    /// Append a `mining.notify` line.
    pub(crate) fn write_notify(&self, out: &mut Vec<u8>, job_id: u64, clean: bool) {
        let _ = writeln!(
            VecWriter(out),
            "{{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"{job_id:x}\"{}{}]}}",
            self.notify_tail,
            if clean { "true" } else { "false" }
        );
    }

    /// The header a miner built from this job with this extranonce.
    pub(crate) fn header(
        &self,
        extranonce: &[u8; 8],
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> Header {
        let mut engine = self.coinb1_state.clone();
        engine.input(extranonce);
        engine.input(&self.job.coinb2);
        let mut root = sha256d::Hash::from_engine(engine).to_byte_array();
        for node in &self.job.merkle_branch {
            let mut e = sha256d::Hash::engine();
            e.input(&root);
            e.input(node.as_byte_array());
            root = sha256d::Hash::from_engine(e).to_byte_array();
        }
        Header {
            version: Version::from_consensus(version as i32),
            prev_blockhash: self.job.prev_hash,
            merkle_root: TxMerkleNode::from_byte_array(root),
            time: ntime,
            bits: self.job.bits,
            nonce,
        }
    }

    /// `coinb1 ‖ extranonce ‖ coinb2`.
    pub(crate) fn coinbase(&self, extranonce: &[u8; 8]) -> Vec<u8> {
        let job = &self.job;
        let mut c = Vec::with_capacity(job.coinb1.len() + 8 + job.coinb2.len());
        c.extend_from_slice(&job.coinb1);
        c.extend_from_slice(extranonce);
        c.extend_from_slice(&job.coinb2);
        c
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Prepared jobs by job id, so N sessions on one job derive its data once.
#[derive(Default)]
pub(crate) struct JobCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<String, Arc<PreparedJob>>,
    order: VecDeque<String>,
    /// The latest job prepared: after an update nearly every session asks for it.
    last: Option<Arc<PreparedJob>>,
    /// Approximate bytes held by `map`.
    bytes: usize,
}

const JOB_CACHE_SIZE: usize = 4096;
/// Cap on the bytes the cache keeps alive (jobs are per payout script, and a coinbase paying
/// thousands of outputs is large).
const JOB_CACHE_BYTES: usize = 256 << 20;

impl PreparedJob {
    /// Approximate heap size: the hex notify text (kept, plus up to two rendered lines).
    fn approx_bytes(&self) -> usize {
        3 * self.notify_tail.len() + self.job.coinb1.len() + self.job.coinb2.len()
    }
}

impl JobCache {
    /// The prepared form of `job`; `new_id` gives the first stratum id of a job seen first.
    pub(crate) fn prepare(&self, job: Arc<Job>, new_id: impl FnOnce() -> u64) -> Arc<PreparedJob> {
        {
            let inner = self.inner.lock();
            if let Some(last) = inner.last.as_ref().filter(|l| Arc::ptr_eq(&l.job, &job)) {
                return Arc::clone(last);
            }
            if let Some(p) = inner.map.get(&job.id) {
                if Arc::ptr_eq(&p.job, &job) {
                    return Arc::clone(p);
                }
            }
        }
        let prepared = Arc::new(PreparedJob::new(job, new_id()));
        let mut inner = self.inner.lock();
        if let Some(p) = inner.map.get(&prepared.job.id) {
            // Prepared meanwhile by another session.
            if Arc::ptr_eq(&p.job, &prepared.job) {
                return Arc::clone(p);
            }
        }
        let id = prepared.job.id.clone();
        inner.bytes += prepared.approx_bytes();
        match inner.map.insert(id.clone(), Arc::clone(&prepared)) {
            None => inner.order.push_back(id),
            Some(old) => inner.bytes = inner.bytes.saturating_sub(old.approx_bytes()),
        }
        inner.last = Some(Arc::clone(&prepared));
        while inner.order.len() > JOB_CACHE_SIZE || inner.bytes > JOB_CACHE_BYTES {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.map.remove(&old) {
                inner.bytes = inner.bytes.saturating_sub(gone.approx_bytes());
            }
        }
        prepared
    }
}

/// Live extranonce1 values: every session (and getwork) mines a different coinbase.
#[derive(Default)]
pub(crate) struct Extranonces {
    live: Arc<Mutex<HashSet<u32>>>,
}

/// An extranonce1 held by a session; freed on drop.
pub(crate) struct Extranonce1 {
    pub(crate) value: u32,
    live: Arc<Mutex<HashSet<u32>>>,
}

impl Drop for Extranonce1 {
    fn drop(&mut self) {
        self.live.lock().remove(&self.value);
    }
}

impl Extranonces {
    /// `wanted` if it is free (resuming a session), else a fresh random value.
    pub(crate) fn allocate(&self, wanted: Option<u32>) -> Extranonce1 {
        let mut live = self.live.lock();
        let value = match wanted {
            Some(w) if !live.contains(&w) => w,
            _ => loop {
                let v: u32 = rand::random();
                if !live.contains(&v) {
                    break v;
                }
            },
        };
        live.insert(value);
        Extranonce1 {
            value,
            live: Arc::clone(&self.live),
        }
    }
}

/// Current unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How far ahead of the job's time (or now) a header time may be.
pub(crate) const MAX_FUTURE_NTIME: u64 = 7200;

/// Whether `ntime` is acceptable for `job`.
pub(crate) fn ntime_ok(job: &Job, ntime: u32) -> bool {
    let latest = u64::from(job.ntime).max(unix_now()) + MAX_FUTURE_NTIME;
    ntime >= job.min_ntime && u64::from(ntime) <= latest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_one_is_diff1_target() {
        let t = difficulty_to_target(1.0);
        let mut be = [0u8; 32];
        be[4] = 0xff;
        be[5] = 0xff;
        assert_eq!(t, Target::from_be_bytes(be));
        assert!((target_to_difficulty(&t) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn fractional_and_extreme_difficulties() {
        let t = difficulty_to_target(1e-6);
        assert!((target_to_difficulty(&t) - 1e-6).abs() < 1e-15);
        assert_eq!(
            difficulty_to_target(1e-30),
            Target::from_be_bytes([0xff; 32])
        );
        assert_eq!(
            difficulty_to_target(f64::NAN),
            Target::from_be_bytes([0xff; 32])
        );
        assert_eq!(
            difficulty_to_target(-3.0),
            Target::from_be_bytes([0xff; 32])
        );
        let hard = difficulty_to_target(1e80);
        assert_eq!(
            hard,
            Target::from_be_bytes({
                let mut b = [0u8; 32];
                b[31] = 1;
                b
            })
        );
        for d in [0.5, 2.0, 1024.0, 3.7e12, 4.656542373906925e-10] {
            let back = target_to_difficulty(&difficulty_to_target(d));
            assert!((back / d - 1.0).abs() < 1e-9, "{d} -> {back}");
        }
    }

    proptest::proptest! {
        #[test]
        fn target_falls_as_difficulty_rises(a in 1e-12f64..1e15, b in 1e-12f64..1e15) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            proptest::prop_assert!(difficulty_to_target(lo) >= difficulty_to_target(hi));
            let back = target_to_difficulty(&difficulty_to_target(a));
            proptest::prop_assert!((back / a - 1.0).abs() < 1e-9);
        }

        #[test]
        fn any_float_gives_a_target(d in proptest::num::f64::ANY) {
            let mut one = [0u8; 32];
            one[31] = 1;
            let t = difficulty_to_target(d);
            proptest::prop_assert!(t >= Target::from_be_bytes(one));
        }
    }

    fn job(id: usize, coinb1_len: usize) -> Arc<Job> {
        Arc::new(Job {
            id: format!("j{id}"),
            prev_hash: BlockHash::all_zeros(),
            version: 0x2000_0000,
            bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
            ntime: 1,
            min_ntime: 0,
            height: 1,
            coinb1: vec![0; coinb1_len],
            coinb2: vec![0; 4],
            merkle_branch: Vec::new(),
            share_target: difficulty_to_target(1.0),
            block_target: difficulty_to_target(2.0),
            context: Arc::new(()),
        })
    }

    #[test]
    fn job_cache_is_bounded_and_shares_prepared_jobs() {
        let cache = JobCache::default();
        let j = job(0, 10);
        let a = cache.prepare(Arc::clone(&j), || 1);
        let b = cache.prepare(Arc::clone(&j), || 2);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.first_id, 1);
        assert_eq!(a.floor_target, difficulty_to_target(1.0));
        for i in 1..5000 {
            cache.prepare(job(i, 10), || 0);
        }
        assert!(cache.inner.lock().map.len() <= JOB_CACHE_SIZE);
        for i in 0..40 {
            cache.prepare(job(10_000 + i, 1 << 20), || 0);
        }
        let inner = cache.inner.lock();
        assert!(inner.bytes <= JOB_CACHE_BYTES);
        assert_eq!(inner.map.len(), inner.order.len());
    }

    #[test]
    fn wire_difficulty_is_integral_from_one() {
        assert_eq!(format_difficulty(wire_difficulty(512.7)), "512");
        assert_eq!(format_difficulty(wire_difficulty(0.25)), "0.25");
        assert_eq!(format_difficulty(wire_difficulty(1e-6)), "0.000001");
    }
}
