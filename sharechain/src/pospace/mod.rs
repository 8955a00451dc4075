//! Chia proof of space v1 (chiapos) verification in pure Rust, with Chia's surrounding math.
//!
//! - [`validate_proof`]: a proof (64 x-values of k bits) → its 32-byte quality string, bit for bit
//!   as chiapos's `Verifier::ValidateProof` computes it, or a typed [`VerifyError`] (never a zero
//!   quality). [`validate_batch`] spreads many proofs over threads.
//! - [`calculate_iterations_quality`], [`expected_plot_size`]: what a quality is worth
//!   (chia-blockchain `pot_iterations.py`, `pos_quality.py`).
//! - [`passes_plot_filter`], [`pos_challenge`], [`plot_id_og`], [`plot_id_pool`]: which plots may
//!   answer a signage point, and with which challenge (chia-blockchain `proof_of_space.py`);
//!   [`verify_and_get_quality_string`] puts them together with the proof check, as a node does.
//! - [`proof_order`]: x-values as a plot file stores them → proof order (a prover's last step).
//! - [`VectorLine`]: the text format of chiapos test vectors, as `p2pool chia verify` reads it.
//!
//! Where chiapos's code and its written spec disagree, this follows the code (see
//! `docs/PROTOCOLS.md` §6.1). At k = 50 chiapos's table-4 metadata length overflows an 8-bit
//! variable (5k + 6 = 256); here the full 4k digest bits are taken, which is the intended
//! definition.

mod batch;
mod bits;
mod chacha8;
mod consensus;
mod f1;
mod fx;
mod iterations;
mod line;
mod plot_id;
mod reorder;
mod verify;

pub use batch::{validate_batch, ProofRef};
pub use consensus::{verify_and_get_quality_string, PosError, MAINNET_MIN_K};
pub use iterations::{
    calculate_iterations_quality, expected_plot_size, IterationsError, DIFFICULTY_CONSTANT_FACTOR,
    POOL_PARTIAL_ITERS_LIMIT, POOL_SUB_SLOT_ITERS,
};
pub use line::{LineError, VectorLine};
pub use plot_id::{
    passes_plot_filter, plot_filter_input, plot_filter_prefix_bits, plot_id_og, plot_id_pool,
    pos_challenge,
};
pub use reorder::proof_order;
pub use verify::{proof_len, quality_string, validate_proof, PROOF_X_VALUES};

/// Smallest k the verifier accepts (chiapos's plotter minimum; Chia's consensus wants ≥ 32).
pub const MIN_K: u8 = 18;
/// Largest k the verifier accepts (Chia's consensus maximum).
pub const MAX_K: u8 = 50;
/// Extra output bits of the f functions: y has k + 6 bits.
pub const EXTRA_BITS: u32 = 6;

/// Why a proof of space is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// k outside [`MIN_K`]..=[`MAX_K`].
    #[error("k {0} is out of range {MIN_K}..={MAX_K}")]
    KOutOfRange(u8),
    /// The proof is not exactly 8k bytes.
    #[error("proof is {got} bytes, k {k} needs {expected}")]
    BadLength {
        /// The claimed k.
        k: u8,
        /// 8k.
        expected: usize,
        /// The proof's length.
        got: usize,
    },
    /// Two sibling entries do not match when computing table `table` (2..=7).
    #[error("no match at table {table}")]
    NoMatch {
        /// The table whose inputs fail to match.
        table: u8,
    },
    /// f7 is not the first k bits of the challenge.
    #[error("challenge mismatch")]
    ChallengeMismatch,
}
