//! A proof from a harvester, checked at once: the signage point must be one this node announced
//! and not late, the proof valid for it, good enough at the share difficulty, and the first of
//! its plot for that signage point (the others are counted, never signed). A proof that passes becomes unsigned share content; the harvester's signature
//! (`respond_signatures`) and the farmer key's complete it.

use chia_bls::{PublicKey, Signature};
use chia_protocol::ProofOfSpace;
use sharechain::pospace::{
    calculate_iterations_quality, plot_id_og, plot_id_pool, proof_len,
    verify_and_get_quality_string, PosError, ProofRef,
};
use sharechain::pospace_share::{
    ChiaNetwork, PoSpaceShare, ShareContent, ShareError, SignagePoint,
};

use super::keys::{sign_aug, taproot_sk};
use super::{Farmer, LATE_AFTER_SIGNAGE_POINTS};
use crate::chia::protocol::{NewProofOfSpace, RespondSignatures};

/// Why a proof or its signatures did not become a share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    #[error("not taking proofs: {0}")]
    Gated(String),
    #[error("signage point not announced by this node")]
    UnknownSignagePoint,
    #[error("late: {behind} signage points behind (at most {LATE_AFTER_SIGNAGE_POINTS})")]
    Late { behind: u64 },
    /// Another proof of a plot for a signage point it already has a proof for (a plot can
    /// have several for one challenge): only the first becomes a share, as the share chain
    /// takes one share per plot and signage point.
    #[error("this plot already has a proof for this signage point")]
    DuplicatePlotSignagePoint,
    #[error("malformed proof of space: {0}")]
    Malformed(&'static str),
    #[error("invalid proof of space: {0}")]
    InvalidProof(PosError),
    #[error("below the share difficulty: {iters} iterations, limit {limit}")]
    BelowDifficulty { iters: u64, limit: u64 },
    #[error("signatures for a plot not made with this farmer's key")]
    ForeignFarmerKey,
    #[error("harvester keys do not add up to the plot key")]
    PlotKeyMismatch,
    #[error("no signature for the share message")]
    MissingSignature,
    #[error("share does not check: {0}")]
    Share(ShareError),
}

impl Refused {
    /// Counter name.
    pub fn counter(&self) -> &'static str {
        match self {
            Refused::Gated(_) => "proof_not_taken",
            Refused::UnknownSignagePoint => "proof_unknown_signage_point",
            Refused::Late { .. } => "proof_late",
            Refused::DuplicatePlotSignagePoint => "proof_duplicate_plot_sp",
            Refused::Malformed(_) => "proof_malformed",
            Refused::InvalidProof(_) => "proof_invalid",
            Refused::BelowDifficulty { .. } => "proof_below_difficulty",
            Refused::ForeignFarmerKey => "signature_foreign_farmer_key",
            Refused::PlotKeyMismatch => "signature_plot_key_mismatch",
            Refused::MissingSignature => "signature_missing",
            Refused::Share(_) => "share_invalid",
        }
    }
}

/// A proof that passed; waiting for the harvester's signature.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub content: ShareContent,
    pub message: [u8; 32],
    /// When the proof's message was read from the connection.
    pub received: std::time::Instant,
    /// The same moment in seconds since the Unix epoch, for the API.
    pub received_at: u64,
}

/// Checks a `new_proof_of_space`, read from the harvester's connection at `received`, and
/// builds the share content it would be.
pub fn check_proof(
    farmer: &Farmer,
    np: &NewProofOfSpace,
    received: std::time::Instant,
) -> Result<Candidate, Refused> {
    if let Some(why) = farmer.gate() {
        return Err(Refused::Gated(why));
    }
    let network = farmer.config.network;
    let challenge_hash = np.challenge_hash.to_bytes();
    let sp_hash = np.sp_hash.to_bytes();
    let (number, sp): (u64, SignagePoint) = {
        let recent = farmer.recent.lock();
        recent
            .find(&challenge_hash, &sp_hash)
            .map(|a| (a.number, a.point))
            .ok_or(Refused::UnknownSignagePoint)?
    };
    if sp.index != np.signage_point_index {
        return Err(Refused::UnknownSignagePoint);
    }
    let latest = farmer.latest().map_or(number, |a| a.number);
    let behind = latest.saturating_sub(number);
    if behind > LATE_AFTER_SIGNAGE_POINTS {
        return Err(Refused::Late { behind });
    }
    let pos = &np.proof;
    let filter_bits = network.plot_filter_prefix_bits(sp.peak_height);
    let (plot_id, quality) = verify_proof(network, pos, &challenge_hash, &sp_hash, filter_bits)?;
    let work = farmer.sink.work();
    let iters = calculate_iterations_quality(
        network.difficulty_constant_factor,
        &quality,
        pos.size,
        work.difficulty,
        &sp_hash,
    )
    .map_err(|_| Refused::Malformed("iterations out of range"))?;
    if iters >= network.iters_limit() {
        return Err(Refused::BelowDifficulty {
            iters,
            limit: network.iters_limit(),
        });
    }
    if !farmer.recent.lock().answered.insert((plot_id, sp_hash)) {
        return Err(Refused::DuplicatePlotSignagePoint);
    }
    let content = ShareContent {
        version: sharechain::pospace_share::SHARE_FORMAT_VERSION,
        prev_share: work.prev,
        challenge_hash,
        sp_hash,
        signage_point_index: sp.index,
        peak_height: sp.peak_height,
        proof_of_space: pos.clone(),
        payout_puzzle_hash: farmer.config.payout_puzzle_hash,
        difficulty: work.difficulty,
        timestamp: super::now_secs(),
    };
    let message = content.message(network);
    Ok(Candidate {
        content,
        message,
        received,
        received_at: super::now_secs(),
    })
}

/// A v1 proof of space for a signage point: its shape checked against `network` (one pool
/// target, a plot size of the network, a proof as long as its size says), then the proof itself
/// with `filter_bits` of plot filter. Its plot id and quality string.
pub(super) fn verify_proof(
    network: &ChiaNetwork,
    pos: &ProofOfSpace,
    challenge_hash: &[u8; 32],
    sp_hash: &[u8; 32],
    filter_bits: u8,
) -> Result<([u8; 32], [u8; 32]), Refused> {
    if pos.version != 0 {
        return Err(Refused::Malformed("v2 proofs are not supported yet"));
    }
    let plot_pk = pos.plot_public_key.to_bytes();
    let plot_id = match (&pos.pool_public_key, &pos.pool_contract_puzzle_hash) {
        (Some(pool_pk), None) => plot_id_og(&pool_pk.to_bytes(), &plot_pk),
        (None, Some(hash)) => plot_id_pool(&hash.to_bytes(), &plot_pk),
        _ => return Err(Refused::Malformed("needs exactly one pool target")),
    };
    if pos.size < network.min_k || pos.size > network.max_k {
        return Err(Refused::Malformed("plot size outside the network's range"));
    }
    if pos.proof.len() != proof_len(pos.size) {
        return Err(Refused::Malformed("proof length does not match k"));
    }
    let challenge = pos.challenge.to_bytes();
    let proof = ProofRef {
        plot_id: &plot_id,
        k: pos.size,
        challenge: &challenge,
        proof: pos.proof.as_slice(),
    };
    let quality =
        verify_and_get_quality_string(&proof, challenge_hash, sp_hash, filter_bits, network.min_k)
            .map_err(Refused::InvalidProof)?;
    Ok((plot_id, quality))
}

/// Completes the share: the harvester's signature plus the farmer key's (and the taproot key's
/// for plot-NFT plots). The keys are checked here; the aggregate signature is verified by the
/// share service when the share is submitted (once, batched with the shares waiting beside it).
pub fn complete(
    farmer: &Farmer,
    candidate: &Candidate,
    reply: &RespondSignatures,
) -> Result<PoSpaceShare, Refused> {
    let keys = &farmer.config.keys;
    if reply.farmer_pk != keys.farmer_pk() {
        return Err(Refused::ForeignFarmerKey);
    }
    let pos = &candidate.content.proof_of_space;
    let contract = pos.pool_contract_puzzle_hash.is_some();
    let mut plot_pk: PublicKey = reply.local_pk + &reply.farmer_pk;
    let taproot = contract.then(|| taproot_sk(&reply.local_pk, &reply.farmer_pk));
    if let Some(t) = &taproot {
        plot_pk += &t.public_key();
    }
    // The proof's keys were read without subgroup checks (`payload_unchecked_points`): the plot
    // key is now equal to a sum of checked keys; the pool key is checked here, for the proofs
    // that become shares.
    if plot_pk != pos.plot_public_key {
        return Err(Refused::PlotKeyMismatch);
    }
    if pos.pool_public_key.as_ref().is_some_and(|k| !k.is_valid()) {
        return Err(Refused::Malformed("pool public key not in the G1 subgroup"));
    }
    let harvester_sig: &Signature = reply
        .message_signatures
        .iter()
        .find(|(m, _)| m.to_bytes() == candidate.message)
        .map(|(_, s)| s)
        .ok_or(Refused::MissingSignature)?;
    let mut signature = harvester_sig.clone() + &keys.sign(&candidate.message, &plot_pk);
    if let Some(t) = &taproot {
        signature += &sign_aug(t, &candidate.message, &plot_pk);
    }
    let network = farmer.config.network;
    // The proof, its signage point and its iterations were checked on arrival
    // (`check_proof`) for this very content. The aggregate signature is checked once, by the
    // share service, together with the other shares waiting for it (one multi-pairing); a bad
    // harvester signature comes back from there as `ShareError::Signature`.
    candidate
        .content
        .sign(&signature, network)
        .map_err(|_| Refused::Malformed("share does not encode"))
}
