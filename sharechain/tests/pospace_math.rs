//! Chia's proof-of-space math against values computed by chia-blockchain's own formulas
//! (`scripts/gen_chia_math_vectors.py`: `calculate_iterations_quality`, `expected_plot_size`,
//! `calculate_plot_filter_input`, `calculate_pos_challenge`, `calculate_plot_id_pk/_ph`).

use std::path::PathBuf;

use sharechain::pospace::{
    calculate_iterations_quality, passes_plot_filter, plot_filter_input, plot_id_og, plot_id_pool,
    pos_challenge, IterationsError,
};

fn rows(name: &str) -> Vec<Vec<String>> {
    let path = manifest_dir().join("tests/vectors/chia").join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim().to_owned()).collect())
        .collect()
}

fn h<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[test]
fn iterations_match_chia_blockchain() {
    let rows = rows("iterations.csv");
    assert_eq!(rows.len(), 40);
    for r in rows {
        let factor: u128 = r[0].parse().unwrap();
        let k: u8 = r[2].parse().unwrap();
        let difficulty: u64 = r[3].parse().unwrap();
        let got = calculate_iterations_quality(factor, &h(&r[1]), k, difficulty, &h(&r[4]));
        let expected = match r[5].as_str() {
            "overflow" => Err(IterationsError::Overflow),
            n => Ok(n.parse::<u64>().unwrap()),
        };
        assert_eq!(got, expected, "{r:?}");
    }
}

#[test]
fn plot_filter_and_ids_match_chia_blockchain() {
    let rows = rows("plot_filter.csv");
    let mut seen = 0;
    for r in rows {
        match r[0].as_str() {
            "filter" => {
                let (id, ch, sp) = (h(&r[1]), h(&r[2]), h(&r[3]));
                assert_eq!(plot_filter_input(&id, &ch, &sp), h::<32>(&r[4]));
                assert_eq!(pos_challenge(&id, &ch, &sp), h::<32>(&r[5]));
                let zeros: u8 = r[6].parse().unwrap();
                assert!(passes_plot_filter(zeros, &id, &ch, &sp));
                assert!(!passes_plot_filter(zeros + 1, &id, &ch, &sp));
            }
            "og" => assert_eq!(plot_id_og(&h(&r[1]), &h(&r[2])), h::<32>(&r[3])),
            "pool" => assert_eq!(plot_id_pool(&h(&r[1]), &h(&r[2])), h::<32>(&r[3])),
            other => panic!("unknown row kind {other}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 48);
}

/// The package directory: cargo's at run time (a binary built in another checkout that shares
/// the target directory must read this checkout's files), else the one it was built in.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
