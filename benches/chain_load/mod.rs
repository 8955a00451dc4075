//! Stratum load against a whole pool on a real chain: the `p2pool` node on Bitcoin Core regtest
//! (`BITCOIND`; the embedded chain without it), and ckpool (`CKPOOL`) on a Bitcoin Core of its
//! own, in the same run. Every connection submits random nonces in a closed loop; on regtest
//! half of them are block candidates, so this is the storm an easy chain brings.
//!
//! Per server and size: `answers_per_s` (submits answered, accepted or not), `submit_p99_ms`,
//! `blocks_accepted` (the chain's height gain), `submitblock_per_block` (`submitblock` calls in
//! bitcoind's RPC log per accepted block; the embedded chain's own count for p2pool without
//! Core), `notify_spread_ms` (median over new blocks of first to last connection receiving the
//! block's job), `disconnects` (connections the server closed), `rss_mb` (the server's resident
//! memory at the end), `server_cpu_us` (the server process's CPU time over the window per
//! answer: what an answer costs the server, whatever else the machine runs).
//!
//! ckpool on regtest clamps the network difficulty to 1 ("Network diff set to 1.0"), so random
//! nonces never make it a block: its chain stands still and its miners get no new-block jobs,
//! where p2pool's run finds a block every second or so and sends each to every connection.
//! `server=ckpool_blocks` is ckpool under the same load with as many blocks as p2pool's run of
//! that size accepted, mined on its Bitcoin Core at even intervals over the window
//! (`generatetoaddress`), so that both servers send the same number of new-block jobs.
//!
//! `server=floor` is the reference for what this client and machine allow: a server that does
//! nothing but answer (a fixed reply per submit line, all lines read at once answered in one
//! write, on a tokio runtime like the node's), in a process of its own ([`answer_floor`]). The
//! client and the servers share the machine's cores, and most of an answer's cost is the
//! kernel's (a `recv` and a `send` on each side): no server answers faster than the floor.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A regtest address both servers pay and the load authorizes with.
static ADDRESS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let script = bitcoin::ScriptBuf::from_bytes([&[0x00, 0x14][..], &[0x42; 20]].concat());
    bitcoin::Address::from_script(&script, bitcoin::Network::Regtest)
        .expect("p2wpkh")
        .to_string()
});

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Bitcoin Core regtest with RPC logging (to count `submitblock` calls).
struct Core {
    _proc: Proc,
    dir: tempfile::TempDir,
    rpc: u16,
    p2p: u16,
}

impl Core {
    fn start(path: &str) -> Core {
        let dir = tempfile::tempdir().expect("tempdir");
        let (rpc, p2p) = (free_port(), free_port());
        let child = Command::new(path)
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
                "-dnsseed=0",
                "-discover=0",
                "-debug=rpc",
            ])
            .arg(format!("-datadir={}", dir.path().display()))
            .arg(format!("-rpcport={rpc}"))
            .arg(format!("-port={p2p}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bitcoind");
        let core = Core {
            _proc: Proc(child),
            dir,
            rpc,
            p2p,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while core.call("getblockcount", "[]").is_none() {
            assert!(Instant::now() < deadline, "bitcoind answers");
            std::thread::sleep(Duration::from_millis(100));
        }
        // A first block, so templates have a parent with a recent time.
        core.call("generatetoaddress", &format!("[1, \"{}\"]", *ADDRESS))
            .expect("generate");
        core
    }

    /// A blocking JSON-RPC call; the `result`.
    fn call(&self, method: &str, params: &str) -> Option<serde_json::Value> {
        rpc_call(self.rpc, ("u", "p"), method, params)
    }

    fn submitblock_calls(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("regtest/debug.log"))
            .unwrap_or_default()
            .matches("method=submitblock")
            .count()
    }

    fn height(&self) -> u64 {
        self.call("getblockcount", "[]")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    }
}

fn rpc_call(
    port: u16,
    (user, password): (&str, &str),
    method: &str,
    params: &str,
) -> Option<serde_json::Value> {
    use base64::Engine;
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let body =
        format!("{{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"{method}\",\"params\":{params}}}");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (_, body) = reply.split_once("\r\n\r\n")?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("error")
        .is_none_or(serde_json::Value::is_null)
        .then(|| v["result"].clone())
}

/// The chain a server works on.
enum Chain {
    /// A Bitcoin Core of the run's own.
    Core(Core),
    /// The node's embedded chain.
    Embedded,
    /// None (the answer floor).
    Without,
}

/// A server under load: its worker port, process, and how to read its chain figures.
pub struct Server {
    name: &'static str,
    port: u16,
    proc: Proc,
    chain: Chain,
    _dir: tempfile::TempDir,
}

impl Server {
    fn height(&self) -> u64 {
        match &self.chain {
            Chain::Core(core) => core.height(),
            // The embedded chain, as the node reports it.
            Chain::Embedded => http_json(self.port, "/web/node_status")
                .and_then(|v| v["bitcoind"]["blocks"].as_u64())
                .unwrap_or(0),
            Chain::Without => 0,
        }
    }

    /// `submitblock` calls bitcoind saw (Core's RPC log), or the node's own count.
    fn submitblock_calls(&self) -> usize {
        match &self.chain {
            Chain::Core(core) => core.submitblock_calls(),
            Chain::Embedded => http_json(self.port, "/local_stats")
                .and_then(|v| v["blocks"]["submitblock_calls"].as_u64())
                .unwrap_or(0) as usize,
            Chain::Without => 0,
        }
    }
}

fn http_json(port: u16, path: &str) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    serde_json::from_str(reply.split_once("\r\n\r\n")?.1).ok()
}

async fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "{what} listens on {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The p2pool node (release binary) on Core when `BITCOIND` is set, else on its embedded chain.
async fn start_p2pool() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let core = std::env::var("BITCOIND").ok().map(|p| Core::start(&p));
    let (worker, p2p) = (free_port(), free_port());
    let mut args: Vec<String> = [
        "run",
        "--network",
        "regtest",
        "--worker-bind",
        "127.0.0.1",
        "--p2p-bind",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "--datadir".into(),
        dir.path().join("node").display().to_string(),
        "--worker-port".into(),
        worker.to_string(),
        "--p2p-port".into(),
        p2p.to_string(),
    ]);
    if let Some(core) = &core {
        args.extend([
            "--bitcoind-rpc".into(),
            format!("http://127.0.0.1:{}", core.rpc),
            "--bitcoind-rpc-user".into(),
            "u".into(),
            "--bitcoind-rpc-password".into(),
            "p".into(),
            "--bitcoind-p2p".into(),
            format!("127.0.0.1:{}", core.p2p),
        ]);
    }
    // `CHAIN_LOAD_LOG=FILE` keeps the node's log (`CHAIN_LOAD_RUST_LOG`, default `warn`).
    let log_path = std::env::var_os("CHAIN_LOAD_LOG")
        .map_or_else(|| dir.path().join("node.log"), PathBuf::from);
    let log = std::fs::File::create(log_path).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_p2pool"))
        .args(&args)
        .env(
            "RUST_LOG",
            std::env::var("CHAIN_LOAD_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("p2pool");
    wait_listening(worker, "p2pool").await;
    Server {
        name: "p2pool",
        port: worker,
        proc: Proc(child),
        chain: core.map_or(Chain::Embedded, Chain::Core),
        _dir: dir,
    }
}

/// ckpool on a Bitcoin Core of its own; `None` when `CKPOOL` or `BITCOIND` is missing.
async fn start_ckpool(name: &'static str) -> Option<Server> {
    let ckpool = std::env::var("CKPOOL").ok()?;
    let core = Core::start(&std::env::var("BITCOIND").ok()?);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf: PathBuf = dir.path().join("ckpool.conf");
    std::fs::write(
        &conf,
        serde_json::json!({
            "btcd": [{"url": format!("127.0.0.1:{}", core.rpc), "auth": "u", "pass": "p", "notify": false}],
            "btcaddress": ADDRESS.as_str(),
            "serverurl": [format!("127.0.0.1:{port}")],
            "blockpoll": 100,
            "mindiff": 1,
            "startdiff": 1,
            "logdir": dir.path().join("logs").display().to_string(),
        })
        .to_string(),
    )
    .expect("conf");
    let log = std::fs::File::create(dir.path().join("ckpool.out")).expect("log");
    let child = Command::new(ckpool)
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(dir.path().join("sock"))
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("ckpool");
    wait_listening(port, "ckpool").await;
    Some(Server {
        name,
        port,
        proc: Proc(child),
        chain: Chain::Core(core),
        _dir: dir,
    })
}

#[derive(Default)]
struct Shared {
    answers: AtomicU64,
    ready: AtomicUsize,
    disconnects: AtomicUsize,
    latencies: Mutex<Vec<u32>>,
    /// Per new previous block: first and last arrival of its job, in µs since `base`.
    spreads: Mutex<HashMap<String, (u64, u64)>>,
}

/// Quoted strings of a `mining.notify` line's params, in order: job id, prevhash, coinb1,
/// coinb2, branch…, version, nbits, ntime. Cheap: the client must stay light next to the server.
fn notify_fields(line: &str) -> Option<(String, String, String)> {
    let params = &line[line.find("\"params\"")? + 8..];
    let mut strings = Vec::new();
    let mut rest = params;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let end = after.find('"')?;
        strings.push(&after[..end]);
        rest = &after[end + 1..];
    }
    let job = strings.first()?.to_string();
    let prev = strings.get(1)?.to_string();
    let ntime = strings.last()?.to_string();
    Some((job, prev, ntime))
}

async fn read_line(
    slot: usize,
    mut r: BufReader<OwnedReadHalf>,
    mut line: String,
) -> (usize, BufReader<OwnedReadHalf>, String, bool) {
    line.clear();
    let ok = matches!(r.read_line(&mut line).await, Ok(n) if n > 0);
    (slot, r, line, ok)
}

struct Conn {
    w: tokio::net::tcp::OwnedWriteHalf,
    job: String,
    /// The previous block hash of its newest job.
    prev: String,
    ntime: String,
    en2: String,
    sent: Option<Instant>,
    subscribed: bool,
}

/// A client task driving its share of the connections.
async fn group(
    count: usize,
    port: u16,
    shared: Arc<Shared>,
    base: Instant,
    mut go: watch::Receiver<u8>,
) {
    let mut conns = Vec::new();
    let mut reads = FuturesUnordered::new();
    for _ in 0..count {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            shared.disconnects.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (r, mut w) = stream.into_split();
        let hello = format!(
            "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"load/1\"]}}\n{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{}\",\"x\"]}}\n",
            *ADDRESS
        );
        if w.write_all(hello.as_bytes()).await.is_err() {
            shared.disconnects.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        conns.push(Conn {
            w,
            job: String::new(),
            prev: String::new(),
            ntime: String::new(),
            en2: "00000000".into(),
            sent: None,
            subscribed: false,
        });
        reads.push(read_line(conns.len() - 1, BufReader::new(r), String::new()));
    }
    let mut latencies = Vec::new();
    let mut phase = *go.borrow();
    let mut rng = rand::random::<u32>();
    loop {
        tokio::select! {
            next = reads.next(), if !reads.is_empty() => {
                let Some((slot, r, line, ok)) = next else { break };
                if !ok {
                    if phase < 2 {
                        shared.disconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                let c = &mut conns[slot];
                if line.contains("mining.notify") {
                    if let Some((job, prev, ntime)) = notify_fields(&line) {
                        let first_job = c.job.is_empty();
                        c.job = job;
                        c.ntime = ntime;
                        // The spread of a new block's job: each connection's first job on it
                        // (later jobs on the same block, as a pool sends them, do not count).
                        if c.prev != prev {
                            let now = base.elapsed().as_micros() as u64;
                            let mut spreads = shared.spreads.lock();
                            let e = spreads.entry(prev.clone()).or_insert((now, now));
                            e.1 = e.1.max(now);
                            c.prev = prev;
                        }
                        if first_job {
                            shared.ready.fetch_add(1, Ordering::Relaxed);
                        }
                        if phase == 1 && c.sent.is_none() {
                            submit(c, &mut rng).await;
                        }
                    }
                } else if !line.contains("\"method\"") {
                    let subscribe_reply = ["\"id\":1,", "\"id\": 1,", "\"id\":1}", "\"id\": 1}"]
                        .iter()
                        .any(|id| line.contains(id));
                    if !c.subscribed && subscribe_reply {
                        // [[…], extranonce1, extranonce2_size]
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                            if let Some(size) = v["result"][2].as_u64() {
                                c.en2 = "00".repeat(size as usize);
                                c.subscribed = true;
                            }
                        }
                    } else if let Some(sent) = c.sent.take() {
                        shared.answers.fetch_add(1, Ordering::Relaxed);
                        latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        if phase == 1 {
                            submit(c, &mut rng).await;
                        }
                    }
                }
                reads.push(read_line(slot, r, line));
            }
            changed = go.changed() => {
                if changed.is_err() { break; }
                phase = *go.borrow_and_update();
                match phase {
                    1 => {
                        for c in conns.iter_mut().filter(|c| !c.job.is_empty() && c.sent.is_none()) {
                            submit(c, &mut rng).await;
                        }
                    }
                    3 => break,
                    _ => {}
                }
            }
        }
    }
    shared.latencies.lock().extend_from_slice(&latencies);
}

async fn submit(c: &mut Conn, rng: &mut u32) {
    // xorshift: a random nonce per submit, so half of them are regtest blocks.
    *rng ^= *rng << 13;
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    let line = format!(
        "{{\"id\":9,\"method\":\"mining.submit\",\"params\":[\"{}\",\"{}\",\"{}\",\"{}\",\"{:08x}\"]}}\n",
        *ADDRESS, c.job, c.en2, c.ntime, *rng
    );
    if c.w.write_all(line.as_bytes()).await.is_ok() {
        c.sent = Some(Instant::now());
    }
}

/// The number after `name=` in a `RESULT` line.
pub fn field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Mines `count` blocks on a Bitcoin Core's RPC port at even intervals over `secs` (the window),
/// on a thread of its own; none after `stop` is set.
fn mine_paced(rpc: u16, count: u64, secs: f64, stop: Arc<std::sync::atomic::AtomicBool>) {
    let every = Duration::from_secs_f64(secs / (count + 1) as f64);
    let params = format!("[1, \"{}\"]", *ADDRESS);
    std::thread::spawn(move || {
        let start = Instant::now();
        for i in 1..=u32::try_from(count).unwrap_or(u32::MAX) {
            std::thread::sleep((every * i).saturating_sub(start.elapsed()));
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if rpc_call(rpc, ("u", "p"), "generatetoaddress", &params).is_none() {
                eprintln!("ckpool_blocks: generatetoaddress failed");
            }
        }
    });
}

/// One run: `n` connections submitting for `secs`; the RESULT line. `blocks`: that many blocks
/// mined on the server's chain during the window (Bitcoin Core only), for `ckpool_blocks`.
pub async fn run(
    server: Server,
    n: usize,
    secs: f64,
    blocks: Option<u64>,
    rss_mb: impl Fn(u32) -> f64,
    cpu_secs: impl Fn(u32) -> f64,
) -> String {
    let base = Instant::now();
    let shared = Arc::new(Shared::default());
    let (go_tx, go) = watch::channel(0u8);
    let groups = 8.min(n.max(1));
    let mut tasks = Vec::new();
    for g in 0..groups {
        let count = n / groups + usize::from(g < n % groups);
        tasks.push(tokio::spawn(group(
            count,
            server.port,
            Arc::clone(&shared),
            base,
            go.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.ready.load(Ordering::Relaxed) + shared.disconnects.load(Ordering::Relaxed) < n
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served = shared.ready.load(Ordering::Relaxed);
    let (h0, calls0) = (server.height(), server.submitblock_calls());
    shared.spreads.lock().clear();
    let cpu0 = cpu_secs(server.proc.0.id());
    let t = Instant::now();
    go_tx.send_replace(1);
    let stop_mining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let (Some(count), Chain::Core(core)) = (blocks, &server.chain) {
        mine_paced(core.rpc, count, secs, Arc::clone(&stop_mining));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop_mining.store(true, Ordering::Relaxed);
    go_tx.send_replace(2);
    let elapsed = t.elapsed().as_secs_f64();
    let answers = shared.answers.load(Ordering::Relaxed);
    let server_cpu = cpu_secs(server.proc.0.id()) - cpu0;
    // Blocks still with bitcoind.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (h1, calls1) = (server.height(), server.submitblock_calls());
    let rss = rss_mb(server.proc.0.id());
    let disconnects = shared.disconnects.load(Ordering::Relaxed);
    go_tx.send_replace(3);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let mut lat: Vec<f64> = shared
        .latencies
        .lock()
        .iter()
        .map(|&us| f64::from(us) / 1e3)
        .collect();
    lat.sort_by(f64::total_cmp);
    let mut spreads: Vec<f64> = shared
        .spreads
        .lock()
        .values()
        .map(|(a, b)| (b - a) as f64 / 1e3)
        .collect();
    spreads.sort_by(f64::total_cmp);
    let blocks = h1.saturating_sub(h0);
    let calls = calls1.saturating_sub(calls0);
    let pick = |v: &[f64], p: f64| {
        if v.is_empty() {
            0.0
        } else {
            v[(((v.len() - 1) as f64) * p).round() as usize]
        }
    };
    eprintln!(
        "{} on {}: {answers} answers in {elapsed:.1} s, {blocks} blocks, {calls} submitblock calls",
        server.name,
        match server.chain {
            Chain::Core(_) => "Bitcoin Core",
            Chain::Embedded => "the embedded chain",
            Chain::Without => "no chain",
        },
    );
    format!(
        "RESULT server={} connections={served} answers_per_s={:.0} submit_p99_ms={:.2} blocks_accepted={blocks} submitblock_per_block={:.2} notify_spread_ms={:.2} disconnects={disconnects} rss_mb={:.1} server_cpu_us={:.1}",
        server.name,
        answers as f64 / elapsed,
        pick(&lat, 0.99),
        calls as f64 / blocks.max(1) as f64,
        pick(&spreads, 0.5),
        rss,
        server_cpu * 1e6 / answers.max(1) as f64,
    )
}

/// Starts the named server (`p2pool` or `ckpool`); `None` when its programs are missing.
pub async fn start(name: &str) -> Option<Server> {
    match name {
        "p2pool" => Some(start_p2pool().await),
        "ckpool" => start_ckpool("ckpool").await,
        "ckpool_blocks" => start_ckpool("ckpool_blocks").await,
        "floor" => Some(start_floor().await),
        _ => None,
    }
}

/// The answer floor (see the module docs), started as this bench's own binary.
async fn start_floor() -> Server {
    // The floor reads no input: its standard input and output are dropped here.
    let (child, _, _, port) = crate::spawn_role("answer_floor");
    let dir = tempfile::tempdir().expect("tempdir");
    Server {
        name: "floor",
        port,
        proc: Proc(child),
        chain: Chain::Without,
        _dir: dir,
    }
}

/// The answer floor's process: listens on 127.0.0.1, prints `PORT p`, answers until killed.
pub fn answer_floor() {
    let _ = rlimit::increase_nofile_limit(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("PORT {}", listener.local_addr().expect("addr").port());
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
}

/// One floor connection: every line read is answered, all lines of one read in one write.
async fn answer(stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let mut buf = vec![0u8; 4096];
    let mut have = 0usize;
    let mut out = Vec::with_capacity(1024);
    loop {
        let Ok(n) = r.read(&mut buf[have..]).await else {
            return;
        };
        if n == 0 {
            return;
        }
        have += n;
        let mut start = 0;
        while let Some(end) = buf[start..have].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + end];
            if line.windows(9).any(|x| x == b"subscribe") {
                out.extend_from_slice(
                    b"{\"id\":1,\"result\":[[],\"00000000\",4],\"error\":null}\n",
                );
                out.extend_from_slice(b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"1\",\"00\",\"00\",\"00\",[],\"20000000\",\"207fffff\",\"00000000\",true]}\n");
            } else if line.windows(9).any(|x| x == b"authorize") {
                out.extend_from_slice(b"{\"id\":2,\"result\":true,\"error\":null}\n");
            } else {
                out.extend_from_slice(b"{\"id\":9,\"result\":true,\"error\":null}\n");
            }
            start += end + 1;
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            return;
        }
        if w.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}
