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
use crate::pplns::{Pplns, ShareLookup, WindowLimits, WindowWeights};
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
    /// A prepared [`WorkBase`] asked for a share on another parent.
    #[error("work prepared on {prepared:?} cannot build on {requested:?}")]
    OtherParent {
        /// The parent the base was prepared on.
        prepared: Option<ShareHash>,
        /// The parent the request names.
        requested: Option<ShareHash>,
    },
}

impl ShareLookup for Chain<CheckedShare> {
    fn lookup(&self, hash: &ShareHash) -> Option<&CheckedShare> {
        self.get(hash).map(|s| &**s)
    }
}

/// Builds the share info, payouts and coinbase of a new share on `req.previous_share_hash`.
///
/// To build many shares on one parent, [`prepare`] the parent once and call
/// [`WorkBase::template`] per request: the same template, without `&mut` state.
pub fn generate(
    chain: &Chain<CheckedShare>,
    pplns: &mut Pplns,
    params: &NetworkParams,
    req: &ShareRequest,
) -> Result<ShareTemplate, BuildError> {
    let derived = derive(chain, pplns, params, &req.choices())?;
    let payouts = derived
        .payouts
        .iter()
        .map(|&(id, sat)| (pplns.script(id), sat));
    Ok(assemble(params, req, &derived.fixed, payouts))
}

/// The template from the request and what the rules fixed: share info, ref hash, coinbase.
fn assemble<'s>(
    params: &NetworkParams,
    req: &ShareRequest,
    fixed: &Fixed,
    payouts: impl ExactSizeIterator<Item = (&'s ScriptBuf, u64)> + Clone,
) -> ShareTemplate {
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
        far_share_hash: fixed.far_share_hash,
        max_bits: fixed.max_bits,
        bits: fixed.bits,
        timestamp: fixed.timestamp,
        absheight: fixed.absheight,
        abswork: fixed.abswork,
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
        payouts
            .clone()
            .map(|(script, sat)| (script.as_bytes(), sat)),
    );
    let payouts = payouts
        .map(|(script, sat)| Payout {
            script: script.clone(),
            amount: Amount::from_sat(sat),
        })
        .collect();
    ShareTemplate {
        version: req.version,
        share_info,
        ref_hash,
        coinbase,
        payouts,
    }
}

/// Everything about building on one parent that does not depend on the request: the retarget
/// input, absheight and abswork bases, the far share and the whole PPLNS window, computed once
/// by [`prepare`]. Immutable and `Send + Sync`; share it behind an `Arc` and call
/// [`Self::template`] for each miner's request.
#[derive(Debug, Clone)]
pub struct WorkBase {
    params: &'static NetworkParams,
    base: Base,
    window: WindowWeights,
}

/// Walks what building on `parent` reads (retarget window, far share, PPLNS window) once.
pub fn prepare(
    chain: &Chain<CheckedShare>,
    params: &'static NetworkParams,
    parent: Option<ShareHash>,
) -> Result<WorkBase, BuildError> {
    let base = Base::new(chain, params, parent)?;
    let window = WindowWeights::walk(chain, base.window_start, base.max_shares);
    Ok(WorkBase {
        params,
        base,
        window,
    })
}

impl WorkBase {
    /// The share this base builds on (`None`: the first share of a chain).
    pub fn parent(&self) -> Option<ShareHash> {
        self.base.parent
    }

    /// The network parameters it was prepared with.
    pub fn params(&self) -> &'static NetworkParams {
        self.params
    }

    /// The absheight of a share built on it.
    pub fn absheight(&self) -> u32 {
        self.base.absheight
    }

    /// The PPLNS window of a share built on it, before the request's weight cap.
    pub fn window(&self) -> &WindowWeights {
        &self.window
    }

    /// The template for `req`: exactly what [`generate`] gives on the chain this base was
    /// prepared from. `req.previous_share_hash` must be this base's parent.
    pub fn template(&self, req: &ShareRequest) -> Result<ShareTemplate, BuildError> {
        if req.previous_share_hash != self.base.parent {
            return Err(BuildError::OtherParent {
                prepared: self.base.parent,
                requested: req.previous_share_hash,
            });
        }
        let (fixed, limits) = self.base.fix(self.params, &req.choices());
        let payouts = self.window.payouts(
            limits,
            req.subsidy,
            &req.payout_script,
            self.params.max_payouts,
        );
        Ok(assemble(
            self.params,
            req,
            &fixed,
            payouts.iter().map(|&(script, sat)| (script, sat)),
        ))
    }
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

/// The share-info fields the rules fix for a new share (not the builder's to choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub(crate) far_share_hash: Option<ShareHash>,
    pub(crate) max_bits: CompactTarget,
    pub(crate) bits: CompactTarget,
    pub(crate) timestamp: u32,
    pub(crate) absheight: u32,
    pub(crate) abswork: u128,
}

/// What the rules derive for a new share on the chain: the fixed share-info fields and the
/// payouts (`(script id, satoshis)`, ids of the `Pplns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derived {
    pub(crate) fixed: Fixed,
    pub(crate) payouts: Vec<(u32, u64)>,
}

/// What the rules read off the parent and its ancestors, whatever the request.
#[derive(Debug, Clone)]
struct Base {
    parent: Option<ShareHash>,
    parent_timestamp: Option<u32>,
    parent_abswork: u128,
    absheight: u32,
    retarget: Option<RetargetInput>,
    far_share_hash: Option<ShareHash>,
    /// The newest share of the PPLNS window: the grandparent of the new share.
    window_start: Option<ShareHash>,
    max_shares: u32,
}

impl Base {
    fn new(
        chain: &Chain<CheckedShare>,
        params: &NetworkParams,
        previous: Option<ShareHash>,
    ) -> Result<Self, BuildError> {
        let parent = match previous {
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
        Ok(Base {
            parent: previous,
            parent_timestamp: parent_info.map(|i| i.timestamp),
            parent_abswork: parent_info.map_or(0, |i| i.abswork),
            absheight,
            retarget,
            far_share_hash,
            // PPLNS: the window starts at the grandparent.
            window_start: parent.and_then(|p| p.prev_hash()),
            max_shares: absheight
                .saturating_sub(2)
                .min(params.chain_length.saturating_sub(1)),
        })
    }

    /// The fixed fields and the PPLNS window's limits for a request.
    fn fix(&self, params: &NetworkParams, req: &Choices<'_>) -> (Fixed, WindowLimits) {
        let (max_bits, bits) = share_bits(
            self.retarget,
            req.desired_target,
            params.share_period,
            params.min_target(),
            params.max_target(),
        );
        let timestamp = self
            .parent_timestamp
            .map_or(req.desired_timestamp, |t| t.max(req.desired_timestamp));
        let share_work = compact_work(bits);
        let abswork = self.parent_abswork.wrapping_add(share_work);
        let limits = WindowLimits {
            max_shares: self.max_shares,
            max_weight: 65535u128.saturating_mul(
                (u128::from(params.spread).saturating_mul(compact_work(req.block_bits)))
                    .max(u128::from(params.chain_length).saturating_mul(share_work)),
            ),
        };
        let fixed = Fixed {
            far_share_hash: self.far_share_hash,
            max_bits,
            bits,
            timestamp,
            absheight: self.absheight,
            abswork,
        };
        (fixed, limits)
    }
}

/// Derives what the rules fix for a share with these choices: what [`generate`] builds from,
/// and what verification compares and hashes directly.
pub(crate) fn derive(
    chain: &Chain<CheckedShare>,
    pplns: &mut Pplns,
    params: &NetworkParams,
    req: &Choices<'_>,
) -> Result<Derived, BuildError> {
    let base = Base::new(chain, params, req.previous_share_hash)?;
    let (fixed, limits) = base.fix(params, req);
    pplns.window(chain, base.window_start, limits);
    let payouts = pplns.payouts(
        base.window_start,
        req.subsidy,
        req.payout_script,
        params.max_payouts,
    );
    Ok(Derived { fixed, payouts })
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
