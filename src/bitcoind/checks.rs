//! Start-up checks: bitcoind is reachable, on the chain `--network` names, done with its initial
//! block download (mainnet), and its templates carry the `segwit` rule.

use bitcoin::Network;

use super::rpc::{RpcClient, RpcError};
use super::Backoff;

/// Why bitcoind is not (yet) usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// An RPC call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// `getblockchaininfo`'s `chain` is not the one `--network` names.
    #[error("bitcoind is on chain {actual:?} but --network is {expected} (chain {:?})", expected.to_core_arg())]
    WrongChain {
        /// The network given with `--network`.
        expected: Network,
        /// The chain bitcoind reported (`main`, `test`, `testnet4`, `signet`, `regtest`).
        actual: String,
    },
    /// bitcoind is still in its initial block download (checked on mainnet).
    #[error("bitcoind is still in initial block download ({:.1}% verified)", progress * 100.0)]
    InitialBlockDownload {
        /// `getblockchaininfo`'s `verificationprogress`, 0.0 to 1.0.
        progress: f64,
    },
    /// The block template's `rules` lack `segwit`; holds the rules.
    #[error("bitcoind's block template lacks the segwit rule (rules: {0:?}); upgrade bitcoind")]
    NoSegwit(Vec<String>),
}

impl StartupError {
    /// Worth waiting for: bitcoind unreachable, warming up or still syncing.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Rpc(e) => e.is_transient(),
            Self::InitialBlockDownload { .. } => true,
            _ => false,
        }
    }
}

/// What the checks learnt about bitcoind.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupInfo {
    /// `getblockchaininfo`'s `chain`: `main`, `test`, `testnet4`, `signet` or `regtest`.
    pub chain: String,
    /// `getblockchaininfo`'s `blocks`: the height of bitcoind's best block at start-up.
    pub blocks: u64,
    /// e.g. `/Satoshi:28.0.0/`.
    pub subversion: String,
}

/// Run the checks once.
pub async fn startup_checks(
    rpc: &RpcClient,
    network: Network,
) -> Result<StartupInfo, StartupError> {
    let chain = rpc.get_blockchain_info().await?;
    if chain.chain != network.to_core_arg() {
        return Err(StartupError::WrongChain {
            expected: network,
            actual: chain.chain,
        });
    }
    if network == Network::Bitcoin && chain.initial_block_download {
        return Err(StartupError::InitialBlockDownload {
            progress: chain.verification_progress,
        });
    }
    let info = rpc.get_network_info().await?;
    let template = rpc.get_block_template(None).await?;
    if !template.has_rule("segwit") {
        return Err(StartupError::NoSegwit(template.rules));
    }
    Ok(StartupInfo {
        chain: chain.chain,
        blocks: chain.blocks,
        subversion: info.subversion,
    })
}

/// Run the checks until they pass, waiting out transient failures with `backoff` (logged);
/// a persistent failure is returned at once.
pub async fn wait_until_ready(
    rpc: &RpcClient,
    network: Network,
    mut backoff: Backoff,
) -> Result<StartupInfo, StartupError> {
    loop {
        match startup_checks(rpc, network).await {
            Ok(info) => {
                tracing::info!(
                    url = rpc.url(),
                    chain = %info.chain,
                    blocks = info.blocks,
                    version = %info.subversion,
                    "bitcoind ready"
                );
                return Ok(info);
            }
            Err(e) if e.is_transient() => {
                let delay = backoff.next_delay();
                tracing::warn!(url = rpc.url(), error = %e, retry_in = ?delay, "bitcoind not ready");
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                tracing::error!(url = rpc.url(), error = %e, "bitcoind unusable");
                return Err(e);
            }
        }
    }
}
