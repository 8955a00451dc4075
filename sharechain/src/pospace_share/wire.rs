//! The PoSpace share wire type and its encoding (big-endian, Chia Streamable conventions), with
//! the checks decoding makes before anything costly: the share-format version, Chia's own limits
//! on the proof of space (plot size range, proof length, exactly one pool target, v1 only) and
//! valid curve points.
//!
//! ```text
//! u8 version (1) | Option<bytes32> parent share | bytes32 challenge_hash | bytes32 sp_hash |
//! u8 signage_point_index | u32 peak_height | ProofOfSpace (chia Streamable) |
//! bytes32 payout_puzzle_hash | u64 difficulty | u64 timestamp | G2 signature (96 bytes)
//! ```
//!
//! The signature is the plot key's AugSchemeMPL signature of [`ShareContent::message`]: SHA-256
//! of [`MESSAGE_DOMAIN`], the network's share-chain identity and every byte before the signature.
//! The share hash is SHA-256 of the whole encoding.

use std::io::Cursor;

use bitcoin::hashes::{sha256, Hash, HashEngine};
use chia_bls::Signature;
use chia_protocol::ProofOfSpace;
use chia_traits::Streamable;
use thiserror::Error;

use super::batch::CurvePoints;
use super::params::ChiaNetwork;
use crate::share::ShareHash;

/// The share-format version this build reads and writes.
pub const SHARE_FORMAT_VERSION: u8 = 1;
/// Prefix of every signed share message.
pub const MESSAGE_DOMAIN: &[u8] = b"p2pool-rs pospace share";
/// Longest encoding: fixed fields plus the proof of space at k = 50 with both optional keys.
pub const MAX_SHARE_LEN: usize =
    1 + 33 + 32 + 32 + 1 + 4 + (32 + 49 + 33 + 48 + 1 + 4 + 400) + 32 + 8 + 8 + 96;

/// Why bytes are not a PoSpace share of this network.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than [`MAX_SHARE_LEN`]; holds its length.
    #[error("share is {0} bytes, more than any share")]
    TooLong(usize),
    /// The input ends inside a field.
    #[error("share ends early")]
    Truncated,
    /// The leading version byte is not [`SHARE_FORMAT_VERSION`].
    #[error("unknown share-format version {0}")]
    UnknownVersion(u8),
    /// An optional field's presence byte is neither 0 nor 1.
    #[error("invalid option flag {0:#04x}")]
    OptionFlag(u8),
    /// The embedded chia `ProofOfSpace` does not decode.
    #[error("proof of space: {0}")]
    ProofOfSpace(#[from] chia_traits::Error),
    /// The proof of space is a v2 proof, which this build cannot verify.
    #[error("v2 proofs not supported yet")]
    V2Proof,
    /// The proof of space names both or neither of a pool public key and a pool contract puzzle hash.
    #[error("proof of space needs exactly one of pool public key and pool contract puzzle hash")]
    PoolTarget,
    /// The plot size is outside what the network accepts.
    #[error("plot size k {k} outside the network's {min}..={max}")]
    PlotSize {
        /// The proof's plot size `k`.
        k: u8,
        /// Smallest `k` the network accepts.
        min: u8,
        /// Largest `k` the network accepts.
        max: u8,
    },
    /// The proof bytes do not have the length its plot size implies (`k * 8` bytes).
    #[error("proof is {got} bytes, k {k} needs {expected}")]
    ProofLength {
        /// The proof's plot size `k`.
        k: u8,
        /// Proof length `k` implies, in bytes.
        expected: usize,
        /// Proof length found, in bytes.
        got: usize,
    },
    /// The 96 signature bytes are not a G2 point.
    #[error("signature is not a valid G2 point")]
    SignatureEncoding,
    /// Bytes follow the signature; holds their count.
    #[error("{0} bytes after the share")]
    TrailingBytes(usize),
}

/// Everything a share says, except its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareContent {
    /// Share-format version ([`SHARE_FORMAT_VERSION`]).
    pub version: u8,
    /// The share this one builds on (`None` for the first share of a chain).
    pub prev_share: Option<ShareHash>,
    /// The sub-slot challenge of the signage point answered.
    pub challenge_hash: [u8; 32],
    /// The signage point's hash (challenge chain signage point, `cc_sp_output_hash`).
    pub sp_hash: [u8; 32],
    /// The signage point's index in its sub-slot.
    pub signage_point_index: u8,
    /// The chain height the farmer saw with the signage point (sets the plot filter).
    pub peak_height: u32,
    /// The proof of space (v1), as chia encodes it.
    pub proof_of_space: ProofOfSpace,
    /// Where the farmer wants its share of pool rewards paid.
    pub payout_puzzle_hash: [u8; 32],
    /// The share's difficulty: must be what the chain requires at this point.
    pub difficulty: u64,
    /// Seconds since the Unix epoch, farmer's clock.
    pub timestamp: u64,
}

/// A decoded PoSpace share with its hash, signed message and plot id.
#[derive(Debug, Clone)]
pub struct PoSpaceShare {
    content: ShareContent,
    signature: Signature,
    /// Plot key and signature for signature batches.
    points: CurvePoints,
    hash: ShareHash,
    message: [u8; 32],
    plot_id: [u8; 32],
}

/// Shares are equal when their encodings are (the hash covers every byte).
impl PartialEq for PoSpaceShare {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

impl Eq for PoSpaceShare {}

fn put_option32(out: &mut Vec<u8>, v: Option<&[u8; 32]>) {
    match v {
        Some(b) => {
            out.push(1);
            out.extend_from_slice(b);
        }
        None => out.push(0),
    }
}

impl ShareContent {
    /// The encoding of everything but the signature.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        put_option32(out, self.prev_share.as_ref().map(|h| h.as_byte_array()));
        out.extend_from_slice(&self.challenge_hash);
        out.extend_from_slice(&self.sp_hash);
        out.push(self.signage_point_index);
        out.extend_from_slice(&self.peak_height.to_be_bytes());
        // Streaming a v1 proof into a Vec cannot fail; a v2 one is refused by `sign`'s decode.
        let _ = self.proof_of_space.stream(out);
        out.extend_from_slice(&self.payout_puzzle_hash);
        out.extend_from_slice(&self.difficulty.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
    }

    /// The message the plot key signs on `network`.
    pub fn message(&self, network: &ChiaNetwork) -> [u8; 32] {
        let mut unsigned = Vec::with_capacity(MAX_SHARE_LEN);
        self.encode(&mut unsigned);
        message_of(&unsigned, network)
    }

    /// The share with this signature. Its fields are checked as decoding checks received
    /// bytes (format version, v1 proof, one pool target, plot size, proof length), with the same
    /// errors; the curve points are not validated again: the keys and `signature` are chia-bls
    /// values, validated when they were decoded (and a sum of valid points is valid), so this
    /// costs no square root or subgroup check. The result equals decoding its own bytes.
    pub fn sign(
        &self,
        signature: &Signature,
        network: &ChiaNetwork,
    ) -> Result<PoSpaceShare, DecodeError> {
        if self.version != SHARE_FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(self.version));
        }
        check_proof_shape(&self.proof_of_space, network)?;
        let mut bytes = Vec::with_capacity(MAX_SHARE_LEN);
        self.encode(&mut bytes);
        let unsigned_len = bytes.len();
        bytes.extend_from_slice(&signature.to_bytes());
        if bytes.len() > MAX_SHARE_LEN {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        let points = CurvePoints::new(&self.proof_of_space.plot_public_key, signature)
            .ok_or(DecodeError::SignatureEncoding)?;
        PoSpaceShare::assemble(
            self.clone(),
            signature.clone(),
            points,
            &bytes,
            unsigned_len,
            network,
        )
    }
}

fn message_of(unsigned: &[u8], network: &ChiaNetwork) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(MESSAGE_DOMAIN);
    engine.input(&network.identity);
    engine.input(unsigned);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// A bounds-checked reader over the share bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(DecodeError::Truncated)?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn option32(&mut self) -> Result<Option<[u8; 32]>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.array()?)),
            f => Err(DecodeError::OptionFlag(f)),
        }
    }

    /// A v1 proof of space, refusing what Chia refuses before any proof work.
    fn proof_of_space(&mut self, network: &ChiaNetwork) -> Result<ProofOfSpace, DecodeError> {
        let rest = &self.bytes[self.pos..];
        // The pool-contract option byte carries the proof version (bit 0x02): refuse v2 by
        // name, before chia's parser reads the v2 layout.
        let key_len = match rest.get(32) {
            Some(1) => 49,
            Some(_) => 1,
            None => return Err(DecodeError::Truncated),
        };
        if rest.get(32 + key_len).is_some_and(|p| p >> 1 != 0) {
            return Err(DecodeError::V2Proof);
        }
        let mut cursor = Cursor::new(rest);
        let pos = ProofOfSpace::parse::<false>(&mut cursor).map_err(|e| match e {
            chia_traits::Error::EndOfBuffer => DecodeError::Truncated,
            e => DecodeError::ProofOfSpace(e),
        })?;
        self.pos += cursor.position() as usize;
        check_proof_shape(&pos, network)?;
        Ok(pos)
    }
}

/// What a share's proof of space must look like before anything is computed from it: v1, one
/// pool target, a plot size of the network, a proof as long as its size says.
fn check_proof_shape(pos: &ProofOfSpace, network: &ChiaNetwork) -> Result<(), DecodeError> {
    if pos.version != 0 {
        return Err(DecodeError::V2Proof);
    }
    if pos.pool_public_key.is_some() == pos.pool_contract_puzzle_hash.is_some() {
        return Err(DecodeError::PoolTarget);
    }
    let k = pos.size;
    if k < network.min_k || k > network.max_k {
        return Err(DecodeError::PlotSize {
            k,
            min: network.min_k,
            max: network.max_k,
        });
    }
    let expected = crate::pospace::proof_len(k);
    if pos.proof.len() != expected {
        return Err(DecodeError::ProofLength {
            k,
            expected,
            got: pos.proof.len(),
        });
    }
    Ok(())
}

impl PoSpaceShare {
    /// Decodes a share of `network`.
    pub fn decode(bytes: &[u8], network: &ChiaNetwork) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_SHARE_LEN {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != SHARE_FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let content = ShareContent {
            version,
            prev_share: r.option32()?.map(ShareHash::from_byte_array),
            challenge_hash: r.array()?,
            sp_hash: r.array()?,
            signage_point_index: r.u8()?,
            peak_height: u32::from_be_bytes(r.array()?),
            proof_of_space: r.proof_of_space(network)?,
            payout_puzzle_hash: r.array()?,
            difficulty: u64::from_be_bytes(r.array()?),
            timestamp: u64::from_be_bytes(r.array()?),
        };
        let unsigned_len = r.pos;
        let signature_bytes: [u8; 96] = r.array()?;
        if r.pos != bytes.len() {
            return Err(DecodeError::TrailingBytes(bytes.len() - r.pos));
        }
        let plot_key = content.proof_of_space.plot_public_key.to_bytes();
        let (signature, points) = CurvePoints::validate_signature(&plot_key, &signature_bytes)
            .ok_or(DecodeError::SignatureEncoding)?;
        Self::assemble(content, signature, points, bytes, unsigned_len, network)
    }

    /// The share of checked `content` and signature, from its encoding `bytes` (the signature
    /// starts at `unsigned_len`).
    fn assemble(
        content: ShareContent,
        signature: Signature,
        points: CurvePoints,
        bytes: &[u8],
        unsigned_len: usize,
        network: &ChiaNetwork,
    ) -> Result<Self, DecodeError> {
        let pos = &content.proof_of_space;
        let plot_key = pos.plot_public_key.to_bytes();
        let plot_id = match (&pos.pool_public_key, &pos.pool_contract_puzzle_hash) {
            (Some(pool), _) => crate::pospace::plot_id_og(&pool.to_bytes(), &plot_key),
            (None, Some(contract)) => {
                let contract: [u8; 32] = contract
                    .as_slice()
                    .try_into()
                    .map_err(|_| DecodeError::PoolTarget)?;
                crate::pospace::plot_id_pool(&contract, &plot_key)
            }
            (None, None) => return Err(DecodeError::PoolTarget),
        };
        Ok(PoSpaceShare {
            message: message_of(&bytes[..unsigned_len], network),
            hash: ShareHash::from_byte_array(sha256::Hash::hash(bytes).to_byte_array()),
            content,
            signature,
            points,
            plot_id,
        })
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_SHARE_LEN);
        self.content.encode(&mut out);
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// What the share says.
    pub fn content(&self) -> &ShareContent {
        &self.content
    }

    /// The plot key's signature of [`Self::message`].
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The plot key and signature as the batch check takes them.
    pub fn curve_points(&self) -> &CurvePoints {
        &self.points
    }

    /// SHA-256 of the encoding.
    pub fn hash(&self) -> ShareHash {
        self.hash
    }

    /// The signed message (network identity included).
    pub fn message(&self) -> &[u8; 32] {
        &self.message
    }

    /// The plot id, from the proof's keys.
    pub fn plot_id(&self) -> &[u8; 32] {
        &self.plot_id
    }

    /// The plot size.
    pub fn k(&self) -> u8 {
        self.content.proof_of_space.size
    }
}
