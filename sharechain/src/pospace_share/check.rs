//! What a share proves on its own, before the chain is consulted: it answers a known signage
//! point as the node saw it, its proof of space is valid for that signage point (plot filter at
//! the peak height's prefix bits, challenge from the filter, the proof itself, exactly as chia's
//! `verify_and_get_quality_string`), its quality needs fewer iterations than the network's pool
//! limit at the share's difficulty, and the plot key signed it. [`precheck`] does the costly
//! parts for many shares at once (proofs over threads, signatures in one batch).

use thiserror::Error;

use super::batch::{verify_signatures, SignatureCheck};
use super::params::ChiaNetwork;
use super::signage::{KnownSignagePoints, SignagePoint};
use super::wire::PoSpaceShare;
use crate::pospace::{
    calculate_iterations_quality, verify_and_get_quality_string, IterationsError, PosError,
    ProofRef,
};
use crate::share::ShareHash;

/// Why a share does not count (or, for [`ShareError::UnknownSignagePoint`], not yet).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShareError {
    /// Pending: the signage point is not known to this node (yet).
    #[error("signage point {} is not known (yet)", hex::encode(.0))]
    UnknownSignagePoint([u8; 32]),
    /// The signage point is known, but at a different index or peak height than the share says.
    #[error("signage point index {got_index} / peak height {got_peak} differ from the known {index} / {peak}")]
    SignagePointMismatch {
        /// Signage point index the share names.
        got_index: u8,
        /// Peak height the share names.
        got_peak: u32,
        /// Signage point index this node knows for that hash.
        index: u8,
        /// Peak height this node knows for that hash.
        peak: u32,
    },
    /// The signage point is too far behind the parent share's.
    #[error("signage point is {lag} signage points older than the parent's (at most {max})")]
    StaleSignagePoint {
        /// How many signage points older than the parent's it is.
        lag: u64,
        /// Largest lag allowed.
        max: u32,
    },
    /// The timestamp is too far in the future.
    #[error("timestamp {got} is more than {max} s ahead of the local clock {now}")]
    FutureTimestamp {
        /// The share's timestamp, Unix seconds.
        got: u64,
        /// The local clock, Unix seconds.
        now: u64,
        /// Largest lead allowed, in seconds (`max_future_secs`).
        max: u64,
    },
    /// The timestamp goes back from the parent's.
    #[error("timestamp {got} is before the parent's {parent}")]
    Timestamp {
        /// The share's timestamp, Unix seconds.
        got: u64,
        /// The parent's timestamp, Unix seconds.
        parent: u64,
    },
    /// The share's difficulty is not the one the chain's retarget sets.
    #[error("difficulty {got} chosen by the farmer: the chain requires {required}")]
    FarmerDifficulty {
        /// Difficulty the share claims.
        got: u64,
        /// Difficulty the chain requires at this point.
        required: u64,
    },
    /// The proof of space does not verify (or fails the plot filter).
    #[error("proof of space: {0}")]
    Proof(#[from] PosError),
    /// The required iterations cannot be computed from the proof's quality.
    #[error("required iterations: {0}")]
    Iterations(#[from] IterationsError),
    /// The proof's quality is too poor for the share difficulty.
    #[error("required iterations {iters} are not below {limit}")]
    TooManyIterations {
        /// Required iterations of the proof (chia's `calculate_iterations_quality`).
        iters: u64,
        /// The network's limit: one signage-point interval of the pool's sub-slot iterations.
        limit: u64,
    },
    /// The same plot already has a share for this signage point in the PPLNS window; holds the
    /// earlier share's hash.
    #[error("this plot already answered this signage point in share {0} of the window")]
    DuplicateProof(ShareHash),
    /// The share's AugSchemeMPL signature does not verify against the plot public key.
    #[error("signature does not verify against the plot public key")]
    Signature,
}

impl ShareError {
    /// True for "not yet decidable": the share waits for its signage point.
    pub fn is_pending(&self) -> bool {
        matches!(self, ShareError::UnknownSignagePoint(_))
    }
}

/// What the stand-alone checks found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quality {
    /// The proof's quality string.
    pub quality: [u8; 32],
    /// Required iterations at the share's difficulty.
    pub iters: u64,
}

/// The known signage point the share answers, with the index and peak height it claims.
pub fn signage_point(
    share: &PoSpaceShare,
    known: &KnownSignagePoints,
) -> Result<SignagePoint, ShareError> {
    let c = share.content();
    let sp = known
        .get(&c.challenge_hash, &c.sp_hash)
        .ok_or(ShareError::UnknownSignagePoint(c.sp_hash))?;
    if sp.index != c.signage_point_index || sp.peak_height != c.peak_height {
        return Err(ShareError::SignagePointMismatch {
            got_index: c.signage_point_index,
            got_peak: c.peak_height,
            index: sp.index,
            peak: sp.peak_height,
        });
    }
    Ok(*sp)
}

/// The proof of space for the share's signage point and its required iterations.
pub fn check_proof(share: &PoSpaceShare, network: &ChiaNetwork) -> Result<Quality, ShareError> {
    let c = share.content();
    let pos = &c.proof_of_space;
    let challenge = pos.challenge.to_bytes();
    let proof = ProofRef {
        plot_id: share.plot_id(),
        k: pos.size,
        challenge: &challenge,
        proof: pos.proof.as_slice(),
    };
    let quality = verify_and_get_quality_string(
        &proof,
        &c.challenge_hash,
        &c.sp_hash,
        network.plot_filter_prefix_bits(c.peak_height),
        network.min_k,
    )?;
    let iters = calculate_iterations_quality(
        network.difficulty_constant_factor,
        &quality,
        pos.size,
        c.difficulty,
        &c.sp_hash,
    )?;
    if iters >= network.iters_limit() {
        return Err(ShareError::TooManyIterations {
            iters,
            limit: network.iters_limit(),
        });
    }
    Ok(Quality { quality, iters })
}

fn signature_check(share: &PoSpaceShare) -> SignatureCheck<'_> {
    SignatureCheck {
        key: &share.content().proof_of_space.plot_public_key,
        message: share.message(),
        signature: share.signature(),
        points: share.curve_points(),
    }
}

/// A share from the future: its timestamp may be at most `max_future_secs` ahead of `now` (the
/// caller's clock, seconds since the Unix epoch). Checked on arrival, not as a chain rule: a
/// share that was early is not invalid later.
pub fn check_time(share: &PoSpaceShare, network: &ChiaNetwork, now: u64) -> Result<(), ShareError> {
    let got = share.content().timestamp;
    if got > now.saturating_add(network.max_future_secs) {
        return Err(ShareError::FutureTimestamp {
            got,
            now,
            max: network.max_future_secs,
        });
    }
    Ok(())
}

/// The plot key's signature of the share.
pub fn check_signature(share: &PoSpaceShare) -> Result<(), ShareError> {
    if signature_check(share).verify() {
        Ok(())
    } else {
        Err(ShareError::Signature)
    }
}

/// Every stand-alone check: known signage point, proof, iterations, signature.
pub fn check_share(
    share: &PoSpaceShare,
    network: &ChiaNetwork,
    known: &KnownSignagePoints,
) -> Result<Quality, ShareError> {
    signage_point(share, known)?;
    let quality = check_proof(share, network)?;
    check_signature(share)?;
    Ok(quality)
}

/// [`check_proof`] and [`check_signature`] for many shares: proofs over up to `threads`
/// threads, signatures in one batch. Results are in input order and equal the one-by-one ones.
pub fn precheck(
    shares: &[&PoSpaceShare],
    network: &ChiaNetwork,
    threads: usize,
) -> Vec<Result<Quality, ShareError>> {
    let threads = threads.clamp(1, shares.len().max(1));
    let chunk = shares.len().div_ceil(threads).max(1);
    let check_all = |part: &[&PoSpaceShare]| -> Vec<Result<Quality, ShareError>> {
        part.iter().map(|s| check_proof(s, network)).collect()
    };
    let proofs: Vec<Result<Quality, ShareError>> = if threads == 1 {
        check_all(shares)
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .chunks(chunk)
                .map(|part| (part, scope.spawn(move || check_all(part))))
                .collect();
            handles
                .into_iter()
                // A thread that died costs speed, not results.
                .flat_map(|(part, handle)| handle.join().unwrap_or_else(|_| check_all(part)))
                .collect()
        })
    };
    let checks: Vec<SignatureCheck<'_>> = shares.iter().map(|s| signature_check(s)).collect();
    let signatures = verify_signatures(&checks);
    proofs
        .into_iter()
        .zip(signatures)
        .map(|(proof, sig_ok)| match proof {
            Ok(q) if sig_ok => Ok(q),
            Ok(_) => Err(ShareError::Signature),
            Err(e) => Err(e),
        })
        .collect()
}
