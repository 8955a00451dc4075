//! The share network over libp2p: TCP + noise + yamux, gossipsub (new shares, found blocks, new
//! bitcoin tips), request-response share sync, identify, ping, kad, connection limits and bans.
//!
//! One event loop (`event_loop`) owns the swarm. The rest of the node talks to it through a
//! cloneable [`P2pHandle`] (bounded command channel, oneshot replies) and receives what the network
//! delivers as [`Inbound`] values on a bounded channel. The loop never decodes or verifies a share:
//! it hands bytes to the share service ([`crate::shares`]) and acts on its verdicts (forward or
//! drop a gossip message, penalise a peer).

mod event_loop;
pub(crate) mod handle;
pub mod peers;
pub mod protocol;

use std::path::PathBuf;
use std::time::Duration;

use libp2p::gossipsub::MessageId;
use libp2p::identity::Keypair;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use sharechain::NetworkParams;
use thiserror::Error;

pub use handle::{P2pHandle, PeerInfo, RequestError};
pub use peers::Offence;
pub use protocol::{ChainStatus, Names, SyncRequest, SyncResponse};

/// How the share network is set up.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// The share chain's network parameters (names, identifier, default port).
    pub params: &'static NetworkParams,
    /// Addresses to listen on (e.g. `/ip4/0.0.0.0/tcp/9333`).
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start (from `bootstrap_addrs.txt` and `--bootstrap`).
    pub bootstrap: Vec<Multiaddr>,
    /// The node key; `None` loads or creates `node_key` in `datadir` (or a fresh one without it).
    pub keypair: Option<Keypair>,
    /// Where the node key and the address book (`peers.txt`) live.
    pub datadir: Option<PathBuf>,
    /// How long a misbehaving peer stays banned.
    pub ban_duration: Duration,
    /// Most established connections.
    pub max_connections: u32,
    /// Gossip messages and sync requests a peer may send per second (sustained), and at once.
    pub rate_per_sec: f64,
    /// How many of them a peer may send at once (the token bucket's size).
    pub rate_burst: f64,
    /// Peers the node tries to keep (dialling kad discoveries and the address book below it).
    pub target_peers: usize,
    /// The wire names (topics, sync protocol) of the share kind this swarm carries; `None` for
    /// the Bitcoin kind's on `params`' network ([`Names::new`]). See
    /// [`crate::shares::ShareKind::names`].
    pub names: Option<Names>,
}

impl P2pConfig {
    /// Defaults for `params`' network, listening on its default port on all interfaces.
    pub fn new(params: &'static NetworkParams) -> Self {
        P2pConfig {
            params,
            listen: vec![format!("/ip4/0.0.0.0/tcp/{}", params.p2p_port)
                .parse()
                .expect("valid multiaddr")],
            bootstrap: Vec::new(),
            keypair: None,
            datadir: None,
            ban_duration: Duration::from_secs(3600),
            max_connections: 64,
            rate_per_sec: 100.0,
            rate_burst: 1000.0,
            target_peers: 8,
            names: None,
        }
    }
}

impl P2pConfig {
    /// Adds the bootstrap peers of this network from a `bootstrap_addrs.txt` text and the
    /// repeatable `--bootstrap MULTIADDR` flags. Returns the lines that did not parse (to log).
    pub fn add_bootstrap(&mut self, file_text: &str, flags: &[Multiaddr]) -> Vec<String> {
        let (addrs, bad) = peers::parse_bootstrap(file_text, self.params.name);
        for a in addrs.into_iter().chain(flags.iter().cloned()) {
            if !self.bootstrap.contains(&a) {
                self.bootstrap.push(a);
            }
        }
        bad
    }
}

/// Why the network could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum P2pError {
    /// The node key could not be read, decoded or written.
    #[error("node key {path}: {source}")]
    Key {
        /// The key file (`node_key` in the data directory).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The libp2p transport or behaviour could not be built; holds the reason.
    #[error("transport: {0}")]
    Transport(String),
    /// A listen address could not be bound.
    #[error("listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why it failed.
        reason: String,
    },
}

/// How shares reached the node (the share service reports its verdict back by this).
#[derive(Debug, Clone)]
pub enum Via {
    /// A gossip message awaiting validation before it is forwarded.
    Gossip(MessageId),
    /// A sync response to our request.
    Sync,
}

/// A sync request from a peer, to be answered through [`P2pHandle::respond`].
#[derive(Debug)]
pub struct ReplyChannel(pub(crate) ResponseChannel<SyncResponse>);

/// What the network delivers to the share service.
#[derive(Debug)]
#[non_exhaustive]
pub enum Inbound {
    /// Encoded shares from `from` (gossip: one share; sync: newest first).
    Shares {
        /// The peer that sent them.
        from: PeerId,
        /// The shares' wire bytes.
        shares: Vec<Vec<u8>>,
        /// Gossip or sync, for the verdict to go back by.
        via: Via,
    },
    /// A peer asks for shares or our status.
    Request {
        /// The asking peer.
        from: PeerId,
        /// What it asks for.
        request: SyncRequest,
        /// Where the answer goes.
        reply: ReplyChannel,
    },
    /// A peer on our network connected (identify confirmed the network).
    PeerReady(PeerId),
    /// A peer disconnected.
    PeerGone(PeerId),
}

/// Loads the node key from `datadir/node_key` (protobuf encoding), creating it on first start.
pub fn load_or_create_key(datadir: &std::path::Path) -> Result<Keypair, P2pError> {
    let path = datadir.join("node_key");
    let err = |source| P2pError::Key {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| err(std::io::Error::other(e)))?;
            std::fs::create_dir_all(datadir).map_err(err)?;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes).map_err(err)?;
            std::fs::rename(&tmp, &path).map_err(err)?;
            Ok(key)
        }
        Err(e) => Err(err(e)),
    }
}

/// Starts the share network on the current tokio runtime: returns the handle and the inbound
/// channel (for the share service). The loop ends when every handle is dropped or on
/// [`P2pHandle::shutdown`].
pub async fn spawn(
    config: P2pConfig,
) -> Result<(P2pHandle, tokio::sync::mpsc::Receiver<Inbound>), P2pError> {
    event_loop::spawn(config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_merges_the_file_section_and_the_flags() {
        let mut cfg = P2pConfig::new(&NetworkParams::REGTEST);
        let flag: Multiaddr = "/ip4/10.0.0.1/tcp/29333".parse().unwrap();
        let text = "[mainnet]\n/ip4/1.1.1.1/tcp/9333\n[regtest]\n/ip4/10.0.0.2/tcp/29333\nbogus\n";
        let bad = cfg.add_bootstrap(text, &[flag.clone(), flag.clone()]);
        assert_eq!(bad.len(), 1);
        assert_eq!(
            cfg.bootstrap,
            vec!["/ip4/10.0.0.2/tcp/29333".parse().unwrap(), flag]
        );
    }
}
