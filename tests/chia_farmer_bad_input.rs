//! Bad input to the Chia farmer endpoint on a worker port, each refused with its reason while
//! the node and other connections carry on: proofs for a signage point never announced, late,
//! malformed or invalid proofs (counted; the connection stays), malformed and oversize messages,
//! text frames and a wrong websocket path (that connection dropped). Needs no chia install: the
//! harvester side is written here.

mod worker_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chia_bls::SecretKey;
use chia_protocol::{Bytes, Bytes32, Handshake, NodeType, ProofOfSpace};
use futures::{SinkExt, StreamExt};
use p2pool::chia::farmer::{Farmer, FarmerConfig, FarmerKeys, TrackerSink};
use p2pool::chia::protocol::{self as p, msg, Frame};
use sharechain::pospace_share::ChiaNetwork;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use worker_common::{start, test_config, Client, TestProvider, ADDR};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

const NETWORK: &ChiaNetwork = &ChiaNetwork::REGTEST;

async fn connect(addr: SocketAddr, ca_dir: &std::path::Path, path: &str) -> Result<Ws, String> {
    let identity = p2pool::harvester::tls::Identity::load(
        &p2pool::harvester::tls::CertSource::CaDir(ca_dir.to_owned()),
    )
    .unwrap();
    let config = p2pool::harvester::tls::client_config(&identity).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("chia.net").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://{addr}{path}"), tls)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn send(ws: &mut Ws, frame: &Frame) {
    ws.send(WsMessage::Binary(frame.encode().unwrap().into()))
        .await
        .unwrap();
}

/// The next chia message of `msg_type` (others skipped), within 10 s.
async fn expect(ws: &mut Ws, msg_type: u8) -> Frame {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Binary(b))) => {
                    let f = Frame::decode(&b).unwrap();
                    if f.msg_type == msg_type {
                        return f;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("connection ended waiting for {msg_type}: {other:?}"),
            }
        }
    })
    .await
    .expect("message in time")
}

async fn handshake(ws: &mut Ws) {
    let hello = Handshake {
        network_id: "regtest".into(),
        protocol_version: p::PROTOCOL_VERSION.into(),
        software_version: "test".into(),
        server_port: 0,
        node_type: NodeType::Harvester,
        capabilities: vec![(1, "1".into())],
    };
    send(
        ws,
        &Frame::new(msg::HANDSHAKE, None, "handshake", &hello).unwrap(),
    )
    .await;
    expect(ws, msg::HANDSHAKE).await;
    expect(ws, msg::HARVESTER_HANDSHAKE).await;
}

fn proof(challenge: [u8; 32], sp: [u8; 32], index: u8, k: u8) -> p::NewProofOfSpace {
    let sk = SecretKey::from_seed(&[3; 32]);
    let bytes = vec![0x5a; usize::from(k) * 8];
    p::NewProofOfSpace {
        challenge_hash: Bytes32::new(challenge),
        sp_hash: Bytes32::new(sp),
        plot_identifier: format!("{}/plots/x.plot", "0".repeat(64)),
        proof: ProofOfSpace::new(
            Bytes32::new([9; 32]),
            Some(sk.public_key()),
            None,
            sk.public_key(),
            0,
            0,
            0,
            0,
            k,
            Bytes::new(bytes),
        ),
        signage_point_index: index,
        include_source_signature_data: false,
        farmer_reward_address_override: None,
        fee_info: None,
    }
}

fn wait_counter(farmer: &Farmer, name: &str, n: u64) {
    let start = Instant::now();
    while farmer.counter(name) < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "counter {name} never reached {n}: {:?}",
            farmer.counters()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_input_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    p2pool::chia::ssl::create_ca(&ca_dir).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let sink = TrackerSink::spawn(NETWORK);
    let farmer = Farmer::new(
        FarmerConfig {
            network: NETWORK,
            network_id: "regtest".into(),
            ca_dir: ca_dir.clone(),
            keys: FarmerKeys::load_or_generate(dir.path()).unwrap(),
            payout_puzzle_hash: [1; 32],
            // The test announces signage points itself.
            clock_interval: Duration::from_secs(3600),
            server_port: 0,
        },
        Arc::new(sink),
    )
    .unwrap();
    let server = runtime.block_on(start(TestProvider::new(1e-6, 4e-6), test_config()));
    server.port.set_chia_farmer(farmer.clone());
    let addr = server.addr;

    let mut ws = runtime.block_on(async {
        let mut ws = connect(addr, &ca_dir, "/ws").await.unwrap();
        handshake(&mut ws).await;
        ws
    });
    let clock = p2pool::chia::farmer::SignageClock::new(NETWORK, Duration::from_secs(2));
    let n0 = clock.current();
    for n in n0..n0 + 12 {
        farmer.announce(n);
    }
    let old = clock.point(n0);
    let new = clock.point(n0 + 11);
    runtime.block_on(async {
        expect(&mut ws, msg::NEW_SIGNAGE_POINT_HARVESTER).await;
        let cases = [
            proof([1; 32], [2; 32], 3, 18),
            proof(old.challenge_hash, old.sp_hash, old.index, 18),
            proof(new.challenge_hash, new.sp_hash, new.index, 17),
            proof(new.challenge_hash, new.sp_hash, new.index, 18),
        ];
        for case in &cases {
            let f = Frame::new(msg::NEW_PROOF_OF_SPACE, None, "new_proof_of_space", case).unwrap();
            send(&mut ws, &f).await;
        }
    });
    wait_counter(&farmer, "proof_unknown_signage_point", 1);
    wait_counter(&farmer, "proof_late", 1);
    wait_counter(&farmer, "proof_malformed", 1);
    wait_counter(&farmer, "proof_invalid", 1);
    let h = farmer.harvesters();
    assert_eq!(h.len(), 1, "refused proofs keep the connection");
    assert_eq!(
        (h[0].proofs, h[0].late_proofs, h[0].refused_proofs),
        (4, 1, 3)
    );

    // A second harvester stays while the first sends a malformed payload and is dropped.
    let mut other = runtime.block_on(async {
        let mut ws = connect(addr, &ca_dir, "/ws").await.unwrap();
        handshake(&mut ws).await;
        ws
    });
    runtime.block_on(async {
        let bad = Frame {
            msg_type: msg::NEW_PROOF_OF_SPACE,
            id: None,
            data: vec![1, 2, 3].into(),
        };
        send(&mut ws, &bad).await;
    });
    wait_counter(&farmer, "dropped_malformed_message", 1);
    assert_eq!(farmer.harvesters().len(), 1);

    // Not a chia frame at all, a text frame, an oversize message, a wrong path.
    runtime.block_on(async {
        let mut ws = connect(addr, &ca_dir, "/ws").await.unwrap();
        handshake(&mut ws).await;
        ws.send(WsMessage::Binary(vec![7, 0].into())).await.unwrap();
        let mut ws = connect(addr, &ca_dir, "/ws").await.unwrap();
        handshake(&mut ws).await;
        ws.send(WsMessage::Text("{}".into())).await.unwrap();
        let mut ws = connect(addr, &ca_dir, "/ws").await.unwrap();
        handshake(&mut ws).await;
        let huge = vec![0u8; p::MAX_MESSAGE_BYTES + 1024];
        let _ = ws.send(WsMessage::Binary(huge.into())).await;
        assert!(connect(addr, &ca_dir, "/other").await.is_err());
    });
    wait_counter(&farmer, "dropped_malformed_message", 2);
    wait_counter(&farmer, "dropped_text_frame", 1);
    wait_counter(&farmer, "dropped_oversize_message", 1);
    wait_counter(&farmer, "dropped_websocket", 1);

    // The other harvester still gets signage points; a stratum miner still gets work.
    farmer.announce(n0 + 12);
    runtime.block_on(async {
        let sp = expect(&mut other, msg::NEW_SIGNAGE_POINT_HARVESTER).await;
        let sp: p::NewSignagePointHarvester2 = sp.payload("sp").unwrap();
        // The first one queued may be an earlier one: read until the newest.
        let mut sp = sp;
        while sp.sp_hash != Bytes32::new(clock.point(n0 + 12).sp_hash) {
            sp = expect(&mut other, msg::NEW_SIGNAGE_POINT_HARVESTER)
                .await
                .payload("sp")
                .unwrap();
        }
        assert_eq!(sp.sub_slot_iters % 64, 0);
        let mut miner = Client::connect(addr).await;
        miner.handshake(&format!("{ADDR}+0.000000001")).await;
    });
    assert_eq!(farmer.harvesters().len(), 1);
}
