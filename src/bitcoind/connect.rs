//! The whole bitcoind side in one call: resolve the options, wait until bitcoind passes the
//! start-up checks, start the P2P link, the template source (refreshed by the link's tips) and
//! the block submitter (RPC and the same link).

use bitcoin::Network;

use super::args::{ArgsError, BitcoindArgs};
use super::checks::{wait_until_ready, StartupError, StartupInfo};
use super::p2p::BitcoindP2p;
use super::rpc::{RpcClient, RpcError};
use super::submit::{BlockSubmitter, SubmitConfig};
use super::template::{TemplateConfig, TemplateSource};
use super::Backoff;

/// Why the bitcoind side could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The `--bitcoind-*` options do not give a client.
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// bitcoind is unusable for good (wrong chain, no segwit, credentials refused).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The first `getblocktemplate` failed with a persistent error.
    #[error("first block template: {0}")]
    Template(#[source] RpcError),
}

/// The running bitcoind side. Dropping it stops its tasks.
#[derive(Debug)]
pub struct Bitcoind {
    /// The JSON-RPC client.
    pub rpc: RpcClient,
    /// `None` with `--no-bitcoind-p2p`.
    pub p2p: Option<BitcoindP2p>,
    /// The block template source (long polling, refreshed on new tips).
    pub templates: TemplateSource,
    /// Submits found blocks by `submitblock` and the P2P link.
    pub submitter: BlockSubmitter,
    /// What the start-up checks learnt.
    pub info: StartupInfo,
}

impl Bitcoind {
    /// Start everything; transient failures (bitcoind down, warming up, syncing) are waited out
    /// with `backoff`, persistent ones (credentials, wrong chain, no segwit) returned.
    pub async fn connect(
        args: &BitcoindArgs,
        network: Network,
        backoff: Backoff,
        templates: TemplateConfig,
        submit: SubmitConfig,
    ) -> Result<Self, ConnectError> {
        let rpc = args.rpc_client(network)?;
        let info = wait_until_ready(&rpc, network, backoff).await?;
        let p2p = args.spawn_p2p(network);
        let tips = p2p.as_ref().map(BitcoindP2p::tips);
        let templates = TemplateSource::start(rpc.clone(), templates, tips)
            .await
            .map_err(ConnectError::Template)?;
        let submitter = BlockSubmitter::new(rpc.clone(), p2p.clone(), submit)
            .with_template_refresh(templates.refresher());
        Ok(Self {
            rpc,
            p2p,
            templates,
            submitter,
            info,
        })
    }
}
