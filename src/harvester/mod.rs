//! `p2pool harvester`: a Chia harvester. `--plots … --farmer HOST:PORT` farms plots for a chia
//! farmer over chia's harvester protocol ([`client`]); `check PLOT… [-n N]` and
//! `prove PLOT CHALLENGE…` read chiapos plots (a path, or an `http://` URL read by range requests)
//! with `plotfile`.

pub mod answer;
pub mod client;
pub mod plots;
pub use crate::chia::protocol;
pub mod sync;
pub mod tls;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use bitcoin::hashes::{sha256, Hash};
use plotfile::{FileStorage, HttpStorage, Prover, Storage};

/// Options of `p2pool harvester`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HarvesterArgs {
    /// `check` or `prove`; `None` farms with [`HarvesterArgs::farm`].
    #[command(subcommand)]
    pub command: Option<HarvesterCommand>,
    /// The farming options (used without a subcommand, which they conflict with).
    #[command(flatten)]
    pub farm: FarmArgs,
}

/// Options of `p2pool harvester --plots … --farmer HOST:PORT`.
#[derive(Debug, Clone, clap::Args)]
pub struct FarmArgs {
    /// Plot files, or directories whose `*.plot` files are farmed.
    #[arg(long, num_args = 1.., value_name = "DIR|FILE")]
    pub plots: Vec<PathBuf>,
    /// The farmer's harvester port (chia: `harvester.farmer_peers`, 8447 on mainnet).
    #[arg(long, value_name = "HOST:PORT")]
    pub farmer: Option<String>,
    /// Chia root holding `config/ssl/ca/private_ca.{crt,key}` (and possibly the harvester's
    /// certificate); default `$CHIA_ROOT`, else `~/.chia/mainnet`.
    #[arg(long, value_name = "DIR", conflicts_with = "ca_dir")]
    pub chia_root: Option<PathBuf>,
    /// Directory with the farmer's `private_ca.crt` and `private_ca.key` (as `chia init -c`).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Network id to announce and require of the farmer.
    #[arg(long, default_value = "mainnet")]
    pub network_id: String,
    /// Plot filter bits (default: mainnet's schedule by peak height).
    #[arg(long, hide = true)]
    pub plot_filter_bits: Option<u8>,
    /// `DIFFICULTY_CONSTANT_FACTOR` of the network (2^67 on mainnet).
    #[arg(long, hide = true, default_value_t = sharechain::pospace::DIFFICULTY_CONSTANT_FACTOR)]
    pub difficulty_constant_factor: u128,
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

/// Runs a `harvester` subcommand, or the harvester itself.
pub fn main(args: HarvesterArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(HarvesterCommand::Check { plots, n }) => check(&plots, n),
        Some(HarvesterCommand::Prove { plot, challenges }) => prove(&plot, &challenges),
        None => farm(args.farm),
    }
}

fn farm(args: FarmArgs) -> anyhow::Result<ExitCode> {
    let farmer = args
        .farmer
        .context("--farmer HOST:PORT is required (or a subcommand: check, prove)")?;
    anyhow::ensure!(!args.plots.is_empty(), "--plots DIR|FILE… is required");
    let certs = match (args.ca_dir, args.chia_root) {
        (Some(dir), _) => client::CertSource::CaDir(dir),
        (None, Some(root)) => client::CertSource::ChiaRoot(root),
        (None, None) => client::CertSource::ChiaRoot(match std::env::var_os("CHIA_ROOT") {
            Some(root) => PathBuf::from(root),
            None => {
                PathBuf::from(std::env::var_os("HOME").context("no HOME")?).join(".chia/mainnet")
            }
        }),
    };
    let config = client::FarmConfig {
        farmer,
        plots: args.plots,
        certs,
        network_id: args.network_id,
        consensus: plots::Consensus {
            difficulty_constant_factor: args.difficulty_constant_factor,
            filter_bits: args.plot_filter_bits,
        },
    };
    let harvester = client::Harvester::new(config)?;
    anyhow::ensure!(!harvester.plots().is_empty(), "no plot could be opened");
    tokio::runtime::Runtime::new()?.block_on(harvester.run());
    Ok(ExitCode::SUCCESS)
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
