//! Submitting a block to the kernel and naming the outcome as Core's `submitblock` does.
//!
//! The kernel says accepted / duplicate / rejected and reports a coarse validation result through
//! its block-checked callback. The BIP22 reason string comes from the kernel's own log line for
//! the block ([`super::kernel_log`]); Core's checks mirrored in [`super::check`] name it when the
//! log does not, and cross-check it when it does.

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use bitcoinkernel::{BlockValidationResult, ProcessBlockResult, ValidationMode};

use super::chain::{now, ChainState};
use super::check::{reject_reason, witness_commitment_index, ParentContext};

/// What happened to a block handed to [`ChainState::submit_block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Valid and new.
    Accepted,
    /// Already known (and valid).
    Duplicate,
    /// Already known to be invalid.
    DuplicateInvalid,
    /// Stored but not connected (e.g. a side branch); Core's `inconclusive`.
    Inconclusive,
    /// Invalid, with Core's BIP22 reject reason.
    Rejected(String),
}

impl SubmitOutcome {
    /// Core's `submitblock` reply: `None` for success, else the BIP22 string.
    pub fn bip22(&self) -> Option<String> {
        match self {
            Self::Accepted => None,
            Self::Duplicate => Some("duplicate".into()),
            Self::DuplicateInvalid => Some("duplicate-invalid".into()),
            Self::Inconclusive => Some("inconclusive".into()),
            Self::Rejected(reason) => Some(reason.clone()),
        }
    }
}

impl ChainState {
    /// Hand a block to the kernel. `from_rpc` applies `submitblock`'s conveniences: known
    /// blocks answer `duplicate` up front and a missing coinbase witness reserved value is added
    /// (Core's `UpdateUncommittedBlockStructures`); over P2P the block is taken as is.
    pub fn submit_block(&mut self, mut block: Block, from_rpc: bool) -> SubmitOutcome {
        let hash = block.block_hash();
        if from_rpc {
            if self.index.contains_key(&hash) {
                return SubmitOutcome::Duplicate;
            }
            if self.invalid.contains(&hash) {
                return SubmitOutcome::DuplicateInvalid;
            }
            add_witness_reserved_value(&mut block);
        }
        let parent = self.parent_context(&block.header.prev_blockhash);
        let Ok(kernel_hash) = bitcoinkernel::BlockHash::new(&hash.to_byte_array()) else {
            return SubmitOutcome::Rejected("rejected".into());
        };
        let kernel_block = match bitcoinkernel::Block::new(&serialize(&block)) {
            Ok(b) => b,
            Err(e) => return SubmitOutcome::Rejected(format!("block decode failed: {e}")),
        };
        if let Ok(mut log) = self.checked.lock() {
            log.clear();
        }
        let (result, kernel_log) =
            super::kernel_log::capture(|| self.chainman.process_block(&kernel_block));
        let checked = self.checked.lock().ok().and_then(|mut log| {
            let found = log
                .iter()
                .rev()
                .find(|c| c.0 == hash.to_byte_array())
                .copied();
            log.clear();
            found
        });
        let invalid = match (result, checked) {
            (ProcessBlockResult::Rejected, Some((_, _, r))) => Some(r),
            (ProcessBlockResult::Rejected, None) => Some(BlockValidationResult::Unset),
            (_, Some((_, ValidationMode::Invalid, r))) => Some(r),
            _ => None,
        };
        let outcome = match invalid {
            Some(result) => {
                // Mirror Core's checks against the UTXO set the block was checked with (before
                // the chain moves on); this cross-checks the kernel's own reason.
                let mirrored = reject_reason(&block, parent.as_ref(), &self.utxo, now());
                let logged = super::kernel_log::reject_reason(&kernel_log, &hash);
                if let (Some(logged), Some(mirrored)) = (&logged, &mirrored) {
                    if logged != mirrored {
                        tracing::debug!(%hash, %logged, %mirrored, "reject reasons differ");
                    }
                }
                // Core remembers a block as invalid when its header made it into the block
                // index (failures after the header checks), unless the block was mutated.
                let indexed = self.chainman.get_block_tree_entry(&kernel_hash).is_some();
                if indexed && result != BlockValidationResult::Mutated {
                    self.invalid.insert(hash);
                }
                SubmitOutcome::Rejected(
                    logged
                        .or(mirrored)
                        .unwrap_or_else(|| fallback_reason(result).to_owned()),
                )
            }
            None if result == ProcessBlockResult::Duplicate => SubmitOutcome::Duplicate,
            None => SubmitOutcome::Inconclusive,
        };
        if let Err(e) = self.sync_active() {
            tracing::error!(error = %e, "devchain: cannot follow the active chain");
        }
        let outcome = match outcome {
            SubmitOutcome::Inconclusive if self.index.contains_key(&hash) => {
                SubmitOutcome::Accepted
            }
            other => other,
        };
        match &outcome {
            SubmitOutcome::Accepted => {
                tracing::info!(%hash, height = self.height(), "devchain block accepted")
            }
            other => tracing::info!(%hash, outcome = ?other, "devchain block not accepted"),
        }
        outcome
    }

    /// What `block` is checked against, if its parent is known.
    fn parent_context(&self, prev: &BlockHash) -> Option<ParentContext> {
        let info = self.header_info(prev)?;
        Some(ParentContext {
            height: info.height,
            bits: info.header.bits,
            median_time_past: info.median_time_past,
            is_tip: *prev == self.tip_hash(),
        })
    }
}

/// A reason when neither the kernel's log nor the mirrored checks name one.
fn fallback_reason(result: BlockValidationResult) -> &'static str {
    match result {
        BlockValidationResult::CachedInvalid => "duplicate-invalid",
        BlockValidationResult::MissingPrev => "prev-blk-not-found",
        BlockValidationResult::InvalidPrev => "bad-prevblk",
        BlockValidationResult::TimeFuture => "time-too-new",
        BlockValidationResult::HeaderLowWork => "too-little-chainwork",
        _ => "rejected",
    }
}

/// Core's `UpdateUncommittedBlockStructures`: give a committing coinbase its 32-byte witness
/// reserved value when it has no witness at all.
fn add_witness_reserved_value(block: &mut Block) {
    let Some(coinbase) = block.txdata.first_mut() else {
        return;
    };
    if witness_commitment_index(coinbase).is_none() {
        return;
    }
    if let Some(input) = coinbase.input.first_mut() {
        if input.witness.is_empty() {
            input.witness.push([0u8; 32]);
        }
    }
}
