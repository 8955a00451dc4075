//! Chia: proof verification from the command line (`p2pool chia verify FILE`), the harvester
//! protocol's messages ([`protocol`]) and private-CA certificates ([`ssl`]) shared with
//! `crate::harvester`, the farmer endpoint harvesters connect to ([`farmer`]), the link to a
//! chia full node that gives it signage points ([`full_node`]), the Chia node ([`node`]) and its
//! web side ([`web`]: status page and JSON API).

use std::path::PathBuf;
use std::process::ExitCode;

pub mod address;
pub mod farmer;
pub mod full_node;
pub mod node;
pub mod protocol;
pub mod ssl;
mod verify;
pub mod web;
pub mod wss;

/// Options of `p2pool chia`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChiaArgs {
    /// The `p2pool chia` subcommand to run.
    #[command(subcommand)]
    pub command: ChiaCommand,
}

/// Subcommands of `p2pool chia`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ChiaCommand {
    /// Verify proofs of space v1, one a line:
    /// `plot_id_hex, k, challenge_hex, proof_hex[, expected_quality_hex]`.
    ///
    /// Prints the quality in hex or `invalid: <reason>` per line. With the expected-quality
    /// column, mismatches are reported and make the exit status non-zero, as do malformed lines.
    Verify(VerifyArgs),
}

/// Options of `p2pool chia verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The proof file (`-` for standard input).
    pub file: PathBuf,
    /// Time single-thread verification of the file's valid proofs instead; prints
    /// `RESULT pos_verify_us=… proofs=…`.
    #[arg(long)]
    pub bench: bool,
    /// Threads verifying in parallel (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Entry point of `p2pool chia`.
pub fn main(args: ChiaArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ChiaCommand::Verify(args) => verify::main(args),
    }
}
