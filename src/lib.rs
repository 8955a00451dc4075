//! The p2pool node: every piece of I/O around the pure `sharechain` crate.
//!
//! See `docs/ARCHITECTURE.md` for what each module owns and how data flows between them.

#![warn(missing_docs)]

pub mod bitcoind;
pub mod chia;
pub mod cli;
pub mod delivery;
/// The embedded regtest chain (its own crate, `devchain/`).
#[cfg(feature = "devchain")]
pub use devchain;
pub mod harvester;
pub mod http;
/// Rate-limited log lines (shared with the devchain, in `common/`).
pub use p2pool_common::{log_limited, logging};
pub mod node;
pub mod p2p;
pub mod shares;
pub mod stats;
pub mod store;
pub mod submit;
pub mod work;
pub mod worker;

/// The cores this process may use, read once: the standard library's answer re-reads the
/// cgroup quota files on every call, and per-share and per-fan-out code asks for it.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}
