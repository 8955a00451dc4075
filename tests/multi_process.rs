//! Real processes on loopback: one `p2pool devchain` and three `p2pool` nodes in a line
//! (1 — 2 — 3, each bootstrapping from the previous one), stratum miners on nodes 1 and 3.
//! After mining, all three nodes report the same best share, and the coinbase of a found block
//! pays both miners.

#![cfg(feature = "devchain")]
#![allow(clippy::print_stderr)] // reason: the miners' figures are told on stderr

mod grinder;
mod miner;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use grinder::AnyMiner;
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
        // `P2POOL_TEST_NODE_LOG=debug` for a closer look at a failure.
        .env(
            "RUST_LOG",
            std::env::var("P2POOL_TEST_NODE_LOG").unwrap_or_else(|_| "info".into()),
        )
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

/// One cluster at a time: four processes and two miners each on two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A devchain and three nodes in a line (1 — 2 — 3), connected before mining starts.
struct Cluster {
    dir: tempfile::TempDir,
    _procs: Vec<Proc>,
    workers: Vec<SocketAddr>,
    rpc: RpcClient,
}

impl Drop for Cluster {
    /// A failed test keeps the processes' logs: the directory is renamed out of the temporary
    /// directory's way (it removes only its own path).
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = self.dir.path().with_extension("kept");
            if std::fs::rename(self.dir.path(), &kept).is_ok() {
                eprintln!("logs kept in {}", kept.display());
            }
        }
    }
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rpc_port, chain_p2p) = (free_port(), free_port());
    let chain = spawn(
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

    let mut procs = vec![chain];
    procs.extend(nodes);
    Cluster {
        dir,
        _procs: procs,
        workers,
        rpc,
    }
}

/// Polls the three nodes until they report the same best share; that share.
async fn agreed_best(workers: &[SocketAddr], within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let mut bests = Vec::new();
        for w in workers {
            bests.push(best_share(*w).await);
        }
        if !bests[0].is_null() && bests.iter().all(|b| *b == bests[0]) {
            return bests[0].clone();
        }
        assert!(
            start.elapsed() < within,
            "nodes disagree after {within:?}: {bests:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// The payout scripts of a block's coinbase, hex.
async fn coinbase_scripts(rpc: &RpcClient, hash: &BlockHash) -> Vec<String> {
    let block: Value = rpc
        .call("getblock", json!([hash.to_string(), 2]))
        .await
        .expect("block");
    block["tx"][0]["vout"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| {
            o["scriptPubKey"]["hex"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_agree_and_pay_both_miners() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Cluster { workers, rpc, .. } = &cluster().await;
    let workers = workers.clone();

    // The middle node dialled node 1 and was dialled by node 3: `/web/peers` says so, with the
    // software each runs.
    let start = Instant::now();
    let peers = loop {
        let (_, body) = http_get_status(workers[1], "/web/peers").await;
        let peers: Vec<Value> = serde_json::from_str(&body).expect("json");
        if peers.len() == 2 || start.elapsed() > Duration::from_secs(30) {
            break peers;
        }
        sleep(Duration::from_millis(200)).await;
    };
    let mut directions: Vec<bool> = peers.iter().map(|p| p["incoming"] == json!(true)).collect();
    directions.sort();
    assert_eq!(
        directions,
        [false, true],
        "one dialled, one dialling: {peers:?}"
    );
    for p in &peers {
        assert_eq!(
            p["version"],
            json!(format!("p2pool-rs/{}", env!("CARGO_PKG_VERSION"))),
            "{peers:?}"
        );
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
    let agreed = agreed_best(&workers, Duration::from_secs(30)).await;
    assert!(
        found.iter().any(|h| json!(h.to_string()) == agreed),
        "the agreed best share is one of ours: {agreed}"
    );

    // A block found late in the run pays both miners.
    let last = found.last().expect("found blocks");
    let outputs = coinbase_scripts(rpc, last).await;
    for s in &scripts {
        assert!(
            outputs.contains(&hex::encode(s.as_bytes())),
            "coinbase pays {s}: {outputs:?}"
        );
    }
    let height: u64 = rpc.call("getblockcount", json!([])).await.expect("count");
    assert!(height >= start_height + 8, "{start_height} -> {height}");
}

/// Miners grinding flat out on nodes 1 and 3 (real cpuminer when `MINERD` names it): every
/// pseudo-share is a block candidate and every found block is gossiped. Within 5 s of the
/// miners stopping all three nodes agree on the best share, and the last block pays both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_with_flat_out_miners_agree_within_5s() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let c = cluster().await;
    let scripts = [p2wpkh(0x12), p2wpkh(0x34)];
    let start_height: u64 = c.rpc.call("getblockcount", json!([])).await.expect("count");
    let miners = [
        AnyMiner::start(c.workers[0], &address(&scripts[0]), 1).await,
        AnyMiner::start(c.workers[2], &address(&scripts[1]), 1).await,
    ];
    sleep(Duration::from_secs(20)).await;
    for m in miners {
        let name = m.name();
        let tally = m.stop().await;
        eprintln!("{name}: {tally:?}");
    }
    let agreed = agreed_best(&c.workers, Duration::from_secs(5)).await;
    let height: u64 = c.rpc.call("getblockcount", json!([])).await.expect("count");
    eprintln!("{start_height} -> {height}, agreed on {agreed}");
    assert!(height >= start_height + 20, "{start_height} -> {height}");
    let last: BlockHash = c
        .rpc
        .call("getbestblockhash", json!([]))
        .await
        .expect("best");
    let outputs = coinbase_scripts(&c.rpc, &last).await;
    for s in &scripts {
        assert!(
            outputs.contains(&hex::encode(s.as_bytes())),
            "the last block pays {s}: {outputs:?} (logs in {})",
            c.dir.path().display()
        );
    }
}
