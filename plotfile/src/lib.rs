//! Reads chiapos v1 plot files and answers challenges with exactly chiapos's qualities and full
//! proofs, with reads planned for storage where each round trip is slow.
//!
//! - [`Prover`]: opens a plot on any [`Storage`], looks up qualities ([`Prover::lookup`],
//!   then [`Lookup::full_proof`] reusing the lookup's reads) or qualities and proofs in one walk
//!   ([`Prover::prove`]). Every proof is checked with `sharechain::pospace` before it is
//!   returned, so a corrupt plot gives an error, never a wrong proof.
//! - [`Storage`]: batches of byte ranges; [`FileStorage`], [`HttpStorage`] (range requests to
//!   an S3-compatible URL), [`MemStorage`], and [`Latency`] (a fixed delay per batch, counted).
//! - [`format`], [`park`], [`fse`]: the file layout and the decoders (public for fuzzing).
//!
//! Only uncompressed v1.0 plots are read; bladebit-compressed and other formats are refused
//! with a typed [`PlotError`].

// Every public item is documented (the node crate follows once its Chia modules are).
#![warn(missing_docs)]

mod checkpoint;
pub mod format;
pub mod fse;
mod http;
pub mod park;
mod prover;
mod reader;
mod storage;

pub use format::PlotHeader;
pub use http::HttpStorage;
pub use prover::{Lookup, Options, Proof, Proved, Prover};
pub use storage::{FileStorage, IoCounts, Latency, MemStorage, ReadRequest, Storage, StorageError};

use park::ParkError;
use sharechain::pospace::VerifyError;

/// Why a plot cannot be opened or cannot answer a challenge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The file does not start with chiapos's magic.
    #[error("not a chiapos plot (bad magic)")]
    BadMagic,
    /// A bladebit-compressed plot; only uncompressed plots are read.
    #[error("compressed plot (bladebit format) is not supported")]
    CompressedPlot,
    /// A `.plot2` (proof of space v2) file.
    #[error("v2 plots (.plot2) are not supported")]
    PlotV2,
    /// A format description other than "v1.0" (e.g. a compressed variant).
    #[error("plot format {0:?} is not supported (only uncompressed v1.0)")]
    UnsupportedFormat(String),
    /// k outside what chiapos plots.
    #[error("k {0} is out of range")]
    KOutOfRange(u8),
    /// A range the plot's layout needs lies past the end of the file.
    #[error("truncated plot: {needed} bytes at offset {offset} needed, file has {len}")]
    Truncated {
        /// Where the range starts.
        offset: u64,
        /// Its length.
        needed: u64,
        /// The file's length.
        len: u64,
    },
    /// The table pointers contradict each other or the header.
    #[error("bad table pointers: {0}")]
    BadPointers(&'static str),
    /// A park of line-point table `table` does not decode.
    #[error("corrupt park in table {table}: {source}")]
    CorruptPark {
        /// The table (1..=6).
        table: u8,
        /// What is wrong.
        source: ParkError,
    },
    /// The C1/C3 checkpoints are inconsistent.
    #[error("corrupt checkpoint table: {0}")]
    CorruptCheckpoint(&'static str),
    /// A C3 park does not decode.
    #[error("corrupt C3 park: {0}")]
    CorruptC3(ParkError),
    /// There is no proof with this index for the challenge.
    #[error("no proof {index} for this challenge ({count} found)")]
    NoProof {
        /// The index asked for.
        index: usize,
        /// Proofs there are.
        count: usize,
    },
    /// The x-values read from the plot do not form a valid proof: the plot is corrupt.
    #[error("proof read from the plot does not verify (corrupt plot): {0}")]
    BadProof(VerifyError),
    /// The full proof's quality differs from the one the lookup read: the plot is corrupt.
    #[error("full proof disagrees with the quality lookup (corrupt plot)")]
    QualityMismatch,
}
