//! Targets, work and difficulty: conversions and the share-chain retarget.
//!
//! Work ("average attempts") of a target `t` is `2^256 / (t + 1)`, held in a `u128`: the hardest
//! target whose work still fits is about `2^128`, far below any real Bitcoin target. Sums of work
//! along the share chain therefore also fit (`2^128` attempts is out of reach).

use bitcoin::pow::{CompactTarget, Target, Work};

/// Stratum's difficulty 1: `0x00000000FFFF0000…` (the pool-difficulty convention).
pub const DIFF1_TARGET: Target = Target::MAX;

/// Work of a target, `2^256 / (target + 1)`, saturating at `u128::MAX`.
pub fn work_of(target: Target) -> u128 {
    let bytes = target.to_work().to_le_bytes();
    if bytes[16..].iter().any(|&b| b != 0) {
        return u128::MAX;
    }
    let mut low = [0u8; 16];
    low.copy_from_slice(&bytes[..16]);
    u128::from_le_bytes(low)
}

/// Work of a compact target.
///
/// A 256-bit division each time would cost more than the rest of a share's retarget: the
/// results are cached per thread by compact value (shares mostly repeat a few targets).
pub fn compact_work(bits: CompactTarget) -> u128 {
    use std::cell::RefCell;
    const SLOTS: usize = 64;
    thread_local! {
        static CACHE: RefCell<[Option<(u32, u128)>; SLOTS]> = const { RefCell::new([None; SLOTS]) };
    }
    let raw = bits.to_consensus();
    let slot = ((raw ^ (raw >> 11) ^ (raw >> 24)) as usize) % SLOTS;
    CACHE.with(|cache| {
        if let Some((key, work)) = cache.borrow()[slot] {
            if key == raw {
                return work;
            }
        }
        let work = work_of(Target::from_compact(bits));
        cache.borrow_mut()[slot] = Some((raw, work));
        work
    })
}

/// The target whose work is `work`: `2^256 / work` (the inverse of [`work_of`]).
pub fn target_of_work(work: u128) -> Target {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&work.to_le_bytes());
    Work::from_le_bytes(bytes).to_target()
}

/// The largest compact target not above `target` (rounds toward harder).
pub fn compact_upper_bound(target: Target) -> CompactTarget {
    // `to_compact_lossy` truncates the mantissa, so the result never exceeds `target`.
    target.to_compact_lossy()
}

/// `floor(target * num / den)` for small `num`/`den`, saturating at the largest target.
pub fn scale(target: Target, num: u64, den: u64) -> Target {
    assert!(den != 0, "scale by a zero denominator");
    let limbs = to_limbs(target);
    let (quot, rem) = div_small(limbs, den);
    let Some(high) = mul_small(quot, num) else {
        return from_limbs([u64::MAX; 4]);
    };
    // `rem < den`, so `rem * num / den` fits in 128 bits.
    let low = (u128::from(rem) * u128::from(num)) / u128::from(den);
    match add_small(high, low as u64) {
        Some(sum) => from_limbs(sum),
        None => from_limbs([u64::MAX; 4]),
    }
}

/// `target` limited to `lo..=hi`.
pub fn clamp(target: Target, lo: Target, hi: Target) -> Target {
    target.max(lo).min(hi)
}

/// Difficulty (stratum convention: difficulty 1 = [`DIFF1_TARGET`]) of a target.
pub fn difficulty_of(target: Target) -> f64 {
    target.difficulty_float()
}

fn to_limbs(target: Target) -> [u64; 4] {
    let bytes = target.to_le_bytes();
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *limb = u64::from_le_bytes(b);
    }
    limbs
}

fn from_limbs(limbs: [u64; 4]) -> Target {
    let mut bytes = [0u8; 32];
    for (chunk, limb) in bytes.chunks_exact_mut(8).zip(limbs) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    Target::from_le_bytes(bytes)
}

fn div_small(limbs: [u64; 4], den: u64) -> ([u64; 4], u64) {
    let mut out = [0u64; 4];
    let mut rem: u128 = 0;
    for i in (0..4).rev() {
        let cur = (rem << 64) | u128::from(limbs[i]);
        out[i] = (cur / u128::from(den)) as u64;
        rem = cur % u128::from(den);
    }
    (out, rem as u64)
}

fn mul_small(limbs: [u64; 4], m: u64) -> Option<[u64; 4]> {
    let mut out = [0u64; 4];
    let mut carry: u128 = 0;
    for i in 0..4 {
        let cur = u128::from(limbs[i]) * u128::from(m) + carry;
        out[i] = cur as u64;
        carry = cur >> 64;
    }
    (carry == 0).then_some(out)
}

fn add_small(limbs: [u64; 4], a: u64) -> Option<[u64; 4]> {
    let mut out = limbs;
    let mut carry = a;
    for limb in out.iter_mut() {
        let (sum, overflow) = limb.overflowing_add(carry);
        *limb = sum;
        carry = u64::from(overflow);
        if carry == 0 {
            return Some(out);
        }
    }
    None
}

/// Inputs of one share's retarget, read off its ancestors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetargetInput {
    /// The parent share's `max_bits` target.
    pub parent_max_target: Target,
    /// Minimum work (work of `max_bits`) summed over the look-behind window ending at the parent.
    pub window_min_work: u128,
    /// Seconds between the newest and the oldest share of that window.
    pub window_seconds: u64,
}

/// The share target bounds `(max_bits, bits)` for a new share.
///
/// `max_bits` aims the pool at one share per `share_period` seconds: the pool's hash rate over the
/// look-behind window (`window_min_work / window_seconds`) gives the target, clamped to ±10% of
/// the parent's and to the network's `min_target..=max_target`. With too little history
/// (`input = None`) it is the network's easiest target. `bits` is the miner's `desired` target
/// clamped to `max/30..=max`, so a miner may ask for harder shares but never easier ones.
pub fn share_bits(
    input: Option<RetargetInput>,
    desired: Target,
    share_period: u32,
    min_target: Target,
    max_target: Target,
) -> (CompactTarget, CompactTarget) {
    let pre = match input {
        None => max_target,
        Some(input) => {
            let seconds = u128::from(input.window_seconds.max(1));
            let per_second = input.window_min_work / seconds;
            let raw = if per_second == 0 {
                from_limbs([u64::MAX; 4])
            } else {
                target_of_work(per_second.saturating_mul(u128::from(share_period)))
            };
            let parent = input.parent_max_target;
            let bounded = clamp(raw, scale(parent, 9, 10), scale(parent, 11, 10));
            clamp(bounded, min_target, max_target)
        }
    };
    let max_bits = compact_upper_bound(pre);
    let max = Target::from_compact(max_bits);
    let bits = compact_upper_bound(clamp(desired, scale(max, 1, 30), max));
    (max_bits, bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(hex: &str) -> Target {
        Target::from_unprefixed_hex(hex).unwrap()
    }

    #[test]
    fn work_and_target_are_inverse() {
        assert_eq!(work_of(DIFF1_TARGET), 0x1_0001_0001);
        let regtest = Target::from_compact(CompactTarget::from_consensus(0x207fffff));
        assert_eq!(work_of(regtest), 2);
        for w in [2u128, 1000, 1 << 40, 1 << 100] {
            let back = work_of(target_of_work(w));
            assert!(back.abs_diff(w) <= 1, "{w} -> {back}");
        }
    }

    #[test]
    fn cached_compact_work_equals_the_division() {
        for raw in [
            0x207f_ffffu32,
            0x1d00_ffff,
            0x1703_a30c,
            0x1e0f_ffff,
            0x2000_0001,
            0x1d00_ffff,
        ] {
            let bits = CompactTarget::from_consensus(raw);
            for _ in 0..2 {
                assert_eq!(
                    compact_work(bits),
                    work_of(Target::from_compact(bits)),
                    "{raw:#x}"
                );
            }
        }
    }

    #[test]
    fn scale_is_exact_floor() {
        assert_eq!(scale(t("64"), 9, 10), t("5a"));
        assert_eq!(scale(t("65"), 9, 10), t("5a")); // floor(909/10)
        assert_eq!(scale(t("65"), 11, 10), t("6f")); // floor(1111/10)
        let max = from_limbs([u64::MAX; 4]);
        assert_eq!(scale(max, 11, 10), max, "saturates");
    }

    #[test]
    fn retarget_clamps_to_ten_percent_and_network_bounds() {
        let max = t("00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        let min = Target::ZERO;
        let parent = t("000000000fffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        // Pool suddenly 1000x faster: the target may only shrink by 10%.
        let input = RetargetInput {
            parent_max_target: parent,
            window_min_work: work_of(parent) * 1000 * 10,
            window_seconds: 10 * 30,
        };
        let (max_bits, bits) = share_bits(Some(input), max, 30, min, max);
        let got = Target::from_compact(max_bits);
        assert!(
            got <= scale(parent, 9, 10) && got > scale(parent, 89, 100),
            "{got:?}"
        );
        assert_eq!(bits, max_bits, "easier desired target is clamped to max");
        // No history: the network's easiest target.
        let (max_bits, _) = share_bits(None, max, 30, min, max);
        assert_eq!(
            Target::from_compact(max_bits),
            Target::from_compact(compact_upper_bound(max))
        );
    }

    #[test]
    fn desired_target_is_clamped_to_a_thirtieth() {
        let max = t("00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        let (max_bits, bits) = share_bits(None, Target::ZERO, 30, Target::ZERO, max);
        let m = Target::from_compact(max_bits);
        let b = Target::from_compact(bits);
        assert!(b <= scale(m, 1, 30) && b > scale(m, 1, 31));
    }
}
