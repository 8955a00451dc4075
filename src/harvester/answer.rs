//! Answers to the farmer that need the plots: proofs and `farming_info` for a signage point
//! (plots passing the filter looked up on up to [`LOOKUP_THREADS`] threads) and the plot-key half
//! of `respond_signatures`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chia_protocol::Bytes32;
use tokio::sync::mpsc;

use super::plots::{Consensus, Plot};
use super::protocol::{self as p, msg, Frame};

/// Threads looking up the plots that pass the filter for one signage point.
pub const LOOKUP_THREADS: usize = 8;

/// Runs on a blocking thread: proofs for every plot passing the filter (looked up on up to
/// [`LOOKUP_THREADS`] threads, as chia's harvester uses a pool, since each lookup waits on reads),
/// then `farming_info`.
pub(crate) fn answer_signage_point(
    plots: &[Arc<Plot>],
    sp: &p::NewSignagePointHarvester2,
    consensus: &Consensus,
    tx: &mpsc::Sender<Frame>,
) {
    let started = Instant::now();
    let passing: Vec<&Arc<Plot>> = plots
        .iter()
        .filter(|plot| plot.passes_filter(sp, consensus))
        .collect();
    let proofs = AtomicU32::new(0);
    let per_thread = passing.len().div_ceil(LOOKUP_THREADS).max(1);
    std::thread::scope(|scope| {
        for group in passing.chunks(per_thread) {
            let proofs = &proofs;
            scope.spawn(move || {
                for plot in group {
                    proofs.fetch_add(lookup_plot(plot, sp, consensus, tx), Ordering::Relaxed);
                }
            });
        }
    });
    let lookup_time = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let (passed, proofs) = (
        u32::try_from(passing.len()).unwrap_or(u32::MAX),
        proofs.into_inner(),
    );
    let info = p::FarmingInfo {
        challenge_hash: sp.challenge_hash,
        sp_hash: sp.sp_hash,
        timestamp: unix_now(),
        passed,
        proofs,
        total_plots: u32::try_from(plots.len()).unwrap_or(u32::MAX),
        lookup_time,
    };
    tracing::debug!(
        index = sp.signage_point_index,
        passed,
        proofs,
        lookup_us = lookup_time,
        "signage point"
    );
    if let Ok(frame) = Frame::new(msg::FARMING_INFO, None, "farming_info", &info) {
        let _ = tx.blocking_send(frame);
    }
}

/// Sends `new_proof_of_space` for each good proof of one plot; the number sent.
fn lookup_plot(
    plot: &Plot,
    sp: &p::NewSignagePointHarvester2,
    consensus: &Consensus,
    tx: &mpsc::Sender<Frame>,
) -> u32 {
    let found = match plot.lookup(sp, consensus) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(plot = %plot.path.display(), error = %e, "lookup failed");
            return 0;
        }
    };
    let mut sent = 0;
    for (quality, proof) in found {
        let message = p::NewProofOfSpace {
            challenge_hash: sp.challenge_hash,
            sp_hash: sp.sp_hash,
            plot_identifier: format!("{}{}", hex::encode(quality), plot.filename()),
            proof,
            signage_point_index: sp.signage_point_index,
            include_source_signature_data: false,
            farmer_reward_address_override: None,
            fee_info: None,
        };
        match Frame::new(
            msg::NEW_PROOF_OF_SPACE,
            None,
            "new_proof_of_space",
            &message,
        ) {
            Ok(frame) => {
                tracing::info!(plot = %plot.path.display(), quality = %hex::encode(quality), "proof found");
                if tx.blocking_send(frame).is_err() {
                    break; // the session ended
                }
                sent += 1;
            }
            Err(e) => tracing::warn!(error = %e, "proof not sent"),
        }
    }
    sent
}

/// `respond_signatures` for a plot named by `plot_identifier` (quality hex ‖ path); `None` for
/// an unknown plot, as chia's harvester (the farmer times out).
pub(crate) fn sign(
    plots: &[Arc<Plot>],
    request: &p::RequestSignatures,
) -> Option<p::RespondSignatures> {
    let path = request.plot_identifier.get(64..)?;
    let Some(plot) = plots.iter().find(|p| p.filename() == path) else {
        tracing::warn!(plot = %path, "signature request for an unknown plot");
        return None;
    };
    let message_signatures = request
        .messages
        .iter()
        .map(|m: &Bytes32| (*m, plot.sign(m.as_ref())))
        .collect();
    Some(p::RespondSignatures {
        plot_identifier: request.plot_identifier.clone(),
        challenge_hash: request.challenge_hash,
        sp_hash: request.sp_hash,
        local_pk: plot.local_sk.public_key(),
        farmer_pk: plot.farmer_public_key,
        message_signatures,
        include_source_signature_data: false,
        farmer_reward_address_override: None,
    })
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
