//! Embedded regtest chain on Bitcoin Core's validation engine (`bitcoinkernel`).

use std::process::ExitCode;

/// Options of `p2pool devchain`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevchainArgs {}

/// Entry point of `p2pool devchain`.
pub fn main(_args: DevchainArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("devchain is not built yet")
}
