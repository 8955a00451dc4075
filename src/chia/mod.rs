//! Chia tools: proof verification from the command line.

use std::process::ExitCode;

/// Options of `p2pool chia`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChiaArgs {}

/// Entry point of `p2pool chia`.
pub fn main(_args: ChiaArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("chia tools are not built yet")
}
