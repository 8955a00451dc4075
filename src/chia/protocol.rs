//! Chia's harvester ↔ farmer messages as chia-blockchain 2.7.5 puts them on the wire, shared by
//! the harvester (`crate::harvester`) and the farmer endpoint (`crate::chia::farmer`)
//! (`protocols/harvester_protocol.py`, `farmer_protocol.py`, `outbound_message.py`): the
//! `Message` frame and the Streamable payloads `chia-protocol` does not define. Shared types
//! (`Handshake`, `ProofOfSpace`, `RewardChainBlockUnfinished`, BLS keys) come from chia_rs.

use chia_bls::{PublicKey, Signature};
use chia_protocol::{
    Bytes, Bytes32, ChallengeChainSubSlot, ClassgroupElement, FoliageBlockData,
    FoliageTransactionBlock, PoolTarget, ProofOfSpace, RewardChainBlockUnfinished,
    RewardChainSubSlot,
};
use chia_streamable_macro::Streamable;
use chia_traits::Streamable as _;

/// Largest message accepted or sent (chia's websocket `max_msg_size`).
pub const MAX_MESSAGE_BYTES: usize = 50 * 1024 * 1024;

/// `protocol_version` a 2.7.5 harvester announces.
pub const PROTOCOL_VERSION: &str = "0.0.38";

/// Message types used between a harvester and a farmer (`protocol_message_types.py`).
pub mod msg {
    /// Shared handshake, both ways.
    pub const HANDSHAKE: u8 = 1;
    /// Farmer → harvester: farmer and pool keys.
    pub const HARVESTER_HANDSHAKE: u8 = 3;
    /// Harvester → farmer: a proof good enough for the signage point.
    pub const NEW_PROOF_OF_SPACE: u8 = 5;
    /// Farmer → harvester: sign these hashes with a plot's local key.
    pub const REQUEST_SIGNATURES: u8 = 6;
    /// Harvester → farmer: the signatures, same message id.
    pub const RESPOND_SIGNATURES: u8 = 7;
    /// Harvester → farmer: one per signage point.
    pub const FARMING_INFO: u8 = 12;
    /// Farmer → harvester: a signage point (`NewSignagePointHarvester2` layout).
    pub const NEW_SIGNAGE_POINT_HARVESTER: u8 = 66;
    /// Farmer → harvester: list the plots.
    pub const REQUEST_PLOTS: u8 = 67;
    /// Plot sync: start.
    pub const PLOT_SYNC_START: u8 = 78;
    /// Plot sync: paths removed since the last sync.
    pub const PLOT_SYNC_REMOVED: u8 = 80;
    /// Plot sync: paths that failed to open.
    pub const PLOT_SYNC_INVALID: u8 = 81;
    /// Plot sync: plots whose keys the farmer does not have.
    pub const PLOT_SYNC_KEYS_MISSING: u8 = 82;
    /// Plot sync: duplicate plot files.
    pub const PLOT_SYNC_DUPLICATES: u8 = 83;
    /// Plot sync: done.
    pub const PLOT_SYNC_DONE: u8 = 84;
    /// Farmer → harvester: acknowledges one plot sync message.
    pub const PLOT_SYNC_RESPONSE: u8 = 85;
    /// Plot sync: loaded plots (`Plot2` layout, protocol ≥ 0.0.38).
    pub const PLOT_SYNC_LOADED2: u8 = 112;
    /// Harvester → farmer: answer to `request_plots` (`Plot2` layout).
    pub const RESPOND_PLOTS2: u8 = 113;
    /// Full node → farmer: a signage point or end of sub-slot (`NewSignagePoint`).
    pub const NEW_SIGNAGE_POINT: u8 = 8;
    /// Farmer → full node: a proof good enough for a block.
    pub const DECLARE_PROOF_OF_SPACE: u8 = 9;
    /// Full node → farmer: sign the unfinished block's foliage.
    pub const REQUEST_SIGNED_VALUES: u8 = 10;
    /// Farmer → full node: the foliage signatures.
    pub const SIGNED_VALUES: u8 = 11;
}

/// Why a frame or payload was refused. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame above [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    Oversize(usize),
    /// The frame itself does not parse.
    #[error("malformed message frame: {0}")]
    Frame(chia_traits::Error),
    /// A payload of a known type does not parse.
    #[error("malformed {what} payload (message type {msg_type}): {source}")]
    Payload {
        /// Payload name.
        what: &'static str,
        /// Message type.
        msg_type: u8,
        /// The Streamable error.
        source: chia_traits::Error,
    },
    /// A payload failed to serialize (a string or list over the Streamable limits).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// Payload name.
        what: &'static str,
        /// The Streamable error.
        source: chia_traits::Error,
    },
}

/// One chia `Message`: `type u8`, `id Option<u16>`, `data` (u32 length + bytes). The type is kept
/// as a plain byte so types newer than `chia-protocol`'s enum (112, 113) pass through.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message type ([`msg`]).
    pub msg_type: u8,
    /// Request id: a reply carries the request's.
    pub id: Option<u16>,
    /// The Streamable payload.
    pub data: Bytes,
}

impl Frame {
    /// A frame carrying `payload`.
    pub fn new<T: chia_traits::Streamable>(
        msg_type: u8,
        id: Option<u16>,
        what: &'static str,
        payload: &T,
    ) -> Result<Frame, ProtocolError> {
        let data = payload
            .to_bytes()
            .map_err(|source| ProtocolError::Encode { what, source })?;
        Ok(Frame {
            msg_type,
            id,
            data: data.into(),
        })
    }

    /// Parses one websocket binary frame.
    pub fn decode(bytes: &[u8]) -> Result<Frame, ProtocolError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(ProtocolError::Oversize(bytes.len()));
        }
        Frame::from_bytes(bytes).map_err(ProtocolError::Frame)
    }

    /// Serializes for one websocket binary frame.
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let bytes = self.to_bytes().map_err(|source| ProtocolError::Encode {
            what: "message",
            source,
        })?;
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(ProtocolError::Oversize(bytes.len()));
        }
        Ok(bytes)
    }

    /// Parses the payload as `T` (all bytes must be used; keys and signatures are checked to be
    /// on the curve).
    pub fn payload<T: chia_traits::Streamable>(
        &self,
        what: &'static str,
    ) -> Result<T, ProtocolError> {
        self.parsed(what, T::from_bytes)
    }

    /// [`Self::payload`] without the subgroup checks of its BLS points (they are still
    /// decompressed, so on the curve): for a message whose keys the caller checks otherwise
    /// before any pairing or signature uses them (`new_proof_of_space`: its plot key must equal a
    /// sum of checked keys before the proof is signed, its pool key the node's own or be checked).
    pub fn payload_unchecked_points<T: chia_traits::Streamable>(
        &self,
        what: &'static str,
    ) -> Result<T, ProtocolError> {
        self.parsed(what, T::from_bytes_unchecked)
    }

    fn parsed<T>(
        &self,
        what: &'static str,
        parse: fn(&[u8]) -> chia_traits::Result<T>,
    ) -> Result<T, ProtocolError> {
        parse(self.data.as_ref()).map_err(|source| ProtocolError::Payload {
            what,
            msg_type: self.msg_type,
            source,
        })
    }
}

/// A pool's partial threshold for plot-NFT plots.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct PoolDifficulty {
    /// The pool's difficulty for this plot NFT: a proof is a partial when its required iterations
    /// at this difficulty are below `sub_slot_iters / 64`.
    pub difficulty: u64,
    /// The pool's sub-slot iterations (chia pools use `POOL_SUB_SLOT_ITERS`, 37,600,000,000).
    pub sub_slot_iters: u64,
    /// The plot NFT's pool contract (p2 singleton) puzzle hash: the plots this difficulty applies
    /// to.
    pub pool_contract_puzzle_hash: Bytes32,
}

/// `harvester_handshake` (message 3, farmer → harvester): the keys the farmer farms with.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct HarvesterHandshake {
    /// BLS G1 farmer keys. Plots made for another farmer key are not loaded; an empty list makes
    /// the harvester ignore every signage point.
    pub farmer_public_keys: Vec<PublicKey>,
    /// BLS G1 pool keys for OG (non plot-NFT) plots. OG plots whose pool key is missing are not
    /// loaded.
    pub pool_public_keys: Vec<PublicKey>,
}

/// `new_signage_point_harvester` (message 66, farmer → harvester) in the layout for protocol
/// ≥ 0.0.38 (chia's `NewSignagePointHarvester2`); the older layout is not accepted by a 2.7.5
/// harvester.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct NewSignagePointHarvester2 {
    /// The challenge chain's challenge for the current sub-slot.
    pub challenge_hash: Bytes32,
    /// The chain's current block difficulty.
    pub difficulty: u64,
    /// The chain's current sub-slot iterations (a multiple of 64); a proof counts when its required
    /// iterations are below `sub_slot_iters / 64`.
    pub sub_slot_iters: u64,
    /// Index of the signage point in its sub-slot, 0 to 63 (0 is the end of the previous sub-slot).
    pub signage_point_index: u8,
    /// The challenge chain signage point hash (equal to `challenge_hash` at index 0); it enters the
    /// plot filter and the proof's challenge.
    pub sp_hash: Bytes32,
    /// Pool partial thresholds, one per plot NFT the farmer pools with.
    pub pool_difficulties: Vec<PoolDifficulty>,
    /// Height of the full node's peak: the harvester derives the v1 plot filter's prefix bits from
    /// it.
    pub peak_height: u32,
    /// Height of the latest transaction block.
    pub last_tx_height: u32,
    /// Challenge for the v2 plot filter, taken from an earlier completed sub-slot (signage points
    /// 0-15 use the sub-slot before last, 16-63 the last one); `None` when the chain has no such
    /// history.
    pub filter_challenge: Option<Bytes32>,
}

/// Fee information a third-party (CHIP-22) harvester may attach to a proof.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct ProofOfSpaceFeeInfo {
    /// The fee threshold the harvester applied, as the third-party harvester reports it (opaque to
    /// this node).
    pub applied_fee_threshold: u32,
}

/// `new_proof_of_space` (message 5, harvester → farmer): one proof whose required iterations
/// are below the signage point's (or a pool's) threshold.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct NewProofOfSpace {
    /// The sub-slot challenge of the signage point this proof answers.
    pub challenge_hash: Bytes32,
    /// The signage point hash this proof answers.
    pub sp_hash: Bytes32,
    /// 64 hex characters of the quality, then the plot's path.
    pub plot_identifier: String,
    /// The proof of space itself (plot keys, k, and the 64 x-values).
    pub proof: ProofOfSpace,
    /// Index of the answered signage point in its sub-slot, 0 to 63.
    pub signage_point_index: u8,
    /// Whether the harvester wants the farmer to send the data behind each hash in
    /// `request_signatures` (CHIP-22 third-party harvesters).
    pub include_source_signature_data: bool,
    /// A puzzle hash the harvester asks the farmer reward to go to instead of the farmer's own
    /// (CHIP-22); `None` normally.
    pub farmer_reward_address_override: Option<Bytes32>,
    /// Fee information the third-party harvester reports, if any.
    pub fee_info: Option<ProofOfSpaceFeeInfo>,
}

/// What a signed hash is the hash of (CHIP-22 third-party harvesters only).
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct SignatureRequestSourceData {
    /// chia's `SigningDataKind`: 1 foliage block data, 2 foliage transaction block, 3 challenge
    /// chain VDF, 4 reward chain VDF, 5 challenge chain sub-slot, 6 reward chain sub-slot, 7 pool
    /// partial.
    pub kind: u8,
    /// The Streamable serialization of that object; its hash is the message to sign.
    pub data: Bytes,
}

/// `request_signatures` (message 6, farmer → harvester): hashes to sign with a plot's local key;
/// answered by [`RespondSignatures`] with the same message id.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct RequestSignatures {
    /// The `plot_identifier` of the `new_proof_of_space` being signed for.
    pub plot_identifier: String,
    /// The sub-slot challenge of the proof's signage point.
    pub challenge_hash: Bytes32,
    /// The signage point hash of the proof.
    pub sp_hash: Bytes32,
    /// The 32-byte hashes to sign with the plot's local key.
    pub messages: Vec<Bytes32>,
    /// For CHIP-22 harvesters only: the object behind each hash in `messages`, same order (`None`
    /// for a hash without one).
    pub message_data: Option<Vec<Option<SignatureRequestSourceData>>>,
    /// For CHIP-22 harvesters only: the unfinished block's reward chain data the hashes come from.
    pub rc_block_unfinished: Option<RewardChainBlockUnfinished>,
}

/// `respond_signatures` (message 7, harvester → farmer): the local key's signatures over the
/// requested hashes.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct RespondSignatures {
    /// The request's `plot_identifier`.
    pub plot_identifier: String,
    /// The request's sub-slot challenge.
    pub challenge_hash: Bytes32,
    /// The request's signage point hash.
    pub sp_hash: Bytes32,
    /// The plot's local public key (BLS G1).
    pub local_pk: PublicKey,
    /// The farmer public key the plot was made for (BLS G1).
    pub farmer_pk: PublicKey,
    /// Each requested hash with its `AugSchemeMPL` signature (BLS G2) by the local key, augmented
    /// with the plot public key.
    pub message_signatures: Vec<(Bytes32, Signature)>,
    /// Echo of the proof's CHIP-22 flag.
    pub include_source_signature_data: bool,
    /// Echo of the proof's CHIP-22 farmer reward override, if any.
    pub farmer_reward_address_override: Option<Bytes32>,
}

/// `farming_info` (message 12, a farmer protocol type the harvester sends once per signage point):
/// its lookup statistics.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct FarmingInfo {
    /// The sub-slot challenge of the signage point.
    pub challenge_hash: Bytes32,
    /// The signage point hash.
    pub sp_hash: Bytes32,
    /// When the lookup finished, Unix seconds.
    pub timestamp: u64,
    /// How many plots passed the plot filter.
    pub passed: u32,
    /// How many proofs were found and sent.
    pub proofs: u32,
    /// How many plots the harvester has loaded.
    pub total_plots: u32,
    /// Microseconds.
    pub lookup_time: u64,
}

/// A loaded plot as the farmer lists it (`Plot2`).
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct Plot2 {
    /// The plot file's path on the harvester.
    pub filename: String,
    /// k for v1 plots.
    pub size: u8,
    /// The plot id: SHA-256 of the pool key (OG plots) or pool contract puzzle hash (plot-NFT
    /// plots) followed by the plot public key.
    pub plot_id: Bytes32,
    /// The OG pool public key; `None` for plot-NFT plots.
    pub pool_public_key: Option<PublicKey>,
    /// The plot NFT's pool contract puzzle hash; `None` for OG plots.
    pub pool_contract_puzzle_hash: Option<Bytes32>,
    /// The plot public key (local key + farmer key, plus a taproot key for plot-NFT plots).
    pub plot_public_key: PublicKey,
    /// The file's size in bytes.
    pub file_size: u64,
    /// The file's modification time, Unix seconds.
    pub time_modified: u64,
    /// The plot's compression level (0 for uncompressed); `None` if unknown.
    pub compression_level: Option<u8>,
    /// Index of a v2 plot within its group (0 for v1 plots).
    pub plot_index: u16,
    /// Meta group of a v2 plot (0 for v1 plots).
    pub meta_group: u8,
}

/// `respond_plots2` (message 113, harvester → farmer): the answer to `request_plots` (67).
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct RespondPlots2 {
    /// The loaded plots.
    pub plots: Vec<Plot2>,
    /// Paths of plot files that could not be opened or parsed.
    pub failed_to_open_filenames: Vec<String>,
    /// Paths of plots whose farmer key (or OG pool key) the farmer did not send.
    pub no_key_filenames: Vec<String>,
}

/// Names one plot sync message; the farmer echoes it.
#[derive(Streamable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlotSyncIdentifier {
    /// When the message was sent, Unix seconds; the harvester drops a response older than its
    /// message timeout.
    pub timestamp: u64,
    /// The sync this message belongs to (chia uses the start time in Unix seconds; 0 between
    /// syncs).
    pub sync_id: u64,
    /// Position of the message in its sync, from 0.
    pub message_id: u64,
}

/// `plot_sync_start` (message 78, harvester → farmer): opens a plot sync.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct PlotSyncStart {
    /// The message's identifier.
    pub identifier: PlotSyncIdentifier,
    /// Whether this sync follows the harvester's initial plot refresh (after it started or
    /// reconnected): the farmer then forgets what it had.
    pub initial: bool,
    /// The `sync_id` of the previous completed sync (0 if none); chia's farmer refuses the sync
    /// (error 3) when it is not the last sync it completed.
    pub last_sync_id: u64,
    /// How many plot files the harvester found on disk.
    pub plot_file_count: u32,
    /// 1 = CPU.
    pub harvesting_mode: u8,
}

/// `plot_sync_removed` (80), `_invalid` (81), `_keys_missing` (82) and `_duplicates` (83),
/// harvester → farmer: one batch of plot paths.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct PlotSyncPathList {
    /// The message's identifier.
    pub identifier: PlotSyncIdentifier,
    /// Plot file paths.
    pub data: Vec<String>,
    /// Whether this is the last batch of this list in the sync.
    pub r#final: bool,
}

/// `plot_sync_loaded2` (message 112, harvester → farmer): one batch of loaded plots.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct PlotSyncPlotList2 {
    /// The message's identifier.
    pub identifier: PlotSyncIdentifier,
    /// Loaded plots in this batch.
    pub data: Vec<Plot2>,
    /// Whether this is the last batch of loaded plots in the sync.
    pub r#final: bool,
}

/// `plot_sync_done` (message 84, harvester → farmer): closes a plot sync.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct PlotSyncDone {
    /// The message's identifier.
    pub identifier: PlotSyncIdentifier,
    /// Seconds.
    pub duration: u64,
}

/// Why the farmer refused a plot sync message.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct PlotSyncError {
    /// chia's plot sync `ErrorCodes`: -1 unknown, 0 invalid state, 1 invalid peer id, 2 invalid
    /// identifier, 3 invalid last sync id, 4 invalid connection type, 5 plot already available, 6
    /// plot not available, 7 sync ids match.
    pub code: i16,
    /// Human-readable reason.
    pub message: String,
    /// The identifier the farmer expected instead, when the error is about ordering.
    pub expected_identifier: Option<PlotSyncIdentifier>,
}

/// `plot_sync_response` (message 85, farmer → harvester): acknowledges or refuses one plot sync
/// message.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct PlotSyncResponse {
    /// The identifier of the acknowledged message, echoed.
    pub identifier: PlotSyncIdentifier,
    /// The acknowledged message's type ([`msg`] number: 78, 80 to 84, 112).
    pub message_type: i16,
    /// Why the message was refused; `None` when it was accepted.
    pub error: Option<PlotSyncError>,
}

/// What an end of sub-slot signage point was made from (farmer protocol, part of
/// [`SignagePointSourceData`]).
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct SpSubSlotSourceData {
    /// The challenge chain's end of sub-slot data.
    pub cc_sub_slot: ChallengeChainSubSlot,
    /// The reward chain's end of sub-slot data.
    pub rc_sub_slot: RewardChainSubSlot,
}

/// What a signage point's VDF outputs were (farmer protocol, part of [`SignagePointSourceData`]).
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct SpVdfSourceData {
    /// The challenge chain VDF output at the signage point.
    pub cc_vdf: ClassgroupElement,
    /// The reward chain VDF output at the signage point.
    pub rc_vdf: ClassgroupElement,
}

/// `SignagePointSourceData`: what a signage point was made from; exactly one of the two is set.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct SignagePointSourceData {
    /// Set for an end of sub-slot (index 0).
    pub sub_slot_data: Option<SpSubSlotSourceData>,
    /// Set for a signage point inside a sub-slot.
    pub vdf_data: Option<SpVdfSourceData>,
}

/// `new_signage_point` (message 8, full node → farmer), chia-blockchain 2.7.5's layout.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct NewSignagePoint {
    /// The challenge chain's challenge for the current sub-slot.
    pub challenge_hash: Bytes32,
    /// The challenge chain signage point hash (what harvesters get as `sp_hash`).
    pub challenge_chain_sp: Bytes32,
    /// The reward chain signage point hash, which the block's reward chain signature signs.
    pub reward_chain_sp: Bytes32,
    /// The chain's current block difficulty.
    pub difficulty: u64,
    /// The chain's current sub-slot iterations.
    pub sub_slot_iters: u64,
    /// Index of the signage point in its sub-slot, 0 to 63 (0 is an end of sub-slot).
    pub signage_point_index: u8,
    /// Height of the full node's peak.
    pub peak_height: u32,
    /// Height of the latest transaction block.
    pub last_tx_height: u32,
    /// What the signage point was made from (the farmer uses it to give CHIP-22 harvesters the
    /// data behind the hashes they sign).
    pub sp_source_data: Option<SignagePointSourceData>,
    /// Challenge for the v2 plot filter from the completed sub-slot history; `None` when there is
    /// none.
    pub filter_challenge: Option<Bytes32>,
}

/// `declare_proof_of_space` (message 9, farmer → full node): a proof good enough for a block,
/// with the plot key's signatures of the two signage points and where the rewards go. The full
/// node makes an unfinished block of it and answers with `request_signed_values`, or not at
/// all (while syncing, or for a signage point it does not know or no longer has as current).
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct DeclareProofOfSpace {
    /// The challenge chain's challenge for the sub-slot of the signage point.
    pub challenge_hash: Bytes32,
    /// The challenge chain signage point hash the proof answers (`new_signage_point`'s).
    pub challenge_chain_sp: Bytes32,
    /// Index of the signage point in its sub-slot, 0 to 63 (0 is an end of sub-slot).
    pub signage_point_index: u8,
    /// The reward chain signage point hash (`new_signage_point`'s); the full node drops a
    /// declaration whose value is no longer its current one.
    pub reward_chain_sp: Bytes32,
    /// The harvester's proof of space.
    pub proof_of_space: ProofOfSpace,
    /// The plot key's (aggregate) signature of `challenge_chain_sp`.
    pub challenge_chain_sp_signature: Signature,
    /// The plot key's (aggregate) signature of `reward_chain_sp`.
    pub reward_chain_sp_signature: Signature,
    /// Where the block's farmer part goes.
    pub farmer_puzzle_hash: Bytes32,
    /// For a plot made with a pool public key (`None` for a plot-NFT plot).
    pub pool_target: Option<PoolTarget>,
    /// The pool key's signature of `pool_target`.
    pub pool_signature: Option<Signature>,
    /// Asks the full node to put the foliage and reward chain data behind the hashes into its
    /// `request_signed_values` (for CHIP-22 harvesters); `false` by chia's default and from
    /// this node.
    pub include_signature_source_data: bool,
}

/// `request_signed_values` (message 10, full node → farmer): the unfinished block made from a
/// declared proof, named by its quality string, waiting for the plot key's signatures of its
/// foliage. Sent once after `declare_proof_of_space`, and again for the backup block (the same
/// block without transactions) when the first candidate, one with transactions, fails.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct RequestSignedValues {
    /// The declared proof's quality string (the full node's key for its candidate block).
    pub quality_string: Bytes32,
    /// Hash of the unfinished block's foliage block data, to be signed by the plot key.
    pub foliage_block_data_hash: Bytes32,
    /// Zeros for a block that is not a transaction block.
    pub foliage_transaction_block_hash: Bytes32,
    /// The foliage block data itself, only when the declaration asked for source data.
    pub foliage_block_data: Option<FoliageBlockData>,
    /// The foliage transaction block itself, only when the declaration asked for source data
    /// and the block is a transaction block.
    pub foliage_transaction_block_data: Option<FoliageTransactionBlock>,
    /// The unfinished block's reward chain block, only when the declaration asked for source
    /// data.
    pub rc_block_unfinished: Option<RewardChainBlockUnfinished>,
}

/// `signed_values` (message 11, farmer → full node): the plot key's signatures of the foliage,
/// the answer to `request_signed_values`. The full node puts them into its candidate
/// unfinished block and adds it (which validates and propagates it); a timelord's infusion
/// then finishes the block.
#[derive(Streamable, Debug, Clone, PartialEq, Eq)]
pub struct SignedValues {
    /// The quality string of the `request_signed_values` answered.
    pub quality_string: Bytes32,
    /// The plot key's (aggregate) signature of `foliage_block_data_hash`.
    pub foliage_block_data_signature: Signature,
    /// The plot key's (aggregate) signature of `foliage_transaction_block_hash` (the full
    /// node uses it only for a transaction block).
    pub foliage_transaction_block_signature: Signature,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout() {
        let f = Frame {
            msg_type: 7,
            id: Some(0x0102),
            data: vec![0xaa, 0xbb].into(),
        };
        let bytes = f.encode().unwrap();
        assert_eq!(bytes, [7, 1, 1, 2, 0, 0, 0, 2, 0xaa, 0xbb]);
        assert_eq!(Frame::decode(&bytes).unwrap(), f);
        let none = Frame {
            msg_type: 1,
            id: None,
            data: Bytes::default(),
        };
        assert_eq!(none.encode().unwrap(), [1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn truncated_or_padded_frames_are_errors_not_panics() {
        // A frame claiming more data than it has, or trailing bytes after the data, is refused.
        assert!(Frame::decode(&[7, 0, 0, 0, 0, 9, 1]).is_err());
        assert!(Frame::decode(&[7, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(Frame::decode(&[]).is_err());
        assert!(Frame::decode(&[7, 2]).is_err());
    }

    #[test]
    fn oversize_frame_is_refused() {
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            Frame::decode(&big),
            Err(ProtocolError::Oversize(_))
        ));
    }

    #[test]
    fn signage_point_layout() {
        let sp = NewSignagePointHarvester2 {
            challenge_hash: Bytes32::new([1; 32]),
            difficulty: 2,
            sub_slot_iters: 3,
            signage_point_index: 4,
            sp_hash: Bytes32::new([5; 32]),
            pool_difficulties: vec![],
            peak_height: 6,
            last_tx_height: 7,
            filter_challenge: None,
        };
        let bytes = sp.to_bytes().unwrap();
        // 32 + 8 + 8 + 1 + 32 + 4 (empty list) + 4 + 4 + 1 (None)
        assert_eq!(bytes.len(), 94);
        assert_eq!(&bytes[32..40], &2u64.to_be_bytes());
        assert_eq!(&bytes[81..85], &[0, 0, 0, 0]);
        assert_eq!(bytes[93], 0);
        assert_eq!(NewSignagePointHarvester2::from_bytes(&bytes).unwrap(), sp);
        // The pre-0.0.38 layout (one `filter_prefix_bits` byte after the list) does not parse.
        let mut old = bytes[..85].to_vec();
        old.push(9);
        assert!(NewSignagePointHarvester2::from_bytes(&old).is_err());
    }

    /// `NewSignagePoint` as chia-blockchain 2.7.5 serializes it (made with its Python classes:
    /// hashes of 1s, 2s, 3s, difficulty 7, sub-slot iterations 2^27, index 5, peak 100, last
    /// transaction block 98, VDF source data of two default class group elements, filter
    /// challenge of 4s).
    const NEW_SIGNAGE_POINT_2_7_5: &str = concat!(
        "0101010101010101010101010101010101010101010101010101010101010101",
        "0202020202020202020202020202020202020202020202020202020202020202",
        "0303030303030303030303030303030303030303030303030303030303030303",
        "0000000000000007000000000800000005000000640000006201000108",
    );

    #[test]
    fn new_signage_point_golden() {
        let mut bytes = hex::decode(NEW_SIGNAGE_POINT_2_7_5).unwrap();
        // The two class group elements: 0x08 then 99 zero bytes each (the first 0x08 is above).
        bytes.extend([0u8; 99]);
        bytes.push(0x08);
        bytes.extend([0u8; 99]);
        bytes.push(1);
        bytes.extend([4u8; 32]);
        let sp = NewSignagePoint::from_bytes(&bytes).unwrap();
        assert_eq!(sp.challenge_hash, Bytes32::new([1; 32]));
        assert_eq!(sp.challenge_chain_sp, Bytes32::new([2; 32]));
        assert_eq!(sp.reward_chain_sp, Bytes32::new([3; 32]));
        assert_eq!(
            (sp.difficulty, sp.sub_slot_iters, sp.signage_point_index),
            (7, 1 << 27, 5)
        );
        assert_eq!((sp.peak_height, sp.last_tx_height), (100, 98));
        let source = sp.sp_source_data.as_ref().unwrap();
        assert!(source.sub_slot_data.is_none() && source.vdf_data.is_some());
        assert_eq!(sp.filter_challenge, Some(Bytes32::new([4; 32])));
        assert_eq!(sp.to_bytes().unwrap(), bytes);
        // Cut anywhere, it is an error, not a panic.
        for cut in 0..bytes.len() {
            assert!(NewSignagePoint::from_bytes(&bytes[..cut]).is_err());
        }
    }

    proptest::proptest! {
        // Whatever a farmer sends, decoding gives a value or an error, never a panic, and what
        // decodes re-encodes to the same bytes.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Ok(frame) = Frame::decode(&bytes) {
                proptest::prop_assert_eq!(frame.encode().unwrap(), bytes.clone());
            }
            let frame = Frame { msg_type: 0, id: None, data: bytes.into() };
            let _ = frame.payload::<HarvesterHandshake>("x");
            let _ = frame.payload::<NewSignagePointHarvester2>("x");
            let _ = frame.payload::<RequestSignatures>("x");
            let _ = frame.payload::<PlotSyncResponse>("x");
            let _ = frame.payload::<NewSignagePoint>("x");
        }
    }
}
