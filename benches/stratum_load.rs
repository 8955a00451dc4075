//! Stratum load generator: N connections against a worker port in a separate process.
//!
//! `cargo bench --bench stratum_load` (N from `STRATUM_LOAD_N`, default `1000,10000`, or from
//! the first non-flag argument). The bench re-executes itself with `STRATUM_LOAD_ROLE=server`
//! to run the worker port (test-style provider, fixed pseudo difficulty so every hash counts),
//! then for each N: opens N connections (from a few client tasks, each multiplexing many
//! connections), measures new block → `mining.notify` written to all
//! of them (`notify_fanout_ms`: timed by the server from the new block to its last notify
//! write, while the client holds off reading; p99 over the rounds), runs
//! every connection in a closed submit loop (`submits_per_s`, `submit_p99_ms`), and reads the
//! server's resident memory (`rss_mb`). The reference `fanout_floor_ms` is one thread per core
//! doing nothing but writing a notify-sized line to N loopback sockets whose reading ends wait
//! in a tokio reactor, in a process of its own in the same run (`fanout_floor_1t_ms`: one
//! thread);
//! `notify_fanout_p50_ms` is the median round. `notify_cpu_us` and `submit_cpu_us` are the
//! server's CPU time per notify and per accepted submit: unlike the wall-clock figures they do
//! not depend on what else the machine is running.
//! One `RESULT` line per N, the largest last.
//!
//! Then the whole pool on a real chain (`chain_load`): the `p2pool` node on Bitcoin Core
//! (`BITCOIND`) or its embedded chain, and ckpool (`CKPOOL`) on a Bitcoin Core of its own, each
//! with N connections submitting random nonces for 10 s: one `RESULT server=…` line per server
//! and N (`ckpool_blocks`: ckpool again, its chain given as many new blocks as p2pool's run
//! found). `STRATUM_LOAD_PARTS=worker` or `=chain` runs one of the two parts only;
//! `STRATUM_LOAD_SERVERS=p2pool,ckpool` some of the chain part's servers.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark reports on stdout"
)]

#[path = "chain_load/mod.rs"]
mod chain_load;
#[path = "../tests/worker_common/mod.rs"]
mod worker_common;

use std::io::{BufRead, BufReader as StdBufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use p2pool::worker::{VardiffConfig, WorkerConfig, WorkerPort};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Fan-out rounds and seconds of submitting: (full run, smoke run under `cargo test`).
const ROUNDS: (usize, usize) = (9, 2);
/// Client tasks; each multiplexes N / GROUPS connections.
const GROUPS: usize = 8;
const SUBMIT_SECS: (f64, f64) = (4.0, 0.5);
/// Length of the notify lines the test provider's jobs produce (for the floor reference).
const NOTIFY_LEN: usize = 560;
/// Difficulty 1e-12 saturates the target: every hash is a pseudo-share.
const USER_SUFFIX: &str = "+0.000000000001";

fn main() {
    match std::env::var("STRATUM_LOAD_ROLE").as_deref() {
        Ok("server") => return server(),
        Ok("floor") => return floor(),
        Ok("answer_floor") => return chain_load::answer_floor(),
        _ => {}
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full =
        std::env::args().any(|a| a == "--bench") || std::env::var_os("STRATUM_LOAD_N").is_some();
    let default_n = if full { "1000,10000" } else { "50" };
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("STRATUM_LOAD_N").ok())
        .unwrap_or_else(|| default_n.to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let limit = ns.iter().max().copied().unwrap_or(0) as u64 * 2 + 1024;
    match rlimit::increase_nofile_limit(limit) {
        Ok(got) if got < limit => eprintln!("warning: open-file limit is only {got}"),
        Err(e) => eprintln!("warning: cannot raise the open-file limit: {e}"),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Ascending, so the largest N's line is the last line of the output.
    let mut ns = ns;
    ns.sort_unstable();
    ns.dedup();
    // `STRATUM_LOAD_PARTS=chain` (or `worker`) runs one part only.
    let parts = std::env::var("STRATUM_LOAD_PARTS").unwrap_or_else(|_| "worker,chain".into());
    if parts.contains("worker") {
        for &n in &ns {
            let line = rt.block_on(run(n, full));
            println!("{line}");
        }
    }
    if !parts.contains("chain") {
        return;
    }
    // The whole pool on a real chain, and ckpool beside it (see `chain_load`).
    let (chain_ns, secs) = if full { (ns, 10.0) } else { (vec![20], 1.0) };
    let all: &[&str] = if full {
        &["p2pool", "ckpool", "ckpool_blocks", "floor"]
    } else {
        &["p2pool"]
    };
    let chosen = std::env::var("STRATUM_LOAD_SERVERS").unwrap_or_default();
    let servers: Vec<&str> = all
        .iter()
        .copied()
        .filter(|s| chosen.is_empty() || chosen.split(',').any(|c| c == *s))
        .collect();
    for n in chain_ns {
        // The blocks p2pool's run found, for `ckpool_blocks` to see as many.
        let mut p2pool_blocks = 0;
        for name in &servers {
            let blocks = (*name == "ckpool_blocks").then_some(p2pool_blocks);
            let line = rt.block_on(async {
                let server = chain_load::start(name).await?;
                Some(chain_load::run(server, n, secs, blocks, rss_mb, cpu_secs).await)
            });
            match line {
                Some(line) => {
                    if *name == "p2pool" {
                        p2pool_blocks = chain_load::field(&line, "blocks_accepted").unwrap_or(0);
                    }
                    println!("{line}");
                }
                None => eprintln!("skipped: {name} (needs CKPOOL and BITCOIND)"),
            }
        }
    }
}

/// The server role: a worker port on 127.0.0.1:0; "new" on stdin = a new block.
fn server() {
    let _ = rlimit::increase_nofile_limit(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let provider = worker_common::TestProvider::new(1e6, 1e9);
        let config = WorkerConfig {
            max_connections: 100_000,
            // Every load connection comes from 127.0.0.1.
            max_connections_per_ip: 0,
            renotify_interval: Duration::from_secs(3600),
            authorize_timeout: Duration::from_secs(600),
            vardiff: VardiffConfig::default(),
            ..WorkerConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = WorkerPort::new(Arc::clone(&provider), config);
        println!("PORT {}", listener.local_addr().expect("addr").port());
        let _ = std::io::stdout().flush();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let counters = port.clone();
        std::thread::spawn(move || {
            // "new N": a new block; answer with the time until N notifies were written.
            for line in std::io::stdin().lock().lines() {
                let Some(n) = line
                    .ok()
                    .and_then(|l| l.strip_prefix("new ")?.parse::<u64>().ok())
                else {
                    break;
                };
                let before = counters.notify_writes().count;
                let t0 = Instant::now();
                provider.new_block();
                let until = t0 + Duration::from_secs(10);
                let mut writes = counters.notify_writes();
                while writes.count - before < n && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                    writes = counters.notify_writes();
                }
                let ms = writes.last.map_or(f64::NAN, |t| {
                    t.saturating_duration_since(t0).as_secs_f64() * 1e3
                });
                let done = writes.count - before;
                println!("FANOUT {ms} {done}");
                let _ = std::io::stdout().flush();
            }
            let _ = done_tx.send(());
        });
        let _ = port
            .serve(listener, axum::Router::new(), async {
                let _ = done_rx.await;
            })
            .await;
    });
}

struct Shared {
    base: Instant,
    /// Per connection: nanoseconds since `base` of the last clean notify.
    arrivals: Vec<AtomicU64>,
    arrived: AtomicUsize,
    accepted: AtomicU64,
    rejected: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    /// Not reading, so the server's fan-out is timed without the client competing for CPU.
    Paused,
    Submit,
    Stop,
}

type ServerOut = StdBufReader<std::process::ChildStdout>;

/// This binary again in `role` (`STRATUM_LOAD_ROLE`): the child, its input and output, and the
/// port of its `PORT p` line.
fn spawn_role(role: &str) -> (Child, ChildStdin, ServerOut, u16) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env("STRATUM_LOAD_ROLE", role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("server process");
    let stdin = child.stdin.take().expect("stdin");
    let mut out = StdBufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("port line");
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .expect("port");
    (child, stdin, out, port)
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU seconds of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    f.get(11)
        .zip(f.get(12))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The floor role: `STRATUM_LOAD_FLOOR="N,THREADS"`; prints `FLOOR ms`. A process of its own,
/// so that its sockets have the whole open-file limit.
fn floor() {
    let spec = std::env::var("STRATUM_LOAD_FLOOR").unwrap_or_default();
    let mut parts = spec
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok());
    let (n, threads) = (parts.next().unwrap_or(1), parts.next().unwrap_or(1));
    let _ = rlimit::increase_nofile_limit(n as u64 * 2 + 1024);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ms = rt.block_on(fanout_floor_ms(n, NOTIFY_LEN, threads));
    println!("FLOOR {ms}");
}

/// [`fanout_floor_ms`] run in a child process.
fn floor_in_child(n: usize, threads: usize) -> f64 {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env("STRATUM_LOAD_ROLE", "floor")
        .env("STRATUM_LOAD_FLOOR", format!("{n},{threads}"))
        .stderr(Stdio::inherit())
        .output()
        .expect("floor process");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("FLOOR ")?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// The floor under `notify_fanout_ms`: `threads` threads doing nothing but writing a
/// notify-sized line to each of N loopback sockets with plain blocking writes, while the
/// reading ends wait in this process's tokio reactor as the load generator's paused
/// connections do (on as many of the N sockets as the open-file limit allows, scaled to N),
/// median of 5.
async fn fanout_floor_ms(n: usize, line_len: usize, threads: usize) -> f64 {
    let fds = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let k = n.clamp(1, (fds.saturating_sub(256) / 2).max(1) as usize);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut servers = Vec::with_capacity(k);
    let mut clients = Vec::with_capacity(k);
    for _ in 0..k {
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let _ = client.set_nodelay(true);
        let _ = client.set_nonblocking(true);
        let (server, _) = listener.accept().expect("accept");
        let _ = server.set_nodelay(true);
        servers.push(server);
        clients.push(Arc::new(TcpStream::from_std(client).expect("register")));
    }
    let mut line = vec![b'x'; line_len.max(2)];
    if let Some(last) = line.last_mut() {
        *last = b'\n';
    }
    let per = k.div_ceil(threads.max(1));
    let mut times = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let waits: Vec<_> = clients
            .iter()
            .map(|c| {
                let c = Arc::clone(c);
                tokio::spawn(async move { c.readable().await })
            })
            .collect();
        tokio::task::yield_now().await;
        let ms = tokio::task::block_in_place(|| {
            let t = Instant::now();
            std::thread::scope(|scope| {
                for chunk in servers.chunks(per) {
                    let line = &line;
                    scope.spawn(move || {
                        for mut server in chunk {
                            server.write_all(line).expect("write");
                        }
                    });
                }
            });
            t.elapsed().as_secs_f64() * 1e3 * n as f64 / k as f64
        });
        times.push(ms);
        for wait in waits {
            let _ = wait.await;
        }
        let mut buf = vec![0u8; line.len()];
        for c in &clients {
            let mut got = 0;
            while got < buf.len() {
                c.readable().await.expect("readable");
                match c.try_read(&mut buf[got..]) {
                    Ok(r) => got += r,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

async fn run(n: usize, full: bool) -> String {
    let (rounds, submit_secs) = if full {
        (ROUNDS.0, SUBMIT_SECS.0)
    } else {
        (ROUNDS.1, SUBMIT_SECS.1)
    };
    let (mut child, mut stdin, mut server_out, port) = spawn_role("server");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let shared = Arc::new(Shared {
        base: Instant::now(),
        arrivals: (0..n).map(|_| AtomicU64::new(0)).collect(),
        arrived: AtomicUsize::new(0),
        accepted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Idle);

    // A few client tasks, each multiplexing its share of the connections.
    let ready = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(GROUPS);
    for g in 0..GROUPS {
        let indices: Vec<usize> = (g..n).step_by(GROUPS).collect();
        tasks.push(tokio::spawn(group(
            indices,
            addr,
            Arc::clone(&shared),
            phase_rx.clone(),
            Arc::clone(&ready),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = ready.load(Ordering::Relaxed);

    // Fan-out rounds: the server times new block → notify written to every connection.
    let mut fanout = Vec::new();
    let mut incomplete = 0;
    let fanout_cpu0 = cpu_secs(child.id());
    for _ in 0..rounds {
        phase_tx.send_replace(Phase::Paused);
        tokio::time::sleep(Duration::from_millis(300)).await;
        shared.arrived.store(0, Ordering::SeqCst);
        writeln!(stdin, "new {connected}")
            .and_then(|()| stdin.flush())
            .expect("server stdin");
        let mut reply = String::new();
        server_out.read_line(&mut reply).expect("fan-out reply");
        let mut fields = reply.split_whitespace().skip(1);
        let ms: f64 = fields
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        let done: usize = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        if done < connected {
            incomplete += 1;
        }
        fanout.push(ms);
        phase_tx.send_replace(Phase::Idle);
        let until = Instant::now() + Duration::from_secs(10);
        while shared.arrived.load(Ordering::Relaxed) < connected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let fanout_cpu = cpu_secs(child.id()) - fanout_cpu0;
    let notify_cpu_us = fanout_cpu * 1e6 / (rounds * connected.max(1)) as f64;
    if incomplete > 0 {
        eprintln!("warning: {incomplete} fan-out rounds did not reach every connection");
    }
    fanout.sort_by(f64::total_cmp);
    eprintln!("fan-out rounds (ms, sorted): {fanout:.2?}");
    let fanout_p99 = percentile(&fanout, 0.99);
    let fanout_p50 = percentile(&fanout, 0.5);

    // Closed-loop submits on every connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_accepted = shared.accepted.load(Ordering::SeqCst);
    let cpu0 = (cpu_secs(child.id()), cpu_secs(std::process::id()));
    let t = Instant::now();
    phase_tx.send_replace(Phase::Submit);
    tokio::time::sleep(Duration::from_secs_f64(submit_secs)).await;
    let accepted = shared.accepted.load(Ordering::SeqCst) - start_accepted;
    let elapsed = t.elapsed().as_secs_f64();
    let cpu1 = (cpu_secs(child.id()), cpu_secs(std::process::id()));
    eprintln!(
        "submit phase: {elapsed:.2} s wall, server {:.2} s CPU, client {:.2} s CPU",
        cpu1.0 - cpu0.0,
        cpu1.1 - cpu0.1
    );
    phase_tx.send_replace(Phase::Idle);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = rss_mb(child.id());
    phase_tx.send_replace(Phase::Stop);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let mut lat: Vec<f64> = shared
        .latencies
        .lock()
        .iter()
        .map(|&us| f64::from(us) / 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    drop(stdin);
    let _ = child.wait();
    let rejected = shared.rejected.load(Ordering::SeqCst);
    let floor = floor_in_child(n, p2pool::cores());
    let floor_one = floor_in_child(n, 1);
    if connected < n || rejected > 0 {
        eprintln!("warning: {connected}/{n} connections ready, {rejected} submits rejected");
    }
    format!(
        "RESULT connections={connected} submits_per_s={:.0} submit_p99_ms={:.2} notify_fanout_ms={:.2} rss_mb={:.1} notify_fanout_p50_ms={:.2} fanout_floor_ms={:.2} fanout_floor_1t_ms={:.2} notify_cpu_us={:.2} submit_cpu_us={:.2}",
        accepted as f64 / elapsed,
        percentile(&lat, 0.99),
        fanout_p99,
        rss,
        fanout_p50,
        floor,
        floor_one,
        notify_cpu_us,
        (cpu1.0 - cpu0.0) * 1e6 / accepted.max(1) as f64
    )
}

/// The writing side and state of one connection.
struct Conn {
    index: usize,
    writer: OwnedWriteHalf,
    job_id: String,
    ntime: String,
    nonce: u32,
    sent: Option<Instant>,
    ready: bool,
}

impl Conn {
    /// Send the next submit (nearly always a single non-blocking write).
    async fn submit(&mut self) -> std::io::Result<()> {
        self.nonce = self.nonce.wrapping_add(1);
        let line = format!(
            "{{\"id\":9,\"method\":\"mining.submit\",\"params\":[\"u\",\"{}\",\"00000000\",\"{}\",\"{:08x}\"]}}\n",
            self.job_id, self.ntime, self.nonce
        );
        let n = match self.writer.try_write(line.as_bytes()) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        if n < line.len() {
            self.writer.write_all(&line.as_bytes()[n..]).await?;
        }
        self.sent = Some(Instant::now());
        Ok(())
    }
}

type Reader = BufReader<OwnedReadHalf>;

/// Read one line; hands the reader back with the result (so many reads can be in flight in
/// one task).
async fn read_line(
    slot: usize,
    mut reader: Reader,
    mut line: Vec<u8>,
) -> (usize, Reader, Vec<u8>, bool) {
    line.clear();
    let ok = matches!(reader.read_until(b'\n', &mut line).await, Ok(n) if n > 0);
    (slot, reader, line, ok)
}

/// A client task driving many miner connections: handshake, record notifies, submit when told.
async fn group(
    indices: Vec<usize>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    ready: Arc<AtomicUsize>,
) {
    let mut conns = Vec::with_capacity(indices.len());
    let mut reads = FuturesUnordered::new();
    for index in indices {
        let Ok(stream) = TcpStream::connect(addr).await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (r, mut w) = stream.into_split();
        let user = format!("{}.c{index}{USER_SUFFIX}", worker_common::ADDR);
        let hello = format!(
            "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"load/1\"]}}\n{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{user}\",\"x\"]}}\n"
        );
        if w.write_all(hello.as_bytes()).await.is_err() {
            continue;
        }
        let slot = conns.len();
        conns.push(Conn {
            index,
            writer: w,
            job_id: String::new(),
            ntime: String::new(),
            nonce: 0,
            sent: None,
            ready: false,
        });
        reads.push(read_line(
            slot,
            BufReader::with_capacity(1024, r),
            Vec::with_capacity(1024),
        ));
    }
    let mut latencies = Vec::new();
    let mut current = Phase::Idle;
    loop {
        tokio::select! {
            next = reads.next(), if current != Phase::Paused && !reads.is_empty() => {
                let Some((slot, reader, line, ok)) = next else { break };
                if !ok {
                    continue;
                }
                let conn = &mut conns[slot];
                if let Some((id, time, clean)) = parse_notify(&line) {
                    conn.job_id = id;
                    conn.ntime = time;
                    if clean {
                        let t = shared.base.elapsed().as_nanos() as u64;
                        shared.arrivals[conn.index].store(t, Ordering::Relaxed);
                        shared.arrived.fetch_add(1, Ordering::Relaxed);
                    }
                    if !conn.ready {
                        conn.ready = true;
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                } else if line.starts_with(b"{\"id\":9,") {
                    if let Some(sent) = conn.sent.take() {
                        if line.windows(13).any(|w| w == b"\"result\":true") {
                            shared.accepted.fetch_add(1, Ordering::Relaxed);
                            latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        } else {
                            shared.rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if current == Phase::Submit && conn.submit().await.is_err() {
                        continue;
                    }
                }
                reads.push(read_line(slot, reader, line));
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                current = *phase.borrow_and_update();
                match current {
                    Phase::Stop => break,
                    Phase::Submit => {
                        for conn in conns.iter_mut().filter(|c| c.sent.is_none() && !c.job_id.is_empty()) {
                            let _ = conn.submit().await;
                        }
                    }
                    Phase::Idle | Phase::Paused => {}
                }
            }
        }
    }
    shared.latencies.lock().extend_from_slice(&latencies);
}

/// Job id, ntime and clean flag of a `mining.notify` line, without a JSON parser (the client
/// must stay cheap next to the server it measures).
fn parse_notify(line: &[u8]) -> Option<(String, String, bool)> {
    const PREFIX: &[u8] = b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"";
    let rest = line.strip_prefix(PREFIX)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let id = String::from_utf8(rest[..end].to_vec()).ok()?;
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (clean, head) = if let Some(h) = line.strip_suffix(b",true]}") {
        (true, h)
    } else {
        (false, line.strip_suffix(b",false]}")?)
    };
    let time = head.strip_suffix(b"\"")?;
    let time = String::from_utf8(time.get(time.len().checked_sub(8)?..)?.to_vec()).ok()?;
    Some((id, time, clean))
}
