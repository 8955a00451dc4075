//! A stratum V1 miner for tests against a whole node on the embedded regtest chain: subscribe,
//! authorize, follow notify, grind the freshest job, submit. Also a node with defaults and a raw
//! HTTP GET. Every wait is bounded.

#![allow(dead_code)] // reason: each test binary uses a different subset of the helpers

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Address, BlockHash, Network, ScriptBuf, Target};
use p2pool::bitcoind::BitcoindArgs;
use p2pool::node::{Node, NodeConfig};
use p2pool::worker::WorkerConfig;
use serde_json::{json, Value};
use sharechain::params::NetworkParams;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

pub fn p2wpkh(tag: u8) -> ScriptBuf {
    ScriptBuf::from_bytes([&[0x00, 0x14][..], &[tag; 20]].concat())
}

pub fn address(script: &ScriptBuf) -> String {
    Address::from_script(script, Network::Regtest)
        .expect("standard")
        .to_string()
}

pub async fn start_node() -> Node {
    start_node_in(None).await
}

/// A node keeping its data (and its embedded chain's) in `datadir`.
pub async fn start_node_in(datadir: Option<std::path::PathBuf>) -> Node {
    let config = NodeConfig {
        params: &NetworkParams::REGTEST,
        datadir,
        operator: None,
        fee_percent: 0.0,
        worker_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        bitcoind: BitcoindArgs::default(),
        worker: WorkerConfig::default(),
        p2p: local_p2p(),
        web_addr: None,
    };
    timeout(Duration::from_secs(60), Node::start(config))
        .await
        .expect("node starts in time")
        .expect("node starts")
}

/// A share network on loopback with a free port and no bootstrap peers.
pub fn local_p2p() -> p2pool::p2p::P2pConfig {
    let mut config = p2pool::p2p::P2pConfig::new(&NetworkParams::REGTEST);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    config
}

/// The job a miner works on, from `mining.notify`.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub prev: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    pub branch: Vec<[u8; 32]>,
    pub version: u32,
    pub bits: u32,
    pub ntime: u32,
}

/// A stratum V1 miner: subscribe, authorize, follow notify/set_difficulty, grind, submit.
pub struct Miner {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
    pub user: String,
    extranonce1: Vec<u8>,
    en2_size: usize,
    pub job: Option<Job>,
    next_id: u64,
    en2: u32,
}

pub fn hex32_words_swapped(s: &str) -> [u8; 32] {
    let mut b: [u8; 32] = hex::decode(s).expect("hex").try_into().expect("32 bytes");
    for w in b.chunks_mut(4) {
        w.reverse();
    }
    b
}

impl Miner {
    pub async fn connect(addr: SocketAddr, user: String) -> Miner {
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

    pub async fn send(&mut self, v: Value) {
        let mut line = v.to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.expect("write");
    }

    /// Reads one line, handling notifications; returns responses. `None` on a timeout,
    /// `Some(Value::Null)` for a notification.
    pub async fn read(&mut self, wait: Duration) -> Option<Value> {
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

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let v = self.request(method, params).await;
        assert!(v["error"].is_null(), "{method} failed: {v}");
        v["result"].clone()
    }

    /// Sends a request and returns the whole response.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
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
    pub async fn drain(&mut self) {
        while self.read(Duration::from_millis(50)).await.is_some() || self.job.is_none() {}
    }

    /// Grinds the freshest job until the header hash meets `target` and the submit is taken
    /// (a job gone stale in the meantime is retried on the next one); returns the hash.
    pub async fn mine_one(&mut self, target: Target) -> BlockHash {
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

    pub async fn mine_job(&mut self, target: Target) -> (BlockHash, Value) {
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

pub async fn http_get(addr: SocketAddr, path: &str) -> String {
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

/// `GET path`: status code and body.
pub async fn http_get_status(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await
    .expect("answer in time")
    .expect("read");
    let text = String::from_utf8(buf).expect("utf-8");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Mines `blocks` blocks (shares at the easiest share target, which are blocks on regtest),
/// taking turns between `miners`, waiting for the chain to take each one.
pub async fn mine_blocks(node: &Node, miners: &mut [Miner], blocks: usize) -> Vec<BlockHash> {
    let rpc = node.bitcoind().rpc.clone();
    let start: u64 = rpc.call("getblockcount", json!([])).await.expect("count");
    let target = NetworkParams::REGTEST.max_target();
    let mut found = Vec::new();
    for round in 0..blocks {
        let n = miners.len();
        let m = &mut miners[round % n];
        let hash = timeout(Duration::from_secs(60), m.mine_one(target))
            .await
            .expect("mined in time");
        found.push(hash);
        let want = start + found.len() as u64;
        for _ in 0..400 {
            let h: u64 = rpc.call("getblockcount", json!([])).await.expect("count");
            if h >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    found
}

/// `GET path` as JSON (status 200 expected).
pub async fn get_json_value(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http_get_status(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}
