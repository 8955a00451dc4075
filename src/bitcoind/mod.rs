//! Everything the node says to its bitcoind: the JSON-RPC client (`rpc.rs`) and its typed
//! replies (`types.rs`), where the credentials come from (`auth.rs`, `args.rs` for the
//! `--bitcoind-*` options), the block template source with long polling (`template.rs`), the
//! Bitcoin P2P link (`p2p.rs`), the block submitter (`submit.rs`: `submitblock` and a P2P
//! `block` at once) and the start-up checks (`checks.rs`); `connect.rs` starts them all
//! together. Which found blocks go when is [`crate::submit::gate`]'s call.
//!
//! Errors of the RPC client are split into transient ones (retry with back-off: connection
//! refused or reset, timeouts, HTTP 5xx, bitcoind warming up) and persistent ones (report: wrong
//! credentials, wrong chain, unknown method, a reply that does not parse); see
//! [`RpcError::is_transient`].

mod args;
mod auth;
mod checks;
mod connect;
mod p2p;
mod rpc;
mod submit;
mod template;
mod types;
/// Bitcoin P2P message framing (shared with the devchain, in `common/`).
pub use p2pool_common::wire;

use std::time::Duration;

use bitcoin::Network;

pub use args::{ArgsError, BitcoindArgs};
pub use auth::{bitcoin_conf, default_datadir, AuthError, ConfFile, Credentials, RpcOptions};
pub use checks::{startup_checks, wait_until_ready, StartupError, StartupInfo};
pub use connect::{Bitcoind, ConnectError};
pub use p2p::{BitcoindP2p, P2pConfig, P2pError};
#[doc(hidden)]
pub use rpc::parse_http_reply;
pub use rpc::{RpcClient, RpcError};
pub use submit::{BlockSubmitter, FoundBlock, P2pOutcome, RpcOutcome, SubmitConfig};
pub use template::{TemplateConfig, TemplateRefresh, TemplateSource};
pub use types::{
    BlockTemplate, BlockchainInfo, NetworkInfo, SubmitBlockResult, TemplateTx, TypeError,
};

/// Parse `--network`: `mainnet` (or `main`, `bitcoin`), `testnet4`, `testnet` (`testnet3`, `test`),
/// `signet`, `regtest`.
pub fn parse_network(name: &str) -> Option<Network> {
    Some(match name.to_ascii_lowercase().as_str() {
        "mainnet" | "main" | "bitcoin" => Network::Bitcoin,
        "testnet4" => Network::Testnet4,
        "testnet" | "testnet3" | "test" => Network::Testnet,
        "signet" => Network::Signet,
        "regtest" => Network::Regtest,
        _ => return None,
    })
}

/// bitcoind's default JSON-RPC port on `network`.
pub fn default_rpc_port(network: Network) -> u16 {
    match network {
        Network::Testnet => 18332,
        Network::Testnet4 => 48332,
        Network::Signet => 38332,
        Network::Regtest => 18443,
        _ => 8332,
    }
}

/// bitcoind's default P2P port on `network`.
pub fn default_p2p_port(network: Network) -> u16 {
    match network {
        Network::Testnet => 18333,
        Network::Testnet4 => 48333,
        Network::Signet => 38333,
        Network::Regtest => 18444,
        _ => 8333,
    }
}

/// The subdirectory of the data directory bitcoind uses for `network` (empty for mainnet).
pub fn network_subdir(network: Network) -> &'static str {
    match network {
        Network::Testnet => "testnet3",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
        _ => "",
    }
}

/// Exponential back-off between retries: `min`, doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min` (at least 1 ms); `max` is raised to `min` if below it.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    /// 1 s doubling up to 30 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

/// Aborts its task when dropped: a handle's background task ends with its last clone.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
