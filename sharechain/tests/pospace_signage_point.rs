//! End to end as a node checks a proof of space: signage point → plot filter → derived challenge
//! → proof → quality → required iterations, on proofs chiapos made for derived challenges
//! (`scripts/gen_chia_sp_vectors.py`), and the ways each step can refuse one.

use std::path::PathBuf;

use sharechain::pospace::{
    calculate_iterations_quality, verify_and_get_quality_string, IterationsError, PosError,
    ProofRef, VerifyError, DIFFICULTY_CONSTANT_FACTOR, MIN_K,
};

struct Row {
    plot_id: [u8; 32],
    k: u8,
    challenge_hash: [u8; 32],
    sp: [u8; 32],
    zeros: u8,
    challenge: [u8; 32],
    proof: Vec<u8>,
    quality: [u8; 32],
    difficulty: u64,
    iters: Option<u64>,
}

fn rows() -> Vec<Row> {
    let path = manifest_dir().join("tests/vectors/chia/sp_k18.csv");
    let h = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            Row {
                plot_id: h(f[0]),
                k: f[1].parse().unwrap(),
                challenge_hash: h(f[2]),
                sp: h(f[3]),
                zeros: f[4].parse().unwrap(),
                challenge: h(f[5]),
                proof: hex::decode(f[6]).unwrap(),
                quality: h(f[7]),
                difficulty: f[8].parse().unwrap(),
                iters: f[9].parse().ok(),
            }
        })
        .collect()
}

#[test]
fn signage_point_to_iterations() {
    let rows = rows();
    assert!(rows.len() >= 10);
    for r in &rows {
        let proof = ProofRef {
            plot_id: &r.plot_id,
            k: r.k,
            challenge: &r.challenge,
            proof: &r.proof,
        };
        let check = |prefix_bits, min_k| {
            verify_and_get_quality_string(&proof, &r.challenge_hash, &r.sp, prefix_bits, min_k)
        };
        assert_eq!(check(r.zeros, MIN_K), Ok(r.quality));
        assert_eq!(check(0, MIN_K), Ok(r.quality));
        assert_eq!(check(r.zeros + 1, MIN_K), Err(PosError::PlotFilter));
        // Mainnet would refuse a k=18 plot before looking at anything else.
        assert_eq!(check(0, 32), Err(PosError::PlotSize { k: 18, min_k: 32 }));
        // The same proof for another signage point: the challenge no longer derives.
        let other_sp = [0u8; 32];
        assert_eq!(
            verify_and_get_quality_string(&proof, &r.challenge_hash, &other_sp, 0, MIN_K),
            Err(PosError::ChallengeNotDerived)
        );
        let mut bad = r.proof.clone();
        bad[5] ^= 4;
        let bad_proof = ProofRef {
            proof: &bad,
            ..proof
        };
        let got = verify_and_get_quality_string(&bad_proof, &r.challenge_hash, &r.sp, 0, MIN_K);
        assert!(
            matches!(got, Err(PosError::Proof(VerifyError::NoMatch { .. }))),
            "{got:?}"
        );

        let iters = calculate_iterations_quality(
            DIFFICULTY_CONSTANT_FACTOR,
            &r.quality,
            r.k,
            r.difficulty,
            &r.sp,
        );
        assert_eq!(iters, r.iters.ok_or(IterationsError::Overflow));
    }
}

/// The package directory: cargo's at run time (a binary built in another checkout that shares
/// the target directory must read this checkout's files), else the one it was built in.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
