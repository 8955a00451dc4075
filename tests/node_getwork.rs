//! getwork through the whole node: a getwork client (the way cpuminer speaks it) mines regtest
//! blocks paying its address, and a long-polling request returns new work when a block is found.

#![cfg(feature = "devchain")]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Address, BlockHash, Network, ScriptBuf, Target};
use p2pool::bitcoind::BitcoindArgs;
use p2pool::node::{Node, NodeConfig};
use p2pool::p2p::P2pConfig;
use p2pool::worker::WorkerConfig;
use serde_json::{json, Value};
use sharechain::params::NetworkParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    user: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:x"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Basic {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("reply in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn swap_words(bytes: &mut [u8]) {
    for w in bytes.chunks_mut(4) {
        w.reverse();
    }
}

/// Asks for work, grinds the nonce until the hash meets `target`, submits; returns the hash
/// and the node's verdict.
async fn mine_getwork(addr: SocketAddr, user: &str, target: Target) -> (BlockHash, Value) {
    let (status, _, body) = http(
        addr,
        "POST",
        "/",
        user,
        r#"{"id":1,"method":"getwork","params":[]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let work: Value = serde_json::from_str(&body).expect("json");
    let mut data = hex::decode(work["result"]["data"].as_str().expect("data")).expect("hex");
    assert_eq!(data.len(), 128);
    swap_words(&mut data);
    for nonce in 0..u32::MAX {
        data[76..80].copy_from_slice(&nonce.to_le_bytes());
        let hash = BlockHash::from_byte_array(sha256d::Hash::hash(&data[..80]).to_byte_array());
        if target.is_met_by(hash) {
            let mut submit = data.clone();
            swap_words(&mut submit);
            let req =
                json!({"id": 2, "method": "getwork", "params": [hex::encode(submit)]}).to_string();
            let (_, _, body) = http(addr, "POST", "/", user, &req).await;
            return (hash, serde_json::from_str(&body).expect("json"));
        }
    }
    unreachable!("a 2^-12 target is met long before the nonce space ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getwork_miner_mines_blocks_and_long_polling_wakes_up() {
    let config = NodeConfig {
        params: &NetworkParams::REGTEST,
        datadir: None,
        operator: None,
        fee_percent: 0.0,
        worker_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        bitcoind: BitcoindArgs::default(),
        worker: WorkerConfig::default(),
        p2p: local_p2p(),
        web_addr: None,
    };
    let node = timeout(Duration::from_secs(60), Node::start(config))
        .await
        .expect("in time")
        .expect("starts");
    let addr = node.worker_addr();
    let script = ScriptBuf::from_bytes([&[0x00, 0x14][..], &[0x77; 20]].concat());
    let user = Address::from_script(&script, Network::Regtest)
        .unwrap()
        .to_string();
    let rpc = node.bitcoind().rpc.clone();
    let start: u64 = rpc.call("getblockcount", json!([])).await.unwrap();

    // The long-polling path is advertised on getwork replies.
    let (_, headers, _) = http(
        addr,
        "POST",
        "/",
        &user,
        r#"{"id":1,"method":"getwork","params":[]}"#,
    )
    .await;
    let lp = headers
        .iter()
        .find(|(k, _)| k == "x-long-polling")
        .map(|(_, v)| v.clone())
        .expect("X-Long-Polling");
    let user2 = user.clone();
    let long_poll = tokio::spawn(async move { http(addr, "GET", &lp, &user2, "").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!long_poll.is_finished(), "a long poll waits for new work");

    let target = NetworkParams::REGTEST.max_target();
    let mut mined = 0;
    while mined < 10 {
        let (hash, verdict) = timeout(WAIT, mine_getwork(addr, &user, target))
            .await
            .expect("in time");
        if verdict["result"] == json!(true) {
            mined += 1;
            // Wait for the block to be on the chain before asking for new work.
            for _ in 0..200 {
                let best: BlockHash = rpc.call("getbestblockhash", json!([])).await.unwrap();
                if best == hash {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
    let (status, _, body) = timeout(WAIT, long_poll)
        .await
        .expect("long poll returns")
        .expect("task");
    assert_eq!(status, 200);
    let fresh: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        fresh["result"]["data"].as_str().map(str::len),
        Some(256),
        "new work: {fresh}"
    );

    let height: u64 = rpc.call("getblockcount", json!([])).await.unwrap();
    assert!(height >= start + 10, "{start} -> {height}");
    // The tip's coinbase pays the getwork miner.
    let best: String = rpc.call("getbestblockhash", json!([])).await.unwrap();
    let block: Value = rpc.call("getblock", json!([best, 2])).await.unwrap();
    let pays = block["tx"][0]["vout"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["scriptPubKey"]["hex"] == json!(hex::encode(script.as_bytes())));
    assert!(pays, "coinbase pays the miner: {}", block["tx"][0]);
    node.shutdown().await;
}

/// A share network on loopback with a free port and no bootstrap peers.
fn local_p2p() -> P2pConfig {
    let mut config = P2pConfig::new(&NetworkParams::REGTEST);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    config
}
