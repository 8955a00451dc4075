//! Building a share on top of the chain ("generate_transaction" in P2Pool): the share info
//! (retarget, absheight/abswork, far share), the PPLNS payouts and the coinbase.
//!
//! The node calls [`generate`] to make work for its miners; the verifier calls the same function
//! with a received share's own choices and demands the same share info and coinbase back. One
//! code path decides both, so what we mine is exactly what we accept.

use bitcoin::pow::{CompactTarget, Target};
use bitcoin::{Amount, ScriptBuf};
use thiserror::Error;

use crate::chain::Chain;
use crate::gentx::{CoinbasePrefix, Payout, REF_OUTPUT_PREFIX};
use crate::hash_link::prefix_to_hash_link;
use crate::params::NetworkParams;
use crate::pplns::{Pplns, ShareLookup, WindowLimits};
use crate::share::{
    ref_hash, CheckedShare, MerkleLink, SegwitData, Share, ShareData, ShareHash, ShareInfo,
    SmallBlockHeader, StaleInfo,
};
use crate::target::{compact_work, share_bits, RetargetInput};

pub use crate::params::FAR_SHARE_DISTANCE;

/// What the building node chooses for a new share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRequest {
    /// Share-format version.
    pub version: u64,
    /// The share this one builds on (`None` only for the first share of a chain).
    pub previous_share_hash: Option<ShareHash>,
    /// Coinbase scriptSig (BIP34 height push first).
    pub coinbase: Vec<u8>,
    /// Free nonce of the building node, copied into the share data.
    pub nonce: u32,
    /// Where the miner's PPLNS payouts go.
    pub payout_script: ScriptBuf,
    /// Block subsidy plus fees.
    pub subsidy: Amount,
    /// Donation in 1/65535ths of the share's weight.
    pub donation: u16,
    /// What happened to the miner's previous share.
    pub stale_info: StaleInfo,
    /// The share-format version this node votes for.
    pub desired_version: u64,
    /// Commitment to the block template's segwit transactions.
    pub segwit_data: SegwitData,
    /// The share target the miner wants (clamped to `max/30..=max`).
    pub desired_target: Target,
    /// The timestamp the node wants (at least the parent's).
    pub desired_timestamp: u32,
    /// The block's compact target (sets the PPLNS weight cap).
    pub block_bits: CompactTarget,
}

/// A share ready to be mined: everything but the header's nonce/time/version and the extranonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareTemplate {
    /// Share-format version, copied from the request.
    pub version: u64,
    /// The share info every node will rebuild from the chain and compare.
    pub share_info: ShareInfo,
    /// The ref hash (`sha256d(identifier ‖ version ‖ share_info)`) the coinbase's last output commits to.
    pub ref_hash: [u8; 32],
    /// The coinbase up to the ref hash; finished with the miner's `last_txout_nonce`.
    pub coinbase: CoinbasePrefix,
    /// The coinbase's payout outputs by the PPLNS rule (finder included), in coinbase order.
    pub payouts: Vec<Payout>,
}

/// Why a share cannot be built (or checked) on this chain yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The previous share is not in the chain.
    #[error("parent share {0} is not known")]
    MissingParent(ShareHash),
    /// An ancestor the rules read (window, retarget, far share) is not in the chain.
    #[error("ancestor {depth} below share {from} is not known")]
    MissingHistory {
        /// The share whose history is incomplete.
        from: ShareHash,
        /// How many generations below `from` the missing ancestor is.
        depth: u32,
    },
}

impl ShareLookup for Chain<CheckedShare> {
    fn lookup(&self, hash: &ShareHash) -> Option<&CheckedShare> {
        self.get(hash).map(|s| &**s)
    }
}

/// Builds the share info, payouts and coinbase of a new share on `req.previous_share_hash`.
pub fn generate(
    chain: &Chain<CheckedShare>,
    pplns: &mut Pplns,
    params: &NetworkParams,
    req: &ShareRequest,
) -> Result<ShareTemplate, BuildError> {
    let derived = derive(chain, pplns, params, &req.choices())?;
    let payout_ids = &derived.payouts;
    let share_info = ShareInfo {
        share_data: ShareData {
            previous_share_hash: req.previous_share_hash,
            coinbase: req.coinbase.clone(),
            nonce: req.nonce,
            payout_script: req.payout_script.clone(),
            subsidy: req.subsidy,
            donation: req.donation,
            stale_info: req.stale_info,
            desired_version: req.desired_version,
        },
        segwit_data: req.segwit_data.clone(),
        far_share_hash: derived.far_share_hash,
        max_bits: derived.max_bits,
        bits: derived.bits,
        timestamp: derived.timestamp,
        absheight: derived.absheight,
        abswork: derived.abswork,
    };
    let ref_hash = ref_hash(
        &params.identifier,
        req.version,
        &share_info,
        &MerkleLink::default(),
    );
    let coinbase = CoinbasePrefix::build_from(
        &req.coinbase,
        &req.segwit_data.wtxid_merkle_root,
        payout_ids
            .iter()
            .map(|&(id, sat)| (pplns.script(id).as_bytes(), sat)),
    );
    let payouts = payout_ids
        .iter()
        .map(|&(id, sat)| Payout {
            script: pplns.script(id).clone(),
            amount: Amount::from_sat(sat),
        })
        .collect();
    Ok(ShareTemplate {
        version: req.version,
        share_info,
        ref_hash,
        coinbase,
        payouts,
    })
}

/// The builder's choices the rules read, borrowed from a request or a received share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choices<'a> {
    pub(crate) previous_share_hash: Option<ShareHash>,
    pub(crate) payout_script: &'a ScriptBuf,
    pub(crate) subsidy: Amount,
    pub(crate) desired_target: Target,
    pub(crate) desired_timestamp: u32,
    pub(crate) block_bits: CompactTarget,
}

impl<'a> Choices<'a> {
    /// The choices a received share's builder made.
    pub(crate) fn of_share(share: &'a Share) -> Self {
        let info = &share.share_info;
        Choices {
            previous_share_hash: info.share_data.previous_share_hash,
            payout_script: &info.share_data.payout_script,
            subsidy: info.share_data.subsidy,
            desired_target: Target::from_compact(info.bits),
            desired_timestamp: info.timestamp,
            block_bits: share.min_header.bits,
        }
    }
}

/// What the rules derive for a new share on the chain: the share-info fields that are not the
/// builder's to choose, and the payouts (`(script id, satoshis)`, ids of the `Pplns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derived {
    pub(crate) far_share_hash: Option<ShareHash>,
    pub(crate) max_bits: CompactTarget,
    pub(crate) bits: CompactTarget,
    pub(crate) timestamp: u32,
    pub(crate) absheight: u32,
    pub(crate) abswork: u128,
    pub(crate) payouts: Vec<(u32, u64)>,
}

/// Derives what the rules fix for a share with these choices: what [`generate`] builds from,
/// and what verification compares and hashes directly.
pub(crate) fn derive(
    chain: &Chain<CheckedShare>,
    pplns: &mut Pplns,
    params: &NetworkParams,
    req: &Choices<'_>,
) -> Result<Derived, BuildError> {
    let parent = match req.previous_share_hash {
        None => None,
        Some(h) => Some(chain.lookup(&h).ok_or(BuildError::MissingParent(h))?),
    };
    let parent_info = parent.map(|p| &p.share().share_info);
    let absheight = parent_info.map_or(0, |i| i.absheight).wrapping_add(1);

    let retarget = match (parent, parent_info) {
        (Some(p), Some(info)) if info.absheight >= params.target_lookbehind => {
            Some(retarget_input(chain, p, params.target_lookbehind)?)
        }
        _ => None,
    };
    let (max_bits, bits) = share_bits(
        retarget,
        req.desired_target,
        params.share_period,
        params.min_target(),
        params.max_target(),
    );
    let timestamp = parent_info.map_or(req.desired_timestamp, |i| {
        i.timestamp.max(req.desired_timestamp)
    });
    let abswork = parent_info
        .map_or(0, |i| i.abswork)
        .wrapping_add(compact_work(bits));
    let far_share_hash = match parent {
        Some(p) if absheight > FAR_SHARE_DISTANCE => Some(
            chain
                .nth_ancestor(&p.hash(), FAR_SHARE_DISTANCE - 1)
                .ok_or(BuildError::MissingHistory {
                    from: p.hash(),
                    depth: FAR_SHARE_DISTANCE - 1,
                })?,
        ),
        _ => None,
    };

    // PPLNS: the window starts at the grandparent.
    let start = parent.and_then(|p| p.prev_hash());
    let share_work = compact_work(bits);
    let limits = WindowLimits {
        max_shares: absheight
            .saturating_sub(2)
            .min(params.chain_length.saturating_sub(1)),
        max_weight: 65535u128.saturating_mul(
            (u128::from(params.spread).saturating_mul(compact_work(req.block_bits)))
                .max(u128::from(params.chain_length).saturating_mul(share_work)),
        ),
    };
    pplns.window(chain, start, limits);
    let payouts = pplns.payouts(start, req.subsidy, req.payout_script, params.max_payouts);
    Ok(Derived {
        far_share_hash,
        max_bits,
        bits,
        timestamp,
        absheight,
        abswork,
        payouts,
    })
}

fn retarget_input(
    chain: &Chain<CheckedShare>,
    parent: &CheckedShare,
    lookbehind: u32,
) -> Result<RetargetInput, BuildError> {
    let missing = BuildError::MissingHistory {
        from: parent.hash(),
        depth: lookbehind - 1,
    };
    let (min_work, oldest) = chain.sum_aux(&parent.hash(), lookbehind).ok_or(missing)?;
    let oldest = chain.lookup(&oldest).ok_or(missing)?;
    let newest_ts = parent.share().share_info.timestamp;
    let oldest_ts = oldest.share().share_info.timestamp;
    Ok(RetargetInput {
        parent_max_target: Target::from_compact(parent.share().share_info.max_bits),
        window_min_work: min_work,
        window_seconds: u64::from(newest_ts.saturating_sub(oldest_ts)),
    })
}

impl ShareTemplate {
    /// The share for a mined header: `header` supplies version, previous block, time, bits and
    /// nonce; `last_txout_nonce` is the miner's extranonce.
    pub fn share(&self, header: SmallBlockHeader, last_txout_nonce: u64) -> Share {
        Share {
            version: self.version,
            min_header: header,
            share_info: self.share_info.clone(),
            ref_merkle_link: MerkleLink::default(),
            last_txout_nonce,
            hash_link: prefix_to_hash_link(&self.coinbase.bytes, &REF_OUTPUT_PREFIX),
            merkle_link: self.share_info.segwit_data.txid_merkle_link.clone(),
        }
    }

    /// The full coinbase (non-witness) for an extranonce.
    pub fn coinbase_tx(&self, last_txout_nonce: u64) -> Vec<u8> {
        self.coinbase.finish(&self.ref_hash, last_txout_nonce)
    }

    /// The share's target.
    pub fn target(&self) -> Target {
        Target::from_compact(self.share_info.bits)
    }
}

impl ShareRequest {
    pub(crate) fn choices(&self) -> Choices<'_> {
        Choices {
            previous_share_hash: self.previous_share_hash,
            payout_script: &self.payout_script,
            subsidy: self.subsidy,
            desired_target: self.desired_target,
            desired_timestamp: self.desired_timestamp,
            block_bits: self.block_bits,
        }
    }

    /// The request a received share's builder must have made (for verification).
    pub fn of_share(share: &Share) -> Self {
        let info = &share.share_info;
        let data = &info.share_data;
        ShareRequest {
            version: share.version,
            previous_share_hash: data.previous_share_hash,
            coinbase: data.coinbase.clone(),
            nonce: data.nonce,
            payout_script: data.payout_script.clone(),
            subsidy: data.subsidy,
            donation: data.donation,
            stale_info: data.stale_info,
            desired_version: data.desired_version,
            segwit_data: info.segwit_data.clone(),
            desired_target: Target::from_compact(info.bits),
            desired_timestamp: info.timestamp,
            block_bits: share.min_header.bits,
        }
    }
}
