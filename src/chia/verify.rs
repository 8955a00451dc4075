//! `p2pool chia verify FILE [--bench]`: check a file of proofs of space against
//! `sharechain::pospace`, or time the verifier on it.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use sharechain::pospace::{validate_batch, validate_proof, VectorLine, VerifyError};

use super::VerifyArgs;

/// Repetitions of the file in `--bench` (at least; more while under a second in total).
const BENCH_MIN_REPS: usize = 11;

/// What checking a file found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// One output line per input line (comments and blank lines have none).
    pub lines: Vec<String>,
    /// Valid proofs.
    pub valid: usize,
    /// Lines whose result differs from their expected quality.
    pub mismatches: usize,
    /// Lines that do not parse.
    pub malformed: usize,
}

/// Parses and verifies every line of `text` (blank lines and `#` comments are skipped).
pub fn check(text: &str, threads: usize) -> Report {
    let mut parsed = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        parsed.push((i + 1, VectorLine::parse(trimmed)));
    }
    let proofs: Vec<_> = parsed
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok().map(VectorLine::as_proof))
        .collect();
    let mut results = validate_batch(&proofs, threads).into_iter();

    let mut report = Report::default();
    for (number, line) in &parsed {
        let line = match line {
            Ok(line) => line,
            Err(err) => {
                report.malformed += 1;
                report.lines.push(format!("invalid: line {number}: {err}"));
                continue;
            }
        };
        let result = results
            .next()
            .unwrap_or(Err(VerifyError::ChallengeMismatch));
        report.valid += usize::from(result.is_ok());
        let mut out = match &result {
            Ok(quality) => hex::encode(quality),
            Err(err) => format!("invalid: {err}"),
        };
        if let Some(expected) = line.expected_quality {
            if result.as_ref().ok() != Some(&expected) {
                report.mismatches += 1;
                out.push_str(&format!(
                    " mismatch: line {number} expected {}",
                    hex::encode(expected)
                ));
            }
        }
        report.lines.push(out);
    }
    report
}

/// Runs the command.
pub fn main(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let threads = args.threads.unwrap_or_else(crate::cores);
    if args.bench {
        return bench(&text, threads);
    }
    let report = check(&text, threads);
    let mut stdout = std::io::stdout().lock();
    let written = report
        .lines
        .iter()
        .try_for_each(|line| writeln!(stdout, "{line}"))
        .and_then(|()| stdout.flush());
    match written {
        // A reader that stops early (`| head`) is not an error of ours.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    tracing::info!(
        lines = report.lines.len(),
        valid = report.valid,
        mismatches = report.mismatches,
        malformed = report.malformed,
        "chia verify done"
    );
    Ok(if report.mismatches + report.malformed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Times single-thread verification of the file's valid proofs: median over repetitions of one
/// pass, per proof.
fn bench(text: &str, threads: usize) -> anyhow::Result<ExitCode> {
    let lines: Vec<VectorLine> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| VectorLine::parse(l).ok())
        .collect();
    let proofs: Vec<_> = lines
        .iter()
        .map(VectorLine::as_proof)
        .filter(|p| p.validate().is_ok())
        .collect();
    anyhow::ensure!(!proofs.is_empty(), "no valid proofs to time");
    let n = proofs.len();
    let started = Instant::now();
    let mut per_proof = Vec::new();
    while per_proof.len() < BENCH_MIN_REPS || started.elapsed().as_secs_f64() < 1.0 {
        let t = Instant::now();
        for p in &proofs {
            std::hint::black_box(validate_proof(p.plot_id, p.k, p.challenge, p.proof).is_ok());
        }
        per_proof.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    per_proof.sort_by(f64::total_cmp);
    let median = per_proof[per_proof.len() / 2];
    let t = Instant::now();
    std::hint::black_box(validate_batch(&proofs, threads));
    let batch = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{n} valid proofs, {} passes; batch of all on {threads} threads: {batch:.2} us/proof",
        per_proof.len()
    )?;
    writeln!(stdout, "RESULT pos_verify_us={median:.2} proofs={n}")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K18: &str = include_str!("../../sharechain/tests/vectors/chia/pos_v1_k18.txt");

    #[test]
    fn golden_file_has_no_mismatch() {
        let text: String = K18.lines().take(20).map(|l| format!("{l}\n")).collect();
        let report = check(&text, 2);
        assert_eq!(
            (report.valid, report.mismatches, report.malformed),
            (20, 0, 0)
        );
        for (out, line) in report.lines.iter().zip(text.lines()) {
            assert!(line.ends_with(out.as_str()), "{out} vs {line}");
        }
    }

    #[test]
    fn reports_invalid_mismatched_and_malformed_lines() {
        let first = K18.lines().next().unwrap();
        let fields: Vec<&str> = first.split(", ").collect();
        // No expected column: an invalid proof is reported but is not a mismatch.
        let wrong_k = format!("{}, 19, {}, {}", fields[0], fields[2], fields[3]);
        // Expected column with a wrong quality: a mismatch.
        let wrong_q = format!(
            "{}, 18, {}, {}, {}",
            fields[0],
            fields[2],
            fields[3],
            "00".repeat(32)
        );
        let text = format!("# comment\n\n{wrong_k}\n{wrong_q}\nnot a line\n{first}\n");
        let report = check(&text, 1);
        assert_eq!(report.lines.len(), 4);
        assert_eq!(
            report.lines[0],
            "invalid: proof is 144 bytes, k 19 needs 152"
        );
        assert!(
            report.lines[1].contains(" mismatch: line 4 expected 0000"),
            "{}",
            report.lines[1]
        );
        assert!(
            report.lines[2].starts_with("invalid: line 5: "),
            "{}",
            report.lines[2]
        );
        assert_eq!(report.lines[3], fields[4]);
        assert_eq!(
            (report.valid, report.mismatches, report.malformed),
            (2, 1, 1)
        );
    }
}
