//! What the p2pool node and its embedded regtest chain (the `devchain` crate) both use, kept in
//! one place: the Bitcoin P2P message framing ([`wire`]) of the node's link to bitcoind and of the
//! devchain's P2P server, and rate-limited log lines ([`logging`], [`log_limited!`]).

// Every public item is documented (the node crate follows once its Chia modules are).
#![warn(missing_docs)]

pub mod logging;
pub mod wire;
