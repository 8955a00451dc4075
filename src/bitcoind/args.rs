//! The `--bitcoind-*` command-line options, to flatten into a command's arguments.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use bitcoin::Network;

use super::auth::{AuthError, RpcOptions};
use super::rpc::{RpcClient, RpcError};
use super::{default_p2p_port, BitcoindP2p, P2pConfig};

/// How to reach bitcoind.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BitcoindArgs {
    /// bitcoind's JSON-RPC URL [default: http://127.0.0.1:<the network's RPC port>/, or
    /// `rpcconnect`/`rpcport` from bitcoin.conf].
    // The brackets are clap's help convention for a default, not a rustdoc link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long = "bitcoind-rpc", value_name = "URL")]
    pub rpc_url: Option<String>,
    /// RPC user (with --bitcoind-rpc-password).
    #[arg(long = "bitcoind-rpc-user", requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// RPC password (with --bitcoind-rpc-user); also read from `BITCOIND_RPC_PASSWORD`.
    #[arg(
        long = "bitcoind-rpc-password",
        env = "BITCOIND_RPC_PASSWORD",
        hide_env_values = true,
        requires = "rpc_user"
    )]
    pub rpc_password: Option<String>,
    /// bitcoind's `.cookie` file [default: found in the bitcoin data directory] (conflicts with
    /// --bitcoind-rpc-user).
    #[arg(
        long = "bitcoind-rpc-cookie",
        value_name = "FILE",
        conflicts_with = "rpc_user"
    )]
    pub rpc_cookie: Option<PathBuf>,
    /// The bitcoin data directory to find bitcoin.conf and the cookie in [default: ~/.bitcoin].
    #[arg(long = "bitcoind-datadir", value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// bitcoind's P2P address [default: 127.0.0.1:<the network's P2P port>].
    #[arg(long = "bitcoind-p2p", value_name = "ADDR")]
    pub p2p_addr: Option<SocketAddr>,
    /// Do not connect to bitcoind's P2P port (new blocks are then seen by long polling, and
    /// found blocks go by RPC only).
    #[arg(long = "no-bitcoind-p2p")]
    pub no_p2p: bool,
}

/// Why the options do not give a usable client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// Credentials could not be found or read.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The RPC URL is not usable.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl BitcoindArgs {
    /// The options as [`RpcOptions`], for [`RpcOptions::resolve`].
    pub fn rpc_options(&self) -> RpcOptions {
        RpcOptions {
            url: self.rpc_url.clone(),
            user: self.rpc_user.clone(),
            password: self.rpc_password.clone(),
            cookie: self.rpc_cookie.clone(),
            datadir: self.datadir.clone(),
        }
    }

    /// The RPC client these options describe for `network` (credentials discovered as needed).
    pub fn rpc_client(&self, network: Network) -> Result<RpcClient, ArgsError> {
        let (url, credentials) = self.rpc_options().resolve(network)?;
        tracing::info!(%url, ?credentials, "bitcoind rpc");
        Ok(RpcClient::new(&url, credentials)?)
    }

    /// bitcoind's P2P address, `None` with `--no-bitcoind-p2p`.
    pub fn p2p_addr(&self, network: Network) -> Option<SocketAddr> {
        (!self.no_p2p).then(|| {
            self.p2p_addr.unwrap_or_else(|| {
                SocketAddr::from((Ipv4Addr::LOCALHOST, default_p2p_port(network)))
            })
        })
    }

    /// Start the P2P link, unless disabled. Needs a tokio runtime.
    pub fn spawn_p2p(&self, network: Network) -> Option<BitcoindP2p> {
        self.p2p_addr(network)
            .map(|addr| BitcoindP2p::spawn(P2pConfig::new(addr, network)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bitcoind: BitcoindArgs,
    }

    #[test]
    fn options_parse() {
        let cli = Cli::try_parse_from([
            "p2pool",
            "--bitcoind-rpc",
            "http://10.0.0.2:8332/",
            "--bitcoind-rpc-user",
            "u",
            "--bitcoind-rpc-password",
            "p",
        ])
        .unwrap();
        let client = cli.bitcoind.rpc_client(Network::Bitcoin).unwrap();
        assert_eq!(client.url(), "http://10.0.0.2:8332/");
        assert_eq!(
            cli.bitcoind.p2p_addr(Network::Signet),
            Some("127.0.0.1:38333".parse().unwrap())
        );
        assert!(Cli::try_parse_from(["p2pool", "--bitcoind-rpc-user", "u"]).is_err());
        let cli = Cli::try_parse_from(["p2pool", "--no-bitcoind-p2p"]).unwrap();
        assert_eq!(cli.bitcoind.p2p_addr(Network::Bitcoin), None);
    }
}
