//! The whole node on loopback: embedded regtest chain, bitcoind client, work builder and worker
//! port. A stratum miner written here mines blocks through the node for two payout addresses;
//! every block must be accepted by the chain (Bitcoin Core's engine) and pay both addresses
//! exactly their PPLNS share.

#![cfg(feature = "devchain")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Address, Amount, BlockHash, Network, ScriptBuf, Target};
use p2pool::bitcoind::{BitcoindArgs, RpcClient};
use p2pool::node::{Node, NodeConfig};
use p2pool::p2p::P2pConfig;
use p2pool::worker::{difficulty_to_target, WorkerConfig};
use serde_json::{json, Value};
use sharechain::params::NetworkParams;
use sharechain::{generate, ShareHash, ShareRequest};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

fn p2wpkh(tag: u8) -> ScriptBuf {
    ScriptBuf::from_bytes([&[0x00, 0x14][..], &[tag; 20]].concat())
}

fn address(script: &ScriptBuf) -> String {
    Address::from_script(script, Network::Regtest)
        .expect("standard")
        .to_string()
}

async fn start_node() -> Node {
    let config = NodeConfig {
        params: &NetworkParams::REGTEST,
        datadir: None,
        operator: None,
        fee_percent: 0.0,
        worker_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        bitcoind: BitcoindArgs::default(),
        worker: WorkerConfig::default(),
        p2p: local_p2p(),
    };
    timeout(Duration::from_secs(60), Node::start(config))
        .await
        .expect("node starts in time")
        .expect("node starts")
}

/// The job a miner works on, from `mining.notify`.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    prev: [u8; 32],
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    branch: Vec<[u8; 32]>,
    version: u32,
    bits: u32,
    ntime: u32,
}

/// A stratum V1 miner: subscribe, authorize, follow notify/set_difficulty, grind, submit.
struct Miner {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
    user: String,
    extranonce1: Vec<u8>,
    en2_size: usize,
    job: Option<Job>,
    next_id: u64,
    en2: u32,
}

fn hex32_words_swapped(s: &str) -> [u8; 32] {
    let mut b: [u8; 32] = hex::decode(s).expect("hex").try_into().expect("32 bytes");
    for w in b.chunks_mut(4) {
        w.reverse();
    }
    b
}

impl Miner {
    async fn connect(addr: SocketAddr, user: String) -> Miner {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, write) = stream.into_split();
        let mut m = Miner {
            lines: BufReader::new(read).lines(),
            write,
            user,
            extranonce1: Vec::new(),
            en2_size: 0,
            job: None,
            next_id: 10,
            en2: 0,
        };
        let sub = m.call("mining.subscribe", json!(["test-miner/1.0"])).await;
        m.extranonce1 = hex::decode(sub[1].as_str().expect("extranonce1")).expect("hex");
        m.en2_size = sub[2].as_u64().expect("size") as usize;
        let user = m.user.clone();
        assert_eq!(
            m.call("mining.authorize", json!([user, "x"])).await,
            json!(true)
        );
        m
    }

    async fn send(&mut self, v: Value) {
        let mut line = v.to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.expect("write");
    }

    /// Reads one line, handling notifications; returns responses. `None` on a timeout,
    /// `Some(Value::Null)` for a notification.
    async fn read(&mut self, wait: Duration) -> Option<Value> {
        let line = timeout(wait, self.lines.next_line())
            .await
            .ok()?
            .expect("read")?;
        let v: Value = serde_json::from_str(&line).expect("json line");
        match v["method"].as_str() {
            Some("mining.notify") => {
                let p = &v["params"];
                let u =
                    |i: usize| u32::from_str_radix(p[i].as_str().expect("hex"), 16).expect("u32");
                self.job = Some(Job {
                    id: p[0].as_str().expect("id").to_owned(),
                    prev: hex32_words_swapped(p[1].as_str().expect("prev")),
                    coinb1: hex::decode(p[2].as_str().expect("coinb1")).expect("hex"),
                    coinb2: hex::decode(p[3].as_str().expect("coinb2")).expect("hex"),
                    branch: p[4]
                        .as_array()
                        .expect("branch")
                        .iter()
                        .map(|b| {
                            hex::decode(b.as_str().expect("hex"))
                                .expect("hex")
                                .try_into()
                                .expect("32")
                        })
                        .collect(),
                    version: u(5),
                    bits: u(6),
                    ntime: u(7),
                });
                Some(Value::Null)
            }
            Some(_) => Some(Value::Null),
            None => Some(v),
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let v = self.request(method, params).await;
        assert!(v["error"].is_null(), "{method} failed: {v}");
        v["result"].clone()
    }

    /// Sends a request and returns the whole response.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await;
        loop {
            if let Some(v) = self.read(Duration::from_secs(20)).await {
                if v["id"] == json!(id) {
                    return v;
                }
            }
        }
    }

    /// Reads whatever arrived (the freshest job) without blocking long.
    async fn drain(&mut self) {
        while self.read(Duration::from_millis(50)).await.is_some() || self.job.is_none() {}
    }

    /// Grinds the freshest job until the header hash meets `target` and the submit is taken
    /// (a job gone stale in the meantime is retried on the next one); returns the hash.
    async fn mine_one(&mut self, target: Target) -> BlockHash {
        loop {
            let (hash, response) = self.mine_job(target).await;
            if response["result"] == json!(true) {
                return hash;
            }
            assert_eq!(
                response["error"][0],
                json!(21),
                "only a stale job may be refused: {response}"
            );
        }
    }

    async fn mine_job(&mut self, target: Target) -> (BlockHash, Value) {
        self.drain().await;
        let job = self.job.clone().expect("a job");
        loop {
            self.en2 += 1;
            let en2 = {
                let mut b = self.en2.to_le_bytes().to_vec();
                b.resize(self.en2_size, 0);
                b
            };
            let coinbase = [&job.coinb1[..], &self.extranonce1, &en2, &job.coinb2].concat();
            let mut root = sha256d::Hash::hash(&coinbase).to_byte_array();
            for b in &job.branch {
                root = sha256d::Hash::hash(&[&root[..], b].concat()).to_byte_array();
            }
            let mut header = Vec::with_capacity(80);
            header.extend_from_slice(&job.version.to_le_bytes());
            header.extend_from_slice(&job.prev);
            header.extend_from_slice(&root);
            header.extend_from_slice(&job.ntime.to_le_bytes());
            header.extend_from_slice(&job.bits.to_le_bytes());
            header.extend_from_slice(&[0; 4]);
            for nonce in 0..100_000u32 {
                header[76..].copy_from_slice(&nonce.to_le_bytes());
                let hash = BlockHash::from_byte_array(sha256d::Hash::hash(&header).to_byte_array());
                if target.is_met_by(hash) {
                    let user = self.user.clone();
                    let res = self
                        .request(
                            "mining.submit",
                            json!([
                                user,
                                job.id,
                                hex::encode(&en2),
                                format!("{:08x}", job.ntime),
                                format!("{nonce:08x}")
                            ]),
                        )
                        .await;
                    return (hash, res);
                }
            }
        }
    }
}

async fn rpc(node: &Node) -> RpcClient {
    node.bitcoind().rpc.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stratum_miners_mine_blocks_that_pay_pplns() {
    let node = start_node().await;
    let rpc = rpc(&node).await;
    let scripts = [p2wpkh(0xa1), p2wpkh(0xb2)];
    let mut miners = Vec::new();
    for s in &scripts {
        miners.push(Miner::connect(node.worker_addr(), format!("{}.rig", address(s))).await);
    }
    let start_height: u64 = rpc.call("getblockcount", json!([])).await.unwrap();
    // Hashes at the network's easiest share target are shares, and on regtest blocks too.
    let share_target = NetworkParams::REGTEST.max_target();
    let mut found = Vec::new();
    for round in 0..12 {
        let m = &mut miners[round % 2];
        let hash = timeout(Duration::from_secs(60), m.mine_one(share_target))
            .await
            .expect("mined in time");
        found.push(hash);
        // Wait until the chain has the block before the next round.
        let want = start_height + found.len() as u64;
        for _ in 0..200 {
            let h: u64 = rpc.call("getblockcount", json!([])).await.unwrap();
            if h >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let height: u64 = rpc.call("getblockcount", json!([])).await.unwrap();
    assert!(
        height >= start_height + 10,
        "at least 10 blocks: {start_height} -> {height}"
    );
    let best: BlockHash = rpc.call("getbestblockhash", json!([])).await.unwrap();
    assert!(found.contains(&best), "the tip is one of ours");

    // Every found block is on the chain, and each coinbase pays its PPLNS share exactly.
    let mut paid_both = 0;
    for hash in &found {
        let block: Value = rpc
            .call("getblock", json!([hash.to_string(), 2]))
            .await
            .unwrap();
        assert_eq!(
            block["confirmations"].as_i64(),
            Some(1 + (height as i64 - block["height"].as_i64().unwrap())),
            "block {hash} is on the active chain"
        );
        let coinbase = &block["tx"][0];
        let outputs: BTreeMap<ScriptBuf, u64> = coinbase["vout"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let script = ScriptBuf::from_bytes(
                    hex::decode(o["scriptPubKey"]["hex"].as_str().unwrap()).unwrap(),
                );
                (
                    script,
                    Amount::from_btc(o["value"].as_f64().unwrap())
                        .unwrap()
                        .to_sat(),
                )
            })
            .filter(|(s, _)| !s.is_op_return())
            .collect();
        // Recompute what the share chain says this share's coinbase must pay.
        let expected = node.work().chain().with_tracker(|t| {
            let share = t
                .chain()
                .get(&ShareHash::from_byte_array(hash.to_byte_array()))
                .cloned()
                .expect("the block is a share too");
            let req = ShareRequest::of_share(share.share());
            let (chain, verifier) = t.parts();
            let template = generate(chain, verifier.pplns_mut(), &NetworkParams::REGTEST, &req)
                .expect("rebuilds");
            template
                .payouts
                .iter()
                .map(|p| (p.script.clone(), p.amount.to_sat()))
                .collect::<BTreeMap<_, _>>()
        });
        assert_eq!(outputs, expected, "block {hash} pays the PPLNS outputs");
        let subsidy: u64 = expected.values().sum();
        assert_eq!(
            subsidy,
            50 * 100_000_000,
            "outputs add up to the coinbase value"
        );
        if scripts
            .iter()
            .all(|s| outputs.get(s).is_some_and(|&v| v > 0))
        {
            paid_both += 1;
        }
    }
    assert!(
        paid_both >= 8,
        "later blocks pay both miners ({paid_both} did)"
    );

    // The node reports what happened.
    let stats = http_get(node.worker_addr(), "/local_stats").await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["found_blocks"].as_u64().unwrap() >= 10, "{stats}");
    let best_share = http_get(node.worker_addr(), "/web/best_share_hash").await;
    assert_eq!(
        best_share.trim_matches('"'),
        found.last().unwrap().to_string()
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_address_fails_authorize_with_the_accepted_kinds() {
    let node = start_node().await;
    let stream = TcpStream::connect(node.worker_addr()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"1BoatSLRHtKNngkdXEeobR76b53LETtpyT\",\"x\"]}\n").await.unwrap();
    loop {
        let line = timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == json!(2) {
            assert_eq!(v["result"], json!(false));
            let msg = v["error"][1].as_str().unwrap().to_lowercase();
            assert!(msg.contains("regtest") && msg.contains("p2wpkh"), "{msg}");
            break;
        }
    }
    let _ = difficulty_to_target(1.0);
    node.shutdown().await;
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf)
        .await
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

/// A share network on loopback with a free port and no bootstrap peers.
fn local_p2p() -> P2pConfig {
    let mut config = P2pConfig::new(&NetworkParams::REGTEST);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    config
}
