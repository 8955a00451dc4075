//! Share verification against the chain: the share must be exactly what [`generate`] builds
//! from the share's own choices on top of its parent (retarget, timestamps, absheight/abswork,
//! far share, PPLNS payouts, coinbase), and version switches need a supermajority of recent
//! work. Plugs into the generic tracker as [`ShareVerifier`].

use bitcoin::BlockHash;
use thiserror::Error;

use crate::build::{derive, BuildError, Choices, Fixed};
use crate::chain::{Chain, TrackedShare};
use crate::gentx::coinbase_txid;
use crate::params::NetworkParams;
use crate::pplns::{Pplns, ShareLookup};
use crate::share::{CheckedShare, ShareHash};
use crate::tracker::{ShareTracker, TrackerConfig, Verifier};

/// Why a share is invalid on this chain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// An ancestor the rules need is missing.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// `max_bits` is not the retarget result.
    #[error("max_bits {got:#010x} differs from the retarget result {expected:#010x}")]
    MaxBits {
        /// The share's `max_bits` (compact).
        got: u32,
        /// The retarget result (compact).
        expected: u32,
    },
    /// `bits` differs from the one rebuilt from the chain.
    #[error("bits {got:#010x} outside the allowed range (expected {expected:#010x})")]
    Bits {
        /// The share's `bits` (compact).
        got: u32,
        /// The rebuilt `bits` (compact).
        expected: u32,
    },
    /// The timestamp goes back from the parent's.
    #[error("timestamp {got} is before the parent's {parent}")]
    Timestamp {
        /// The share's timestamp, Unix seconds.
        got: u32,
        /// The parent's timestamp, Unix seconds.
        parent: u32,
    },
    /// `absheight` is not the parent's plus one.
    #[error("absheight {got} should be {expected}")]
    AbsHeight {
        /// The share's `absheight`.
        got: u32,
        /// The parent's `absheight` plus one.
        expected: u32,
    },
    /// `abswork` is not the parent's plus this share's work.
    #[error("abswork {got} should be {expected}")]
    AbsWork {
        /// The share's `abswork`.
        got: u128,
        /// The parent's `abswork` plus this share's work, modulo 2^128.
        expected: u128,
    },
    /// `far_share_hash` does not name the 100th ancestor.
    #[error("far_share_hash is not the 100th ancestor")]
    FarShare,
    /// The share info differs from the one rebuilt from the chain in another field.
    #[error("share info differs from the one rebuilt from the chain")]
    ShareInfo,
    /// The coinbase rebuilt from the chain does not hash to the header's merkle root.
    #[error("coinbase rebuilt from the chain (PPLNS payouts) does not match the header")]
    Coinbase,
    /// The share's version is lower than its parent's.
    #[error("share version {version} is lower than its parent's {parent}")]
    VersionDowngrade {
        /// The share's version.
        version: u64,
        /// The parent's version.
        parent: u64,
    },
    /// The share switches to a new version without enough recent work voting for it.
    #[error("switch to version {version} without {needed}% of recent work voting for it ({got}%)")]
    VersionSwitch {
        /// The new version.
        version: u64,
        /// Percentage of the window's work required.
        needed: u32,
        /// Percentage of the window's work voting for it.
        got: u32,
    },
}

impl TrackedShare for CheckedShare {
    type Tip = BlockHash;

    fn hash(&self) -> ShareHash {
        CheckedShare::hash(self)
    }

    fn prev_hash(&self) -> Option<ShareHash> {
        CheckedShare::prev_hash(self)
    }

    fn work(&self) -> u128 {
        CheckedShare::work(self)
    }

    fn builds_on(&self, tip: &BlockHash) -> bool {
        self.header().prev_blockhash == *tip || self.block_hash() == *tip
    }

    fn aux_work(&self) -> u128 {
        self.min_work()
    }
}

/// The rules of Bitcoin header shares on one network.
#[derive(Debug)]
pub struct ShareVerifier {
    params: &'static NetworkParams,
    pplns: Pplns,
}

/// The tracker of Bitcoin header shares.
pub type Tracker = ShareTracker<CheckedShare, ShareVerifier>;

impl ShareVerifier {
    /// The rules of `params`' network.
    pub fn new(params: &'static NetworkParams) -> Self {
        ShareVerifier {
            params,
            pplns: Pplns::default(),
        }
    }

    /// The network parameters.
    pub fn params(&self) -> &'static NetworkParams {
        self.params
    }

    /// The PPLNS cache (shared with work building so both slide the same windows).
    pub fn pplns_mut(&mut self) -> &mut Pplns {
        &mut self.pplns
    }
}

/// A tracker for `params`' network.
pub fn new_tracker(params: &'static NetworkParams) -> Tracker {
    ShareTracker::new(
        TrackerConfig::new(params.chain_length),
        ShareVerifier::new(params),
    )
}

impl Verifier<CheckedShare> for ShareVerifier {
    type Error = VerifyError;

    fn verify(
        &mut self,
        share: &CheckedShare,
        chain: &Chain<CheckedShare>,
    ) -> Result<(), VerifyError> {
        let s = share.share();
        let info = &s.share_info;
        let parent = info
            .share_data
            .previous_share_hash
            .and_then(|p| chain.lookup(&p));
        if let Some(p) = parent {
            check_version(self.params, s.version, p, chain)?;
        }
        let derived = derive(chain, &mut self.pplns, self.params, &Choices::of_share(s))?;
        check_derived(&derived.fixed, info, parent)?;
        // Equal share infos have equal ref hashes: the share's own checks computed it.
        let txid = coinbase_txid(
            &info.share_data.coinbase,
            &info.segwit_data.wtxid_merkle_root,
            derived
                .payouts
                .iter()
                .map(|&(id, sat)| (self.pplns.script(id).as_bytes(), sat)),
            &share.ref_hash(),
            s.last_txout_nonce,
        );
        if txid != share.gentx_txid() {
            return Err(VerifyError::Coinbase);
        }
        Ok(())
    }

    fn forget(&mut self, hash: &ShareHash) {
        self.pplns.forget(hash);
    }
}

fn check_derived(
    rebuilt: &Fixed,
    got: &crate::share::ShareInfo,
    parent: Option<&CheckedShare>,
) -> Result<(), VerifyError> {
    if rebuilt.max_bits != got.max_bits {
        return Err(VerifyError::MaxBits {
            got: got.max_bits.to_consensus(),
            expected: rebuilt.max_bits.to_consensus(),
        });
    }
    if rebuilt.bits != got.bits {
        return Err(VerifyError::Bits {
            got: got.bits.to_consensus(),
            expected: rebuilt.bits.to_consensus(),
        });
    }
    if rebuilt.timestamp != got.timestamp {
        let parent = parent.map_or(0, |p| p.share().share_info.timestamp);
        return Err(VerifyError::Timestamp {
            got: got.timestamp,
            parent,
        });
    }
    if rebuilt.absheight != got.absheight {
        return Err(VerifyError::AbsHeight {
            got: got.absheight,
            expected: rebuilt.absheight,
        });
    }
    if rebuilt.abswork != got.abswork {
        return Err(VerifyError::AbsWork {
            got: got.abswork,
            expected: rebuilt.abswork,
        });
    }
    if rebuilt.far_share_hash != got.far_share_hash {
        return Err(VerifyError::FarShare);
    }
    Ok(())
}

/// A share may keep its parent's version, or move up when enough recent work voted for it.
fn check_version(
    params: &NetworkParams,
    version: u64,
    parent: &CheckedShare,
    chain: &Chain<CheckedShare>,
) -> Result<(), VerifyError> {
    let parent_version = parent.share().version;
    if version < parent_version {
        return Err(VerifyError::VersionDowngrade {
            version,
            parent: parent_version,
        });
    }
    if version == parent_version {
        return Ok(());
    }
    // Votes over the last half chain of shares, weighted by work.
    let (mut yes, mut all) = (0u128, 0u128);
    for s in chain
        .ancestors(&parent.hash())
        .take((params.chain_length / 2).max(1) as usize)
    {
        all = all.saturating_add(s.work());
        if s.share().share_info.share_data.desired_version >= version {
            yes = yes.saturating_add(s.work());
        }
    }
    let got = yes.saturating_mul(100).checked_div(all).unwrap_or(0) as u32;
    if got < params.version_switch_percent {
        return Err(VerifyError::VersionSwitch {
            version,
            needed: params.version_switch_percent,
            got,
        });
    }
    Ok(())
}
