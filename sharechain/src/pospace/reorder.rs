//! Plot order → proof order: the step a prover takes after reading a proof's 64 x-values from a
//! plot file, where they sit in the order the plotter sorted them, not the order
//! [`validate_proof`](super::validate_proof) expects.

use super::bits::Meta;
use super::f1::F1;
use super::fx;
use super::verify::PROOF_X_VALUES;
use super::{VerifyError, MAX_K, MIN_K};

/// Reorders 64 x-values read from a plot (plot order) into proof order, as chiapos's
/// `DiskProver::ReorderProof` does: at each level, of two sibling subtrees the one whose output
/// y is smaller goes on the left (ties put the right one first). No match is checked here; the
/// result is meant to be validated.
pub fn proof_order(
    plot_id: &[u8; 32],
    k: u8,
    plot_xs: &[u64; PROOF_X_VALUES],
) -> Result<[u64; PROOF_X_VALUES], VerifyError> {
    if !(MIN_K..=MAX_K).contains(&k) {
        return Err(VerifyError::KOutOfRange(k));
    }
    let mask = (1u64 << k) - 1;
    let mut xs = plot_xs.map(|x| x & mask);
    let f1 = F1::new(k, plot_id);
    let mut ys = [0u64; PROOF_X_VALUES];
    let mut metas = [Meta::EMPTY; PROOF_X_VALUES];
    for ((y, meta), &x) in ys.iter_mut().zip(metas.iter_mut()).zip(&xs) {
        *y = f1.eval(x);
        *meta = Meta::from_u64(x, u32::from(k));
    }
    for table in 2..=7u8 {
        let n = PROOF_X_VALUES >> (table - 1);
        // Each entry of this level covers `span` x-values.
        let span = 1usize << (table - 2);
        for i in 0..n {
            let (l, r) = (2 * i, 2 * i + 1);
            let (y, meta) = if ys[l] < ys[r] {
                fx::eval(k, table, ys[l], &metas[l], &metas[r])
            } else {
                xs[l * span..(r + 1) * span].rotate_left(span);
                fx::eval(k, table, ys[r], &metas[r], &metas[l])
            };
            ys[i] = y;
            metas[i] = meta;
        }
    }
    Ok(xs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pospace::{validate_proof, VectorLine};

    fn xs_of(k: u8, proof: &[u8]) -> [u64; PROOF_X_VALUES] {
        let k = u32::from(k);
        core::array::from_fn(|i| super::super::bits::read_bits(proof, i * k as usize, k))
    }

    /// Scrambling a chiapos proof by swapping sibling subtrees (which is all plot order can do)
    /// and reordering gives back the proof.
    #[test]
    fn undoes_any_sibling_swaps() {
        let text = include_str!("../../tests/vectors/chia/pos_v1_k18.txt");
        for (n, line) in text.lines().take(20).enumerate() {
            let v = VectorLine::parse(line).unwrap();
            let proof = xs_of(v.k, &v.proof);
            let mut scrambled = proof;
            let mut size = 1;
            let mut bit = n;
            while size < PROOF_X_VALUES {
                for pair in scrambled.chunks_exact_mut(2 * size) {
                    bit = bit.wrapping_mul(2_654_435_761).wrapping_add(1);
                    if bit & 4 != 0 {
                        pair.rotate_left(size);
                    }
                }
                size *= 2;
            }
            assert_eq!(proof_order(&v.plot_id, v.k, &scrambled).unwrap(), proof);
            assert!(validate_proof(&v.plot_id, v.k, &v.challenge, &v.proof).is_ok());
        }
    }
}
