//! Command line: `p2pool [run]`, `p2pool devchain`, `p2pool chia …`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Decentralized P2Pool-style mining pool node.
#[derive(Debug, Parser)]
#[command(
    name = "p2pool",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run`, the default command.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pool node (the default).
    Run(RunArgs),
    /// Run the embedded regtest chain (a bitcoind stand-in) on its own.
    #[cfg(feature = "devchain")]
    Devchain(crate::devchain::DevchainArgs),
    /// Chia proof-of-space tools.
    Chia(crate::chia::ChiaArgs),
}

/// Options of the pool node.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Bitcoin network: mainnet, testnet4, signet or regtest.
    #[arg(long, alias = "net", default_value = "regtest")]
    pub network: String,
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr must not bring the node down.
        .log_internal_errors(false)
        .init();
}

/// Run the chosen command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => run_node(cli.run),
        Some(Command::Run(args)) => run_node(args),
        #[cfg(feature = "devchain")]
        Some(Command::Devchain(args)) => crate::devchain::main(args),
        Some(Command::Chia(args)) => crate::chia::main(args),
    }
}

fn run_node(args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the pool node is not built yet (network {})", args.network)
}
