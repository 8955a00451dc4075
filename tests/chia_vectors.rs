//! Checked-in frames of the chia harvester protocol against `src/chia/protocol.rs`:
//! - `tests/vectors/chia/harvester_frames.txt`: what chia-blockchain 2.7.5's real
//!   `chia_harvester` sent the node (handshake, plot sync, proofs, signatures, farming info),
//!   recorded by `tests/chia_farmer.rs` with `P2POOL_RECORD_CHIA_FRAMES=FILE`. Each decodes with
//!   its payload type and encodes back to the same bytes.
//! - `tests/vectors/chia/farmer_frames.json`: the farmer's messages encoded by chia's own Python
//!   classes (`gen_farmer_frames.py`). Each decodes and re-encodes to the same bytes, and the
//!   node's own message builders (`chia::farmer::messages`) give the same bytes for the same
//!   values.

use std::path::Path;

use chia_protocol::{Bytes, Bytes32, Handshake, NodeType, ProofOfSpace};
use chia_traits::Streamable;
use p2pool::chia::farmer::messages;
use p2pool::chia::farmer::{Announced, FarmerKeys};
use p2pool::chia::protocol::{self as p, msg, Frame};
use sharechain::pospace_share::{ChiaNetwork, SignagePoint};

fn vector(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/chia")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes a frame's payload as `T` and encodes the frame back.
fn round_trip<T: Streamable + std::fmt::Debug>(frame: &Frame, name: &'static str) -> (T, Vec<u8>) {
    let payload: T = frame
        .payload(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = Frame::new(frame.msg_type, frame.id, name, &payload)
        .unwrap()
        .encode()
        .unwrap();
    (payload, again)
}

#[test]
fn real_harvester_frames_decode_and_encode_back() {
    let text = vector("harvester_frames.txt");
    let mut seen = std::collections::BTreeSet::new();
    let (mut proofs, mut nft_proofs) = (0, 0);
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut fields = line.split(' ');
        let (msg_type, name, hex) = (
            fields.next().unwrap().parse::<u8>().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        let bytes = hex::decode(hex).unwrap();
        let frame = Frame::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frame.msg_type, msg_type, "{name}");
        let again = match msg_type {
            msg::HANDSHAKE => {
                let (h, again) = round_trip::<Handshake>(&frame, "handshake");
                assert_eq!(h.node_type, NodeType::Harvester);
                assert_eq!(h.protocol_version, p::PROTOCOL_VERSION);
                again
            }
            msg::PLOT_SYNC_START => round_trip::<p::PlotSyncStart>(&frame, "plot_sync_start").1,
            msg::PLOT_SYNC_LOADED2 => {
                let (list, again) = round_trip::<p::PlotSyncPlotList2>(&frame, "loaded2");
                // The recorded session farmed OG and plot-NFT plots.
                assert!(list
                    .data
                    .iter()
                    .any(|p| p.pool_contract_puzzle_hash.is_some()));
                assert!(list.data.iter().any(|p| p.pool_public_key.is_some()));
                again
            }
            msg::PLOT_SYNC_REMOVED
            | msg::PLOT_SYNC_INVALID
            | msg::PLOT_SYNC_KEYS_MISSING
            | msg::PLOT_SYNC_DUPLICATES => round_trip::<p::PlotSyncPathList>(&frame, "path_list").1,
            msg::PLOT_SYNC_DONE => round_trip::<p::PlotSyncDone>(&frame, "plot_sync_done").1,
            msg::NEW_PROOF_OF_SPACE => {
                let (proof, again) = round_trip::<p::NewProofOfSpace>(&frame, "new_proof_of_space");
                assert_eq!(proof.proof.proof.len(), usize::from(proof.proof.size) * 8);
                proofs += 1;
                nft_proofs += usize::from(proof.proof.pool_contract_puzzle_hash.is_some());
                again
            }
            msg::RESPOND_SIGNATURES => {
                assert!(frame.id.is_some(), "a reply carries the request's id");
                round_trip::<p::RespondSignatures>(&frame, "respond_signatures").1
            }
            msg::FARMING_INFO => round_trip::<p::FarmingInfo>(&frame, "farming_info").1,
            other => panic!("unexpected message type {other}"),
        };
        assert_eq!(hex::encode(again), hex, "{name} does not encode back");
        seen.insert(msg_type);
    }
    for wanted in [
        msg::HANDSHAKE,
        msg::PLOT_SYNC_START,
        msg::PLOT_SYNC_LOADED2,
        msg::PLOT_SYNC_REMOVED,
        msg::PLOT_SYNC_INVALID,
        msg::PLOT_SYNC_KEYS_MISSING,
        msg::PLOT_SYNC_DUPLICATES,
        msg::PLOT_SYNC_DONE,
        msg::NEW_PROOF_OF_SPACE,
        msg::RESPOND_SIGNATURES,
        msg::FARMING_INFO,
    ] {
        assert!(seen.contains(&wanted), "no vector of message type {wanted}");
    }
    assert!(
        proofs >= 2 && nft_proofs >= 1,
        "{proofs} proofs, {nft_proofs} of plot-NFT plots"
    );
}

fn bytes32(v: &serde_json::Value) -> Bytes32 {
    Bytes32::new(
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    )
}

fn encode<T: Streamable>(msg_type: u8, id: Option<u16>, payload: &T) -> String {
    hex::encode(
        Frame::new(msg_type, id, "vector", payload)
            .unwrap()
            .encode()
            .unwrap(),
    )
}

#[test]
fn farmer_frames_equal_chias_encoding() {
    let all: serde_json::Value = serde_json::from_str(&vector("farmer_frames.json")).unwrap();
    let frame_of = |name: &str| -> (String, Frame, &serde_json::Value) {
        let hex = all[name]["frame"].as_str().unwrap().to_owned();
        let frame = Frame::decode(&hex::decode(&hex).unwrap()).unwrap();
        (hex, frame, &all[name]["values"])
    };

    // handshake
    let (hex, frame, v) = frame_of("handshake");
    assert_eq!(
        hex::encode(round_trip::<Handshake>(&frame, "handshake").1),
        hex
    );
    let ours = messages::handshake(
        v["network_id"].as_str().unwrap(),
        v["server_port"].as_u64().unwrap() as u16,
        v["software_version"].as_str().unwrap(),
    );
    assert_eq!(v["protocol_version"], p::PROTOCOL_VERSION);
    assert_eq!(encode(msg::HANDSHAKE, None, &ours), hex, "handshake");

    // harvester_handshake, with the keys of the mnemonic as the node derives them
    let (hex, frame, v) = frame_of("harvester_handshake");
    assert_eq!(
        hex::encode(round_trip::<p::HarvesterHandshake>(&frame, "harvester_handshake").1),
        hex
    );
    let keys = FarmerKeys::from_mnemonic(v["mnemonic"].as_str().unwrap()).unwrap();
    assert_eq!(
        encode(
            msg::HARVESTER_HANDSHAKE,
            None,
            &messages::harvester_handshake(&keys)
        ),
        hex,
        "harvester_handshake"
    );

    // new_signage_point_harvester, with and without plot-NFT contracts
    for name in [
        "new_signage_point_harvester",
        "new_signage_point_harvester_og_only",
    ] {
        let (hex, frame, v) = frame_of(name);
        assert_eq!(
            hex::encode(round_trip::<p::NewSignagePointHarvester2>(&frame, "sp").1),
            hex
        );
        let network = &ChiaNetwork::REGTEST;
        assert_eq!(
            v["sub_slot_iters"].as_u64(),
            Some(network.pool_sub_slot_iters)
        );
        let announced = Announced {
            number: 0,
            point: SignagePoint {
                challenge_hash: bytes32(&v["challenge_hash"]).to_bytes(),
                sp_hash: bytes32(&v["sp_hash"]).to_bytes(),
                index: v["signage_point_index"].as_u64().unwrap() as u8,
                peak_height: v["peak_height"].as_u64().unwrap() as u32,
            },
            difficulty: v["difficulty"].as_u64().unwrap(),
            time: 0,
            chain: None,
        };
        let contracts: Vec<Bytes32> = v["contracts"]
            .as_array()
            .unwrap()
            .iter()
            .map(bytes32)
            .collect();
        let ours = messages::new_signage_point_harvester(network, &announced, &contracts);
        assert_eq!(
            encode(msg::NEW_SIGNAGE_POINT_HARVESTER, None, &ours),
            hex,
            "{name}"
        );
    }

    // request_signatures for a proof
    let (hex, frame, v) = frame_of("request_signatures");
    assert_eq!(
        hex::encode(round_trip::<p::RequestSignatures>(&frame, "request_signatures").1),
        hex
    );
    let sk = chia_bls::SecretKey::from_seed(&[1; 32]);
    let proof = p::NewProofOfSpace {
        challenge_hash: bytes32(&v["challenge_hash"]),
        sp_hash: bytes32(&v["sp_hash"]),
        plot_identifier: v["plot_identifier"].as_str().unwrap().to_owned(),
        proof: ProofOfSpace::new(
            Bytes32::new([0; 32]),
            Some(sk.public_key()),
            None,
            sk.public_key(),
            0,
            0,
            0,
            0,
            18,
            Bytes::new(vec![0; 144]),
        ),
        signage_point_index: 0,
        include_source_signature_data: false,
        farmer_reward_address_override: None,
        fee_info: None,
    };
    let ours = messages::request_signatures(&proof, &bytes32(&v["message"]).to_bytes());
    let id = v["id"].as_u64().map(|i| i as u16);
    assert_eq!(frame.id, id);
    assert_eq!(
        encode(msg::REQUEST_SIGNATURES, id, &ours),
        hex,
        "request_signatures"
    );

    // plot_sync_response
    let (hex, frame, v) = frame_of("plot_sync_response");
    assert_eq!(
        hex::encode(round_trip::<p::PlotSyncResponse>(&frame, "plot_sync_response").1),
        hex
    );
    let identifier = p::PlotSyncIdentifier {
        timestamp: v["timestamp"].as_u64().unwrap(),
        sync_id: v["sync_id"].as_u64().unwrap(),
        message_id: v["message_id"].as_u64().unwrap(),
    };
    let ours = messages::plot_sync_response(&identifier, v["message_type"].as_u64().unwrap() as u8);
    assert_eq!(
        encode(msg::PLOT_SYNC_RESPONSE, None, &ours),
        hex,
        "plot_sync_response"
    );
}
