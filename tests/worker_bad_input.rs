//! Bad input on the worker port: every malformed or abusive message gets the right error, and
//! neither the connection (where it should survive) nor the node goes down.

mod worker_common;

use std::time::Duration;

use p2pool::worker::{difficulty_to_target, FoundOutcome, WorkerConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use worker_common::*;

const SHARE_DIFF: f64 = 1e-6;

fn user() -> String {
    format!("{ADDR}+0.000000001")
}

/// A fresh client still gets work: the node survived.
async fn node_alive(server: &Server) {
    let mut c = Client::connect(server.addr).await;
    c.handshake(&user()).await;
}

#[tokio::test]
async fn junk_invalid_json_and_unknown_methods() {
    let server = start(TestProvider::new(SHARE_DIFF, 1e-4), test_config()).await;

    // Junk that does not start with `{` goes to HTTP, which answers 400 and closes.
    let mut junk = TcpStream::connect(server.addr).await.expect("connect");
    junk.write_all(b"\x00\xff\x13garbage\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, junk.read_to_end(&mut reply))
        .await
        .expect("closed in time");
    assert!(
        reply.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );

    let mut c = Client::connect(server.addr).await;
    c.send_raw(b"{not json\n").await;
    let r = c.read().await.expect("error reply");
    assert_eq!(r["error"][0], json!(20));
    assert_eq!(r["id"], json!(null));
    c.send_raw(b"{\"id\":\"a\",\"method\":\"mining.subscribe\",\"params\":[]}\r\n")
        .await;
    let r = c.read().await.expect("reply");
    assert_eq!(r["id"], json!("a"), "string ids echoed unchanged");
    c.send_raw(b"{\"id\":\xff\xfe}\n").await;
    assert_eq!(c.read().await.expect("reply")["error"][0], json!(20));
    c.send(json!({"id": 7, "method": "mining.fly", "params": []}))
        .await;
    let r = c.response(7).await;
    assert_eq!(r["error"][0], json!(20));
    assert!(r["error"][1]
        .as_str()
        .expect("message")
        .contains("unknown method"));
    c.send(json!({"id": 8, "jsonrpc": "2.0", "method": "mining.extranonce.subscribe", "params": [], "extra": 1})).await;
    assert_eq!(c.response(8).await["result"], json!(true));
    c.send(json!({"id": 9, "method": "mining.authorize", "params": [user(), "x"]}))
        .await;
    assert_eq!(
        c.response(9).await["result"],
        json!(true),
        "connection survived it all"
    );
    node_alive(&server).await;
}

#[tokio::test]
async fn random_lines_never_take_the_node_down() {
    use rand::{Rng, SeedableRng};
    let server = start(TestProvider::new(SHARE_DIFF, 1e-4), test_config()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let shapes = [
        r#"{"id":1,"method":"mining.submit","params":[1,2,3,4,5,6]}"#,
        r#"{"id":[],"method":"mining.configure","params":[[1,{}],"x"]}"#,
        r#"{"id":{},"method":"mining.subscribe","params":{"a":1}}"#,
        r#"{"id":2,"method":"mining.authorize","params":[null]}"#,
        r#"{"id":3,"method":"mining.suggest_difficulty","params":[-1e308]}"#,
        r#"{"id":4,"method":"mining.suggest_difficulty","params":["NaN"]}"#,
        r#"{"id":5,"method":"mining.submit","params":["a","ffffffffffffffffff","","",""]}"#,
        r#"{"method":7}"#,
        r#"{"id":7,"method":"mining.suggest_target","params":["0x1f"]}"#,
        r#"{"id":6,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":12}]}"#,
    ];
    for round in 0..3 {
        let mut c = Client::connect(server.addr).await;
        for shape in shapes {
            c.send_raw(format!("{shape}\n").as_bytes()).await;
        }
        for _ in 0..50 {
            let len = rng.gen_range(1..200);
            let mut line: Vec<u8> = (0..len).map(|_| rng.gen_range(0x20..0x7f)).collect();
            line[0] = b'{';
            line.retain(|&b| b != b'\n');
            line.push(b'\n');
            c.send_raw(&line).await;
        }
        c.send(json!({"id": 99, "method": "mining.extranonce.subscribe", "params": []}))
            .await;
        assert_eq!(
            c.response(99).await["result"],
            json!(true),
            "round {round}: still answering"
        );
    }
    node_alive(&server).await;
}

#[tokio::test]
async fn oversize_line_closes_the_connection_only() {
    let config = WorkerConfig {
        max_line: 4096,
        ..test_config()
    };
    let server = start(TestProvider::new(SHARE_DIFF, 1e-4), config).await;
    let mut c = Client::connect(server.addr).await;
    let mut big = b"{\"id\":1,\"method\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 8192));
    let _ = tokio::time::timeout(WAIT, c.send_raw_lenient(&big)).await;
    assert!(c.closed().await, "connection closed past the line limit");
    node_alive(&server).await;
}

trait Lenient {
    async fn send_raw_lenient(&mut self, bytes: &[u8]);
}

impl Lenient for Client {
    async fn send_raw_lenient(&mut self, bytes: &[u8]) {
        // The server may close mid-write; that is the expected outcome here.
        let mut s = bytes;
        while !s.is_empty() {
            let n = s.len().min(1024);
            if self.try_send(&s[..n]).await.is_err() {
                return;
            }
            s = &s[n..];
        }
    }
}

#[tokio::test]
async fn submit_errors_have_the_right_codes() {
    let server = start(TestProvider::new(SHARE_DIFF, 1e-4), test_config()).await;
    let mut c = Client::connect(server.addr).await;

    // Before subscribe / authorize.
    let early = json!({"id": 1, "method": "mining.submit", "params": [ADDR, "1", "00000000", "00000000", "00000000"]});
    c.send(early.clone()).await;
    assert_eq!(c.response(1).await["error"][0], json!(25));
    c.send(json!({"id": 2, "method": "mining.subscribe", "params": []}))
        .await;
    let en1 = hex::decode(c.response(2).await["result"][1].as_str().expect("en1")).expect("hex");
    c.send(early).await;
    assert_eq!(c.response(1).await["error"][0], json!(24));

    // Invalid address: the message names the accepted kinds.
    c.send(json!({"id": 3, "method": "mining.authorize", "params": ["1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "x"]})).await;
    let r = c.response(3).await;
    assert_eq!(r["result"], json!(false));
    let message = r["error"][1].as_str().expect("message");
    assert!(
        message.contains("regtest") && message.contains("bcrt1q"),
        "{message}"
    );

    c.send(json!({"id": 4, "method": "mining.authorize", "params": [user(), "x"]}))
        .await;
    assert_eq!(c.response(4).await["result"], json!(true));
    let job = NotifyJob::parse(&c.notification("mining.notify").await);
    let pseudo = difficulty_to_target(1e-9);
    let en2 = [0, 0, 0, 5];
    let (nonce, _) = job.grind(&en1, &en2, job.version, 0, |h| meets(h, pseudo));

    let mut unknown = job.submit(5, &en2, nonce, None);
    unknown["params"][1] = json!("zz-not-a-job");
    c.send(unknown).await;
    assert_eq!(c.response(5).await["error"][0], json!(21));

    let mut short = job.submit(6, &en2, nonce, None);
    short["params"][2] = json!("000005");
    c.send(short).await;
    let r = c.response(6).await;
    assert_eq!(r["error"][0], json!(20));
    assert!(r["error"][1].as_str().expect("msg").contains("extranonce2"));

    // No version rolling negotiated: any version bits are refused.
    c.send(job.submit(7, &en2, nonce, Some(0x0000_2000))).await;
    assert_eq!(c.response(7).await["error"][0], json!(20));
    c.send(json!({"id": 8, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]})).await;
    c.response(8).await;
    c.send(job.submit(9, &en2, nonce, Some(0x4000_0000))).await;
    let r = c.response(9).await;
    assert_eq!(r["error"][0], json!(20), "bits outside the mask");

    let mut bad_time = job.submit(10, &en2, nonce, None);
    bad_time["params"][3] = json!(format!(
        "{:08x}",
        job.ntime + 3 * 3600 + (now() - job.ntime)
    ));
    c.send(bad_time).await;
    assert!(c.response(10).await["error"][1]
        .as_str()
        .expect("msg")
        .contains("ntime"));

    let mut few = job.submit(11, &en2, nonce, None);
    few["params"] = json!([ADDR, job.id]);
    c.send(few).await;
    assert_eq!(c.response(11).await["error"][0], json!(20));

    let (low, _) = job.grind(&en1, &en2, job.version, 0, |h| !meets(h, pseudo));
    c.send(job.submit(12, &en2, low, None)).await;
    assert_eq!(c.response(12).await["error"][0], json!(23));

    c.send(job.submit(13, &en2, nonce, None)).await;
    assert_eq!(c.response(13).await["result"], json!(true));
    c.send(job.submit(14, &en2, nonce, None)).await;
    assert_eq!(c.response(14).await["error"][0], json!(22), "duplicate");

    // The node refusing a share is passed on.
    let share = difficulty_to_target(SHARE_DIFF);
    server.provider.set_outcome(FoundOutcome::Stale {
        reason: "share chain moved on".into(),
    });
    // Past every nonce submitted above: the first nonce meeting the share target may be the one
    // already accepted as a pseudo-share, which would be answered as a duplicate (22).
    let (s, _) = job.grind(&en1, &en2, job.version, nonce + 1, |h| meets(h, share));
    c.send(job.submit(15, &en2, s, None)).await;
    let r = c.response(15).await;
    assert_eq!(r["error"][0], json!(21));
    assert_eq!(r["error"][1], json!("share chain moved on"));

    // Stale after a new block.
    server.provider.new_block();
    let fresh = NotifyJob::parse(&c.notification("mining.notify").await);
    assert!(fresh.clean);
    let (n2, _) = job.grind(&en1, &en2, job.version, s + 1, |h| meets(h, pseudo));
    c.send(job.submit(16, &en2, n2, None)).await;
    let r = c.response(16).await;
    assert_eq!(r["error"][0], json!(21));
    assert!(r["error"][1].as_str().expect("msg").contains("stale"));

    let stats = server.port.stats();
    assert_eq!(stats.rejected.duplicate, 1);
    assert_eq!(stats.rejected.low_difficulty, 1);
    assert!(stats.rejected.stale >= 2);
    assert!(stats.rejected.invalid >= 4);
    node_alive(&server).await;
}

#[tokio::test]
async fn slow_loris_cannot_exhaust_the_node() {
    let config = WorkerConfig {
        max_connections: 8,
        first_byte_timeout: Duration::from_millis(500),
        line_timeout: Duration::from_millis(500),
        authorize_timeout: Duration::from_secs(1),
        http_header_timeout: Duration::from_millis(500),
        ..test_config()
    };
    let server = start(TestProvider::new(SHARE_DIFF, 1e-4), config).await;

    // Fill every slot with silent connections; the next one is refused at once.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(server.addr).await.expect("connect");
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(WAIT, extra.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "over the cap: closed");
    assert!(server.port.stats().refused_connections >= 1);

    // The first-byte deadline frees the slots.
    for mut s in silent {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(matches!(n, Ok(0) | Err(_)));
    }

    // A line trickled byte by byte is cut at the line deadline.
    let mut trickle = Client::connect(server.addr).await;
    trickle.send_raw(b"{\"id\":1,").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    trickle.send_raw(b"\"method\"").await;
    assert!(trickle.closed().await);

    // A subscribed client that never authorizes is dropped too.
    let mut lazy = Client::connect(server.addr).await;
    lazy.send(json!({"id": 1, "method": "mining.subscribe", "params": []}))
        .await;
    lazy.response(1).await;
    assert!(lazy.closed().await);

    // A slow HTTP client is cut at the header deadline.
    let mut http = TcpStream::connect(server.addr).await.expect("connect");
    http.write_all(b"GET /status HTTP/1.1\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, http.read_to_end(&mut rest))
        .await
        .expect("closed in time");

    // An idle keep-alive HTTP connection does not hold its slot forever.
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let closed = tokio::time::timeout(WAIT, idle.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "idle keep-alive connection closed");
    assert!(got.starts_with(b"HTTP/1.1 200"));

    node_alive(&server).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.port.stats().connections <= 2);
}

#[tokio::test]
async fn blank_lines_before_the_first_request_are_skipped() {
    let server = start(TestProvider::new(SHARE_DIFF, 1e-4), test_config()).await;
    // Stratum after a blank line, sent in two pieces.
    let mut c = Client::connect(server.addr).await;
    c.send_raw(b"\r\n").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send_raw(b" \n").await;
    c.handshake(&user()).await;

    // HTTP after one.
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(b"\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut reply = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut reply))
        .await
        .expect("reply in time")
        .expect("read");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");

    // Whitespace without end is not a connection.
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(&[b' '; 100]).await.expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "closed without an answer: {closed:?}"
    );
    node_alive(&server).await;
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let config = WorkerConfig {
        max_connections_per_ip: 3,
        ..test_config()
    };
    let server = start(TestProvider::new(SHARE_DIFF, 1e-4), config).await;
    let mut miners = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(server.addr).await;
        c.handshake(&user()).await;
        miners.push(c);
    }
    // A fourth from the same address is closed at once, and counted.
    let mut extra = TcpStream::connect(server.addr).await.expect("connect");
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(WAIT, extra.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "over the per-address cap: closed"
    );
    assert_eq!(server.port.stats().refused_connections, 1);

    // The miners it had go on, and a closed one frees its place.
    drop(miners.pop());
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if server.port.stats().connections < 3 {
            let mut c = Client::connect(server.addr).await;
            c.handshake(&user()).await;
            again = Some(c);
            break;
        }
    }
    assert!(again.is_some(), "a place was given back");
    for c in &mut miners {
        c.send(json!({"id": 50, "method": "mining.extranonce.subscribe", "params": []}))
            .await;
        assert_eq!(c.response(50).await["result"], json!(true));
    }
}
