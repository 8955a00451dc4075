//! Share wire types in P2Pool's structure (share versions 34/35 of the original, modernised):
//! [`SmallBlockHeader`], [`ShareData`], [`ShareInfo`] with [`SegwitData`], [`HashLink`],
//! [`MerkleLink`] and [`Share`], with their Bitcoin consensus encoding.
//!
//! Modern form: the payout is an output script (P2PKH, P2SH, P2WPKH, P2WSH, P2TR), segwit data is
//! always present, transactions never travel inside shares, and every share carries a
//! share-format `version` that is also committed to by its ref hash.

mod check;

pub use crate::hash_link::HashLink;
pub use check::{CheckedShare, ShareError, MAX_HEADER_TIME_DRIFT};

use bitcoin::hashes::{hash_newtype, sha256d, Hash};
use bitcoin::pow::CompactTarget;
use bitcoin::{Amount, BlockHash, ScriptBuf};

use crate::encode::{write_var_bytes, write_varint, Decode, DecodeError, Encode, Reader};

hash_newtype! {
    /// Hash of a share: the double SHA-256 of the 80-byte block header it commits to.
    pub struct ShareHash(sha256d::Hash);
}

/// Hasher for maps keyed by [`ShareHash`]: share hashes are proof-of-work outputs whose first
/// eight bytes (internal order) are already uniform, so they are used as they are instead of
/// being run through SipHash on every look-up.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShareHashHasher(u64);

impl std::hash::Hasher for ShareHashHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by share hash.
pub type ShareHashMap<V> =
    std::collections::HashMap<ShareHash, V, std::hash::BuildHasherDefault<ShareHashHasher>>;
/// A set of share hashes.
pub type ShareHashSet =
    std::collections::HashSet<ShareHash, std::hash::BuildHasherDefault<ShareHashHasher>>;

/// Most entries in a merkle branch (a block of 2^32 transactions has a 32-deep tree).
pub const MAX_MERKLE_BRANCH: usize = 32;
/// Shortest and longest coinbase scriptSig (Bitcoin consensus: 2..=100 bytes).
pub const COINBASE_SCRIPT_SIG_LEN: (usize, usize) = (2, 100);
/// Longest payout script: a version-16 witness program of 40 bytes plus its two opcodes.
pub const MAX_PAYOUT_SCRIPT_LEN: usize = 42;
/// Most bytes between a hash link's midstate and the constant ending (less than one block).
pub const MAX_HASH_LINK_EXTRA: usize = 63;
/// Longest coinbase a hash link may describe (a coinbase can't exceed the block weight).
pub const MAX_COINBASE_LEN: u64 = 1_000_000;

/// The block header fields a share carries; the merkle root is implied by the coinbase and
/// the share's `merkle_link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SmallBlockHeader {
    /// Block version (BIP9 bits as mined; may be rolled by the miner).
    pub version: i32,
    /// Hash of the Bitcoin block the share was mined on.
    pub previous_block: BlockHash,
    /// Header time, Unix seconds (may be rolled by the miner).
    pub timestamp: u32,
    /// The block's compact target (the Bitcoin network's, not the share's).
    pub bits: CompactTarget,
    /// Header nonce found by the miner.
    pub nonce: u32,
}

/// Why a share pays what it pays: whose it is, what it builds on, what it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum StaleInfo {
    /// The miner's previous shares were all accepted.
    None = 0,
    /// The miner's previous share was orphaned.
    Orphan = 253,
    /// The miner's previous share was dead on arrival.
    DeadOnArrival = 254,
}

/// The part of a share chosen by its miner's node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShareData {
    /// The share this one builds on (`None` only for the first share of a chain).
    pub previous_share_hash: Option<ShareHash>,
    /// The coinbase scriptSig (BIP34 height push first), 2..=100 bytes.
    pub coinbase: Vec<u8>,
    /// Free nonce of the node that built the share.
    pub nonce: u32,
    /// Where this share's payouts go.
    pub payout_script: ScriptBuf,
    /// Block subsidy plus fees of the template the share was mined on.
    pub subsidy: Amount,
    /// Donation in 1/65535ths of the share's weight.
    pub donation: u16,
    /// What happened to the miner's previous share.
    pub stale_info: StaleInfo,
    /// The share-format version this share's node votes for.
    pub desired_version: u64,
}

/// Commitment to the block's segwit transactions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegwitData {
    /// Branch from the coinbase txid to the block's merkle root.
    pub txid_merkle_link: MerkleLink,
    /// Root of the block's wtxid tree (coinbase wtxid counted as zero).
    pub wtxid_merkle_root: [u8; 32],
}

/// Everything the ref hash commits to: what every node rebuilds and checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShareInfo {
    /// The part chosen by the miner's node.
    pub share_data: ShareData,
    /// Commitment to the block's segwit transactions.
    pub segwit_data: SegwitData,
    /// The 100th ancestor of this share (`None` while the chain is shorter).
    pub far_share_hash: Option<ShareHash>,
    /// Easiest target a share at this point may have (the retarget result).
    pub max_bits: CompactTarget,
    /// This share's target.
    pub bits: CompactTarget,
    /// Share-chain timestamp (set by the node; the header's may differ by ntime rolling).
    pub timestamp: u32,
    /// Height in the share chain (the first share has 1).
    pub absheight: u32,
    /// Cumulative work of the chain up to and including this share, modulo 2^128.
    pub abswork: u128,
}

/// A merkle branch from a leaf at index 0 (the coinbase) to a root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MerkleLink {
    /// Sibling hashes from the leaf up, in internal byte order.
    pub branch: Vec<[u8; 32]>,
}

/// A share as it travels between nodes and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Share {
    /// Share-format version.
    pub version: u64,
    /// The header fields other than the merkle root.
    pub min_header: SmallBlockHeader,
    /// What the ref hash commits to.
    pub share_info: ShareInfo,
    /// Branch folding the share-info hash into the ref hash (empty unless merged).
    pub ref_merkle_link: MerkleLink,
    /// The miner's extranonce: the last 8 bytes of the coinbase's ref-hash output.
    pub last_txout_nonce: u64,
    /// Link from the coinbase prefix's midstate to the full coinbase txid.
    pub hash_link: HashLink,
    /// Branch from the coinbase txid to the header's merkle root.
    pub merkle_link: MerkleLink,
}

impl MerkleLink {
    /// The root reached from `leaf` (internal byte order).
    pub fn root(&self, leaf: [u8; 32]) -> [u8; 32] {
        let mut buf = [0u8; 64];
        let mut cur = leaf;
        for node in &self.branch {
            buf[..32].copy_from_slice(&cur);
            buf[32..].copy_from_slice(node);
            cur = sha256d::Hash::hash(&buf).to_byte_array();
        }
        cur
    }
}

fn opt_hash(h: Option<ShareHash>) -> [u8; 32] {
    h.map(|h| h.to_byte_array()).unwrap_or([0; 32])
}

fn read_opt_hash(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Option<ShareHash>, DecodeError> {
    let bytes: [u8; 32] = r.array(field)?;
    Ok((bytes != [0; 32]).then(|| ShareHash::from_byte_array(bytes)))
}

impl Encode for SmallBlockHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(self.previous_block.as_byte_array());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.bits.to_consensus().to_le_bytes());
        out.extend_from_slice(&self.nonce.to_le_bytes());
    }
}

impl Decode for SmallBlockHeader {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SmallBlockHeader {
            version: r.u32("min_header.version")? as i32,
            previous_block: BlockHash::from_byte_array(r.array("min_header.previous_block")?),
            timestamp: r.u32("min_header.timestamp")?,
            bits: CompactTarget::from_consensus(r.u32("min_header.bits")?),
            nonce: r.u32("min_header.nonce")?,
        })
    }
}

impl Encode for MerkleLink {
    fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, self.branch.len() as u64);
        for node in &self.branch {
            out.extend_from_slice(node);
        }
    }
}

impl Decode for MerkleLink {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.len("merkle_link.branch", MAX_MERKLE_BRANCH)?;
        let mut branch = Vec::with_capacity(len);
        for _ in 0..len {
            branch.push(r.array("merkle_link.branch")?);
        }
        Ok(MerkleLink { branch })
    }
}

impl Encode for HashLink {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.state);
        write_var_bytes(out, &self.extra_data);
        write_varint(out, self.length);
    }
}

impl Decode for HashLink {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let state = r.array("hash_link.state")?;
        let extra_data = r
            .var_bytes("hash_link.extra_data", 0, MAX_HASH_LINK_EXTRA)?
            .to_vec();
        let length = r.varint("hash_link.length")?;
        if length > MAX_COINBASE_LEN {
            return Err(DecodeError::OutOfRange {
                field: "hash_link.length",
                value: length,
            });
        }
        Ok(HashLink {
            state,
            extra_data,
            length,
        })
    }
}

impl Encode for ShareData {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&opt_hash(self.previous_share_hash));
        write_var_bytes(out, &self.coinbase);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        write_var_bytes(out, self.payout_script.as_bytes());
        out.extend_from_slice(&self.subsidy.to_sat().to_le_bytes());
        out.extend_from_slice(&self.donation.to_le_bytes());
        out.push(self.stale_info as u8);
        write_varint(out, self.desired_version);
    }
}

impl Decode for ShareData {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let previous_share_hash = read_opt_hash(r, "share_data.previous_share_hash")?;
        let (min, max) = COINBASE_SCRIPT_SIG_LEN;
        let coinbase = r.var_bytes("share_data.coinbase", min, max)?.to_vec();
        let nonce = r.u32("share_data.nonce")?;
        let payout = r.var_bytes("share_data.payout_script", 1, MAX_PAYOUT_SCRIPT_LEN)?;
        let subsidy = r.u64("share_data.subsidy")?;
        if subsidy > Amount::MAX_MONEY.to_sat() {
            return Err(DecodeError::OutOfRange {
                field: "share_data.subsidy",
                value: subsidy,
            });
        }
        let donation = r.u16("share_data.donation")?;
        let stale_info = match r.u8("share_data.stale_info")? {
            0 => StaleInfo::None,
            253 => StaleInfo::Orphan,
            254 => StaleInfo::DeadOnArrival,
            other => {
                return Err(DecodeError::OutOfRange {
                    field: "share_data.stale_info",
                    value: u64::from(other),
                })
            }
        };
        let desired_version = r.varint("share_data.desired_version")?;
        Ok(ShareData {
            previous_share_hash,
            coinbase,
            nonce,
            payout_script: ScriptBuf::from_bytes(payout.to_vec()),
            subsidy: Amount::from_sat(subsidy),
            donation,
            stale_info,
            desired_version,
        })
    }
}

impl Encode for SegwitData {
    fn encode(&self, out: &mut Vec<u8>) {
        self.txid_merkle_link.encode(out);
        out.extend_from_slice(&self.wtxid_merkle_root);
    }
}

impl Decode for SegwitData {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SegwitData {
            txid_merkle_link: MerkleLink::decode(r)?,
            wtxid_merkle_root: r.array("segwit_data.wtxid_merkle_root")?,
        })
    }
}

impl Encode for ShareInfo {
    fn encode(&self, out: &mut Vec<u8>) {
        self.share_data.encode(out);
        self.segwit_data.encode(out);
        out.extend_from_slice(&opt_hash(self.far_share_hash));
        out.extend_from_slice(&self.max_bits.to_consensus().to_le_bytes());
        out.extend_from_slice(&self.bits.to_consensus().to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.absheight.to_le_bytes());
        out.extend_from_slice(&self.abswork.to_le_bytes());
    }
}

impl Decode for ShareInfo {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ShareInfo {
            share_data: ShareData::decode(r)?,
            segwit_data: SegwitData::decode(r)?,
            far_share_hash: read_opt_hash(r, "share_info.far_share_hash")?,
            max_bits: CompactTarget::from_consensus(r.u32("share_info.max_bits")?),
            bits: CompactTarget::from_consensus(r.u32("share_info.bits")?),
            timestamp: r.u32("share_info.timestamp")?,
            absheight: r.u32("share_info.absheight")?,
            abswork: r.u128("share_info.abswork")?,
        })
    }
}

impl Encode for Share {
    fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, self.version);
        self.min_header.encode(out);
        self.share_info.encode(out);
        self.ref_merkle_link.encode(out);
        out.extend_from_slice(&self.last_txout_nonce.to_le_bytes());
        self.hash_link.encode(out);
        self.merkle_link.encode(out);
    }
}

impl Decode for Share {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.varint("version")?;
        if !crate::params::SHARE_VERSIONS.contains(&version) {
            return Err(DecodeError::UnknownVersion(version));
        }
        Ok(Share {
            version,
            min_header: SmallBlockHeader::decode(r)?,
            share_info: ShareInfo::decode(r)?,
            ref_merkle_link: MerkleLink::decode(r)?,
            last_txout_nonce: r.u64("last_txout_nonce")?,
            hash_link: HashLink::decode(r)?,
            merkle_link: MerkleLink::decode(r)?,
        })
    }
}

impl Share {
    /// The ref hash: `sha256d(identifier ‖ version ‖ share_info)` folded through
    /// `ref_merkle_link`. The coinbase's last output commits to it.
    pub fn ref_hash(&self, identifier: &[u8; 8]) -> [u8; 32] {
        ref_hash(
            identifier,
            self.version,
            &self.share_info,
            &self.ref_merkle_link,
        )
    }
}

/// See [`Share::ref_hash`]; used by the work builder before the share exists.
pub fn ref_hash(
    identifier: &[u8; 8],
    version: u64,
    share_info: &ShareInfo,
    ref_merkle_link: &MerkleLink,
) -> [u8; 32] {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(identifier);
    write_varint(&mut buf, version);
    share_info.encode(&mut buf);
    ref_merkle_link.root(sha256d::Hash::hash(&buf).to_byte_array())
}
