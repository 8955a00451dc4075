//! `p2pool harvester check PLOT… [-n N]` and `p2pool harvester prove PLOT CHALLENGE…`: read
//! chiapos plots (a path, or an `http://` URL read by range requests) with `plotfile`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use bitcoin::hashes::{sha256, Hash};
use plotfile::{FileStorage, HttpStorage, Prover, Storage};

/// Options of `p2pool harvester`.
#[derive(Debug, Clone, clap::Args)]
pub struct HarvesterArgs {
    #[command(subcommand)]
    pub command: HarvesterCommand,
}

/// Subcommands of `p2pool harvester`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HarvesterCommand {
    /// Open plots and answer N challenges each with qualities and full proofs (every proof
    /// verified); one summary line per plot. Exit status 1 if any plot fails.
    Check {
        /// Plot files or `http://` URLs.
        #[arg(required = true)]
        plots: Vec<String>,
        /// Challenges per plot.
        #[arg(short = 'n', default_value_t = 30)]
        n: u32,
    },
    /// Answer challenges from one plot: one line `challenge quality proof` (hex) per proof.
    Prove {
        /// A plot file or an `http://` URL.
        plot: String,
        /// 32-byte challenges in hex.
        #[arg(required = true)]
        challenges: Vec<String>,
    },
}

/// Timeout of each HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

fn open(plot: &str) -> anyhow::Result<Prover<Box<dyn Storage>>> {
    let storage: Box<dyn Storage> = if plot.starts_with("http://") || plot.starts_with("https://") {
        Box::new(HttpStorage::open(plot, HTTP_TIMEOUT)?)
    } else {
        if Path::new(plot).extension().is_some_and(|e| e == "plot2") {
            return Err(plotfile::PlotError::PlotV2.into());
        }
        Box::new(FileStorage::open(plot)?)
    };
    // The C1 table is small next to the plot and saves a round trip per lookup.
    Ok(Prover::open_with(
        storage,
        plotfile::Options::default().keep_c1(true),
    )?)
}

/// Runs a `harvester` subcommand.
pub fn main(args: HarvesterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        HarvesterCommand::Check { plots, n } => check(&plots, n),
        HarvesterCommand::Prove { plot, challenges } => prove(&plot, &challenges),
    }
}

fn check(plots: &[String], n: u32) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut failed = 0;
    for (i, plot) in plots.iter().enumerate() {
        // Progress goes to stderr so stdout stays one line per plot.
        write!(err, "\ropening {}/{}: {plot}\x1b[K", i + 1, plots.len())?;
        err.flush()?;
        let prover = match open(plot) {
            Ok(p) => p,
            Err(e) => {
                writeln!(err)?;
                writeln!(out, "{plot}: error: {e}")?;
                failed += 1;
                continue;
            }
        };
        let started = Instant::now();
        let (mut proofs, mut errors, mut rounds) = (0usize, 0usize, 0u32);
        let mut first_error = None;
        for j in 0..n {
            let mut pre = prover.id().to_vec();
            pre.extend(j.to_be_bytes());
            let challenge = sha256::Hash::hash(&pre).to_byte_array();
            match prover.prove(&challenge) {
                Ok(p) => {
                    proofs += p.proofs.len();
                    rounds = rounds.max(p.rounds);
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        writeln!(err)?;
        let ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(n.max(1));
        write!(
            out,
            "{plot}: k={} id={} challenges={n} proofs={proofs} ratio={:.2} max_rounds={rounds} ms_per_challenge={ms:.1}",
            prover.k(),
            hex::encode(prover.id()),
            proofs as f64 / f64::from(n.max(1)),
        )?;
        if let Some(e) = first_error {
            write!(out, " errors={errors} first_error={e:?}")?;
            failed += 1;
        }
        writeln!(out)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn prove(plot: &str, challenges: &[String]) -> anyhow::Result<ExitCode> {
    let prover = open(plot)?;
    let mut out = std::io::stdout().lock();
    for c in challenges {
        let challenge: [u8; 32] = hex::decode(c)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("challenge {c:?} is not 32 bytes of hex"))?;
        for p in prover.prove(&challenge)?.proofs {
            writeln!(
                out,
                "{} {} {}",
                hex::encode(challenge),
                hex::encode(p.quality),
                hex::encode(&p.proof)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
