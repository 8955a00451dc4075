//! Command line: `p2pool [run]`, `p2pool devchain`, `p2pool chia …`, `p2pool harvester …`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Decentralized P2Pool-style mining pool node.
#[derive(Debug, Parser)]
#[command(
    name = "p2pool",
    version,
    about,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
pub struct Cli {
    /// The subcommand; `None` runs the node with `run`'s options.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run`, the default command.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pool node (the default).
    Run(RunArgs),
    /// Run the embedded regtest chain (a bitcoind stand-in) on its own.
    #[cfg(feature = "devchain")]
    Devchain(crate::devchain::DevchainArgs),
    /// Chia proof-of-space tools.
    Chia(crate::chia::ChiaArgs),
    /// Read chiapos plots: check them, or prove challenges.
    Harvester(crate::harvester::HarvesterArgs),
}

/// Options of the pool node. Every flag can also be set in the TOML file given with
/// `--config` (keys are the long flag names, e.g. `network = "mainnet"`, `fee = 0.5`);
/// flags on the command line win over the file.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A TOML file with any of these options.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// What the node pools: `bitcoin` (stratum and getwork miners) or `chia` (chia harvesters
    /// on the worker port, PoSpace shares).
    #[arg(long, value_enum, default_value = "bitcoin")]
    pub chain: Chain,
    /// Network: for Bitcoin mainnet, testnet4, signet or regtest; for Chia regtest (the
    /// embedded signage clock).
    #[arg(long, alias = "net", default_value = "regtest")]
    pub network: String,
    /// Data directory (default: ~/.p2pool-rs/NETWORK).
    #[arg(long = "datadir", id = "node_datadir", value_name = "DIR")]
    pub datadir: Option<std::path::PathBuf>,
    /// The node operator's payout address (receives --fee; pays getwork miners without a
    /// username).
    #[arg(short = 'a', long)]
    pub address: Option<String>,
    /// Worker port: stratum, getwork and the HTTP API (default: the network's).
    #[arg(long)]
    pub worker_port: Option<u16>,
    /// Address to bind the worker port on.
    #[arg(long, default_value = "0.0.0.0")]
    pub worker_bind: std::net::IpAddr,
    /// Most concurrent worker-port connections (stratum and HTTP together).
    #[arg(long, value_name = "N", default_value_t = crate::worker::WorkerConfig::default().max_connections)]
    pub max_connections: usize,
    /// Most concurrent worker-port connections from one IP address (0: no limit).
    #[arg(long, value_name = "N", default_value_t = crate::worker::WorkerConfig::default().max_connections_per_ip)]
    pub max_connections_per_ip: usize,
    /// Also serve the status page and API on this port (they are always on the worker port).
    #[arg(long)]
    pub web_port: Option<u16>,
    /// Share-network (libp2p) port (default: the network's).
    #[arg(long)]
    pub p2p_port: Option<u16>,
    /// Address to bind the share network on.
    #[arg(long, default_value = "0.0.0.0")]
    pub p2p_bind: std::net::IpAddr,
    /// A share-network peer to connect to (repeatable), e.g. `/ip4/203.0.113.7/tcp/9333`; added
    /// to this network's entries in `bootstrap_addrs.txt`.
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// Percent of shares that pay the operator's address instead of the miner's.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub fee: f64,
    /// How to reach bitcoind.
    #[command(flatten)]
    pub bitcoind: crate::bitcoind::BitcoindArgs,
    /// Chia options of `run` (used with `--chain chia`).
    #[command(flatten)]
    pub chia: crate::chia::node::ChiaRunArgs,
}

/// The kind of chain a node pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Chain {
    /// Bitcoin: stratum and getwork miners, shares with proof of work.
    Bitcoin,
    /// Chia: chia harvesters, shares with proof of space.
    Chia,
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
        Some(Command::Devchain(args)) => Ok(crate::devchain::main(args)?),
        Some(Command::Chia(args)) => crate::chia::main(args),
        Some(Command::Harvester(args)) => crate::harvester::main(args),
    }
}

/// The command line with the `--config` file's options inserted before the flags typed
/// (so typed flags win). Keys are long flag names; `true` booleans become bare flags.
pub fn args_with_config(args: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut path = None;
    for (i, a) in args.iter().enumerate() {
        if let Some(p) = a.strip_prefix("--config=") {
            path = Some(p.to_owned());
        } else if a == "--config" {
            path = args.get(i + 1).cloned();
        }
    }
    let Some(path) = path else { return Ok(args) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading config file {path}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow::anyhow!("config file {path}: {e}"))?;
    let mut from_file = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        match value {
            toml::Value::Boolean(true) => from_file.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => from_file.push(format!("{flag}={s}")),
            toml::Value::Integer(n) => from_file.push(format!("{flag}={n}")),
            toml::Value::Float(x) => from_file.push(format!("{flag}={x}")),
            other => anyhow::bail!(
                "config file {path}: `{key}` must be a string, number or boolean, not {}",
                other.type_str()
            ),
        }
    }
    // After the program name, and after `run` when it is given.
    let at = if args.get(1).map(String::as_str) == Some("run") {
        2
    } else {
        1
    };
    let mut out = args;
    let tail = out.split_off(at.min(out.len()));
    out.extend(from_file);
    out.extend(tail);
    Ok(out)
}

fn run_node(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.chain == Chain::Chia {
        let p2p = chia_p2p_config(&args);
        return crate::chia::node::main(crate::chia::node::ChiaNodeOptions {
            network: args.network,
            datadir: args.datadir,
            address: args.address,
            worker_addr: (args.worker_bind, args.worker_port),
            worker: crate::worker::WorkerConfig {
                max_connections: args.max_connections,
                max_connections_per_ip: args.max_connections_per_ip,
                ..crate::worker::WorkerConfig::default()
            },
            p2p,
            chia: args.chia,
        });
    }
    let params = sharechain::NetworkParams::by_name(&args.network).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown network `{}`: use mainnet, testnet4, signet or regtest",
            args.network
        )
    })?;
    let operator = match &args.address {
        None => None,
        Some(a) => Some(
            crate::worker::parse_username(a, params.network)
                .map_err(|e| anyhow::anyhow!("--address: {e}"))?
                .payout,
        ),
    };
    if !(0.0..=100.0).contains(&args.fee) {
        anyhow::bail!("--fee must be between 0 and 100 percent, not {}", args.fee);
    }
    if args.max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    if args.fee > 0.0 && operator.is_none() {
        anyhow::bail!("--fee needs --address (the address the fee is paid to)");
    }
    let datadir = args.datadir.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| {
            std::path::PathBuf::from(h)
                .join(".p2pool-rs")
                .join(params.name)
        })
    });
    raise_fd_limit();
    let p2p = p2p_config(params, &args);
    let config = crate::node::NodeConfig {
        params,
        datadir,
        operator,
        fee_percent: args.fee,
        worker_addr: std::net::SocketAddr::new(
            args.worker_bind,
            args.worker_port.unwrap_or(params.worker_port),
        ),
        bitcoind: args.bitcoind,
        worker: crate::worker::WorkerConfig {
            max_connections: args.max_connections,
            max_connections_per_ip: args.max_connections_per_ip,
            ..crate::worker::WorkerConfig::default()
        },
        p2p,
        web_addr: args
            .web_port
            .map(|p| std::net::SocketAddr::new(args.worker_bind, p)),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let node = crate::node::Node::start(config).await?;
        tracing::info!(
            "point a miner at stratum+tcp://{}: minerd -a sha256d -o stratum+tcp://127.0.0.1:{} -u YOUR_ADDRESS -p x",
            node.worker_addr(),
            node.worker_addr().port()
        );
        tokio::signal::ctrl_c().await?;
        tracing::info!("shutting down");
        node.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Bootstrap peers shipped with the binary (`bootstrap_addrs.txt`).
const BOOTSTRAP_ADDRS: &str = include_str!("../bootstrap_addrs.txt");

fn p2p_config(params: &'static sharechain::NetworkParams, args: &RunArgs) -> crate::p2p::P2pConfig {
    let mut config = crate::p2p::P2pConfig::new(params);
    config.listen = vec![listen_addr(
        args.p2p_bind,
        args.p2p_port.unwrap_or(params.p2p_port),
    )];
    for bad in config.add_bootstrap(BOOTSTRAP_ADDRS, &args.bootstrap) {
        tracing::warn!(line = %bad, "unusable line in bootstrap_addrs.txt");
    }
    config
}

/// `--p2p-bind` and a port as a libp2p listen address.
fn listen_addr(bind: std::net::IpAddr, port: u16) -> libp2p::Multiaddr {
    let mut addr = libp2p::Multiaddr::from(bind);
    addr.push(libp2p::multiaddr::Protocol::Tcp(port));
    addr
}

/// The Chia kind's share network: `--p2p-port` (default 9448) and `--bootstrap` peers; no
/// shipped bootstrap list yet.
fn chia_p2p_config(args: &RunArgs) -> crate::p2p::P2pConfig {
    let mut config = crate::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    let port = args.p2p_port.unwrap_or(crate::chia::node::DEFAULT_P2P_PORT);
    config.listen = vec![listen_addr(args.p2p_bind, port)];
    let _ = config.add_bootstrap("", &args.bootstrap);
    config
}

/// Thousands of miners need thousands of descriptors: raise the soft limit to the hard one.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(%e, "could not raise the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn chain_defaults_to_bitcoin_and_chia_options_parse() {
        let run = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Some(Command::Run(run)) = cli.command else {
                panic!("run")
            };
            run
        };
        assert_eq!(run(&["p2pool", "run"]).chain, Chain::Bitcoin);
        let chia = run(&[
            "p2pool",
            "run",
            "--chain",
            "chia",
            "--network",
            "regtest",
            "--chia-mnemonic-file",
            "/m",
            "--chia-root",
            "/r",
            "--chia-network-id",
            "regtest",
            "--chia-keys-root",
            "/k",
            "--chia-keyring-passphrase-file",
            "/p",
            "--chia-signage-interval-ms",
            "500",
            "--chia-share-difficulty",
            "3",
        ]);
        assert_eq!(chia.chain, Chain::Chia);
        assert_eq!(
            chia.chia.chia_keys_root.as_deref(),
            Some(std::path::Path::new("/k"))
        );
        assert_eq!(
            chia.chia.chia_keyring_passphrase_file.as_deref(),
            Some(std::path::Path::new("/p"))
        );
        assert_eq!(
            chia.chia.chia_mnemonic_file.as_deref(),
            Some(std::path::Path::new("/m"))
        );
        assert_eq!(
            chia.chia.chia_root.as_deref(),
            Some(std::path::Path::new("/r"))
        );
        assert_eq!(chia.chia.chia_network_id.as_deref(), Some("regtest"));
        let linked = run(&[
            "p2pool",
            "run",
            "--chain",
            "chia",
            "--network",
            "mainnet",
            "--chia-full-node",
            "127.0.0.1:8444",
            "--chia-full-node-rpc",
            "127.0.0.1",
            "--chia-full-node-quiet-secs",
            "5",
            "--chia-sp-grace-secs",
            "30",
        ]);
        assert_eq!(linked.network, "mainnet");
        assert_eq!(
            linked.chia.chia_full_node.as_deref(),
            Some("127.0.0.1:8444")
        );
        assert_eq!(linked.chia.chia_full_node_rpc.as_deref(), Some("127.0.0.1"));
        assert_eq!(linked.chia.chia_full_node_quiet_secs, Some(5));
        assert_eq!(linked.chia.chia_sp_grace_secs, Some(30));
        assert_eq!(chia.chia.chia_signage_interval_ms, Some(500));
        assert_eq!(chia.chia.chia_share_difficulty, Some(3));
        assert!(Cli::try_parse_from(["p2pool", "run", "--chain", "dogecoin"]).is_err());
    }

    #[test]
    fn config_file_values_come_before_typed_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p2pool.toml");
        std::fs::write(
            &path,
            "network = \"mainnet\"\nfee = 1.5\nworker_port = 9999\nno_bitcoind_p2p = true\n",
        )
        .unwrap();
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let args = args_with_config(argv(&[
            "p2pool",
            "run",
            "--config",
            path.to_str().unwrap(),
            "--worker-port",
            "1234",
        ]))
        .unwrap();
        let cli = Cli::try_parse_from(args).unwrap();
        let Some(Command::Run(run)) = cli.command else {
            panic!("run")
        };
        assert_eq!(run.network, "mainnet");
        assert_eq!(run.fee, 1.5);
        assert_eq!(run.worker_port, Some(1234), "the typed flag wins");
        assert!(run.bitcoind.no_p2p);
        std::fs::write(&path, "network = [1]\n").unwrap();
        let err =
            args_with_config(argv(&["p2pool", "--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("`network` must be"), "{err}");
        std::fs::write(&path, "network = \n").unwrap();
        assert!(args_with_config(argv(&["p2pool", "--config", path.to_str().unwrap()])).is_err());
    }
}

/// `p2pool harvester`'s options, parsed as the binary parses them.
#[cfg(test)]
mod harvester_args {
    use clap::Parser;

    use super::{Cli, Command};

    fn harvester(args: &[&str]) -> Result<crate::harvester::HarvesterArgs, clap::Error> {
        let mut argv = vec!["p2pool", "harvester"];
        argv.extend(args);
        match Cli::try_parse_from(argv)?.command {
            Some(Command::Harvester(h)) => Ok(h),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn farm_options_and_subcommands_parse() {
        let h = harvester(&[
            "--plots", "a", "b.plot", "--farmer", "f:8447", "--ca-dir", "ca",
        ])
        .unwrap();
        assert!(h.command.is_none());
        assert_eq!(h.farm.plots.len(), 2);
        assert_eq!(h.farm.farmer.as_deref(), Some("f:8447"));
        assert_eq!(h.farm.network_id, "mainnet");
        let h = harvester(&["check", "x.plot", "-n", "3"]).unwrap();
        assert!(matches!(
            h.command,
            Some(crate::harvester::HarvesterCommand::Check { n: 3, .. })
        ));
        assert!(harvester(&["--plots", "a", "--chia-root", "r", "--ca-dir", "c"]).is_err());
    }
}
