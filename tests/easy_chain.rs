//! Miners grinding flat out on an easy chain, where half of all hashes meet the block target
//! (regtest; testnet4 under its 20-minute rule): every pseudo-share is a block candidate.
//!
//! For 30 s a cpuminer-like miner (the real pooler cpuminer when `MINERD` names it, else the
//! test suite's grinder) mines on two threads through the node, against the embedded chain
//! and against Bitcoin Core (`BITCOIND`). The node must make at most 1.5 `submitblock` calls per
//! accepted block, bitcoind must never answer "work queue depth exceeded", and the share chain
//! must retarget away from its easiest difficulty. The rates are checked with a wide margin
//! (a node that falls over advances a block every few seconds, answers RPC after tens of
//! seconds and has a few percent of its submits accepted): the chain advances at least 3
//! blocks a second, `getblockcount` answers within a second throughout, and the miner sees at
//! least a fifth of its submits accepted. The figures themselves are printed (on an idle 2-core
//! machine about 30 blocks/s, 25 ms and 70–90 % accepted); load on a real chain is measured by
//! `cargo bench --bench stratum_load`, whose chain rows put the node beside ckpool.

#![allow(clippy::print_stderr)] // reason: the run's figures and a skipped run are told on stderr

mod grinder;
mod miner;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use grinder::AnyMiner;
use miner::{address, http_get, local_p2p, p2wpkh};
use p2pool::bitcoind::{BitcoindArgs, Credentials, RpcClient};
use p2pool::node::{Node, NodeConfig};
use p2pool::worker::WorkerConfig;
use serde_json::{json, Value};
use sharechain::params::NetworkParams;

const RUN: Duration = Duration::from_secs(30);

/// One flat-out run at a time: two miners grinding on two cores at once would measure the
/// machine, not the node.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Latency of `getblockcount`, sampled every 50 ms while the miner runs.
struct Probe {
    worst_us: Arc<AtomicU64>,
    busy: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<u64>,
}

impl Probe {
    fn start(rpc: RpcClient) -> Probe {
        let worst_us = Arc::new(AtomicU64::new(0));
        let busy = Arc::new(AtomicU64::new(0));
        let (w, b) = (Arc::clone(&worst_us), Arc::clone(&busy));
        let task = tokio::spawn(async move {
            let mut samples = 0;
            loop {
                let start = Instant::now();
                let answer = rpc.get_block_count().await;
                let took = start.elapsed().as_micros() as u64;
                match answer {
                    Ok(_) => {
                        w.fetch_max(took, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("getblockcount failed: {e}");
                        b.fetch_add(1, Ordering::Relaxed);
                        w.fetch_max(u64::MAX, Ordering::Relaxed);
                    }
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                if samples > 100_000 {
                    return samples;
                }
            }
        });
        Probe {
            worst_us,
            busy,
            task,
        }
    }

    fn stop(self) -> (u64, u64) {
        self.task.abort();
        (
            self.worst_us.load(Ordering::Relaxed),
            self.busy.load(Ordering::Relaxed),
        )
    }
}

async fn start_node(bitcoind: BitcoindArgs) -> Node {
    let config = NodeConfig {
        params: &NetworkParams::REGTEST,
        datadir: None,
        operator: None,
        fee_percent: 0.0,
        worker_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        bitcoind,
        worker: WorkerConfig::default(),
        p2p: local_p2p(),
        web_addr: None,
    };
    tokio::time::timeout(Duration::from_secs(60), Node::start(config))
        .await
        .expect("node starts in time")
        .expect("node starts")
}

/// Mines through `node` for [`RUN`] and checks everything the module docs promise.
async fn grind_and_check(node: &Node, chain_rpc: RpcClient, backend: &str) {
    let rpc = node.bitcoind().rpc.clone();
    let start_height = rpc.get_block_count().await.expect("count");
    let probe = Probe::start(chain_rpc);
    let user = format!("{}.rig", address(&p2wpkh(0x5a)));
    let started = Instant::now();
    let miner = AnyMiner::start(node.worker_addr(), &user, 2).await;
    let name = miner.name();
    tokio::time::sleep(RUN).await;
    let tally = miner.stop().await;
    let elapsed = started.elapsed().as_secs_f64();
    let (worst_us, probe_errors) = probe.stop();
    // Blocks still with bitcoind when the miner stopped.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let height = rpc.get_block_count().await.expect("count");
    let stats: Value =
        serde_json::from_str(&http_get(node.worker_addr(), "/local_stats").await).expect("json");
    let blocks = &stats["blocks"];
    let accepted = blocks["accepted"].as_u64().expect("accepted");
    let calls = blocks["submitblock_calls"].as_u64().expect("calls");
    let advanced = height - start_height;
    let rate = advanced as f64 / elapsed;
    let per_block = calls as f64 / accepted.max(1) as f64;
    let max_target = NetworkParams::REGTEST.max_target();
    let view = node.work().chain().view();
    let (best_target, shares) = (
        view.kind.best_share().map_or(max_target, |s| s.target()),
        view.shares,
    );
    let harder = max_target.difficulty_float() / best_target.difficulty_float();
    eprintln!(
        "{backend} + {name}: {advanced} blocks in {elapsed:.1}s ({rate:.1}/s), {calls} submitblock calls for {accepted} accepted ({per_block:.2}/block), \
         getblockcount worst {:.1} ms, miner {tally:?} ({:.1}% accepted), {shares} shares, share target 1/{:.1} of the easiest, blocks {blocks}, node rejected {}",
        worst_us as f64 / 1000.0,
        tally.accepted_ratio() * 100.0,
        1.0 / harder,
        stats["rejected"],
    );
    assert!(rate >= 3.0, "the chain advanced {rate:.1} blocks/s");
    assert!(
        per_block <= 1.5,
        "{calls} submitblock calls for {accepted} accepted blocks"
    );
    assert!(
        worst_us <= 1_000_000 && probe_errors == 0,
        "getblockcount answered within {} µs at worst ({probe_errors} failures)",
        worst_us
    );
    assert!(
        tally.accepted_ratio() >= 0.2,
        "{name} saw {:.1}% of its submits accepted: {tally:?}",
        tally.accepted_ratio() * 100.0
    );
    assert_eq!(
        rpc.busy_replies(),
        0,
        "bitcoind answered 503 work queue depth exceeded"
    );
    assert!(
        best_target.difficulty_float() >= 4.0 * max_target.difficulty_float(),
        "the share chain retargeted from its easiest target: {best_target:?}"
    );
}

#[cfg(feature = "devchain")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flat_out_miner_on_the_embedded_chain() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let node = start_node(BitcoindArgs::default()).await;
    let chain_rpc = node.bitcoind().rpc.clone();
    grind_and_check(&node, chain_rpc, "embedded chain").await;
    node.shutdown().await;
}

/// A Bitcoin Core regtest node on loopback, stopped when dropped.
struct Core {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    rpc_port: u16,
    p2p_port: u16,
}

impl Drop for Core {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Core {
    async fn start(path: &str) -> Core {
        let dir = tempfile::tempdir().expect("tempdir");
        let (rpc_port, p2p_port) = (free_port(), free_port());
        let child = std::process::Command::new(path)
            .args([
                "-regtest",
                "-server",
                "-listen=1",
                "-bind=127.0.0.1",
                "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1",
                "-rpcuser=u",
                "-rpcpassword=p",
                "-printtoconsole=0",
                "-discover=0",
                "-dnsseed=0",
            ])
            .arg(format!("-datadir={}", dir.path().display()))
            .arg(format!("-rpcport={rpc_port}"))
            .arg(format!("-port={p2p_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("bitcoind starts");
        let core = Core {
            child,
            _dir: dir,
            rpc_port,
            p2p_port,
        };
        let rpc = core.rpc();
        let start = Instant::now();
        while rpc.get_block_count().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "bitcoind answers RPC"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        core
    }

    fn rpc(&self) -> RpcClient {
        RpcClient::new(
            &format!("http://127.0.0.1:{}", self.rpc_port),
            Credentials::UserPassword {
                user: "u".into(),
                password: "p".into(),
            },
        )
        .expect("client")
    }

    fn args(&self) -> BitcoindArgs {
        BitcoindArgs {
            rpc_url: Some(format!("http://127.0.0.1:{}", self.rpc_port)),
            rpc_user: Some("u".into()),
            rpc_password: Some("p".into()),
            p2p_addr: Some(SocketAddr::from(([127, 0, 0, 1], self.p2p_port))),
            ..BitcoindArgs::default()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flat_out_miner_against_bitcoin_core() {
    let Ok(path) = std::env::var("BITCOIND") else {
        eprintln!("skipped: no BITCOIND (Bitcoin Core) in the environment");
        return;
    };
    let _alone = ONE_AT_A_TIME.lock().await;
    let core = Core::start(&path).await;
    // A first block, so templates have a parent with a time.
    let rpc = core.rpc();
    let _: Value = rpc
        .call("generatetoaddress", json!([1, address(&p2wpkh(0x01))]))
        .await
        .expect("generate");
    let node = start_node(core.args()).await;
    grind_and_check(&node, core.rpc(), "Bitcoin Core").await;
    let best: bitcoin::BlockHash = rpc.call("getbestblockhash", json!([])).await.expect("best");
    assert_ne!(best.to_byte_array(), [0; 32]);
    node.shutdown().await;
}
