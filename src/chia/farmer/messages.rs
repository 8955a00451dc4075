//! The messages the farmer endpoint sends a harvester, built from the node's values in one
//! place: its `handshake`, `harvester_handshake` (farmer and pool public keys),
//! `new_signage_point_harvester` (with `pool_difficulties` for plot-NFT plots),
//! `request_signatures` and `plot_sync_response`. Their encodings are checked against chia's own
//! Python classes (`tests/vectors/chia/farmer_frames.json`, `tests/chia_vectors.rs`).

use chia_protocol::{Bytes32, Handshake, NodeType};
use sharechain::pospace_share::ChiaNetwork;

use super::keys::FarmerKeys;
use super::Announced;
use crate::chia::protocol::{self as p, PROTOCOL_VERSION};

/// The software version in the node's handshake.
pub fn software_version() -> String {
    format!("p2pool-rs {}", env!("CARGO_PKG_VERSION"))
}

/// The farmer's `handshake` (node type 3, chia's capabilities).
pub fn handshake(network_id: &str, server_port: u16, software_version: &str) -> Handshake {
    Handshake {
        network_id: network_id.to_owned(),
        protocol_version: PROTOCOL_VERSION.to_owned(),
        software_version: software_version.to_owned(),
        server_port,
        node_type: NodeType::Farmer,
        capabilities: vec![(1, "1".into()), (2, "1".into()), (3, "1".into())],
    }
}

/// `harvester_handshake`: the farmer and pool public keys plots must be made for.
pub fn harvester_handshake(keys: &FarmerKeys) -> p::HarvesterHandshake {
    p::HarvesterHandshake {
        farmer_public_keys: vec![keys.farmer_pk()],
        pool_public_keys: vec![keys.pool_pk()],
    }
}

/// `new_signage_point_harvester` for one harvester: the share difficulty (lowered to the chain's
/// when that is easier: [`harvester_difficulty`]) for its OG plots and,
/// for each pool contract its plot sync reported, a `pool_difficulties` entry with the same
/// difficulty and the pool sub-slot iterations, so chia's harvester judges plot-NFT plots at the
/// share difficulty too (it uses the entry matching a plot's contract, and the signage point's
/// own difficulty otherwise).
pub fn new_signage_point_harvester(
    network: &ChiaNetwork,
    a: &Announced,
    contracts: &[Bytes32],
) -> p::NewSignagePointHarvester2 {
    let difficulty = harvester_difficulty(network, a);
    p::NewSignagePointHarvester2 {
        challenge_hash: Bytes32::new(a.point.challenge_hash),
        difficulty,
        sub_slot_iters: network.pool_sub_slot_iters,
        signage_point_index: a.point.index,
        sp_hash: Bytes32::new(a.point.sp_hash),
        pool_difficulties: contracts
            .iter()
            .map(|&hash| p::PoolDifficulty {
                difficulty,
                sub_slot_iters: network.pool_sub_slot_iters,
                pool_contract_puzzle_hash: hash,
            })
            .collect(),
        peak_height: a.point.peak_height,
        // From a full node, its chain's figures; the clock has no transaction blocks (chia
        // phases v1 plots out by this height) and no filter challenge.
        last_tx_height: a.chain.map_or(0, |c| c.last_tx_height),
        filter_challenge: a.chain.and_then(|c| c.filter_challenge).map(Bytes32::new),
    }
}

/// The difficulty sent to harvesters with the pool sub-slot iterations: the share difficulty,
/// or lower when the chain's signage point is easier to win a block on, so that every proof good
/// enough for a block reaches the node (the harvester sends a proof only when it passes this
/// threshold). The chain's threshold at the pool sub-slot iterations is its difficulty scaled by
/// `pool_sub_slot_iters / sub_slot_iters` (the same difficulty constant factor on both sides).
pub fn harvester_difficulty(network: &ChiaNetwork, a: &Announced) -> u64 {
    let Some(chain) = a.chain else {
        return a.difficulty;
    };
    let scaled = u128::from(chain.difficulty) * u128::from(network.pool_sub_slot_iters)
        / u128::from(chain.sub_slot_iters.max(1));
    let scaled = u64::try_from(scaled).unwrap_or(u64::MAX).max(1);
    a.difficulty.min(scaled)
}

/// `request_signatures` for a proof: the share message to sign, nothing else.
pub fn request_signatures(proof: &p::NewProofOfSpace, message: &[u8; 32]) -> p::RequestSignatures {
    p::RequestSignatures {
        plot_identifier: proof.plot_identifier.clone(),
        challenge_hash: proof.challenge_hash,
        sp_hash: proof.sp_hash,
        messages: vec![Bytes32::new(*message)],
        message_data: None,
        rc_block_unfinished: None,
    }
}

/// `request_signatures` for a proof: `messages` to sign (a share's message, a block's
/// challenge-chain and reward-chain signage points).
pub fn request_signatures_of(
    proof: &p::NewProofOfSpace,
    messages: &[[u8; 32]],
) -> p::RequestSignatures {
    p::RequestSignatures {
        plot_identifier: proof.plot_identifier.clone(),
        challenge_hash: proof.challenge_hash,
        sp_hash: proof.sp_hash,
        messages: messages.iter().copied().map(Bytes32::new).collect(),
        message_data: None,
        rc_block_unfinished: None,
    }
}

/// `plot_sync_response` accepting a plot sync message.
pub fn plot_sync_response(identifier: &p::PlotSyncIdentifier, msg_type: u8) -> p::PlotSyncResponse {
    p::PlotSyncResponse {
        identifier: *identifier,
        message_type: i16::from(msg_type),
        error: None,
    }
}
