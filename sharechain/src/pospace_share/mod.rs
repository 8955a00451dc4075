//! Chia proof-of-space shares: a share chain whose shares are Chia pool partials, verified as
//! Chia verifies them, tracked by the same generic tracker as Bitcoin shares.
//!
//! - [`params`]: per-network constants ([`ChiaNetwork`]: mainnet, testnet11, simulator0, regtest).
//! - [`wire`]: [`PoSpaceShare`] and its encoding; decoding refuses what Chia refuses.
//! - [`signage`]: signage points the node knows (facts given by the caller).
//! - [`check`]: stand-alone checks (signage point, proof, iterations, signature), in batches too.
//! - [`batch`]: many BLS signatures in one weighted multi-pairing.
//! - [`verify`]: the chain rules ([`PoSpaceVerifier`]) and the retarget.
//! - [`payout`]: the PPLNS window and the exact split of a block's pool reward.
//!
//! Pure like the rest of the crate: time, known signage points and chain facts are arguments.

pub mod batch;
pub mod check;
pub mod params;
pub mod payout;
pub mod signage;
#[doc(hidden)]
pub mod testkit;
pub mod verify;
pub mod wire;

pub use check::{check_share, check_time, precheck, Quality, ShareError};
pub use params::ChiaNetwork;
pub use payout::{pool_reward_part, split_reward, window_weights, Payout};
pub use signage::{KnownSignagePoints, SignagePoint};
pub use verify::{
    insert_many, new_pospace_tracker, required_difficulty, PoSpaceTracker, PoSpaceVerifier,
};
pub use wire::{DecodeError, PoSpaceShare, ShareContent, SHARE_FORMAT_VERSION};
