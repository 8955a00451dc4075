//! Checks a share can pass on its own, before it meets the chain: known version, standard
//! payout script, proof of work against its own target, target within the network's bounds,
//! timestamps, and the hash link that ties the header to the ref hash.

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::Target;
use bitcoin::{BlockHash, TxMerkleNode};
use thiserror::Error;

use super::{Share, ShareHash};
use crate::encode::{Decode, DecodeError};
use crate::gentx::REF_OUTPUT_PREFIX;
use crate::hash_link::{check_hash_link, HashLinkError};
use crate::params::NetworkParams;
use crate::target::compact_work;

/// Largest difference between the header's time and the share's timestamp, in seconds.
pub const MAX_HEADER_TIME_DRIFT: u32 = 2 * 60 * 60;

/// Why a share is invalid on its own.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The bytes are not a share encoding.
    #[error("undecodable share: {0}")]
    Decode(#[from] DecodeError),
    /// The share-format version is not one this network accepts.
    #[error("share version {version} is not accepted on {network}")]
    Version {
        /// The share's version.
        version: u64,
        /// Name of the network.
        network: &'static str,
    },
    /// The payout script is not one of the standard kinds.
    #[error("payout script is not P2PKH, P2SH, P2WPKH, P2WSH, P2TR or another witness program")]
    PayoutScript,
    /// `bits` is easier than the network's easiest share target.
    #[error("share target is easier than the network's easiest share target")]
    TargetAboveNetworkMax,
    /// `bits` is easier than the share's own `max_bits`.
    #[error("share target is easier than the share's own max_bits")]
    TargetAboveMaxBits,
    /// A compact target (`bits` or `max_bits`) is negative, has a zero mantissa or an exponent above 32; holds the raw value.
    #[error("invalid bits: {0:#010x}")]
    Bits(u32),
    /// The hash link cannot be finished.
    #[error("bad hash link: {0}")]
    HashLink(#[from] HashLinkError),
    /// The segwit data's txid merkle link is not the share's `merkle_link`.
    #[error("segwit txid merkle link differs from the share's merkle link")]
    SegwitLink,
    /// The share's proof of work does not meet its `bits`.
    #[error("share hash {hash} does not meet its target")]
    HighHash {
        /// The share's hash (its header's double SHA-256).
        hash: ShareHash,
    },
    /// The share timestamp is too far ahead of the local clock.
    #[error("share timestamp {timestamp} is more than {max} s after the local time {now}")]
    FutureTimestamp {
        /// The share's timestamp, Unix seconds.
        timestamp: u32,
        /// The local clock, Unix seconds.
        now: u64,
        /// Largest lead allowed, in seconds.
        max: u32,
    },
    /// The header time differs from the share timestamp by more than [`MAX_HEADER_TIME_DRIFT`] seconds.
    #[error(
        "header time {header} is more than {MAX_HEADER_TIME_DRIFT} s from share timestamp {share}"
    )]
    HeaderTime {
        /// The header's time, Unix seconds.
        header: u32,
        /// The share-info timestamp, Unix seconds.
        share: u32,
    },
    /// The share's `absheight` is 0.
    #[error("absheight must be at least 1")]
    AbsHeight,
}

/// A share whose stand-alone checks passed, with the values derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedShare {
    share: Share,
    hash: ShareHash,
    header: Header,
    gentx_txid: [u8; 32],
    ref_hash: [u8; 32],
    target: Target,
    work: u128,
    min_work: u128,
}

fn valid_target(bits: bitcoin::pow::CompactTarget) -> Result<Target, ShareError> {
    let raw = bits.to_consensus();
    // Negative or zero-mantissa compact values are invalid targets.
    if raw & 0x0080_0000 != 0 || raw & 0x007f_ffff == 0 || (raw >> 24) > 32 {
        return Err(ShareError::Bits(raw));
    }
    Ok(Target::from_compact(bits))
}

impl CheckedShare {
    /// Decodes and checks a share.
    pub fn from_bytes(bytes: &[u8], params: &NetworkParams, now: u64) -> Result<Self, ShareError> {
        Self::check(Share::from_bytes(bytes)?, params, now)
    }

    /// Runs the stand-alone checks; `now` is the local time in Unix seconds.
    pub fn check(share: Share, params: &NetworkParams, now: u64) -> Result<Self, ShareError> {
        if !params.share_versions.contains(&share.version) {
            return Err(ShareError::Version {
                version: share.version,
                network: params.name,
            });
        }
        let info = &share.share_info;
        let script = &info.share_data.payout_script;
        if !(script.is_p2pkh() || script.is_p2sh() || script.is_witness_program()) {
            return Err(ShareError::PayoutScript);
        }
        let target = valid_target(info.bits)?;
        let max_target = valid_target(info.max_bits)?;
        valid_target(share.min_header.bits)?;
        if target > params.max_target() || max_target > params.max_target() {
            return Err(ShareError::TargetAboveNetworkMax);
        }
        if target > max_target {
            return Err(ShareError::TargetAboveMaxBits);
        }
        if info.absheight == 0 {
            return Err(ShareError::AbsHeight);
        }
        if u64::from(info.timestamp) > now + u64::from(params.max_future_secs) {
            return Err(ShareError::FutureTimestamp {
                timestamp: info.timestamp,
                now,
                max: params.max_future_secs,
            });
        }
        if share.min_header.timestamp.abs_diff(info.timestamp) > MAX_HEADER_TIME_DRIFT {
            return Err(ShareError::HeaderTime {
                header: share.min_header.timestamp,
                share: info.timestamp,
            });
        }
        if info.segwit_data.txid_merkle_link != share.merkle_link {
            return Err(ShareError::SegwitLink);
        }
        let ref_hash = share.ref_hash(&params.identifier);
        let mut tail = [0u8; 44];
        tail[..32].copy_from_slice(&ref_hash);
        tail[32..40].copy_from_slice(&share.last_txout_nonce.to_le_bytes());
        let gentx_txid = check_hash_link(&share.hash_link, &REF_OUTPUT_PREFIX, &tail)?;
        let header = Header {
            version: Version::from_consensus(share.min_header.version),
            prev_blockhash: share.min_header.previous_block,
            merkle_root: TxMerkleNode::from_byte_array(share.merkle_link.root(gentx_txid)),
            time: share.min_header.timestamp,
            bits: share.min_header.bits,
            nonce: share.min_header.nonce,
        };
        let block_hash = header.block_hash();
        let hash = ShareHash::from_byte_array(block_hash.to_byte_array());
        if !target.is_met_by(block_hash) {
            return Err(ShareError::HighHash { hash });
        }
        let (work, min_work) = (compact_work(info.bits), compact_work(info.max_bits));
        Ok(CheckedShare {
            work,
            min_work,
            share,
            hash,
            header,
            gentx_txid,
            ref_hash,
            target,
        })
    }

    /// The share.
    pub fn share(&self) -> &Share {
        &self.share
    }

    /// The share's hash (its block header's hash).
    pub fn hash(&self) -> ShareHash {
        self.hash
    }

    /// The full block header the share commits to.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The block hash (same bytes as the share hash).
    pub fn block_hash(&self) -> BlockHash {
        BlockHash::from_byte_array(self.hash.to_byte_array())
    }

    /// The coinbase txid (internal byte order) proven by the hash link.
    pub fn gentx_txid(&self) -> [u8; 32] {
        self.gentx_txid
    }

    /// The ref hash the coinbase commits to.
    pub fn ref_hash(&self) -> [u8; 32] {
        self.ref_hash
    }

    /// The share's target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Work of the share's target.
    pub fn work(&self) -> u128 {
        self.work
    }

    /// Work of the share's `max_bits` (what the retarget sums).
    pub fn min_work(&self) -> u128 {
        self.min_work
    }

    /// The parent share's hash.
    pub fn prev_hash(&self) -> Option<ShareHash> {
        self.share.share_info.share_data.previous_share_hash
    }

    /// True when the header also meets its block target: this share is a Bitcoin block.
    pub fn is_block(&self) -> bool {
        Target::from_compact(self.header.bits).is_met_by(self.block_hash())
    }
}
