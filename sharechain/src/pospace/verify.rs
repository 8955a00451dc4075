//! Proof validation: F1 over the 64 x-values, the six Fx levels with their matches, the f7 ↔
//! challenge check, and the quality string (proof order → plot order, two x-values, SHA-256).

use bitcoin::hashes::{sha256, Hash, HashEngine};

use super::bits::{read_bits, BitWriter, Meta};
use super::f1::F1;
use super::fx;
use super::{VerifyError, EXTRA_BITS, MAX_K, MIN_K};

/// Number of x-values in a proof.
pub const PROOF_X_VALUES: usize = 64;

/// Bytes of a proof for `k`: 64 x-values of k bits.
pub const fn proof_len(k: u8) -> usize {
    k as usize * 8
}

/// Verifies a proof of space and returns its 32-byte quality string.
///
/// `proof` is the 64 x-values of `k` bits each, MSB-first, in proof order (as chiapos's
/// `GetFullProof` returns them and Chia puts them in blocks). Returns the same quality as chiapos's
/// `Verifier::ValidateProof` for every valid proof and an error for every invalid one.
pub fn validate_proof(
    plot_id: &[u8; 32],
    k: u8,
    challenge: &[u8; 32],
    proof: &[u8],
) -> Result<[u8; 32], VerifyError> {
    if !(MIN_K..=MAX_K).contains(&k) {
        return Err(VerifyError::KOutOfRange(k));
    }
    if proof.len() != proof_len(k) {
        return Err(VerifyError::BadLength {
            k,
            expected: proof_len(k),
            got: proof.len(),
        });
    }
    let xs = read_xs(k, proof);

    let f1 = F1::new(k, plot_id);
    let mut ys = [0u64; PROOF_X_VALUES];
    let mut metas = [Meta::EMPTY; PROOF_X_VALUES];
    for ((y, meta), &x) in ys.iter_mut().zip(metas.iter_mut()).zip(&xs) {
        *y = f1.eval(x);
        *meta = Meta::from_u64(x, u32::from(k));
    }

    // Each level halves the entries in place: pair (2i, 2i+1) becomes entry i. The left entry
    // must sit in the lower bucket; chiapos never swaps a pair.
    for table in 2..=7u8 {
        let n = PROOF_X_VALUES >> (table - 1);
        for i in 0..n {
            let (y_l, y_r) = (ys[2 * i], ys[2 * i + 1]);
            if !fx::matches(y_l, y_r) {
                return Err(VerifyError::NoMatch { table });
            }
            let (y, meta) = fx::eval(k, table, y_l, &metas[2 * i], &metas[2 * i + 1]);
            ys[i] = y;
            metas[i] = meta;
        }
    }

    let challenge_prefix = read_bits(challenge, 0, u32::from(k));
    if ys[0] >> EXTRA_BITS != challenge_prefix {
        return Err(VerifyError::ChallengeMismatch);
    }
    Ok(quality_string(k, &xs, challenge))
}

/// The 64 x-values of a proof of the right length.
fn read_xs(k: u8, proof: &[u8]) -> [u64; PROOF_X_VALUES] {
    let k = u32::from(k);
    core::array::from_fn(|i| read_bits(proof, i * k as usize, k))
}

/// The quality string of a proof whose x-values are `xs` (proof order).
///
/// Reorders to plot order: at each level, sibling subtrees are compared element by element from
/// their last x-value to their first; the smaller one goes first (on a full tie, the right one).
/// Then hashes `challenge ‖ x[i] ‖ x[i+1]` (2k bits, zero-padded) with `i = 2·(challenge[31] & 31)`.
pub fn quality_string(k: u8, xs: &[u64; PROOF_X_VALUES], challenge: &[u8; 32]) -> [u8; 32] {
    let mut plot = *xs;
    let mut size = 1;
    while size < PROOF_X_VALUES {
        for pair in plot.chunks_exact_mut(2 * size) {
            let (l, r) = pair.split_at(size);
            if !left_first(l, r) {
                pair.rotate_left(size);
            }
        }
        size *= 2;
    }
    let index = 2 * usize::from(challenge[31] & 0x1f);
    let k = u32::from(k);
    let mut w = BitWriter::new();
    w.push(plot[index], k);
    w.push(plot[index + 1], k);
    let mut buf = [0u8; 64];
    let mut engine = sha256::Hash::engine();
    engine.input(challenge);
    engine.input(w.bytes(&mut buf));
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// chiapos's `CompareProofBits(L, R)`: true iff L < R comparing from the last value backwards.
fn left_first(l: &[u64], r: &[u64]) -> bool {
    for (a, b) in l.iter().rev().zip(r.iter().rev()) {
        if a != b {
            return a < b;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_first_compares_from_the_back() {
        assert!(left_first(&[9, 1], &[0, 2]));
        assert!(!left_first(&[0, 2], &[9, 1]));
        assert!(left_first(&[1, 5], &[2, 5]));
        // A full tie puts the right subtree first, as chiapos does.
        assert!(!left_first(&[3, 3], &[3, 3]));
    }

    #[test]
    fn rejects_k_and_length_before_any_work() {
        let id = [0u8; 32];
        let ch = [0u8; 32];
        assert_eq!(
            validate_proof(&id, 17, &ch, &[0; 136]),
            Err(VerifyError::KOutOfRange(17))
        );
        assert_eq!(
            validate_proof(&id, 51, &ch, &[0; 408]),
            Err(VerifyError::KOutOfRange(51))
        );
        assert_eq!(
            validate_proof(&id, 18, &ch, &[0; 143]),
            Err(VerifyError::BadLength {
                k: 18,
                expected: 144,
                got: 143
            })
        );
    }

    /// F1 against chiapos without a binding for it: chiapos only writes proofs whose table-1
    /// pairs match, so F1 of every (x[2i], x[2i+1]) of its proofs must match, with y carrying the
    /// top 6 bits of x. A wrong keystream layout or key fails this for almost every pair.
    #[test]
    fn f1_of_chiapos_proofs_match_pairwise() {
        let text = include_str!("../../tests/vectors/chia/pos_v1_k18.txt");
        let mut pairs = 0;
        for line in text.lines().take(60) {
            let v = crate::pospace::VectorLine::parse(line).unwrap();
            let xs = read_xs(v.k, &v.proof);
            let f1 = F1::new(v.k, &v.plot_id);
            for pair in xs.chunks_exact(2) {
                let (y_l, y_r) = (f1.eval(pair[0]), f1.eval(pair[1]));
                assert!(fx::matches(y_l, y_r), "x {pair:?}");
                assert_eq!(y_l & 0x3f, pair[0] >> (v.k - 6));
                pairs += 1;
            }
        }
        assert_eq!(pairs, 60 * 32);
    }

    /// Regression: an all-zero proof must be an error, never a (zero) quality.
    #[test]
    fn zero_proof_is_invalid_at_every_k() {
        for k in MIN_K..=MAX_K {
            let proof = vec![0u8; proof_len(k)];
            assert!(
                validate_proof(&[7; 32], k, &[0; 32], &proof).is_err(),
                "k {k}"
            );
        }
    }
}
