//! The `p2pool` binary: parse the command line, start logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    p2pool::cli::init_tracing();
    let args = match p2pool::cli::args_with_config(std::env::args().collect()) {
        Ok(args) => args,
        Err(err) => {
            tracing::error!("{err:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = p2pool::cli::Cli::parse_from(args);
    match p2pool::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
