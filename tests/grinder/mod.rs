//! Miners for load tests, as users run them.
//!
//! [`Grinder`] mines the way cpuminer does: several threads grind the freshest job as fast as
//! they can and every hash that meets the pool's difficulty is submitted at once, without
//! waiting for the previous answer; a new `mining.notify` with `clean_jobs` moves every thread
//! to it. On regtest half of all hashes meet the block target, so it floods the node with block
//! candidates, as a real miner on an easy chain does.
//!
//! [`Cpuminer`] runs the real pooler cpuminer (`MINERD`, see `../shared/tools`) and reads its
//! `accepted: A/T` lines.

#![allow(dead_code)] // reason: each test binary uses a different subset of the helpers
#![allow(clippy::print_stderr)] // reason: which miner runs is told on stderr

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{BlockHash, Target};
use parking_lot::RwLock;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What a miner's pool said of its submits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
}

impl Tally {
    /// Accepted share of the answered submits.
    pub fn accepted_ratio(&self) -> f64 {
        let answered = self.accepted + self.rejected;
        if answered == 0 {
            0.0
        } else {
            self.accepted as f64 / answered as f64
        }
    }
}

#[derive(Debug, Clone)]
struct Work {
    id: String,
    prev: [u8; 32],
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    branch: Vec<[u8; 32]>,
    version: u32,
    bits: u32,
    ntime: u32,
    target: Target,
}

#[derive(Default)]
struct Shared {
    work: RwLock<Option<Arc<Work>>>,
    /// Bumped by clean notifies: threads leave their job at once.
    generation: AtomicU64,
    /// Bumped by every notify: threads take the newest job after their next hit.
    updates: AtomicU64,
    stop: AtomicBool,
    submitted: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

/// A cpuminer-like stratum miner grinding on `threads` OS threads.
pub struct Grinder {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    io: tokio::task::JoinHandle<()>,
}

fn words_swapped(s: &str) -> [u8; 32] {
    let mut b: [u8; 32] = hex::decode(s).expect("hex").try_into().expect("32 bytes");
    for w in b.chunks_mut(4) {
        w.reverse();
    }
    b
}

use p2pool::worker::difficulty_to_target as difficulty_target;

impl Grinder {
    /// Connects to the worker port at `addr` as `user` and starts grinding.
    pub async fn start(addr: SocketAddr, user: &str, threads: usize) -> Grinder {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let shared = Arc::new(Shared::default());
        let hello = format!(
            "{}\n{}\n",
            json!({"id": 1, "method": "mining.subscribe", "params": ["grinder/1.0"]}),
            json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]})
        );
        write.write_all(hello.as_bytes()).await.expect("write");
        let mut extranonce1 = Vec::new();
        let mut en2_size = 4;
        let mut target = difficulty_target(1.0);
        // The handshake's answers, then work.
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("handshake in time")
                .expect("read")
                .expect("open");
            let v: Value = serde_json::from_str(&line).expect("json");
            match (v["id"].as_u64(), v["method"].as_str()) {
                (Some(1), _) => {
                    extranonce1 = hex::decode(v["result"][1].as_str().expect("en1")).expect("hex");
                    en2_size = v["result"][2].as_u64().expect("size") as usize;
                }
                (Some(2), _) => assert_eq!(v["result"], json!(true), "authorized: {v}"),
                (_, Some("mining.set_difficulty")) => {
                    target = difficulty_target(v["params"][0].as_f64().expect("difficulty"));
                }
                (_, Some("mining.notify")) => {
                    set_work(&shared, &v["params"], target);
                    break;
                }
                _ => {}
            }
        }
        let (submits, mut to_send) = mpsc::channel::<Value>(256);
        let mut handles = Vec::new();
        for t in 0..threads {
            let shared = Arc::clone(&shared);
            let submits = submits.clone();
            let en1 = extranonce1.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("grinder-{t}"))
                    .spawn(move || grind(&shared, &submits, &en1, en2_size, t as u32))
                    .expect("thread"),
            );
        }
        drop(submits);
        let user = user.to_owned();
        let io_shared = Arc::clone(&shared);
        let io = tokio::spawn(async move {
            let shared = io_shared;
            let mut next_id = 10u64;
            let mut target = target;
            loop {
                tokio::select! {
                    line = lines.next_line() => {
                        let Ok(Some(line)) = line else { break };
                        let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                        match v["method"].as_str() {
                            Some("mining.set_difficulty") => {
                                if let Some(d) = v["params"][0].as_f64() {
                                    target = difficulty_target(d);
                                }
                            }
                            Some("mining.notify") => set_work(&shared, &v["params"], target),
                            Some(_) => {}
                            None => {
                                if v["result"] == json!(true) {
                                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    shared.rejected.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    submit = to_send.recv() => {
                        let Some(mut submit) = submit else { break };
                        next_id += 1;
                        submit["id"] = json!(next_id);
                        submit["params"][0] = json!(user);
                        let mut line = submit.to_string();
                        line.push('\n');
                        if write.write_all(line.as_bytes()).await.is_err() {
                            break;
                        }
                        shared.submitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Grinder {
            shared,
            threads: handles,
            io,
        }
    }

    /// What the pool said so far.
    pub fn tally(&self) -> Tally {
        Tally {
            submitted: self.shared.submitted.load(Ordering::Relaxed),
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
        }
    }

    /// Stops grinding; waits briefly for the last answers.
    pub async fn stop(mut self) -> Tally {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        // Answers to submits on the wire.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let t = self.tally();
            if t.accepted + t.rejected >= t.submitted {
                break;
            }
        }
        self.io.abort();
        self.tally()
    }
}

fn set_work(shared: &Shared, p: &Value, target: Target) {
    let u = |i: usize| u32::from_str_radix(p[i].as_str().unwrap_or("0"), 16).unwrap_or(0);
    let hexes = |v: &Value| -> Vec<[u8; 32]> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| hex::decode(b.as_str()?).ok()?.try_into().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let work = Work {
        id: p[0].as_str().unwrap_or_default().to_owned(),
        prev: words_swapped(p[1].as_str().unwrap_or(&"0".repeat(64))),
        coinb1: hex::decode(p[2].as_str().unwrap_or_default()).unwrap_or_default(),
        coinb2: hex::decode(p[3].as_str().unwrap_or_default()).unwrap_or_default(),
        branch: hexes(&p[4]),
        version: u(5),
        bits: u(6),
        ntime: u(7),
        target,
    };
    let clean = p[8].as_bool().unwrap_or(false);
    *shared.work.write() = Some(Arc::new(work));
    shared.updates.fetch_add(1, Ordering::Release);
    // Threads leave their current job at once only on clean jobs, as cpuminer does; after a
    // hit they take the newest job whatever it is (cpuminer copies its global work then).
    if clean || shared.generation.load(Ordering::Relaxed) == 0 {
        shared.generation.fetch_add(1, Ordering::Release);
    }
}

fn grind(shared: &Shared, submits: &mpsc::Sender<Value>, en1: &[u8], en2_size: usize, thread: u32) {
    let mut counter = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        let generation = shared.generation.load(Ordering::Acquire);
        let updates = shared.updates.load(Ordering::Acquire);
        let Some(work) = shared.work.read().clone() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        counter = counter.wrapping_add(1);
        let mut en2 = ((thread << 24) | (counter & 0x00ff_ffff))
            .to_be_bytes()
            .to_vec();
        en2.resize(en2_size, 0);
        let coinbase = [&work.coinb1[..], en1, &en2, &work.coinb2].concat();
        let mut root = sha256d::Hash::hash(&coinbase).to_byte_array();
        for b in &work.branch {
            root = sha256d::Hash::hash(&[&root[..], b].concat()).to_byte_array();
        }
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&work.version.to_le_bytes());
        header[4..36].copy_from_slice(&work.prev);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&work.ntime.to_le_bytes());
        header[72..76].copy_from_slice(&work.bits.to_le_bytes());
        for nonce in 0..=u32::MAX {
            if nonce % 1024 == 0
                && (shared.stop.load(Ordering::Relaxed)
                    || shared.generation.load(Ordering::Acquire) != generation)
            {
                break;
            }
            header[76..].copy_from_slice(&nonce.to_le_bytes());
            let hash = BlockHash::from_byte_array(sha256d::Hash::hash(&header).to_byte_array());
            if work.target.is_met_by(hash) {
                // The I/O task fills in the id and the user.
                let submit = json!({"id": 0, "method": "mining.submit", "params": [
                    "", work.id, hex::encode(&en2), format!("{:08x}", work.ntime), format!("{nonce:08x}")
                ]});
                // A full socket holds the miner back, as a real one's does.
                if submits.blocking_send(submit).is_err() {
                    return;
                }
                if shared.updates.load(Ordering::Acquire) != updates
                    || shared.stop.load(Ordering::Relaxed)
                {
                    break;
                }
            }
        }
    }
}

/// The real pooler cpuminer, when `MINERD` names it.
pub struct Cpuminer {
    child: tokio::process::Child,
    tally: Arc<RwLock<Tally>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Cpuminer {
    /// `MINERD`'s path, or why the test cannot use it.
    pub fn path() -> Result<String, String> {
        match std::env::var("MINERD") {
            Ok(p) if std::path::Path::new(&p).exists() => Ok(p),
            Ok(p) => Err(format!("MINERD={p} does not exist")),
            Err(_) => Err("no MINERD (pooler cpuminer) in the environment".into()),
        }
    }

    /// `minerd -a sha256d -t THREADS -o stratum+tcp://ADDR -u USER -p x`.
    pub fn start(path: &str, addr: SocketAddr, user: &str, threads: usize) -> Cpuminer {
        let mut child = tokio::process::Command::new(path)
            .args(["-a", "sha256d", "-t", &threads.to_string(), "-o"])
            .arg(format!("stratum+tcp://{addr}"))
            .args(["-u", user, "-p", "x", "-q"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("minerd starts");
        let tally = Arc::new(RwLock::new(Tally::default()));
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let t = Arc::clone(&tally);
        let reader = tokio::spawn(async move {
            let mut err = BufReader::new(stderr).lines();
            let mut out = BufReader::new(stdout).lines();
            loop {
                let line = tokio::select! {
                    l = err.next_line() => l,
                    l = out.next_line() => l,
                };
                let Ok(Some(line)) = line else { break };
                // "... accepted: 1234/1300 (94.92%), 2000 khash/s (yay!!!)"
                if let Some(rest) = line.split("accepted: ").nth(1) {
                    let counts = rest.split_whitespace().next().unwrap_or_default();
                    if let Some((a, t_)) = counts.split_once('/') {
                        if let (Ok(a), Ok(total)) = (a.parse::<u64>(), t_.parse::<u64>()) {
                            *t.write() = Tally {
                                submitted: total,
                                accepted: a,
                                rejected: total - a.min(total),
                            };
                        }
                    }
                }
            }
        });
        Cpuminer {
            child,
            tally,
            reader,
        }
    }

    /// The last `accepted: A/T` line.
    pub fn tally(&self) -> Tally {
        *self.tally.read()
    }

    /// Stops cpuminer; its last reported figures.
    pub async fn stop(mut self) -> Tally {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
        self.tally()
    }
}

/// Either miner, behind one face.
pub enum AnyMiner {
    Real(Cpuminer),
    Test(Grinder),
}

impl AnyMiner {
    /// Real cpuminer when `MINERD` is set, else the test suite's grinder, with `threads` threads.
    pub async fn start(addr: SocketAddr, user: &str, threads: usize) -> AnyMiner {
        match Cpuminer::path() {
            Ok(path) => AnyMiner::Real(Cpuminer::start(&path, addr, user, threads)),
            Err(why) => {
                eprintln!("using the test grinder: {why}");
                AnyMiner::Test(Grinder::start(addr, user, threads).await)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            AnyMiner::Real(_) => "cpuminer",
            AnyMiner::Test(_) => "grinder",
        }
    }

    pub fn tally(&self) -> Tally {
        match self {
            AnyMiner::Real(m) => m.tally(),
            AnyMiner::Test(m) => m.tally(),
        }
    }

    pub async fn stop(self) -> Tally {
        match self {
            AnyMiner::Real(m) => m.stop().await,
            AnyMiner::Test(m) => m.stop().await,
        }
    }
}
