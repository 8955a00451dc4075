//! Property tests of the PoS v1 verifier's input handling (the fuzz target's properties, run in
//! CI): no input panics, random proofs are rejected, and so are valid proofs with random bits
//! flipped.

use proptest::prelude::*;
use sharechain::pospace::{validate_proof, VectorLine, VerifyError, MAX_K, MIN_K};

const K18: &str = include_str!("vectors/chia/pos_v1_k18.txt");

proptest! {
    #[test]
    fn any_bytes_at_any_k_never_panic(
        plot_id in any::<[u8; 32]>(),
        challenge in any::<[u8; 32]>(),
        k in any::<u8>(),
        proof in proptest::collection::vec(any::<u8>(), 0..450),
    ) {
        let r = validate_proof(&plot_id, k, &challenge, &proof);
        if !(MIN_K..=MAX_K).contains(&k) {
            prop_assert_eq!(r, Err(VerifyError::KOutOfRange(k)));
        } else if proof.len() != usize::from(k) * 8 {
            let is_bad_length = matches!(r, Err(VerifyError::BadLength { .. }));
            prop_assert!(is_bad_length);
        }
    }

    #[test]
    fn random_proofs_of_the_right_length_are_invalid(
        plot_id in any::<[u8; 32]>(),
        challenge in any::<[u8; 32]>(),
        k in MIN_K..=MAX_K,
        seed in any::<u64>(),
    ) {
        let mut state = seed | 1;
        let proof: Vec<u8> = (0..usize::from(k) * 8)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        prop_assert!(validate_proof(&plot_id, k, &challenge, &proof).is_err());
    }

    #[test]
    fn any_text_parses_or_errors(text in ".{0,400}") {
        if let Ok(line) = VectorLine::parse(&text) {
            let _ = line.as_proof().validate();
        }
    }

    #[test]
    fn valid_proofs_with_flipped_bits_are_invalid(
        line in 0usize..303,
        bits in proptest::collection::btree_set(0usize..1152, 1..6),
    ) {
        let v = VectorLine::parse(K18.lines().nth(line).unwrap()).unwrap();
        let mut proof = v.proof.clone();
        for bit in bits {
            proof[bit / 8] ^= 0x80 >> (bit % 8);
        }
        prop_assert!(validate_proof(&v.plot_id, v.k, &v.challenge, &proof).is_err());
    }
}
