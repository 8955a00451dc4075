//! New work reaching every stratum session: one notify per session per update, one job build
//! per payout script, and a miner that stops reading neither holds up the others nor gets a
//! torn line.

mod worker_common;

use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use p2pool::worker::WorkerConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use worker_common::*;

const SHARE_DIFF: f64 = 1e-6;
const BLOCK_DIFF: f64 = 4e-6;

/// Wait until the port has written `count` notify lines in all.
async fn wait_notifies(server: &Server, count: u64) {
    let until = Instant::now() + WAIT;
    while server.port.notify_writes().count < count {
        assert!(
            Instant::now() < until,
            "only {} of {count} notifies written",
            server.port.notify_writes().count
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_gets_each_new_block_once() {
    // Enough sessions that the fan-out splits them across threads.
    const SESSIONS: usize = 600;
    const BLOCKS: usize = 3;
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut clients = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let mut c = Client::connect(server.addr).await;
        let address = if i % 3 == 0 { ADDR2 } else { ADDR };
        c.handshake(&format!("{address}.w{i}+0.000000001")).await;
        clients.push(c);
    }
    let before = server.port.notify_writes().count;
    let builds = server.provider.builds();
    let mut prevs = Vec::new();
    for round in 1..=BLOCKS {
        server.provider.new_block();
        prevs.push(server.provider.prev_hash().to_byte_array());
        wait_notifies(&server, before + (round * SESSIONS) as u64).await;
    }
    assert_eq!(
        server.provider.builds() - builds,
        2 * BLOCKS,
        "one build per payout script and block, not per session"
    );
    for (i, c) in clients.iter_mut().enumerate() {
        // A request after the writes: whatever came before its reply is all the port sent.
        c.send(json!({"id": 99, "method": "mining.extranonce.subscribe", "params": []}))
            .await;
        c.response(99).await;
        let notifies: Vec<NotifyJob> = std::mem::take(c.pending_notifications())
            .iter()
            .filter(|m| m["method"] == "mining.notify")
            .map(NotifyJob::parse)
            .collect();
        assert_eq!(notifies.len(), BLOCKS, "session {i}: one notify per block");
        for (job, prev) in notifies.iter().zip(&prevs) {
            assert!(job.clean, "session {i}: a new block cleans old jobs");
            assert_eq!(&job.prev, prev, "session {i}: in block order");
        }
    }
    assert_eq!(
        server.port.notify_writes().count,
        before + (BLOCKS * SESSIONS) as u64,
        "nothing written twice"
    );
}

/// A raw connection with a small receive buffer whose owner can stop reading.
async fn slow_reader(server: &Server) -> BufReader<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket.connect(server.addr).await.expect("connect");
    let hello = format!(
        "{}\n{}\n",
        json!({"id": 1, "method": "mining.subscribe", "params": []}),
        json!({"id": 2, "method": "mining.authorize", "params": [format!("{ADDR}.slow+0.000000001"), "x"]})
    );
    stream.write_all(hello.as_bytes()).await.expect("hello");
    BufReader::new(stream)
}

/// Updates until the slow reader's socket is full (its notifies stop being counted as written
/// while the fast client keeps getting each one). Returns the updates made.
async fn fill(server: &Server, fast: &mut Client) -> usize {
    let mut updates = 0;
    loop {
        let before = server.port.notify_writes().count;
        server.provider.new_work();
        updates += 1;
        fast.notification("mining.notify").await;
        tokio::time::sleep(Duration::from_micros(200)).await;
        if server.port.notify_writes().count == before + 1 {
            // Only the fast client's line went out at once: the slow one is backed up.
            return updates;
        }
        assert!(updates < 50_000, "the slow reader's socket never filled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_that_stops_reading_holds_up_no_one_and_gets_whole_lines_later() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut slow = slow_reader(&server).await;
    let mut fast = Client::connect(server.addr).await;
    fast.handshake(ADDR).await;
    let updates = fill(&server, &mut fast).await;
    // More work while it is backed up: the fast miner still gets every notify.
    for _ in 0..20 {
        server.provider.new_work();
        fast.notification("mining.notify").await;
    }
    // The slow miner reads again: every line whole, ending with the newest job.
    let last_ntime = {
        server.provider.new_work();
        NotifyJob::parse(&fast.notification("mining.notify").await).ntime
    };
    let mut line = String::new();
    let mut notifies = 0;
    loop {
        line.clear();
        let n = tokio::time::timeout(WAIT, slow.read_line(&mut line))
            .await
            .expect("slow reader gets its lines")
            .expect("read");
        assert!(n > 0, "connection stays open");
        let msg: Value = serde_json::from_str(&line).expect("whole JSON lines");
        if msg["method"] == "mining.notify" {
            notifies += 1;
            if NotifyJob::parse(&msg).ntime == last_ntime {
                break;
            }
        }
    }
    assert!(
        notifies >= updates,
        "{notifies} notifies for {updates} updates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_that_never_reads_again_is_dropped_after_the_write_timeout() {
    let config = WorkerConfig {
        write_timeout: Duration::from_millis(500),
        ..test_config()
    };
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), config).await;
    let mut slow = slow_reader(&server).await;
    let mut fast = Client::connect(server.addr).await;
    fast.handshake(ADDR).await;
    fill(&server, &mut fast).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Drain what was queued: the stream must end (the port closed it), not stay open.
    let mut line = String::new();
    let closed = loop {
        line.clear();
        match tokio::time::timeout(WAIT, slow.read_line(&mut line)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(_)) => {}
            Err(_) => break false,
        }
    };
    assert!(closed, "a miner that stops reading is dropped");
    server.provider.new_work();
    fast.notification("mining.notify").await;
}
