//! Harvester benchmark: a chiapos-made plot read through storage with a fixed 50 ms latency per
//! batch (round trips and proof time), and with no added latency (qualities per second), next to
//! chiapos's own DiskProver on the same plot in the same run.
//!
//! `cargo bench -p plotfile --bench harvester` measures a k20 plot (`PLOTFILE_BENCH_PLOT=k22b:22`
//! picks another); under `cargo test --benches` it runs a short smoke pass on a k18 plot. Plots
//! come from `tests/make_plots.py` in the chiapos venv; without it the benchmark says "skipped".
//!
//! chiapos reads through one sequential stream, so its reads are not counted here but taken
//! from its algorithm: per line point 4 reads (checkpoint, stubs, size, then the deltas the size
//! announces); a lookup adds the C1 scan (one buffered stream read), the C3 size and body, and
//! a table-7 park; a quality is 4 + 6·4 = 28 reads one after another, a full proof 4 + 63·4 =
//! 256 reads, 4 + 6·4 = 28 deep with its parallel reads.

#![allow(clippy::print_stdout)] // reason: a benchmark reports on stdout

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use plotfile::{FileStorage, Latency, Options, Prover};

/// chiapos's read plan (see the module docs).
const CHIAPOS_QUALITY_READS: u32 = 4 + 6 * 4;
const CHIAPOS_PROOF_READS: u32 = 4 + 63 * 4;
const CHIAPOS_QUALITY_ROUNDS: u32 = 4 + 6 * 4;
const CHIAPOS_PROOF_ROUNDS: u32 = 4 + 6 * 4;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

/// chiapos on the same plot and challenges: (qualities per second, median ms per quality
/// lookup plus full proof).
fn chiapos_times(
    py: &std::path::Path,
    plot: &std::path::Path,
    challenges: &[[u8; 32]],
    with_proof: &[[u8; 32]],
    reps: u32,
) -> Option<(f64, f64)> {
    let script = r#"
import sys, time, statistics
from chiapos import DiskProver
plot, reps = sys.argv[1], int(sys.argv[2])
cs = [bytes.fromhex(h) for h in sys.argv[3].split(",") if h]
ps = [bytes.fromhex(h) for h in sys.argv[4].split(",") if h]
prover = DiskProver(plot)
rates = []
for _ in range(reps):
    t = time.perf_counter()
    for c in cs:
        prover.get_qualities_for_challenge(c)
    rates.append(len(cs) / (time.perf_counter() - t))
times = []
for c in ps:
    t = time.perf_counter()
    prover.get_qualities_for_challenge(c)
    prover.get_full_proof(c, 0)
    times.append((time.perf_counter() - t) * 1000)
print(statistics.median(rates), statistics.median(times) if times else 0.0)
"#;
    let join = |v: &[[u8; 32]]| v.iter().map(hex::encode).collect::<Vec<_>>().join(",");
    let out = Command::new(py)
        .args(["-c", script])
        .arg(plot)
        .arg(reps.to_string())
        .arg(join(challenges))
        .arg(join(with_proof))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let spec = std::env::var("PLOTFILE_BENCH_PLOT")
        .unwrap_or_else(|_| if full { "k20b:20" } else { "k18a:18" }.to_owned());
    let (name, k) = spec.split_once(':').unwrap_or(("k20b", "20"));
    let dir = match common::make_plots(&[&format!("{name}:{k}:300")]) {
        Ok(d) => d,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let plot = dir.join(format!("{name}.plot"));
    let cases = common::expected(&dir, name);
    let (n_quality, n_proof, reps) = if full { (300, 15, 9) } else { (40, 2, 1) };
    let challenges: Vec<[u8; 32]> = cases.iter().take(n_quality).map(|c| c.challenge).collect();
    let with_proof: Vec<[u8; 32]> = cases
        .iter()
        .filter(|c| !c.proofs.is_empty())
        .take(n_proof)
        .map(|c| c.challenge)
        .collect();

    // 50 ms per batch: rounds and wall time of a lookup, and of qualities with proofs.
    let slow = Prover::open(Latency::new(
        FileStorage::open(&plot).unwrap(),
        Duration::from_millis(50),
    ))
    .unwrap();
    let mut quality_rounds = 0;
    let mut proof_rounds = 0;
    let mut two_step_rounds = 0;
    let mut proof_ms = Vec::new();
    for c in &with_proof {
        let lookup = slow.lookup(c).unwrap();
        quality_rounds = quality_rounds.max(lookup.rounds());
        let mut lookup = lookup;
        lookup.full_proof(0).unwrap();
        two_step_rounds = two_step_rounds.max(lookup.rounds());
        let t = Instant::now();
        let proved = slow.prove(c).unwrap();
        proof_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        proof_rounds = proof_rounds.max(proved.rounds);
    }

    // The same with the C1 table kept in memory.
    let kept = Prover::open_with(
        Latency::new(FileStorage::open(&plot).unwrap(), Duration::from_millis(50)),
        Options::default().keep_c1(true),
    )
    .unwrap();
    let mut kept_rounds = 0;
    let mut kept_ms = Vec::new();
    for c in &with_proof {
        let t = Instant::now();
        kept_rounds = kept_rounds.max(kept.prove(c).unwrap().rounds);
        kept_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    // No added latency: qualities per second, ours and chiapos's passes interleaved so both
    // see the same machine load.
    let fast = Prover::open(FileStorage::open(&plot).unwrap()).unwrap();
    let py = common::python();
    let mut rates = Vec::new();
    let mut chia_rates = Vec::new();
    let mut chia_proof_ms = 0.0;
    for rep in 0..reps {
        let t = Instant::now();
        for c in &challenges {
            fast.qualities(c).unwrap();
        }
        rates.push(challenges.len() as f64 / t.elapsed().as_secs_f64());
        let proofs: &[[u8; 32]] = if rep == 0 { &with_proof } else { &[] };
        if let Some((rate, ms)) = py
            .as_ref()
            .and_then(|py| chiapos_times(py, &plot, &challenges, proofs, 1))
        {
            chia_rates.push(rate);
            if rep == 0 {
                chia_proof_ms = ms;
            }
        }
    }
    // No added latency: lookup and full proof, as chiapos's figure is taken.
    let mut fast_proof_ms = Vec::new();
    for c in &with_proof {
        let t = Instant::now();
        let mut lookup = fast.lookup(c).unwrap();
        lookup.full_proof(0).unwrap();
        fast_proof_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let qps = median(rates);
    let chia_qps = median(chia_rates);
    println!(
        "k={k}: prove (qualities + proofs) {proof_rounds} rounds, lookup {quality_rounds} rounds, \
         lookup then full proof {two_step_rounds} rounds; with C1 in memory: prove {kept_rounds} \
         rounds, {:.1} ms; chiapos's plan: {} reads, {} deep",
        median(kept_ms),
        CHIAPOS_QUALITY_READS + CHIAPOS_PROOF_READS,
        CHIAPOS_QUALITY_ROUNDS + CHIAPOS_PROOF_ROUNDS
    );
    println!(
        "RESULT k={k} quality_rounds={quality_rounds} proof_rounds={proof_rounds} proof_ms={:.1} \
         chiapos_reads={} fast_proof_ms={:.2} chiapos_proof_ms={chia_proof_ms:.2} \
         qualities_per_s={qps:.0} chiapos_qualities_per_s={chia_qps:.0}",
        median(proof_ms),
        CHIAPOS_QUALITY_READS + CHIAPOS_PROOF_READS,
        median(fast_proof_ms),
    );
}
