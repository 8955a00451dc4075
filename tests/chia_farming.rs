//! The node farms real Chia blocks: on the private test network (`tests/chia_testnet`: chia
//! 2.7.5's full node and Timelord, a first block by chia's own farmer), the node is the full
//! node's farmer (`--chia-full-node`) and an unmodified `chia_harvester` with k18 plots farms
//! through the node's worker port. Its proofs become PoSpace shares; a proof good enough for the
//! chain is declared to the full node (`declare_proof_of_space`), the full node asks for the
//! foliage signatures (`request_signed_values`), the node answers (`signed_values`) and the
//! block enters the chain: the full node's RPC (`get_block_record_by_height`) shows it at its
//! height with the node's payout puzzle hash as its farmer puzzle hash, and `/chia/blocks` lists
//! it. Then the full node is restarted on the same root and database: the link comes back, the
//! attempts of the old connection are resolved, and a further block is farmed through the node.
//!
//! Needs `~/.cache/p2pool-rs/venv-chia` (`P2POOL_TEST_DEPS=1 scripts/setup.sh`), else
//! "skipped: …".

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped; RESULT lines

mod chia_net;

use chia_net::http_get as get;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2pool::chia::full_node::{rpc_identity, RpcClient};
use p2pool::chia::node::{ChiaNode, ChiaNodeOptions, ChiaRunArgs};
use serde_json::{json, Value};

/// The payout address (`txch`: the test network's prefix).
const TXCH: &str = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";
/// The farmer keys of the test network's plots (`tests/chia_testnet/chia_testnet.py`).
const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
/// Bound on waiting for a block farmed through the node.
const BLOCK_PATIENCE: Duration = Duration::from_secs(200);
/// Bound on the other waits.
const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `path` until `pred` holds; `None` after `patience`.
async fn wait_for(
    addr: std::net::SocketAddr,
    path: &str,
    patience: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + patience;
    loop {
        let v = get(addr, path).await;
        if pred(&v) {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The first attempt in the chain that `pred` accepts.
fn in_chain(blocks: &Value, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    blocks["blocks"]
        .as_array()?
        .iter()
        .find(|b| b["stage"] == "in_chain" && pred(b))
        .cloned()
}

fn hex_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_default()
        .trim_start_matches("0x")
        .to_owned()
}

/// The full node's record of the block at `height` agrees with the attempt.
async fn check_in_chain(rpc: &RpcClient, attempt: &Value, payout: &str) {
    let height = attempt["height"].as_u64().unwrap();
    let record = rpc
        .call_json_with("get_block_record_by_height", &json!({ "height": height }))
        .await
        .unwrap();
    let record = &record["block_record"];
    assert_eq!(
        hex_of(&record["header_hash"]),
        attempt["header_hash"],
        "{record}"
    );
    assert_eq!(hex_of(&record["farmer_puzzle_hash"]), payout, "{record}");
    assert_eq!(attempt["block_farmer_puzzle_hash"], payout, "{attempt}");
    // An OG plot: the pool target signed with the node's pool key, to the payout puzzle hash.
    assert_eq!(hex_of(&record["pool_puzzle_hash"]), payout, "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_farmed_through_the_node_and_again_after_a_full_node_restart() {
    let Some(venv) = chia_net::venv() else { return };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // A block from chia's own farmer first (plots made, keys and plot directory configured): a
    // chain with a peak, so the next blocks pay their farmer.
    let net = chia_net::ChiaTestnet::start_with_peak(&venv, dir.path(), 240);
    println!(
        "RESULT chia_farming_network_ready_ms={}",
        started.elapsed().as_millis()
    );

    let mnemonic = dir.path().join("mnemonic.txt");
    std::fs::write(&mnemonic, MNEMONIC).unwrap();
    let mut p2p = p2pool::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let node = ChiaNode::start(ChiaNodeOptions {
        network: "regtest".into(),
        datadir: Some(dir.path().join("node")),
        address: Some(TXCH.to_owned()),
        worker_addr: ("127.0.0.1".parse().unwrap(), Some(0)),
        worker: p2pool::worker::WorkerConfig::default(),
        chia: ChiaRunArgs {
            chia_root: Some(net.root.clone()),
            chia_full_node: Some(format!("127.0.0.1:{}", net.full_node_peer_port)),
            chia_mnemonic_file: Some(mnemonic),
            ..ChiaRunArgs::default()
        },
        p2p,
    })
    .await
    .unwrap();
    let addr = node.worker_addr;
    wait_for(addr, "/chia/full_node", PATIENCE, |s| {
        s["link"] == "connected" && s["full_node_peers"] == 0 && s["sync_mode"] == false
    })
    .await
    .expect("link up, proofs taken");
    let payout = hex::encode(
        p2pool::chia::address::parse_address(
            TXCH,
            &sharechain::pospace_share::ChiaNetwork::REGTEST,
        )
        .unwrap(),
    );

    // chia's harvester on the network's root, its farmer the node (chia's farmer is stopped).
    let log_path = dir.path().join("harvester.log");
    let mut harvester = net.start_harvester(&venv, addr.port(), &log_path);
    let diagnose = |what: &str, blocks: &Value| {
        format!(
            "{what}\nblocks: {blocks}\nfull node log:\n{}\nharvester log tail:\n{}",
            net.log_tail(60),
            tail(&log_path, 20)
        )
    };

    let id = rpc_identity(&net.root).unwrap();
    let rpc = RpcClient::new(
        format!("127.0.0.1:{}", net.full_node_rpc_port),
        Arc::new(p2pool::chia::ssl::client_config(&id.ca, &id.cert, &id.key).unwrap()),
    );

    // A block farmed through the node.
    let farming = Instant::now();
    let Some(blocks) = wait_for(addr, "/chia/blocks", BLOCK_PATIENCE, |b| {
        in_chain(b, |_| true).is_some()
    })
    .await
    else {
        let blocks = get(addr, "/chia/blocks").await;
        let _ = harvester.kill();
        let _ = harvester.wait();
        panic!("{}", diagnose("no block farmed through the node", &blocks));
    };
    println!(
        "RESULT chia_farming_first_block_ms={}",
        farming.elapsed().as_millis()
    );
    let first = in_chain(&blocks, |_| true).unwrap();
    check_in_chain(&rpc, &first, &payout).await;
    assert_eq!(first["farmer_puzzle_hash"], payout);
    assert_eq!(first["signed_values"].as_u64().map(|n| n >= 1), Some(true));
    assert!(
        first["payouts"].as_array().is_some_and(|p| !p.is_empty()),
        "the PPLNS split of the pool part is recorded: {first}"
    );
    // Shares from the chain's signage points, too.
    let shares = get(addr, "/chia/shares").await;
    assert!(
        shares["shares"].as_array().is_some_and(|s| !s.is_empty()),
        "{shares}"
    );
    let counters = get(addr, "/chia/harvesters").await["counters"].clone();
    println!(
        "RESULT chia_farming_attempts_before_restart={}",
        blocks["blocks"].as_array().map_or(0, Vec::len)
    );

    // The full node restarts on the same root and database: the link comes back.
    let restart = Instant::now();
    tokio::task::block_in_place(|| net.restart_full_node()).unwrap_or_else(|e| panic!("{e}"));
    wait_for(addr, "/chia/full_node", PATIENCE, |s| {
        s["link"] == "connected" && s["connections"].as_u64() >= Some(2)
    })
    .await
    .expect("the link back after the restart");
    println!(
        "RESULT chia_farming_reconnect_ms={}",
        restart.elapsed().as_millis()
    );
    // Attempts of the old connection never asked for signed values are over.
    let blocks = get(addr, "/chia/blocks").await;
    for b in blocks["blocks"].as_array().unwrap() {
        if b["connection"].as_u64() < Some(2) {
            assert_ne!(b["stage"], "declared", "left pending: {b}");
        }
    }

    // And a further block farmed through the node on the new connection.
    let Some(blocks) = wait_for(addr, "/chia/blocks", BLOCK_PATIENCE, |b| {
        in_chain(b, |a| a["connection"].as_u64() >= Some(2)).is_some()
    })
    .await
    else {
        let blocks = get(addr, "/chia/blocks").await;
        let _ = harvester.kill();
        let _ = harvester.wait();
        panic!("{}", diagnose("no block after the restart", &blocks));
    };
    println!(
        "RESULT chia_farming_block_after_restart_ms={}",
        restart.elapsed().as_millis()
    );
    let second = in_chain(&blocks, |a| a["connection"].as_u64() >= Some(2)).unwrap();
    check_in_chain(&rpc, &second, &payout).await;
    assert!(second["height"].as_u64() > first["height"].as_u64());
    let all = blocks["blocks"].as_array().unwrap();
    let count = |stage: &str| all.iter().filter(|b| b["stage"] == stage).count();
    println!(
        "RESULT chia_farming_attempts={} in_chain={} not_included={} rejected={} waiting={}",
        all.len(),
        count("in_chain"),
        count("not_included"),
        count("rejected"),
        count("declared") + count("signed_values")
    );
    assert_eq!(
        count("rejected"),
        0,
        "{blocks}\ncounters before: {counters}"
    );
    println!(
        "RESULT chia_farming_test_ms={}",
        started.elapsed().as_millis()
    );
    let _ = harvester.kill();
    let _ = harvester.wait();
    node.shutdown().await;
    drop(net);
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
