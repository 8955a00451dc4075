//! Helpers for the worker-port tests and the stratum load benchmark: a [`WorkProvider`] that
//! builds real, structurally valid jobs, a line-based stratum client, and an independent
//! header rebuild/grinder (written from the protocol notes, not from the port's code).
#![allow(dead_code, reason = "each test file uses a different part")]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::script::Builder;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Target, Transaction,
    TxIn, TxMerkleNode, TxOut, Witness,
};
use p2pool::worker::{
    difficulty_to_target, Found, FoundOutcome, Job, Miner, NoWork, WorkProvider, WorkUpdate,
    WorkerConfig, WorkerPort,
};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

/// A P2WPKH regtest address (BIP 173 test vector).
pub const ADDR: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
/// A P2WSH regtest address (BIP 173 test vector).
pub const ADDR2: &str = "bcrt1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qzf4jry";

struct State {
    prev: BlockHash,
    height: u32,
    ntime: u32,
    seq: u64,
    next_id: u64,
    cache: HashMap<ScriptBuf, Arc<Job>>,
}

/// A provider building real jobs: a BIP34 coinbase paying the miner, an
/// `OP_RETURN 0x28 ‖ 32 bytes ‖ 8-byte extranonce` last output, coinb2 = the locktime.
pub struct TestProvider {
    share_target: Target,
    block_target: Target,
    state: Mutex<State>,
    tx: watch::Sender<WorkUpdate>,
    found: Mutex<Vec<Found>>,
    found_notify: Notify,
    outcome: Mutex<FoundOutcome>,
    no_work: Mutex<Option<String>>,
    builds: Mutex<usize>,
}

impl TestProvider {
    pub fn new(share_difficulty: f64, block_difficulty: f64) -> Arc<Self> {
        let (tx, _) = watch::channel(WorkUpdate::default());
        Arc::new(TestProvider {
            share_target: difficulty_to_target(share_difficulty),
            block_target: difficulty_to_target(block_difficulty),
            state: Mutex::new(State {
                prev: BlockHash::from_byte_array(rand::random()),
                height: 200,
                ntime: now(),
                seq: 0,
                next_id: 0,
                cache: HashMap::new(),
            }),
            tx,
            found: Mutex::new(Vec::new()),
            found_notify: Notify::new(),
            outcome: Mutex::new(FoundOutcome::Accepted),
            no_work: Mutex::new(None),
            builds: Mutex::new(0),
        })
    }

    /// A new bitcoin block: new previous hash, clean jobs.
    pub fn new_block(&self) {
        let mut s = self.state.lock();
        s.prev = BlockHash::from_byte_array(rand::random());
        s.height += 1;
        s.cache.clear();
        s.seq += 1;
        let seq = s.seq;
        drop(s);
        self.tx.send_replace(WorkUpdate { seq, clean: true });
    }

    /// New work on the same block (e.g. a new share on the share chain).
    pub fn new_work(&self) {
        let mut s = self.state.lock();
        s.ntime += 1;
        s.cache.clear();
        s.seq += 1;
        let seq = s.seq;
        drop(s);
        self.tx.send_replace(WorkUpdate { seq, clean: false });
    }

    pub fn prev_hash(&self) -> BlockHash {
        self.state.lock().prev
    }

    pub fn set_outcome(&self, outcome: FoundOutcome) {
        *self.outcome.lock() = outcome;
    }

    pub fn set_no_work(&self, reason: Option<&str>) {
        *self.no_work.lock() = reason.map(str::to_owned);
    }

    /// Jobs built so far (one per payout script and update).
    pub fn builds(&self) -> usize {
        *self.builds.lock()
    }

    pub fn found(&self) -> Vec<Found> {
        self.found.lock().clone()
    }

    /// Wait until at least `n` finds were received.
    pub async fn wait_found(&self, n: usize) -> Vec<Found> {
        tokio::time::timeout(WAIT, async {
            loop {
                let notified = self.found_notify.notified();
                {
                    let f = self.found.lock();
                    if f.len() >= n {
                        return f.clone();
                    }
                }
                notified.await;
            }
        })
        .await
        .expect("finds arrive in time")
    }

    fn build(&self, s: &mut State, payout: &ScriptBuf) -> Arc<Job> {
        let script_sig = Builder::new()
            .push_int(i64::from(s.height))
            .push_slice(b"/p2pool-rs/")
            .into_script();
        let mut ref_output = vec![0x6a, 0x28];
        ref_output.extend_from_slice(&[0xab; 32]);
        ref_output.extend_from_slice(&[0; 8]);
        let tx = Transaction {
            version: Version::ONE,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig,
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![
                TxOut {
                    value: Amount::from_sat(50 * 100_000_000),
                    script_pubkey: payout.clone(),
                },
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(ref_output),
                },
            ],
        };
        let bytes = bitcoin::consensus::serialize(&tx);
        let split = bytes.len() - 4 - 8;
        let t: Vec<[u8; 32]> = (0..3).map(|_| rand::random()).collect();
        let mut pair = t[1].to_vec();
        pair.extend_from_slice(&t[2]);
        let branch = vec![
            TxMerkleNode::from_byte_array(t[0]),
            TxMerkleNode::from_byte_array(sha256d::Hash::hash(&pair).to_byte_array()),
        ];
        s.next_id += 1;
        *self.builds.lock() += 1;
        Arc::new(Job {
            id: format!("test-{}", s.next_id),
            prev_hash: s.prev,
            version: 0x2000_0000,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            ntime: s.ntime,
            min_ntime: s.ntime - 600,
            height: s.height,
            coinb1: bytes[..split].to_vec(),
            coinb2: bytes[split + 8..].to_vec(),
            merkle_branch: branch,
            share_target: self.share_target,
            block_target: self.block_target,
            context: Arc::new(s.height),
        })
    }
}

impl WorkProvider for TestProvider {
    fn network(&self) -> Network {
        Network::Regtest
    }

    fn job(&self, miner: &Miner) -> Result<Arc<Job>, NoWork> {
        if let Some(reason) = self.no_work.lock().clone() {
            return Err(NoWork { reason });
        }
        let mut s = self.state.lock();
        if let Some(job) = s.cache.get(&miner.payout) {
            return Ok(Arc::clone(job));
        }
        let job = self.build(&mut s, &miner.payout);
        s.cache.insert(miner.payout.clone(), Arc::clone(&job));
        Ok(job)
    }

    fn updates(&self) -> watch::Receiver<WorkUpdate> {
        self.tx.subscribe()
    }

    async fn found(&self, found: Found) -> FoundOutcome {
        self.found.lock().push(found);
        self.found_notify.notify_waiters();
        self.outcome.lock().clone()
    }
}

pub fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// A worker port on 127.0.0.1:0 with `GET /` and `GET /status` merged in; stops when the handle drops.
pub struct Server {
    pub addr: SocketAddr,
    pub port: WorkerPort<TestProvider>,
    pub provider: Arc<TestProvider>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn start(provider: Arc<TestProvider>, config: WorkerConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let port = WorkerPort::new(Arc::clone(&provider), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = port.clone();
    let extra = axum::Router::new()
        .route("/", axum::routing::get(|| async { "index" }))
        .route("/status", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = serving
            .serve(listener, extra, async {
                let _ = stopped.await;
            })
            .await;
    });
    Server {
        addr,
        port,
        provider,
        _stop: stop,
    }
}

/// Default test settings: quick deadlines.
pub fn test_config() -> WorkerConfig {
    WorkerConfig {
        first_byte_timeout: Duration::from_secs(2),
        line_timeout: Duration::from_secs(2),
        authorize_timeout: Duration::from_secs(5),
        ..WorkerConfig::default()
    }
}

/// A line-based stratum client.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    pending: VecDeque<Value>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let (r, w) = stream.into_split();
        Client {
            reader: BufReader::new(r),
            writer: w,
            pending: VecDeque::new(),
        }
    }

    /// Write, reporting failure instead of panicking (the server may have closed).
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.send_raw(line.as_bytes()).await;
    }

    /// Next line from the wire (None at end of stream).
    pub async fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("line in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}")))
    }

    /// The reply to request `id`; notifications read meanwhile are kept.
    pub async fn response(&mut self, id: u64) -> Value {
        loop {
            let msg = self.read().await.expect("connection open");
            if msg.get("method").is_none() && msg["id"] == json!(id) {
                return msg;
            }
            self.pending.push_back(msg);
        }
    }

    /// The next notification `method` (skipping other notifications).
    pub async fn notification(&mut self, method: &str) -> Value {
        while let Some(msg) = self.pending.pop_front() {
            if msg["method"] == method {
                return msg;
            }
        }
        loop {
            let msg = self.read().await.expect("connection open");
            if msg["method"] == method {
                return msg;
            }
        }
    }

    /// Messages read while waiting for a reply, in order.
    pub fn pending_notifications(&mut self) -> &mut VecDeque<Value> {
        &mut self.pending
    }

    /// Drop kept notifications.
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Whether the server closes the connection within the wait.
    pub async fn closed(&mut self) -> bool {
        let mut buf = String::new();
        loop {
            buf.clear();
            match tokio::time::timeout(WAIT, self.reader.read_line(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// subscribe + authorize; returns (extranonce1, first job, difficulty).
    pub async fn handshake(&mut self, user: &str) -> (Vec<u8>, NotifyJob, f64) {
        self.send(json!({"id": 1, "method": "mining.subscribe", "params": ["test/1.0"]}))
            .await;
        let sub = self.response(1).await;
        let en1 = hex::decode(sub["result"][1].as_str().expect("en1")).expect("hex");
        assert_eq!(sub["result"][2], json!(4));
        self.send(json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]}))
            .await;
        let auth = self.response(2).await;
        assert_eq!(auth["result"], json!(true), "{auth}");
        let diff = self.notification("mining.set_difficulty").await["params"][0]
            .as_f64()
            .expect("difficulty");
        let job = NotifyJob::parse(&self.notification("mining.notify").await);
        (en1, job, diff)
    }
}

/// A parsed `mining.notify`.
#[derive(Debug, Clone)]
pub struct NotifyJob {
    pub id: String,
    pub prev: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    pub branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean: bool,
}

fn hex_u32(v: &Value) -> u32 {
    let s = v.as_str().expect("hex string");
    assert_eq!(s.len(), 8, "exactly 8 hex chars: {s}");
    u32::from_str_radix(s, 16).expect("hex")
}

impl NotifyJob {
    pub fn parse(msg: &Value) -> NotifyJob {
        let p = &msg["params"];
        let prev_words = hex::decode(p[1].as_str().expect("prevhash")).expect("hex");
        let mut prev = [0u8; 32];
        for (i, word) in prev_words.chunks_exact(4).enumerate() {
            for j in 0..4 {
                prev[4 * i + j] = word[3 - j];
            }
        }
        NotifyJob {
            id: p[0].as_str().expect("job id").to_owned(),
            prev,
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
                        .expect("32 bytes")
                })
                .collect(),
            version: hex_u32(&p[5]),
            nbits: hex_u32(&p[6]),
            ntime: hex_u32(&p[7]),
            clean: p[8].as_bool().expect("clean_jobs"),
        }
    }

    /// The 80-byte header a miner builds (docs/PROTOCOLS.md §1.5).
    pub fn header(&self, en1: &[u8], en2: &[u8], ntime: u32, nonce: u32, version: u32) -> [u8; 80] {
        let mut coinbase = self.coinb1.clone();
        coinbase.extend_from_slice(en1);
        coinbase.extend_from_slice(en2);
        coinbase.extend_from_slice(&self.coinb2);
        let mut root = sha256d::Hash::hash(&coinbase).to_byte_array();
        for b in &self.branch {
            let mut cat = root.to_vec();
            cat.extend_from_slice(b);
            root = sha256d::Hash::hash(&cat).to_byte_array();
        }
        let mut h = [0u8; 80];
        h[0..4].copy_from_slice(&version.to_le_bytes());
        h[4..36].copy_from_slice(&self.prev);
        h[36..68].copy_from_slice(&root);
        h[68..72].copy_from_slice(&ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// First nonce from `start` whose header satisfies `pred`, and that header.
    pub fn grind(
        &self,
        en1: &[u8],
        en2: &[u8],
        version: u32,
        start: u32,
        pred: impl Fn(&[u8; 80]) -> bool,
    ) -> (u32, [u8; 80]) {
        let base = self.header(en1, en2, self.ntime, 0, version);
        for nonce in start..=u32::MAX {
            let mut h = base;
            h[76..80].copy_from_slice(&nonce.to_le_bytes());
            if pred(&h) {
                return (nonce, h);
            }
        }
        panic!("no nonce qualifies")
    }

    /// A `mining.submit` request for a ground header.
    pub fn submit(&self, id: u64, en2: &[u8], nonce: u32, version_bits: Option<u32>) -> Value {
        let mut params = vec![
            json!(ADDR),
            json!(self.id),
            json!(hex::encode(en2)),
            json!(format!("{:08x}", self.ntime)),
            json!(format!("{nonce:08x}")),
        ];
        if let Some(v) = version_bits {
            params.push(json!(format!("{v:08x}")));
        }
        json!({"id": id, "method": "mining.submit", "params": params})
    }
}

/// Whether sha256d(header), read little-endian, is at or below `target`.
pub fn meets(header: &[u8; 80], target: Target) -> bool {
    Target::from_le_bytes(sha256d::Hash::hash(header).to_byte_array()) <= target
}

/// Check a find against the header the client built, independently of the port's code.
pub fn check_found(found: &Found, expected_header: &[u8; 80], extranonce: &[u8]) {
    assert_eq!(
        bitcoin::consensus::serialize(&found.header),
        expected_header.to_vec()
    );
    assert_eq!(
        found.hash.to_byte_array(),
        sha256d::Hash::hash(expected_header).to_byte_array()
    );
    let tx: Transaction =
        bitcoin::consensus::deserialize(&found.coinbase).expect("coinbase parses");
    let last = tx.output.last().expect("outputs");
    assert!(
        last.script_pubkey.as_bytes().ends_with(extranonce),
        "extranonce is the last_txout_nonce"
    );
    assert_eq!(found.extranonce.to_vec(), extranonce.to_vec());
    let mut root = tx.compute_txid().to_byte_array();
    for b in &found.job.merkle_branch {
        let mut cat = root.to_vec();
        cat.extend_from_slice(b.as_byte_array());
        root = sha256d::Hash::hash(&cat).to_byte_array();
    }
    assert_eq!(
        root,
        found.header.merkle_root.to_byte_array(),
        "merkle root from coinbase + branch"
    );
    let height = tx.input[0].script_sig.as_bytes();
    assert!(height.len() >= 2, "BIP34 push present");
}
