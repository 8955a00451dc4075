//! `p2pool run --chain chia --network regtest` as a library call: the node starts with a chia
//! root's CA, announces regtest signage points every 2 s, serves them as JSON on the worker port
//! (`/chia/signage_points`, `/chia/harvesters`, `/chia/shares`, and before any share the empty
//! `/chia/payouts`, `/users`, `/chia/blocks`; `/kind` says chia; the page), tells a stratum miner it has no
//! Bitcoin work, and refuses what it cannot run (another network, a mainnet address, no address).

use std::path::PathBuf;
use std::time::Duration;

use p2pool::chia::node::{ChiaNode, ChiaNodeOptions, ChiaRunArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TXCH: &str = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";
const XCH: &str = "xch1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0srg6dkm";

fn options(dir: &std::path::Path, network: &str, address: Option<&str>) -> ChiaNodeOptions {
    let root: PathBuf = dir.join("root");
    if !root.join("config/ssl/ca/private_ca.crt").exists() {
        p2pool::chia::ssl::create_ca(&root.join("config/ssl/ca")).unwrap();
    }
    ChiaNodeOptions {
        network: network.into(),
        datadir: Some(dir.join("node")),
        address: address.map(str::to_owned),
        worker_addr: ("127.0.0.1".parse().unwrap(), Some(0)),
        worker: p2pool::worker::WorkerConfig::default(),
        chia: ChiaRunArgs {
            chia_root: Some(root),
            ..ChiaRunArgs::default()
        },
        p2p: local_p2p(),
    }
}

/// The share network on a free loopback port, no bootstrap.
fn local_p2p() -> p2pool::p2p::P2pConfig {
    let mut config = p2pool::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config
}

/// The status line and body of `GET path`.
async fn get_text(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

async fn get(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let (_, body) = get_text(addr, path).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn chia_node_serves_signage_points_and_refuses_what_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    // No chia keyring of the machine's: the node generates its key.
    std::env::set_var("CHIA_KEYS_ROOT", dir.path().join("no-keyring"));
    for (network, address) in [
        ("mainnet", Some(XCH)),
        ("regtest", Some(XCH)),
        ("regtest", None),
    ] {
        let refused = ChiaNode::start(options(dir.path(), network, address)).await;
        assert!(refused.is_err(), "{network} {address:?} started");
    }
    let node = ChiaNode::start(options(dir.path(), "regtest", Some(TXCH)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let sps = get(node.worker_addr, "/chia/signage_points").await;
    assert_eq!(sps["network_id"], "regtest");
    let points = sps["signage_points"].as_array().unwrap();
    assert!(points.len() >= 2, "{sps}");
    let numbers: Vec<u64> = points
        .iter()
        .map(|p| p["number"].as_u64().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    let harvesters = get(node.worker_addr, "/chia/harvesters").await;
    assert_eq!(harvesters["harvesters"], serde_json::json!([]));
    let shares = get(node.worker_addr, "/chia/shares").await;
    assert_eq!(shares["shares"], serde_json::json!([]));
    // Nothing farmed yet: the page's other sources are empty, in their shapes.
    let kind = get(node.worker_addr, "/kind").await;
    assert_eq!(kind["kind"], "chia", "{kind}");
    assert_eq!(kind["payout_address"], TXCH, "{kind}");
    let payouts = get(node.worker_addr, "/chia/payouts").await;
    assert_eq!(payouts["payouts"], serde_json::json!([]), "{payouts}");
    assert_eq!(payouts["best"], serde_json::Value::Null, "{payouts}");
    assert_eq!(get(node.worker_addr, "/users").await, serde_json::json!({}));
    assert_eq!(
        get(node.worker_addr, "/chia/blocks").await,
        serde_json::json!({ "blocks": [] })
    );
    let latest = &sps["latest"];
    assert_eq!(latest["number"], points.last().unwrap()["number"], "{sps}");
    let (status, page) = get_text(node.worker_addr, "/").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(page.contains("chia-view"), "{page}");
    let (status, _) = get_text(node.worker_addr, "/static/chia.js").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let (status, _) = get_text(node.worker_addr, "/local_stats").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    // /metrics: valid Prometheus text with the Chia figures.
    let (status, text) = get_text(node.worker_addr, "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("p2pool_chia_harvesters"), Some(0.0), "{text}");
    assert_eq!(value("p2pool_chia_plots"), Some(0.0), "{text}");
    assert!(
        value("p2pool_chia_signage_point").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // The keys were generated once and are kept.
    let key = std::fs::read(dir.path().join("node/farmer_master.key")).unwrap();
    node.shutdown().await;
    let again = ChiaNode::start(options(dir.path(), "regtest", Some(TXCH)))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("node/farmer_master.key")).unwrap(),
        key
    );
    again.shutdown().await;
}
