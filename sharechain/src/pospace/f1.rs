//! F1: the first table's function, x (k bits) → y (k + 6 bits), from the ChaCha8 keystream.
//!
//! The keystream of ChaCha8 keyed with `0x01 ‖ plot_id[0..31]` (zero IV) is read as one long bit
//! string, MSB-first within each byte; F1(x) is its k bits starting at bit x·k, followed by the
//! top 6 bits of x. Only the one or two 64-byte blocks covering those bits are computed.

use super::bits::read_bits;
use super::chacha8::{ChaCha8, BLOCK_BYTES};
use super::EXTRA_BITS;

/// Bits in one ChaCha8 block.
const BLOCK_BITS: u64 = 8 * BLOCK_BYTES as u64;

/// F1 for one plot id and k.
#[derive(Debug, Clone)]
pub struct F1 {
    k: u32,
    cipher: ChaCha8,
}

impl F1 {
    /// Keys the cipher for `plot_id`. `k` must be in 7..=57 (the verifier allows 18..=50).
    pub fn new(k: u8, plot_id: &[u8; 32]) -> Self {
        let mut key = [0u8; 32];
        // Table index 1 in the first byte, then the plot id without its last byte.
        key[0] = 1;
        key[1..].copy_from_slice(&plot_id[..31]);
        F1 {
            k: u32::from(k),
            cipher: ChaCha8::new(&key, &[0; 8]),
        }
    }

    /// F1(x) = keystream bits [x·k, x·k + k) ‖ top 6 bits of x.
    #[inline]
    pub fn eval(&self, x: u64) -> u64 {
        let k = self.k;
        let start_bit = x * u64::from(k);
        let counter = start_bit / BLOCK_BITS;
        let offset = (start_bit % BLOCK_BITS) as usize;
        let mut blocks = [[0u8; BLOCK_BYTES]; 2];
        self.cipher.block_into(counter, &mut blocks[0]);
        if offset + k as usize > BLOCK_BITS as usize {
            self.cipher
                .block_into(counter.wrapping_add(1), &mut blocks[1]);
        }
        let bits = read_bits(blocks.as_flattened(), offset, k);
        (bits << EXTRA_BITS) | (x >> (k - EXTRA_BITS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F1 straight from the definition: the whole keystream prefix as one bit string.
    fn naive_f1(k: u8, plot_id: &[u8; 32], x: u64) -> u64 {
        let mut key = [1u8; 32];
        key[1..].copy_from_slice(&plot_id[..31]);
        let c = ChaCha8::new(&key, &[0; 8]);
        let mut y = 0u64;
        for bit in x * u64::from(k)..(x + 1) * u64::from(k) {
            let block = c.block(bit / BLOCK_BITS);
            let in_block = bit % BLOCK_BITS;
            let b = (block[(in_block / 8) as usize] >> (7 - in_block % 8)) & 1;
            y = (y << 1) | u64::from(b);
        }
        (y << 6) | (x >> (k - 6))
    }

    #[test]
    fn matches_bitwise_definition_across_block_edges() {
        let plot_id: [u8; 32] = core::array::from_fn(|i| (i as u8) * 7 + 3);
        for k in [18u8, 19, 25, 32, 35, 50] {
            let f1 = F1::new(k, &plot_id);
            // x values whose k bits straddle a 512-bit block edge, start on one, or end on one.
            let mut xs = vec![0u64, 1, 2, (1 << k) - 1];
            for edge in 1..6u64 {
                let bit = edge * BLOCK_BITS;
                let x = bit / u64::from(k);
                xs.extend([x.saturating_sub(1), x, x + 1]);
            }
            for x in xs {
                assert_eq!(f1.eval(x), naive_f1(k, &plot_id, x), "k {k} x {x}");
            }
        }
    }

    #[test]
    fn key_drops_the_last_plot_id_byte() {
        let mut a = [9u8; 32];
        let f1a = F1::new(18, &a);
        a[31] ^= 0xff;
        let f1b = F1::new(18, &a);
        for x in [0, 5, 1000, 262_143] {
            assert_eq!(f1a.eval(x), f1b.eval(x));
        }
        a[30] ^= 1;
        let f1c = F1::new(18, &a);
        assert!((0..64).any(|x| f1a.eval(x) != f1c.eval(x)));
    }
}
