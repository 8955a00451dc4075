//! getwork on the worker port: work, submissions matched back by merkle root, long polling,
//! and other HTTP routes served on the same port.

mod worker_common;

use std::collections::HashMap;
use std::net::SocketAddr;

use base64::Engine as _;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::Target;
use p2pool::worker::difficulty_to_target;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use worker_common::*;

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// One HTTP/1.1 request with `Connection: close`, as cpuminer's libcurl would send it.
async fn http(addr: SocketAddr, method: &str, path: &str, user: Option<&str>, body: &str) -> Reply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    if let Some(u) = user {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:x"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("reply in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.lines();
    let status = lines
        .next()
        .expect("status line")
        .split(' ')
        .nth(1)
        .expect("code")
        .parse()
        .expect("number");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn getwork_result(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v: Value = serde_json::from_str(&reply.body).expect("json");
    assert_eq!(v["error"], json!(null), "{v}");
    v["result"].clone()
}

/// getwork `data` → 80-byte header (undo the per-word byte swap).
fn header_of(data: &str) -> [u8; 80] {
    let mut bytes = hex::decode(data).expect("hex");
    assert_eq!(bytes.len(), 128);
    for w in bytes.chunks_exact_mut(4) {
        w.reverse();
    }
    bytes[..80].try_into().expect("80 bytes")
}

fn data_of(header: &[u8; 80], template: &str) -> String {
    let mut bytes = hex::decode(template).expect("hex");
    for w in bytes.chunks_exact_mut(4) {
        w.reverse();
    }
    bytes[..80].copy_from_slice(header);
    for w in bytes.chunks_exact_mut(4) {
        w.reverse();
    }
    hex::encode(bytes)
}

fn grind(header: &[u8; 80], target: Target, start: u32) -> [u8; 80] {
    let mut h = *header;
    for nonce in start.. {
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        if Target::from_le_bytes(sha256d::Hash::hash(&h).to_byte_array()) <= target {
            return h;
        }
    }
    unreachable!()
}

fn submit_body(data: &str) -> String {
    json!({"method": "getwork", "params": [data], "id": 2}).to_string()
}

async fn reply_roll_ntime(server: &Server, user: &str, request: &str) -> Option<String> {
    http(server.addr, "POST", "/", Some(user), request)
        .await
        .headers
        .get("x-roll-ntime")
        .cloned()
}

#[tokio::test]
async fn getwork_work_submit_and_long_polling() {
    let server = start(TestProvider::new(1e-6, 1e-3), test_config()).await;
    let user = format!("{ADDR}.gw+0.000000001");
    let request = json!({"method": "getwork", "params": [], "id": 1}).to_string();

    // cpuminer tries getblocktemplate first and falls back on a JSON-RPC error.
    let gbt = http(
        server.addr,
        "POST",
        "/",
        Some(&user),
        r#"{"method":"getblocktemplate","params":[],"id":0}"#,
    )
    .await;
    let v: Value = serde_json::from_str(&gbt.body).expect("json");
    assert_eq!(v["result"], json!(null));
    assert!(v["error"]["code"].is_i64());

    let reply = http(server.addr, "POST", "/", Some(&user), &request).await;
    assert_eq!(
        reply.headers.get("x-long-polling").map(String::as_str),
        Some("/long-polling")
    );
    let work = getwork_result(&reply);
    let data = work["data"].as_str().expect("data").to_owned();
    assert_eq!(data.len(), 256);
    let target_bytes: [u8; 32] = hex::decode(work["target"].as_str().expect("target"))
        .expect("hex")
        .try_into()
        .expect("32");
    let target = Target::from_le_bytes(target_bytes);
    assert_eq!(
        target,
        difficulty_to_target(1e-9),
        "pseudo target from the username"
    );
    let header = header_of(&data);
    assert_eq!(&header[4..36], &server.provider.prev_hash().to_byte_array());
    assert_eq!(
        u32::from_le_bytes(header[72..76].try_into().expect("4")),
        0x207f_ffff
    );

    // Two requests get different work (different extranonce, different merkle root).
    let other = header_of(
        getwork_result(&http(server.addr, "POST", "/", Some(&user), &request).await)["data"]
            .as_str()
            .expect("data"),
    );
    assert_ne!(&other[36..68], &header[36..68]);

    // A share, byte-exact.
    let share = difficulty_to_target(1e-6);
    let solved = grind(&header, share, 0);
    let reply = http(
        server.addr,
        "POST",
        "/",
        None,
        &submit_body(&data_of(&solved, &data)),
    )
    .await;
    assert_eq!(getwork_result(&reply), json!(true), "{:?}", reply.headers);
    let found = server.provider.wait_found(1).await;
    assert_eq!(
        bitcoin::consensus::serialize(&found[0].header),
        solved.to_vec()
    );
    check_found(&found[0], &solved, &found[0].extranonce.clone());
    assert_eq!(found[0].miner.worker, "gw");

    // X-Roll-NTime: a rolled ntime on the same work is fine.
    assert_eq!(
        reply_roll_ntime(&server, &user, &request).await.as_deref(),
        Some("expire=100")
    );
    let mut rolled = header;
    let t = u32::from_le_bytes(rolled[68..72].try_into().expect("4")) + 1;
    rolled[68..72].copy_from_slice(&t.to_le_bytes());
    let (pseudo, share_only) = (difficulty_to_target(1e-9), difficulty_to_target(1e-6));
    let mut start = 0;
    let rolled = loop {
        // A pseudo-share that is not a share, so the share count below stays exact.
        let h = grind(&rolled, pseudo, start);
        if Target::from_le_bytes(sha256d::Hash::hash(&h).to_byte_array()) > share_only {
            break h;
        }
        start = u32::from_le_bytes(h[76..80].try_into().expect("4")) + 1;
    };
    let reply = http(
        server.addr,
        "POST",
        "/",
        None,
        &submit_body(&data_of(&rolled, &data)),
    )
    .await;
    assert_eq!(getwork_result(&reply), json!(true), "{:?}", reply.headers);

    // Duplicate, then unknown work.
    let reply = http(
        server.addr,
        "POST",
        "/",
        None,
        &submit_body(&data_of(&solved, &data)),
    )
    .await;
    assert_eq!(getwork_result(&reply), json!(false));
    assert_eq!(
        reply.headers.get("x-reject-reason").map(String::as_str),
        Some("duplicate")
    );
    let mut unknown = solved;
    unknown[40] ^= 1;
    let reply = http(
        server.addr,
        "POST",
        "/",
        None,
        &submit_body(&data_of(&unknown, &data)),
    )
    .await;
    assert_eq!(getwork_result(&reply), json!(false));
    assert!(reply.headers.contains_key("x-reject-reason"));

    // Long polling: blocks until new work, then returns it.
    let addr = server.addr;
    let lp_user = user.clone();
    let lp = tokio::spawn(async move {
        http(
            addr,
            "POST",
            "/long-polling",
            Some(&lp_user),
            r#"{"method":"getwork","params":[],"id":0}"#,
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!lp.is_finished(), "long poll waits for new work");
    server.provider.new_block();
    let reply = tokio::time::timeout(WAIT, lp)
        .await
        .expect("long poll returns")
        .expect("task");
    let fresh = header_of(getwork_result(&reply)["data"].as_str().expect("data"));
    assert_eq!(&fresh[4..36], &server.provider.prev_hash().to_byte_array());

    // Old work is now stale.
    let old = grind(&header, difficulty_to_target(1e-9), 1_000_000);
    let reply = http(
        server.addr,
        "POST",
        "/",
        None,
        &submit_body(&data_of(&old, &data)),
    )
    .await;
    assert_eq!(getwork_result(&reply), json!(false));
    assert_eq!(
        reply.headers.get("x-reject-reason").map(String::as_str),
        Some("stale")
    );

    // Other routes live on the same port; missing credentials are explained.
    let status = http(server.addr, "GET", "/status", None, "").await;
    assert_eq!((status.status, status.body.as_str()), (200, "ok"));
    let index = http(server.addr, "GET", "/", None, "").await;
    assert_eq!(
        (index.status, index.body.as_str()),
        (200, "index"),
        "GET / next to getwork's POST /"
    );
    let anonymous = http(server.addr, "POST", "/", None, &request).await;
    let v: Value = serde_json::from_str(&anonymous.body).expect("json");
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("payout address"));
    let stats = server.port.stats();
    assert_eq!(stats.shares, 1);
    assert_eq!(stats.rejected.duplicate, 1);
}
