//! Proofs of real plots through the farmer endpoint, with the harvester side written here so the
//! test chooses what is sent: two k18 plots chiapos makes for the node's farmer keys (an OG plot
//! and a plot-NFT plot of a pool contract; `tests/harvester/make_keyed_plot.py`, "skipped: …"
//! without the plotting venv) are reported by plot sync, and then
//! - every `new_signage_point_harvester` carries a `pool_difficulties` entry for the contract
//!   (the share difficulty, the pool sub-slot iterations, the contract puzzle hash);
//! - a proof of the plot-NFT plot, signed by the plot's local key, becomes a share that checks;
//! - a signage point for which the OG plot has several proofs: all are sent, one
//!   `request_signatures` comes back, the others are counted as `proof_duplicate_plot_sp`, and one
//!   share is made.

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

mod worker_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chia_protocol::{Bytes32, Handshake, NodeType};
use futures::{SinkExt, StreamExt};
use p2pool::chia::farmer::{Farmer, FarmerConfig, FarmerKeys, SignageClock, TrackerSink};
use p2pool::chia::protocol::{self as p, msg, Frame};
use p2pool::harvester::plots::{Consensus, Plot};
use sharechain::pospace_share::{check_share, ChiaNetwork, KnownSignagePoints};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use worker_common::{start, test_config, TestProvider};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

const NETWORK: &ChiaNetwork = &ChiaNetwork::REGTEST;
/// The mnemonic `tests/chia_farmer.rs` farms with: its cached plots serve here too.
const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

/// Makes (or reuses) the plot `name` of `kind` for `keys` in `dir`; `None` without the venv.
fn keyed_plot(dir: &Path, name: &str, kind: &str, keys: &FarmerKeys) -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let python = std::env::var_os("PLOTFILE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/p2pool-rs/venv-plots/bin/python"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harvester/make_keyed_plot.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .args([
            name,
            kind,
            &hex::encode(keys.farmer_pk().to_bytes()),
            &hex::encode(keys.pool_pk().to_bytes()),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        println!(
            "skipped: {} cannot plot: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last()?).ok()?;
    Some(PathBuf::from(v["plot"].as_str()?))
}

async fn connect(addr: SocketAddr, ca_dir: &Path) -> Ws {
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
        .unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://{addr}/ws"), tls)
        .await
        .unwrap();
    ws
}

async fn send<T: chia_traits::Streamable>(ws: &mut Ws, msg_type: u8, id: Option<u16>, m: &T) {
    let frame = Frame::new(msg_type, id, "test", m).unwrap();
    ws.send(WsMessage::Binary(frame.encode().unwrap().into()))
        .await
        .unwrap();
}

/// The next chia message, within 10 s.
async fn next(ws: &mut Ws) -> Frame {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Binary(b))) => return Frame::decode(&b).unwrap(),
                Some(Ok(_)) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a message in time")
}

/// The next message of `msg_type`; any `request_signatures` skipped on the way fails the test.
async fn expect(ws: &mut Ws, msg_type: u8) -> Frame {
    loop {
        let f = next(ws).await;
        if f.msg_type == msg_type {
            return f;
        }
        assert_ne!(
            f.msg_type,
            msg::REQUEST_SIGNATURES,
            "unexpected signature request"
        );
    }
}

/// Handshake and a full plot sync of `plots`.
async fn harvester_session(ws: &mut Ws, plots: &[&Plot]) {
    let hello = Handshake {
        network_id: "regtest".into(),
        protocol_version: p::PROTOCOL_VERSION.into(),
        software_version: "test".into(),
        server_port: 0,
        node_type: NodeType::Harvester,
        capabilities: vec![(1, "1".into()), (2, "1".into()), (3, "1".into())],
    };
    send(ws, msg::HANDSHAKE, None, &hello).await;
    expect(ws, msg::HANDSHAKE).await;
    expect(ws, msg::HARVESTER_HANDSHAKE).await;
    let id = |message_id| p::PlotSyncIdentifier {
        timestamp: 1,
        sync_id: 1,
        message_id,
    };
    let start = p::PlotSyncStart {
        identifier: id(0),
        initial: true,
        last_sync_id: 0,
        plot_file_count: plots.len() as u32,
        harvesting_mode: 1,
    };
    send(ws, msg::PLOT_SYNC_START, None, &start).await;
    let loaded = p::PlotSyncPlotList2 {
        identifier: id(1),
        data: plots.iter().map(|p| p.info()).collect(),
        r#final: true,
    };
    send(ws, msg::PLOT_SYNC_LOADED2, None, &loaded).await;
    let done = p::PlotSyncDone {
        identifier: id(2),
        duration: 0,
    };
    send(ws, msg::PLOT_SYNC_DONE, None, &done).await;
    for message_id in 0..3 {
        let r: p::PlotSyncResponse = expect(ws, msg::PLOT_SYNC_RESPONSE)
            .await
            .payload("plot_sync_response")
            .unwrap();
        assert_eq!(r.identifier.message_id, message_id);
        assert!(r.error.is_none(), "{r:?}");
    }
}

fn new_proof(
    sp: &p::NewSignagePointHarvester2,
    plot: &Plot,
    quality: [u8; 32],
    pos: &chia_protocol::ProofOfSpace,
) -> p::NewProofOfSpace {
    p::NewProofOfSpace {
        challenge_hash: sp.challenge_hash,
        sp_hash: sp.sp_hash,
        plot_identifier: format!("{}{}", hex::encode(quality), plot.filename()),
        proof: pos.clone(),
        signage_point_index: sp.signage_point_index,
        include_source_signature_data: false,
        farmer_reward_address_override: None,
        fee_info: None,
    }
}

/// Answers a `request_signatures` with the plot's local key, as chia's harvester does.
async fn sign(ws: &mut Ws, request: &Frame, plot: &Plot, keys: &FarmerKeys) {
    sign_with(ws, request, plot, keys, |m| plot.sign(m)).await;
}

/// Answers a `request_signatures` for `plot` with `signature` of each message.
async fn sign_with(
    ws: &mut Ws,
    request: &Frame,
    plot: &Plot,
    keys: &FarmerKeys,
    signature: impl Fn(&[u8]) -> chia_bls::Signature,
) {
    let r: p::RequestSignatures = request.payload("request_signatures").unwrap();
    let reply = p::RespondSignatures {
        plot_identifier: r.plot_identifier.clone(),
        challenge_hash: r.challenge_hash,
        sp_hash: r.sp_hash,
        local_pk: plot.local_sk.public_key(),
        farmer_pk: keys.farmer_pk(),
        message_signatures: r
            .messages
            .iter()
            .map(|m| (*m, signature(&m.to_bytes())))
            .collect(),
        include_source_signature_data: false,
        farmer_reward_address_override: None,
    };
    send(ws, msg::RESPOND_SIGNATURES, request.id, &reply).await;
}

fn wait_counter(farmer: &Farmer, name: &str, n: u64) {
    let start = std::time::Instant::now();
    while farmer.counter(name) < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "counter {name} never reached {n}: {:?}",
            farmer.counters()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The farmer endpoint on a worker port, with the two keyed plots and a tracker behind it.
struct Setup {
    keys: FarmerKeys,
    og: Plot,
    nft: Plot,
    ca_dir: PathBuf,
    sink: TrackerSink,
    farmer: Arc<Farmer>,
    server: worker_common::Server,
    consensus: Consensus,
    clock: SignageClock,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// `None` (the test skips) without the plotting venv.
fn setup() -> Option<Setup> {
    let keys = FarmerKeys::from_mnemonic(MNEMONIC).unwrap();
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let plot_dir = home.join(format!(
        ".cache/p2pool-rs/plots/pool-farmer-{}",
        &hex::encode(keys.farmer_pk().to_bytes())[..16]
    ));
    let og_path = keyed_plot(&plot_dir, "fa", "og", &keys)?;
    let nft_path = keyed_plot(&plot_dir, "na", "contract:a", &keys)?;
    let og = Plot::open(&og_path).unwrap();
    let nft = Plot::open(&nft_path).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    p2pool::chia::ssl::create_ca(&ca_dir).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sink, farmer, server) = {
        let _guard = runtime.enter();
        let sink = TrackerSink::spawn(NETWORK);
        let farmer = Farmer::new(
            FarmerConfig {
                network: NETWORK,
                network_id: "regtest".into(),
                ca_dir: ca_dir.clone(),
                keys: keys.clone(),
                payout_puzzle_hash: [5; 32],
                // The test announces signage points itself.
                clock_interval: Duration::from_secs(3600),
                server_port: 0,
            },
            Arc::new(sink.clone()),
        )
        .unwrap();
        let server = runtime.block_on(start(TestProvider::new(1e-6, 4e-6), test_config()));
        server.port.set_chia_farmer(farmer.clone());
        (sink, farmer, server)
    };
    Some(Setup {
        keys,
        og,
        nft,
        ca_dir,
        sink,
        farmer,
        server,
        consensus: Consensus {
            difficulty_constant_factor: NETWORK.difficulty_constant_factor,
            filter_bits: Some(0),
        },
        clock: SignageClock::new(NETWORK, Duration::from_secs(2)),
        runtime,
        _dir: dir,
    })
}

#[test]
fn plot_nft_proofs_and_several_proofs_of_one_plot() {
    let Some(Setup {
        keys,
        og,
        nft,
        ca_dir,
        sink,
        farmer,
        server,
        consensus,
        clock,
        runtime,
        _dir,
    }) = setup()
    else {
        return;
    };
    let contract = nft.pool_contract_puzzle_hash.expect("a plot-NFT plot");
    assert!(og.pool_public_key.is_some());
    let mut n = clock.current();

    // The connection stays open until the harvester's figures are read.
    let _ws = runtime.block_on(async {
        let mut ws = connect(server.addr, &ca_dir).await;
        harvester_session(&mut ws, &[&og, &nft]).await;

        // Signage points carry the contract's pool difficulty; the plot-NFT plot's first proof
        // becomes a share.
        let mut nft_share = false;
        let mut several = false;
        for _ in 0..200 {
            n += 1;
            farmer.announce(n);
            let sp: p::NewSignagePointHarvester2 = expect(&mut ws, msg::NEW_SIGNAGE_POINT_HARVESTER)
                .await
                .payload("new_signage_point_harvester")
                .unwrap();
            assert_eq!(sp.sp_hash, Bytes32::new(clock.point(n).sp_hash));
            assert_eq!(
                sp.pool_difficulties,
                vec![p::PoolDifficulty {
                    difficulty: sp.difficulty,
                    sub_slot_iters: NETWORK.pool_sub_slot_iters,
                    pool_contract_puzzle_hash: contract,
                }]
            );
            assert_eq!(sp.sub_slot_iters, NETWORK.pool_sub_slot_iters);
            if !nft_share {
                let found = nft.lookup(&sp, &consensus).unwrap();
                if let Some((quality, pos)) = found.first() {
                    send(&mut ws, msg::NEW_PROOF_OF_SPACE, None, &new_proof(&sp, &nft, *quality, pos)).await;
                    let request = expect(&mut ws, msg::REQUEST_SIGNATURES).await;
                    sign(&mut ws, &request, &nft, &keys).await;
                    wait_counter(&farmer, "shares", 1);
                    nft_share = true;
                }
                continue;
            }
            // Several proofs of the OG plot for this signage point: all sent, one signed.
            let found = og.lookup(&sp, &consensus).unwrap();
            if found.len() < 2 {
                continue;
            }
            let shares = farmer.counter("shares");
            let extra = found.len() as u64 - 1;
            for (quality, pos) in &found {
                send(&mut ws, msg::NEW_PROOF_OF_SPACE, None, &new_proof(&sp, &og, *quality, pos)).await;
            }
            let request = expect(&mut ws, msg::REQUEST_SIGNATURES).await;
            let r: p::RequestSignatures = request.payload("request_signatures").unwrap();
            assert_eq!(
                r.plot_identifier,
                new_proof(&sp, &og, found[0].0, &found[0].1).plot_identifier,
                "the first proof is the one signed"
            );
            sign(&mut ws, &request, &og, &keys).await;
            wait_counter(&farmer, "proof_duplicate_plot_sp", extra);
            wait_counter(&farmer, "shares", shares + 1);
            // Nothing else was asked to be signed before the next signage point.
            n += 1;
            farmer.announce(n);
            expect(&mut ws, msg::NEW_SIGNAGE_POINT_HARVESTER).await;
            assert_eq!(farmer.counter("proof_duplicate_plot_sp"), extra);
            assert_eq!(farmer.counter("shares"), shares + 1);
            println!(
                "{} proofs of one plot for signage point {n}: one share, {extra} counted as duplicates",
                found.len()
            );
            several = true;
            break;
        }
        assert!(nft_share, "the plot-NFT plot had no proof in 200 signage points");
        assert!(several, "no signage point with several proofs of one plot in 200");
        ws
    });

    let h = farmer.harvesters();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].shares, 2, "{h:?}");
    assert!(h[0].duplicate_proofs >= 1, "{h:?}");
    assert_eq!(h[0].refused_proofs, 0, "{h:?}");
    assert_eq!(farmer.counter("signature_unrequested"), 0);
    let chain = runtime.block_on(sink.best_chain());
    assert_eq!(chain.len(), 2, "one share per plot and signage point");
    let mut known = KnownSignagePoints::new();
    for (_, sp) in farmer.signage_points() {
        known.insert(sp);
    }
    for share in &chain {
        check_share(share, NETWORK, &known).unwrap();
    }
    assert_eq!(
        chain
            .iter()
            .filter(|s| s.content().proof_of_space.pool_contract_puzzle_hash == Some(contract))
            .count(),
        1
    );
}

/// A harvester answering `request_signatures` with signatures that do not check: the proof is
/// refused as `share_invalid` (the service's verdict on the aggregate signature), nothing is
/// stored, and the same connection's next proof, signed properly, becomes a share.
#[test]
fn a_bad_harvester_signature_is_refused_and_the_connection_carries_on() {
    let Some(Setup {
        keys,
        og,
        ca_dir,
        sink,
        farmer,
        server,
        consensus,
        clock,
        runtime,
        _dir,
        ..
    }) = setup()
    else {
        return;
    };
    let mut n = clock.current();
    // The connection stays open until the harvester's figures are read.
    let _ws = runtime.block_on(async {
        let mut ws = connect(server.addr, &ca_dir).await;
        harvester_session(&mut ws, &[&og]).await;
        let mut bad_sent = false;
        for _ in 0..200 {
            n += 1;
            farmer.announce(n);
            let sp: p::NewSignagePointHarvester2 =
                expect(&mut ws, msg::NEW_SIGNAGE_POINT_HARVESTER)
                    .await
                    .payload("new_signage_point_harvester")
                    .unwrap();
            let found = og.lookup(&sp, &consensus).unwrap();
            let Some((quality, pos)) = found.first() else {
                continue;
            };
            send(
                &mut ws,
                msg::NEW_PROOF_OF_SPACE,
                None,
                &new_proof(&sp, &og, *quality, pos),
            )
            .await;
            let request = expect(&mut ws, msg::REQUEST_SIGNATURES).await;
            if bad_sent {
                sign(&mut ws, &request, &og, &keys).await;
                wait_counter(&farmer, "shares", 1);
                break;
            }
            // The plot's local key over another message: well-formed, but not the share's.
            sign_with(&mut ws, &request, &og, &keys, |_| {
                og.sign(b"not the share's message")
            })
            .await;
            wait_counter(&farmer, "share_invalid", 1);
            bad_sent = true;
        }
        assert!(bad_sent, "the plot had no proof in 200 signage points");
        ws
    });
    assert_eq!(
        farmer.counter("share_invalid"),
        1,
        "{:?}",
        farmer.counters()
    );
    assert_eq!(farmer.counter("shares"), 1, "{:?}", farmer.counters());
    let h = farmer.harvesters();
    assert_eq!(h.len(), 1, "the connection was kept");
    assert_eq!(h[0].refused_proofs, 1, "{h:?}");
    assert_eq!(
        h[0].refused_by_reason.get("share_invalid"),
        Some(&1),
        "{h:?}"
    );
    let chain = runtime.block_on(sink.best_chain());
    assert_eq!(chain.len(), 1, "only the properly signed share is kept");
}
