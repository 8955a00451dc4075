//! Plot ids from keys, the plot filter and a proof's challenge (chia-blockchain
//! `proof_of_space.py`). Keys are taken as their 48-byte compressed G1 encodings, which is what
//! Chia hashes; no curve arithmetic is needed here.

use bitcoin::hashes::{sha256, Hash, HashEngine};

/// Mainnet `NUMBER_ZERO_BITS_PLOT_FILTER` (before the first reduction).
const NUMBER_ZERO_BITS_PLOT_FILTER: u8 = 9;
/// Mainnet heights at which the plot filter loses one bit each (`HARD_FORK_HEIGHT`,
/// `PLOT_FILTER_128_HEIGHT`, `PLOT_FILTER_64_HEIGHT`, `PLOT_FILTER_32_HEIGHT`).
const PLOT_FILTER_HEIGHTS: [u32; 4] = [5_496_000, 10_542_000, 15_592_000, 20_643_000];

fn sha256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    for part in parts {
        engine.input(part);
    }
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// Plot id of an OG (solo) plot: `sha256(pool_public_key ‖ plot_public_key)`.
pub fn plot_id_og(pool_public_key: &[u8; 48], plot_public_key: &[u8; 48]) -> [u8; 32] {
    sha256_concat(&[pool_public_key, plot_public_key])
}

/// Plot id of a pool (NFT) plot: `sha256(pool_contract_puzzle_hash ‖ plot_public_key)`.
pub fn plot_id_pool(pool_contract_puzzle_hash: &[u8; 32], plot_public_key: &[u8; 48]) -> [u8; 32] {
    sha256_concat(&[pool_contract_puzzle_hash, plot_public_key])
}

/// `sha256(plot_id ‖ challenge_hash ‖ sp_hash)`: the plot filter's input.
pub fn plot_filter_input(
    plot_id: &[u8; 32],
    challenge_hash: &[u8; 32],
    sp_hash: &[u8; 32],
) -> [u8; 32] {
    sha256_concat(&[plot_id, challenge_hash, sp_hash])
}

/// Whether the first `prefix_bits` bits of the filter input are zero (0 bits: always).
pub fn passes_plot_filter(
    prefix_bits: u8,
    plot_id: &[u8; 32],
    challenge_hash: &[u8; 32],
    sp_hash: &[u8; 32],
) -> bool {
    let filter = plot_filter_input(plot_id, challenge_hash, sp_hash);
    let full = usize::from(prefix_bits / 8);
    let rest = prefix_bits % 8;
    filter[..full].iter().all(|&b| b == 0) && (rest == 0 || filter[full] >> (8 - rest) == 0)
}

/// The challenge a plot's proof must answer: `sha256(plot_filter_input(..))`.
pub fn pos_challenge(
    plot_id: &[u8; 32],
    challenge_hash: &[u8; 32],
    sp_hash: &[u8; 32],
) -> [u8; 32] {
    sha256_concat(&[&plot_filter_input(plot_id, challenge_hash, sp_hash)])
}

/// Mainnet plot-filter prefix bits at `height` (`calculate_prefix_bits`): 9, then one fewer at
/// each scheduled height.
pub fn plot_filter_prefix_bits(height: u32) -> u8 {
    let reductions = PLOT_FILTER_HEIGHTS.iter().filter(|&&h| height >= h).count() as u8;
    NUMBER_ZERO_BITS_PLOT_FILTER.saturating_sub(reductions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bits_schedule() {
        assert_eq!(plot_filter_prefix_bits(0), 9);
        assert_eq!(plot_filter_prefix_bits(5_495_999), 9);
        assert_eq!(plot_filter_prefix_bits(5_496_000), 8);
        assert_eq!(plot_filter_prefix_bits(10_542_000), 7);
        assert_eq!(plot_filter_prefix_bits(15_592_000), 6);
        assert_eq!(plot_filter_prefix_bits(u32::MAX), 5);
    }

    #[test]
    fn filter_counts_leading_zero_bits() {
        // Search a few sp hashes for filters with known leading zeros and check every width.
        let id = [3u8; 32];
        let ch = [4u8; 32];
        for i in 0..2000u32 {
            let mut sp = [0u8; 32];
            sp[..4].copy_from_slice(&i.to_be_bytes());
            let f = plot_filter_input(&id, &ch, &sp);
            let zeros = u128::from_be_bytes(f[..16].try_into().unwrap()).leading_zeros();
            for bits in 0..=20u8 {
                assert_eq!(
                    passes_plot_filter(bits, &id, &ch, &sp),
                    u32::from(bits) <= zeros
                );
            }
        }
        assert!(!passes_plot_filter(255, &id, &ch, &[0; 32]));
    }
}
