//! Golden vectors for the Chia PoS v1 verifier: every proof made and checked by chiapos 2.0.12
//! must give chiapos's quality, and every mutation of one (a flipped bit, another plot id, k ± 1,
//! another challenge, swapped halves, truncation) must be rejected.
//!
//! `vectors/chia/pos_v1_k18.txt` is the project's shared set (one k=18 plot, 303 proofs); the
//! other files come from `scripts/gen_chia_vectors.py` (k = 18 with two more plot ids, 19..=25).

use std::path::PathBuf;

use sharechain::pospace::{validate_batch, validate_proof, VectorLine, VerifyError};

fn vectors() -> Vec<(String, VectorLine)> {
    let dir = manifest_dir().join("tests/vectors/chia");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (i, line) in std::fs::read_to_string(&file).unwrap().lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed =
                VectorLine::parse(line).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
            out.push((format!("{name}:{}", i + 1), parsed));
        }
    }
    out
}

#[test]
fn every_vector_gives_chiapos_quality() {
    let vectors = vectors();
    let mut ks: Vec<u8> = vectors.iter().map(|(_, v)| v.k).collect();
    ks.dedup();
    assert!(vectors.len() >= 400, "only {} vectors", vectors.len());
    assert!(ks.contains(&18) && ks.contains(&25), "k values {ks:?}");
    for (at, v) in &vectors {
        let expected = v.expected_quality.expect("vectors carry their quality");
        let got = validate_proof(&v.plot_id, v.k, &v.challenge, &v.proof);
        assert_eq!(got, Ok(expected), "{at}");
    }
}

#[test]
fn batch_agrees_with_single() {
    let vectors = vectors();
    let proofs: Vec<_> = vectors.iter().map(|(_, v)| v.as_proof()).collect();
    let results = validate_batch(&proofs, 2);
    for ((at, v), r) in vectors.iter().zip(results) {
        assert_eq!(r, Ok(v.expected_quality.unwrap()), "{at}");
    }
}

/// Every single-bit flip of a few proofs (all 8k·8 positions) is rejected.
#[test]
fn every_bit_flip_is_invalid() {
    let vectors = vectors();
    for (at, v) in vectors.iter().step_by(97) {
        for bit in 0..v.proof.len() * 8 {
            let mut proof = v.proof.clone();
            proof[bit / 8] ^= 0x80 >> (bit % 8);
            assert!(
                validate_proof(&v.plot_id, v.k, &v.challenge, &proof).is_err(),
                "{at}: bit {bit} flipped still valid"
            );
        }
    }
}

#[test]
fn mutations_are_invalid() {
    for (at, v) in vectors() {
        let ok = |plot_id: &[u8; 32], k: u8, challenge: &[u8; 32], proof: &[u8]| {
            validate_proof(plot_id, k, challenge, proof).is_ok()
        };
        // Another plot id (the last byte is not part of the ChaCha8 key, so change the first).
        let mut plot_id = v.plot_id;
        plot_id[0] ^= 1;
        assert!(!ok(&plot_id, v.k, &v.challenge, &v.proof), "{at}: plot id");
        // k ± 1: wrong length for the same bytes, and the bytes re-read at the other k.
        for k in [v.k - 1, v.k + 1] {
            assert!(!ok(&v.plot_id, k, &v.challenge, &v.proof), "{at}: k {k}");
            let mut proof = v.proof.clone();
            proof.resize(usize::from(k) * 8, 0);
            assert!(
                !ok(&v.plot_id, k, &v.challenge, &proof),
                "{at}: k {k} resized"
            );
        }
        // Another challenge: first bit (f7 mismatch) and a later byte (kept prefix, same f7 but a
        // different quality index is still valid only if the prefix matches: flip inside the k
        // bits so it must fail).
        let mut challenge = v.challenge;
        challenge[0] ^= 0x80;
        assert_eq!(
            validate_proof(&v.plot_id, v.k, &challenge, &v.proof),
            Err(VerifyError::ChallengeMismatch),
            "{at}: challenge"
        );
        let mut challenge = v.challenge;
        challenge[1] ^= 1; // bit 15 < k
        assert!(
            !ok(&v.plot_id, v.k, &challenge, &v.proof),
            "{at}: challenge bit 15"
        );
        // The two halves of the proof swapped: the top-level pair is in the wrong order.
        let half = usize::from(v.k) * 4;
        let mut proof = v.proof[half..].to_vec();
        proof.extend_from_slice(&v.proof[..half]);
        assert_eq!(
            validate_proof(&v.plot_id, v.k, &v.challenge, &proof),
            Err(VerifyError::NoMatch { table: 7 }),
            "{at}: swapped halves"
        );
        // Truncated and extended.
        let short = &v.proof[..v.proof.len() - 1];
        assert!(matches!(
            validate_proof(&v.plot_id, v.k, &v.challenge, short),
            Err(VerifyError::BadLength { .. })
        ));
        let mut long = v.proof.clone();
        long.push(0);
        assert!(!ok(&v.plot_id, v.k, &v.challenge, &long), "{at}: extended");
    }
}

/// Bits of the challenge after the first k only pick which x-values are hashed: the proof stays
/// valid, and the quality changes exactly when the quality index (last 5 bits) changes.
#[test]
fn challenge_tail_only_moves_the_quality() {
    for (at, v) in vectors().iter().step_by(11) {
        let mut challenge = v.challenge;
        challenge[31] ^= 0x20; // not part of the quality index
        let q = validate_proof(&v.plot_id, v.k, &challenge, &v.proof).expect(at);
        assert_ne!(
            q,
            v.expected_quality.unwrap(),
            "{at}: the challenge is hashed too"
        );
        let mut challenge = v.challenge;
        challenge[31] ^= 0x01;
        assert!(
            validate_proof(&v.plot_id, v.k, &challenge, &v.proof).is_ok(),
            "{at}"
        );
    }
}

/// The package directory: cargo's at run time (a binary built in another checkout that shares
/// the target directory must read this checkout's files), else the one it was built in.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
