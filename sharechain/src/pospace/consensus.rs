//! A proof of space checked the way a Chia node checks one in a block or a pool partial
//! (`ProofOfSpace.verify_and_get_quality_string`): size limits, the challenge derived from the
//! signage point, the plot filter, then the proof itself.

use super::plot_id::{passes_plot_filter, pos_challenge};
use super::{ProofRef, VerifyError, MAX_K};

/// Mainnet `MIN_PLOT_SIZE`.
pub const MAINNET_MIN_K: u8 = 32;

/// Why a proof of space does not count for a signage point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PosError {
    /// k below the network's minimum or above [`MAX_K`].
    #[error("plot size k {k} is outside {min_k}..={MAX_K}")]
    PlotSize {
        /// The proof's k.
        k: u8,
        /// The minimum asked for.
        min_k: u8,
    },
    /// The proof's challenge is not `sha256(sha256(plot_id ‖ challenge_hash ‖ sp_hash))`.
    #[error("challenge is not derived from the plot id and signage point")]
    ChallengeNotDerived,
    /// The plot did not pass the plot filter for this signage point.
    #[error("plot does not pass the plot filter")]
    PlotFilter,
    /// The proof itself is invalid.
    #[error("invalid proof: {0}")]
    Proof(#[from] VerifyError),
}

/// Checks `proof` for the signage point `sp_hash` of the sub-slot `challenge_hash` with a
/// `prefix_bits` plot filter, accepting plots of `min_k..=MAX_K` ([`MAINNET_MIN_K`] on mainnet),
/// and returns its quality string. `proof.plot_id` must come from the proof's keys
/// ([`super::plot_id_og`] or [`super::plot_id_pool`]).
pub fn verify_and_get_quality_string(
    proof: &ProofRef<'_>,
    challenge_hash: &[u8; 32],
    sp_hash: &[u8; 32],
    prefix_bits: u8,
    min_k: u8,
) -> Result<[u8; 32], PosError> {
    if proof.k < min_k || proof.k > MAX_K {
        return Err(PosError::PlotSize { k: proof.k, min_k });
    }
    if pos_challenge(proof.plot_id, challenge_hash, sp_hash) != *proof.challenge {
        return Err(PosError::ChallengeNotDerived);
    }
    if !passes_plot_filter(prefix_bits, proof.plot_id, challenge_hash, sp_hash) {
        return Err(PosError::PlotFilter);
    }
    Ok(proof.validate()?)
}
