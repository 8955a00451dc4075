//! Consensus rules of the p2pool share chain.
//!
//! This crate is pure: no async runtime, no sockets, no clock, no disk. Time is passed in as an
//! argument, so everything here can be unit-tested, property-tested, fuzzed and benchmarked in
//! isolation. If it decides *what is valid*, it lives here.
//!
//! - [`params`]: per-network constants.
//! - [`share`]: wire types and their encoding, stand-alone checks ([`share::CheckedShare`]).
//! - [`gentx`], [`hash_link`]: the coinbase and the midstate proof of its ending.
//! - [`pplns`]: incremental PPLNS windows and the payout rule.
//! - [`target`]: work, difficulty and the retarget.
//! - [`pospace`]: the Chia proof-of-space v1 verifier (the base of PoSpace shares).
//! - [`pospace_share`]: Chia proof-of-space shares: wire type, checks, chain rules, payouts.
//! - [`build`]: a new share on the chain (used to mine and to verify).
//! - [`tracker`], [`chain`]: the generic share graph and best-chain choice; [`verify`] plugs the
//!   Bitcoin share rules into it.

// Every public item is documented (the node crate follows once its Chia modules are).
#![warn(missing_docs)]

pub mod build;
pub mod chain;
pub mod encode;
pub mod gentx;
pub mod hash_link;
pub mod params;
pub mod pospace;
pub mod pospace_share;
pub mod pplns;
pub mod share;
pub mod target;
#[doc(hidden)]
pub mod testkit;
pub mod tracker;
pub mod verify;

pub use build::{generate, prepare, ShareRequest, ShareTemplate, WorkBase};
pub use params::NetworkParams;
pub use share::{CheckedShare, Share, ShareHash};
pub use tracker::{Changes, ShareTracker};
pub use verify::{new_tracker, ShareVerifier, Tracker, VerifyError};
