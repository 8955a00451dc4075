//! Real processes on loopback: one `p2pool devchain` and three `p2pool` nodes in a line
//! (1 — 2 — 3, each bootstrapping from the previous one), stratum miners on nodes 1 and 3.
//! After mining, all three nodes report the same best share, and the coinbase of a found block
//! pays both miners.

#![cfg(feature = "devchain")]

mod miner;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use miner::{address, http_get_status, p2wpkh, Miner};
use p2pool::bitcoind::{Credentials, RpcClient};
use serde_json::{json, Value};
use sharechain::params::NetworkParams;
use tokio::time::{sleep, timeout};

/// Kills the process when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn spawn(args: &[String], log: &std::path::Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_p2pool"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn p2pool");
    Proc(child)
}

async fn wait_http(addr: SocketAddr, deadline: Duration) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {addr}");
}

async fn best_share(addr: SocketAddr) -> Value {
    let (status, body) = http_get_status(addr, "/web/best_share_hash").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_agree_and_pay_both_miners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rpc_port, chain_p2p) = (free_port(), free_port());
    let _chain = spawn(
        &[
            "devchain".into(),
            "--datadir".into(),
            dir.path().join("chain").display().to_string(),
            "--rpc-port".into(),
            rpc_port.to_string(),
            "--p2p-port".into(),
            chain_p2p.to_string(),
            "--rpc-user".into(),
            "u".into(),
            "--rpc-password".into(),
            "p".into(),
            "--bind".into(),
            "127.0.0.1".into(),
        ],
        &dir.path().join("devchain.log"),
    );
    wait_http(
        SocketAddr::from(([127, 0, 0, 1], rpc_port)),
        Duration::from_secs(30),
    )
    .await;
    let rpc = RpcClient::new(
        &format!("http://127.0.0.1:{rpc_port}"),
        Credentials::UserPassword {
            user: "u".into(),
            password: "p".into(),
        },
    )
    .expect("client");

    let mut nodes = Vec::new();
    let mut workers = Vec::new();
    let mut prev_p2p: Option<u16> = None;
    let web_port = free_port();
    for i in 0..3 {
        let (worker, p2p) = (free_port(), free_port());
        let mut args: Vec<String> = [
            "run",
            "--network",
            "regtest",
            "--worker-bind",
            "127.0.0.1",
            "--p2p-bind",
            "127.0.0.1",
            "--bitcoind-rpc-user",
            "u",
            "--bitcoind-rpc-password",
            "p",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend([
            "--datadir".into(),
            dir.path().join(format!("node{i}")).display().to_string(),
            "--worker-port".into(),
            worker.to_string(),
            "--p2p-port".into(),
            p2p.to_string(),
            "--bitcoind-rpc".into(),
            format!("http://127.0.0.1:{rpc_port}"),
            "--bitcoind-p2p".into(),
            format!("127.0.0.1:{chain_p2p}"),
        ]);
        if i == 0 {
            args.extend(["--web-port".into(), web_port.to_string()]);
        }
        if let Some(prev) = prev_p2p {
            args.extend(["--bootstrap".into(), format!("/ip4/127.0.0.1/tcp/{prev}")]);
        }
        nodes.push(spawn(&args, &dir.path().join(format!("node{i}.log"))));
        let addr = SocketAddr::from(([127, 0, 0, 1], worker));
        wait_http(addr, Duration::from_secs(60)).await;
        workers.push(addr);
        prev_p2p = Some(p2p);
    }
    // `--web-port`: the API on its own port too.
    let web = SocketAddr::from(([127, 0, 0, 1], web_port));
    wait_http(web, Duration::from_secs(10)).await;
    let (status, body) = http_get_status(web, "/local_stats").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("found_blocks"), "{body}");
    // The line is connected before mining starts.
    for (i, w) in workers.iter().enumerate() {
        let want = if i == 1 { 2 } else { 1 };
        let start = Instant::now();
        loop {
            let (_, body) = http_get_status(*w, "/peer_addresses").await;
            let peers = body.split_whitespace().count();
            if peers >= want || start.elapsed() > Duration::from_secs(30) {
                break;
            }
            sleep(Duration::from_millis(200)).await;
        }
    }

    let scripts = [p2wpkh(0x11), p2wpkh(0x33)];
    let mut miners = [
        Miner::connect(workers[0], address(&scripts[0])).await,
        Miner::connect(workers[2], address(&scripts[1])).await,
    ];
    let target = NetworkParams::REGTEST.max_target();
    let start_height: u64 = rpc.call("getblockcount", json!([])).await.expect("count");
    let mut found: Vec<BlockHash> = Vec::new();
    for round in 0..8 {
        let hash = timeout(Duration::from_secs(60), miners[round % 2].mine_one(target))
            .await
            .expect("mined in time");
        found.push(hash);
        // Let the share and the block spread before the other miner goes.
        let want = start_height + found.len() as u64;
        for _ in 0..200 {
            let h: u64 = rpc.call("getblockcount", json!([])).await.expect("count");
            if h >= want {
                break;
            }
            sleep(Duration::from_millis(25)).await;
        }
        sleep(Duration::from_millis(300)).await;
    }

    // All three nodes settle on one best share.
    let start = Instant::now();
    let agreed = loop {
        let mut bests = Vec::new();
        for w in &workers {
            bests.push(best_share(*w).await);
        }
        if !bests[0].is_null() && bests.iter().all(|b| *b == bests[0]) {
            break bests[0].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nodes disagree: {bests:?}"
        );
        sleep(Duration::from_millis(200)).await;
    };
    assert!(
        found.iter().any(|h| json!(h.to_string()) == agreed),
        "the agreed best share is one of ours: {agreed}"
    );

    // A block found late in the run pays both miners.
    let last = found.last().expect("found blocks");
    let block: Value = rpc
        .call("getblock", json!([last.to_string(), 2]))
        .await
        .expect("block");
    let outputs: Vec<String> = block["tx"][0]["vout"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| {
            o["scriptPubKey"]["hex"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for s in &scripts {
        assert!(
            outputs.contains(&hex::encode(s.as_bytes())),
            "coinbase pays {s}: {outputs:?}"
        );
    }
    let height: u64 = rpc.call("getblockcount", json!([])).await.expect("count");
    assert!(height >= start_height + 8, "{start_height} -> {height}");
}
