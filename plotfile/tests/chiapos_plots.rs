//! Qualities and full proofs against chiapos's DiskProver on plots chiapos made, k18..k22.

#![allow(clippy::print_stdout)] // reason: tests report what they compared and what they skipped

mod common;

use plotfile::{FileStorage, Options, Prover};
use sharechain::pospace::validate_proof;

/// Compares every challenge of one plot: the lookup's qualities, `prove`'s qualities and
/// proofs, and `full_proof` after a lookup, all against chiapos; each proof also verifies.
fn check_plot(dir: &std::path::Path, name: &str) -> (usize, usize) {
    let prover = Prover::open(FileStorage::open(dir.join(format!("{name}.plot"))).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let kept = Prover::open_with(
        FileStorage::open(dir.join(format!("{name}.plot"))).unwrap(),
        Options::default().keep_c1(true),
    )
    .unwrap();
    let mut proofs = 0;
    let cases = common::expected(dir, name);
    for (n, case) in cases.iter().enumerate() {
        let want_q: Vec<[u8; 32]> = case.proofs.iter().map(|p| p.0).collect();
        let mut lookup = prover.lookup(&case.challenge).unwrap();
        assert_eq!(lookup.qualities(), &want_q[..], "{name} challenge {n}");
        let proved = prover.prove(&case.challenge).unwrap();
        assert_eq!(
            proved.proofs.len(),
            case.proofs.len(),
            "{name} challenge {n}"
        );
        for (i, (got, (q, proof))) in proved.proofs.iter().zip(&case.proofs).enumerate() {
            assert_eq!(&got.quality, q, "{name} challenge {n} proof {i}");
            assert_eq!(&got.proof, proof, "{name} challenge {n} proof {i}");
            let verified =
                validate_proof(prover.id(), prover.k(), &case.challenge, &got.proof).unwrap();
            assert_eq!(&verified, q);
            // Every few challenges, also the two-step path (lookup, then full proof).
            if n % 5 == 0 {
                assert_eq!(&lookup.full_proof(i).unwrap(), got);
            }
            proofs += 1;
        }
        if !case.proofs.is_empty() {
            assert!(proved.rounds <= 8, "{name}: {} rounds", proved.rounds);
        }
        // With C1 in memory: the same answers, one round fewer.
        if n % 3 == 0 {
            let again = kept.prove(&case.challenge).unwrap();
            assert_eq!(
                again.proofs, proved.proofs,
                "{name} challenge {n} (C1 kept)"
            );
            if !case.proofs.is_empty() {
                assert!(again.rounds <= 7, "{name}: {} rounds", again.rounds);
            }
        }
    }
    (cases.len(), proofs)
}

fn run(specs: &[&str]) {
    let dir = match common::make_plots(specs) {
        Ok(dir) => dir,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    for spec in specs {
        let name = spec.split(':').next().unwrap();
        let (challenges, proofs) = check_plot(&dir, name);
        println!("{name}: {challenges} challenges, {proofs} proofs equal chiapos");
        assert!(proofs > 0);
    }
}

#[test]
fn k18_plots_match_chiapos() {
    run(&["k18a:18:300", "k18b:18:300"]);
}

#[test]
fn k19_to_k22_plots_match_chiapos() {
    run(&["k19a:19:300", "k20b:20:300", "k21a:21:200", "k22b:22:200"]);
}
