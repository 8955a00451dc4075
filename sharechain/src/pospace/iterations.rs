//! What a quality is worth: Chia's required-iterations formula (`pot_iterations.py`) and the
//! expected plot size it divides by (`pos_quality.py`). Exact integer math, as in Python.

use bitcoin::hashes::{sha256, Hash, HashEngine};

/// Mainnet `DIFFICULTY_CONSTANT_FACTOR` (2^67).
pub const DIFFICULTY_CONSTANT_FACTOR: u128 = 1 << 67;
/// Mainnet `POOL_SUB_SLOT_ITERS`.
pub const POOL_SUB_SLOT_ITERS: u64 = 37_600_000_000;
/// A pool partial counts when its required iterations are below this (pool sub-slot iters / 64).
pub const POOL_PARTIAL_ITERS_LIMIT: u64 = POOL_SUB_SLOT_ITERS / 64;

/// Why required iterations cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IterationsError {
    /// k is 0 or above 64.
    #[error("k {0} is out of range 1..=64")]
    KOutOfRange(u8),
    /// The result does not fit in 64 bits (Python's `uint64(...)` raises here).
    #[error("iterations overflow 64 bits")]
    Overflow,
}

/// `(2k + 1) · 2^(k − 1)`: the expected number of entries-worth of a k plot. `None` for k = 0
/// (a fraction in Python) and k > 64.
pub fn expected_plot_size(k: u8) -> Option<u128> {
    if k == 0 || k > 64 {
        return None;
    }
    Some((2 * u128::from(k) + 1) << (k - 1))
}

/// Required iterations of a proof:
/// `max(1, difficulty · factor · int_be(sha256(quality ‖ cc_sp_output_hash)) / (2^256 · expected_plot_size(k)))`.
pub fn calculate_iterations_quality(
    difficulty_constant_factor: u128,
    quality: &[u8; 32],
    k: u8,
    difficulty: u64,
    cc_sp_output_hash: &[u8; 32],
) -> Result<u64, IterationsError> {
    let plot_size = expected_plot_size(k).ok_or(IterationsError::KOutOfRange(k))?;
    let mut engine = sha256::Hash::engine();
    engine.input(quality);
    engine.input(cc_sp_output_hash);
    let sp_quality = sha256::Hash::from_engine(engine).to_byte_array();

    // difficulty · factor · sp_quality in little-endian 64-bit limbs (at most 448 bits).
    let mut base = [0u64; 8];
    base[..4].copy_from_slice(&limbs(&sp_quality));
    mul_small(&mut base, difficulty);
    let mut n = base;
    mul_small(&mut n, difficulty_constant_factor as u64);
    let high = (difficulty_constant_factor >> 64) as u64;
    if high != 0 {
        let mut hi = base;
        mul_small(&mut hi, high);
        add_shifted_word(&mut n, &hi);
    }

    // floor(n / (2^256 · size)) = floor(floor(n / 2^256) / size): divide the top limbs.
    let mut quotient = [0u64; 4];
    let mut rem: u128 = 0;
    for limb in (0..4).rev() {
        let word = n[4 + limb];
        for bit in (0..64).rev() {
            rem = (rem << 1) | u128::from((word >> bit) & 1);
            if rem >= plot_size {
                rem -= plot_size;
                quotient[limb] |= 1 << bit;
            }
        }
    }
    if quotient[1..].iter().any(|&w| w != 0) {
        return Err(IterationsError::Overflow);
    }
    Ok(quotient[0].max(1))
}

/// A big-endian 256-bit number as little-endian 64-bit limbs.
fn limbs(bytes: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, chunk) in bytes.rchunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        out[i] = u64::from_be_bytes(b);
    }
    out
}

/// n *= m (little-endian limbs; the top limb's carry is dropped, callers leave headroom).
fn mul_small(n: &mut [u64; 8], m: u64) {
    let mut carry = 0u128;
    for limb in n.iter_mut() {
        let t = u128::from(*limb) * u128::from(m) + carry;
        *limb = t as u64;
        carry = t >> 64;
    }
}

/// n += add << 64.
fn add_shifted_word(n: &mut [u64; 8], add: &[u64; 8]) {
    let mut carry = 0u128;
    for i in 1..8 {
        let t = u128::from(n[i]) + u128::from(add[i - 1]) + carry;
        n[i] = t as u64;
        carry = t >> 64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_plot_size_matches_python() {
        assert_eq!(expected_plot_size(32), Some(65 * (1u128 << 31)));
        assert_eq!(expected_plot_size(18), Some(37 * (1 << 17)));
        assert_eq!(expected_plot_size(1), Some(3));
        assert_eq!(expected_plot_size(0), None);
        assert_eq!(expected_plot_size(65), None);
    }

    #[test]
    fn limits() {
        assert_eq!(POOL_PARTIAL_ITERS_LIMIT, 587_500_000);
        assert_eq!(
            calculate_iterations_quality(1 << 67, &[0; 32], 0, 1, &[0; 32]),
            Err(IterationsError::KOutOfRange(0))
        );
        // Zero difficulty still needs one iteration, as in Python's max(iters, 1).
        assert_eq!(
            calculate_iterations_quality(1 << 67, &[1; 32], 32, 0, &[2; 32]),
            Ok(1)
        );
        // A huge difficulty and factor overflow 64 bits instead of wrapping.
        assert_eq!(
            calculate_iterations_quality(u128::MAX, &[1; 32], 18, u64::MAX, &[2; 32]),
            Err(IterationsError::Overflow)
        );
    }
}
