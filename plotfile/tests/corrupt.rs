//! Damaged plots give clear errors, never a wrong proof and never a panic: truncated files,
//! flipped bits in the parks a proof reads, random flips anywhere, and damaged headers.

#![allow(clippy::print_stdout)] // reason: tests report what they compared and what they skipped

mod common;

use std::sync::Mutex;

use plotfile::{MemStorage, Options, PlotError, Prover, ReadRequest, Storage, StorageError};

/// Records every range read, to aim bit flips at the bytes a proof depends on.
struct Recording {
    inner: MemStorage,
    seen: Mutex<Vec<ReadRequest>>,
}

impl Storage for Recording {
    fn len(&self) -> Result<u64, StorageError> {
        self.inner.len()
    }
    fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Vec<u8>>, StorageError> {
        self.seen.lock().unwrap().extend_from_slice(requests);
        self.inner.read_many(requests)
    }
}

fn k18() -> Option<(Vec<u8>, Vec<common::Expected>)> {
    match common::make_plots(&["k18a:18:300"]) {
        Ok(dir) => Some((
            std::fs::read(dir.join("k18a.plot")).unwrap(),
            common::expected(&dir, "k18a"),
        )),
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

/// Every proof a damaged plot still returns must be one chiapos gives for the intact plot.
fn assert_no_wrong_proof(bytes: Vec<u8>, cases: &[common::Expected]) -> (usize, usize) {
    let prover = match Prover::open(MemStorage(bytes)) {
        Ok(p) => p,
        Err(_) => return (0, 1),
    };
    let (mut ok, mut errors) = (0, 0);
    for case in cases {
        match prover.prove(&case.challenge) {
            Ok(proved) => {
                for got in &proved.proofs {
                    assert!(
                        case.proofs
                            .iter()
                            .any(|(q, p)| *q == got.quality && *p == got.proof),
                        "a damaged plot gave a proof chiapos does not"
                    );
                    ok += 1;
                }
            }
            Err(_) => errors += 1,
        }
    }
    (ok, errors)
}

#[test]
fn truncated_plot_is_an_error() {
    let Some((bytes, cases)) = k18() else { return };
    let len = bytes.len();
    for cut in [
        0,
        10,
        60,
        200,
        len / 3,
        len / 2,
        len - 20_000,
        len - 100,
        len - 1,
    ] {
        let short = bytes[..cut].to_vec();
        match Prover::open(MemStorage(short.clone())) {
            Err(e) => assert!(
                matches!(
                    e,
                    PlotError::Truncated { .. } | PlotError::BadPointers(_) | PlotError::BadMagic
                ),
                "cut {cut}: {e}"
            ),
            Ok(_) => {
                let (_, errors) = assert_no_wrong_proof(short, &cases);
                assert!(errors > 0, "cut {cut}: no lookup noticed the truncation");
            }
        }
    }
}

#[test]
fn flipped_bits_in_proof_parks_are_detected() {
    let Some((bytes, cases)) = k18() else { return };
    let with_proofs: Vec<_> = cases.iter().filter(|c| !c.proofs.is_empty()).collect();
    let header_end = Prover::open(MemStorage(bytes.clone()))
        .unwrap()
        .header()
        .pointers[1];
    let mut detected = 0;
    let mut seed = 7u64;
    for case in with_proofs.iter().take(40) {
        let rec = Recording {
            inner: MemStorage(bytes.clone()),
            seen: Mutex::new(Vec::new()),
        };
        let prover = Prover::open(&rec).unwrap();
        rec.seen.lock().unwrap().clear();
        prover.prove(&case.challenge).unwrap();
        let seen = rec.seen.lock().unwrap().clone();
        // Flip one bit somewhere in the ranges the proof read.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = seen[(seed >> 33) as usize % seen.len()];
        let at = r.offset + (seed >> 7) % r.len as u64;
        assert!(at >= header_end);
        let mut damaged = bytes.clone();
        damaged[at as usize] ^= 1 << ((seed >> 3) % 8);
        let prover = Prover::open(MemStorage(damaged)).unwrap();
        match prover.prove(&case.challenge) {
            Err(e) => {
                assert!(!matches!(e, PlotError::Storage(_)), "{e}");
                detected += 1;
            }
            Ok(proved) => {
                // The bit was one the proof does not depend on (e.g. a later entry's stub).
                for got in &proved.proofs {
                    assert!(case
                        .proofs
                        .iter()
                        .any(|(q, p)| *q == got.quality && *p == got.proof));
                }
            }
        }
    }
    println!("{detected} of 40 flips detected, the rest did not change the proof");
    assert!(detected > 0);
}

#[test]
fn random_flips_never_panic_or_lie() {
    let Some((bytes, cases)) = k18() else { return };
    let mut seed = 99u64;
    for _ in 0..12 {
        let mut damaged = bytes.clone();
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 20) as usize % damaged.len();
            damaged[at] ^= 1 << (seed % 8);
        }
        assert_no_wrong_proof(damaged, &cases[..60]);
    }
}

/// Flips aimed at table 7 and the checkpoint tables (a small part of the file, so random flips
/// rarely land there): C1 and C2 disagreeing, C3 sizes and deltas, table-7 positions.
#[test]
fn flips_in_checkpoints_never_panic_or_lie() {
    let Some((bytes, cases)) = k18() else { return };
    let p7 = Prover::open(MemStorage(bytes.clone()))
        .unwrap()
        .header()
        .pointers[7] as usize;
    let mut seed = 5u64;
    for round in 0..30 {
        let mut damaged = bytes.clone();
        for _ in 0..(1 + round % 4) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = p7 + (seed >> 20) as usize % (damaged.len() - p7);
            damaged[at] ^= 1 << (seed % 8);
        }
        assert_no_wrong_proof(damaged, &cases[..40]);
    }
}

#[test]
fn damaged_headers_are_refused() {
    let Some((bytes, _)) = k18() else { return };
    let mut b = bytes.clone();
    b[0] ^= 0x20;
    assert!(matches!(
        Prover::open(MemStorage(b)),
        Err(PlotError::BadMagic)
    ));
    // Format description "v1.0" → "v2.0".
    let mut b = bytes.clone();
    b[19 + 32 + 1 + 2 + 1] = b'2';
    assert!(matches!(
        Prover::open(MemStorage(b)),
        Err(PlotError::UnsupportedFormat(f)) if f == "v2.0"
    ));
    let mut b = bytes.clone();
    b[19 + 32] = 99;
    assert!(matches!(
        Prover::open(MemStorage(b)),
        Err(PlotError::KOutOfRange(99))
    ));
    let dir = std::env::temp_dir().join(format!("plotfile-v2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let v2 = dir.join("x.plot2");
    std::fs::write(&v2, &bytes[..4096]).unwrap();
    assert!(matches!(
        Prover::open_path(&v2, Options::default()),
        Err(PlotError::PlotV2)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    let mut b = b"PLOT".to_vec();
    b.extend(&bytes[4..]);
    assert!(matches!(
        Prover::open(MemStorage(b)),
        Err(PlotError::CompressedPlot)
    ));
}
