//! The node as the farmer of a real chia full node (chia-blockchain 2.7.5's `chia_full_node`,
//! alone on 127.0.0.1: a fresh mainnet root without introducer or DNS seeders, so it has no peak
//! and is not synced):
//! - the link handshakes: the full node lists the node among its connections as a farmer;
//! - `/chia/full_node` and `/metrics` report the peak, difficulty and sub-slot iterations the
//!   full node's RPC reports; alone (no full-node peer, not syncing) proofs are taken;
//! - a node of another network (testnet11) is refused with both networks named;
//! - stopping the full node takes the link down, starting it again brings it back.
//!
//! And on the private test network (`tests/chia_testnet`: chia's full node and Timelord making
//! real signage points, a block farmed by chia's own farmer first):
//! the node links to that full node, an unmodified `chia_harvester` pointed at the node gets the
//! network's signage points from it, and its proofs become PoSpace shares on those signage
//! points.
//!
//! Needs `~/.cache/p2pool-rs/venv-chia` (`P2POOL_TEST_DEPS=1 scripts/setup.sh`), else
//! "skipped: …".

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

mod chia_net;

use chia_net::{free_port, http_get as get, http_get_text as get_text, wait_status};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2pool::chia::full_node::{rpc_identity, RpcClient};
use p2pool::chia::node::{ChiaNode, ChiaNodeOptions, ChiaRunArgs};

const XCH: &str = "xch1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0srg6dkm";
const TXCH: &str = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";
/// Bound on every wait of the test.
const PATIENCE: Duration = Duration::from_secs(120);
/// The farmer keys of the test network's plots (`tests/chia_testnet/chia_testnet.py`).
const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
/// One chia network at a time on this small machine.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn venv() -> Option<PathBuf> {
    chia_net::venv_with("chia.full_node, yaml")
        .filter(|venv| venv.join("bin/chia_full_node").exists())
}

/// A chia full node process, killed when dropped.
struct FullNode {
    child: Child,
}

impl FullNode {
    fn start(venv: &Path, root: &Path) -> FullNode {
        let log = std::fs::File::create(root.join("full_node.out")).unwrap();
        let child = Command::new(venv.join("bin/chia_full_node"))
            .env("CHIA_ROOT", root)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        FullNode { child }
    }

    fn stop(mut self) {
        // SIGTERM first (chia closes its database), then SIGKILL.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FullNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(dir: &Path, root: &Path, network: &str, address: &str, peer: String) -> ChiaNodeOptions {
    let mut p2p = p2pool::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    ChiaNodeOptions {
        network: network.into(),
        datadir: Some(dir.join(format!("node-{network}"))),
        address: Some(address.to_owned()),
        worker_addr: ("127.0.0.1".parse().unwrap(), Some(0)),
        worker: p2pool::worker::WorkerConfig::default(),
        chia: ChiaRunArgs {
            chia_root: Some(root.to_owned()),
            chia_full_node: Some(peer),
            ..ChiaRunArgs::default()
        },
        p2p,
    }
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_to_a_real_chia_full_node_refuses_another_network_and_reconnects() {
    let Some(venv) = venv() else { return };
    let _one = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("chia-root");
    let started = Instant::now();
    let init = Command::new(venv.join("bin/chia"))
        .arg("init")
        .env("CHIA_ROOT", &root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let (peer_port, rpc_port) = (free_port(), free_port());
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chia_full_node/configure_root.py");
    let configured = Command::new(venv.join("bin/python"))
        .arg(&script)
        .args([peer_port.to_string(), rpc_port.to_string()])
        .env("CHIA_ROOT", &root)
        .output()
        .unwrap();
    assert!(configured.status.success(), "{configured:?}");

    let full_node = FullNode::start(&venv, &root);
    let id = rpc_identity(&root).unwrap();
    let rpc = RpcClient::new(
        format!("127.0.0.1:{rpc_port}"),
        Arc::new(p2pool::chia::ssl::client_config(&id.ca, &id.cert, &id.key).unwrap()),
    );
    let deadline = Instant::now() + PATIENCE;
    let state = loop {
        match rpc.blockchain_state().await {
            Ok(state) => break state,
            Err(e) => assert!(Instant::now() < deadline, "full node RPC: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "RESULT chia_full_node_start_ms={}",
        started.elapsed().as_millis()
    );

    // The node: the port comes from `--chia-full-node`, the RPC's from the chia root's config.
    let link_started = Instant::now();
    let node = ChiaNode::start(options(
        dir.path(),
        &root,
        "mainnet",
        XCH,
        format!("127.0.0.1:{peer_port}"),
    ))
    .await
    .unwrap();
    let status = wait_status(PATIENCE, node.worker_addr, "link up, RPC read", |s| {
        s["link"] == "connected" && s["rpc_updated_at"].is_u64()
    })
    .await;
    println!(
        "RESULT chia_full_node_link_ms={}",
        link_started.elapsed().as_millis()
    );
    assert_eq!(status["rpc"], format!("127.0.0.1:{rpc_port}"));
    assert_eq!(status["network"], "mainnet");
    assert_eq!(status["difficulty"], state.difficulty);
    assert_eq!(status["sub_slot_iters"], state.sub_slot_iters);
    assert_eq!(
        status["peak_height"].as_u64(),
        state.peak_height.map(u64::from)
    );
    assert_eq!(status["synced"], false);
    assert_eq!(status["connections"], 1);

    // The full node sees a farmer (node type 3) connected.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let connections = rpc.call_json("get_connections").await.unwrap();
        let farmers = connections["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == 3)
            .count();
        if farmers == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{connections}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Not synced in chia's RPC's words (it has no full-node peer), but alone, not syncing:
    // proofs are taken. The figures are in /metrics.
    assert_eq!(status["full_node_peers"], 0, "{status}");
    assert_eq!(status["sync_mode"], false, "{status}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let harvesters = get(node.worker_addr, "/chia/harvesters").await;
        if harvesters["refusing_proofs"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "{harvesters}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = get_text(node.worker_addr, "/metrics").await;
    assert_eq!(
        metric(&metrics, "p2pool_chia_full_node_up"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "p2pool_chia_full_node_difficulty"),
        Some(state.difficulty as f64),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "p2pool_chia_full_node_synced"), Some(0.0));

    // A node of another network is refused, both networks named.
    let other = ChiaNode::start(options(
        dir.path(),
        &root,
        "testnet11",
        TXCH,
        format!("127.0.0.1:{peer_port}"),
    ))
    .await
    .unwrap();
    let refused = wait_status(PATIENCE, other.worker_addr, "refused", |s| {
        s["link"] == "refused"
    })
    .await;
    let error = refused["last_error"].as_str().unwrap();
    assert!(
        error.contains("\"mainnet\"") && error.contains("\"testnet11\""),
        "{error}"
    );
    assert_eq!(refused["connections"], 0);
    other.shutdown().await;

    // Stop the full node: the link goes down; start it again: the link comes back.
    full_node.stop();
    wait_status(PATIENCE, node.worker_addr, "link down", |s| {
        s["link"] == "down"
    })
    .await;
    let restarted = Instant::now();
    let full_node = FullNode::start(&venv, &root);
    wait_status(PATIENCE, node.worker_addr, "link back", |s| {
        s["link"] == "connected" && s["connections"] == 2
    })
    .await;
    println!(
        "RESULT chia_full_node_reconnect_ms={}",
        restarted.elapsed().as_millis()
    );
    node.shutdown().await;
    full_node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signage_points_of_a_chia_network_reach_a_real_harvester_and_become_shares() {
    let Some(venv) = chia_net::venv() else { return };
    let _one = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A block from chia's own farmer first: a chain with a peak.
    let net = chia_net::ChiaTestnet::start_with_peak(&venv, dir.path(), 300);

    // The node: regtest share-chain rules (the same constants), the network's id from its chia
    // root, signage points from its full node, the plots' farmer keys.
    let mnemonic = dir.path().join("mnemonic.txt");
    std::fs::write(&mnemonic, MNEMONIC).unwrap();
    let mut opts = options(
        dir.path(),
        &net.root,
        "regtest",
        TXCH,
        format!("127.0.0.1:{}", net.full_node_peer_port),
    );
    opts.chia.chia_mnemonic_file = Some(mnemonic);
    let node = ChiaNode::start(opts).await.unwrap();
    let status = wait_status(PATIENCE, node.worker_addr, "link up, proofs taken", |s| {
        s["link"] == "connected" && s["full_node_peers"] == 0 && s["sync_mode"] == false
    })
    .await;
    assert_eq!(status["network"], net.network.as_str());
    let sps = get(node.worker_addr, "/chia/signage_points").await;
    assert_eq!(sps["network_id"], net.network.as_str());

    // chia's harvester on the network's root, its farmer the node.
    let mut harvester = net.start_harvester(
        &venv,
        node.worker_addr.port(),
        &dir.path().join("harvester.log"),
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    let shares = loop {
        let shares = get(node.worker_addr, "/chia/shares").await;
        if shares["shares"].as_array().is_some_and(|s| !s.is_empty()) {
            break shares;
        }
        if Instant::now() > deadline {
            let _ = harvester.kill();
            let _ = harvester.wait();
            panic!(
                "no share: harvesters {}\nfull node {}\nharvester log:\n{}",
                get(node.worker_addr, "/chia/harvesters").await,
                get(node.worker_addr, "/chia/full_node").await,
                std::fs::read_to_string(dir.path().join("harvester.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    println!(
        "RESULT chia_testnet_harvester_first_share_ms={}",
        started.elapsed().as_millis()
    );
    // The share is on a signage point the full node sent.
    let share = &shares["shares"][0];
    let status = get(node.worker_addr, "/chia/full_node").await;
    assert!(
        status["signage_points"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    let sps = get(node.worker_addr, "/chia/signage_points").await;
    assert!(
        sps["signage_points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["sp_hash"] == share["signage_point"]["sp_hash"]
                && p["challenge_hash"] == share["signage_point"]["challenge_hash"]),
        "{share} not on {sps}"
    );
    let harvesters = get(node.worker_addr, "/chia/harvesters").await;
    assert_eq!(
        harvesters["harvesters"].as_array().map(Vec::len),
        Some(1),
        "{harvesters}"
    );
    assert!(harvesters["refusing_proofs"].is_null(), "{harvesters}");
    let _ = harvester.kill();
    let _ = harvester.wait();
    node.shutdown().await;
    drop(net);
}
