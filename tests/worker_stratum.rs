//! Stratum V1 on the worker port: the exact message orders of cpuminer, cgminer (version
//! rolling) and ESP-Miner, plus jobs, re-notify, vardiff, resume, and finds checked byte for
//! byte against an independent header rebuild.

mod worker_common;

use std::time::Duration;

use p2pool::worker::{difficulty_to_target, VardiffConfig, WorkerConfig};
use serde_json::json;
use worker_common::*;

const SHARE_DIFF: f64 = 1e-6;
const BLOCK_DIFF: f64 = 4e-6;

fn pseudo_user() -> String {
    format!("{ADDR}.rig1+0.000000001")
}

#[tokio::test]
async fn cpuminer_subscribe_then_authorize_and_share_is_byte_exact() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}))
        .await;
    // cpuminer reads exactly one line as the subscribe result.
    let first = c.read().await.expect("reply");
    assert_eq!(first["id"], json!(1));
    assert!(first.get("method").is_none(), "{first}");
    let en1 = hex::decode(first["result"][1].as_str().expect("en1")).expect("hex");
    assert_eq!(en1.len(), 4);
    assert_eq!(first["result"][2], json!(4));
    assert_eq!(first["result"][0][1][0], json!("mining.notify"));

    c.send(json!({"id": 2, "method": "mining.authorize", "params": [pseudo_user(), "x"]}))
        .await;
    let auth = c.read().await.expect("reply");
    assert_eq!(auth["result"], json!(true));
    let diff = c.read().await.expect("set_difficulty");
    assert_eq!(diff["method"], json!("mining.set_difficulty"));
    assert_eq!(diff["params"][0].as_f64(), Some(1e-9));
    let notify = c.read().await.expect("notify");
    assert_eq!(notify["method"], json!("mining.notify"));
    let job = NotifyJob::parse(&notify);
    assert!(job.clean);
    assert_eq!(job.nbits, 0x207f_ffff);
    let mut rpc_prev = server.provider.prev_hash().to_string();
    rpc_prev.truncate(8);
    let words = notify["params"][1].as_str().expect("prevhash");
    assert_eq!(
        &words[56..64],
        rpc_prev,
        "prevhash words are the RPC hex words reversed"
    );

    // A share (5-parameter submit).
    let share = difficulty_to_target(SHARE_DIFF);
    let en2 = [0, 0, 0, 1];
    let (nonce, header) = job.grind(&en1, &en2, job.version, 0, |h| meets(h, share));
    c.send(job.submit(4, &en2, nonce, None)).await;
    let reply = c.response(4).await;
    assert_eq!(reply["result"], json!(true), "{reply}");
    let found = server.provider.wait_found(1).await;
    let mut extranonce = en1.clone();
    extranonce.extend_from_slice(&en2);
    check_found(&found[0], &header, &extranonce);
    assert!(found[0].meets_share);
    assert_eq!(
        found[0].meets_block,
        meets(&header, difficulty_to_target(BLOCK_DIFF))
    );
    assert_eq!(found[0].miner.worker, "rig1");

    // A pseudo-share below the share target counts for the hashrate only.
    let pseudo = difficulty_to_target(1e-9);
    let (nonce, _) = job.grind(&en1, &en2, job.version, nonce + 1, |h| {
        meets(h, pseudo) && !meets(h, share)
    });
    c.send(job.submit(5, &en2, nonce, None)).await;
    assert_eq!(c.response(5).await["result"], json!(true));
    let stats = server.port.stats();
    assert_eq!(stats.accepted, 2);
    assert_eq!(stats.shares, 1);
    assert_eq!(stats.miners.len(), 1);
    assert_eq!(stats.miners[0].worker, "rig1");
    assert!(stats.hashrate > 0.0);
    assert_eq!(server.provider.found().len(), 1);
}

#[tokio::test]
async fn cgminer_configure_version_rolling_then_six_param_submit() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(
        json!({"id": 1, "method": "mining.configure", "params": [["version-rolling"],
        {"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2}]}),
    )
    .await;
    let reply = c.read().await.expect("one-line configure reply");
    assert_eq!(reply["id"], json!(1));
    assert_eq!(reply["result"]["version-rolling"], json!(true));
    assert_eq!(reply["result"]["version-rolling.mask"], json!("1fffe000"));
    c.send(json!({"id": 2, "method": "mining.subscribe", "params": ["cgminer/4.11.1"]}))
        .await;
    let sub = c.response(2).await;
    let en1 = hex::decode(sub["result"][1].as_str().expect("en1")).expect("hex");
    c.send(json!({"id": 3, "method": "mining.authorize", "params": [pseudo_user(), "x"]}))
        .await;
    assert_eq!(c.response(3).await["result"], json!(true));
    let job = NotifyJob::parse(&c.notification("mining.notify").await);

    let bits = 0x0000_6000;
    let version = (job.version & !0x1fff_e000) | bits;
    let share = difficulty_to_target(SHARE_DIFF);
    let en2 = [9, 9, 9, 9];
    let (nonce, header) = job.grind(&en1, &en2, version, 0, |h| meets(h, share));
    c.send(job.submit(4, &en2, nonce, Some(bits))).await;
    assert_eq!(c.response(4).await["result"], json!(true));
    let found = server.provider.wait_found(1).await;
    assert_eq!(found[0].header.version.to_consensus() as u32, 0x2000_6000);
    let mut extranonce = en1;
    extranonce.extend_from_slice(&en2);
    check_found(&found[0], &header, &extranonce);

    // min-bit-count as a string, or absent; a miner mask narrower than the pool's.
    for (id, options) in [
        (
            10,
            json!({"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": "2"}),
        ),
        (11, json!({"version-rolling.mask": "00ffe000"})),
    ] {
        c.send(json!({"id": id, "method": "mining.configure", "params": [["version-rolling", "minimum-difficulty"], options]})).await;
        let r = c.response(id).await;
        assert_eq!(r["result"]["version-rolling"], json!(true));
        assert_eq!(
            r["result"]["minimum-difficulty"],
            json!(false),
            "every extension answered"
        );
    }
    assert_eq!(c.response_mask_after_narrowing().await, "00ffe000");
}

trait LastMask {
    async fn response_mask_after_narrowing(&mut self) -> String;
}

impl LastMask for Client {
    async fn response_mask_after_narrowing(&mut self) -> String {
        self.send(json!({"id": 12, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "00ffe000"}]})).await;
        self.response(12).await["result"]["version-rolling.mask"]
            .as_str()
            .expect("mask")
            .to_owned()
    }
}

#[tokio::test]
async fn esp_miner_pipelined_handshake_integer_suggest_and_extranonce_subscribe() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    let burst = format!(
        "{}\n{}\n{}\n",
        json!({"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}),
        json!({"id": 2, "method": "mining.subscribe", "params": ["bitaxe/BM1366/v2.4.0"]}),
        json!({"id": 3, "method": "mining.authorize", "params": [format!("{ADDR}.bitaxe"), "x"]}),
    );
    c.send_raw(burst.as_bytes()).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(c.read().await.expect("message"));
    }
    assert_eq!(got[0]["id"], json!(1));
    assert_eq!(got[0]["result"]["version-rolling"], json!(true));
    assert_eq!(got[1]["id"], json!(2));
    assert_eq!(got[2]["id"], json!(3));
    assert_eq!(got[2]["result"], json!(true));
    assert_eq!(got[3]["method"], json!("mining.set_difficulty"));
    assert_eq!(got[4]["method"], json!("mining.notify"));
    let en1 = hex::decode(got[1]["result"][1].as_str().expect("en1")).expect("hex");

    c.send(json!({"id": 4, "method": "mining.suggest_difficulty", "params": [1000]}))
        .await;
    assert_eq!(c.response(4).await["result"], json!(true));
    let diff = c.notification("mining.set_difficulty").await["params"][0]
        .as_f64()
        .expect("d");
    // Clamped to the share difficulty, so no share is ever held back.
    assert!((diff - SHARE_DIFF).abs() < 1e-12, "{diff}");
    let job = NotifyJob::parse(&c.notification("mining.notify").await);
    c.send(json!({"id": 5, "method": "mining.extranonce.subscribe", "params": []}))
        .await;
    assert_eq!(c.response(5).await["result"], json!(true));

    let bits = 0x1000_0000;
    let share = difficulty_to_target(SHARE_DIFF);
    let en2 = [0, 0, 0, 7];
    let (nonce, header) = job.grind(&en1, &en2, job.version | bits, 0, |h| meets(h, share));
    c.send(job.submit(6, &en2, nonce, Some(bits))).await;
    assert_eq!(c.response(6).await["result"], json!(true));
    let found = server.provider.wait_found(1).await;
    let mut extranonce = en1;
    extranonce.extend_from_slice(&en2);
    check_found(&found[0], &header, &extranonce);
    assert_eq!(found[0].miner.worker, "bitaxe");
}

#[tokio::test]
async fn cpuminer_opt_string_and_float_suggestions() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"id": 1, "method": "mining.subscribe", "params": ["cpuminer-opt/3.0"]}))
        .await;
    c.response(1).await;
    c.send(json!({"id": 2, "method": "mining.suggest_difficulty", "params": ["512.000000"]}))
        .await;
    assert_eq!(c.response(2).await["result"], json!(true));
    assert_eq!(
        c.notification("mining.set_difficulty").await["params"][0],
        json!(512)
    );
    c.send(json!({"id": 3, "method": "mining.suggest_difficulty", "params": [0.5]}))
        .await;
    assert_eq!(c.response(3).await["result"], json!(true));
    assert_eq!(
        c.notification("mining.set_difficulty").await["params"][0],
        json!(0.5)
    );
    c.send(json!({"id": 4, "method": "mining.suggest_difficulty", "params": ["lots"]}))
        .await;
    let bad = c.response(4).await;
    assert_eq!(bad["error"][0], json!(20));
    c.send(json!({"id": 5, "method": "mining.authorize", "params": [ADDR, "x"]}))
        .await;
    assert_eq!(c.response(5).await["result"], json!(true));
    NotifyJob::parse(&c.notification("mining.notify").await);
}

#[tokio::test]
async fn suggest_target_sets_the_matching_difficulty() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"id": 1, "method": "mining.subscribe", "params": []}))
        .await;
    c.response(1).await;
    // diff1 / 256: difficulty 256.
    let target = "0000000000ffff00000000000000000000000000000000000000000000000000";
    c.send(json!({"id": 2, "method": "mining.suggest_target", "params": [target]}))
        .await;
    assert_eq!(c.response(2).await["result"], json!(true));
    assert_eq!(
        c.notification("mining.set_difficulty").await["params"][0],
        json!(256)
    );
    // Short forms are left-padded: diff1 * 2 is difficulty 0.5.
    c.send(json!({"id": 3, "method": "mining.suggest_target", "params": ["1fffe0000000000000000000000000000000000000000000000000000"]}))
        .await;
    assert_eq!(c.response(3).await["result"], json!(true));
    assert_eq!(
        c.notification("mining.set_difficulty").await["params"][0],
        json!(0.5)
    );
    for (id, bad) in [(4, json!("xyz")), (5, json!("0".repeat(64))), (6, json!(7))] {
        c.send(json!({"id": id, "method": "mining.suggest_target", "params": [bad]}))
            .await;
        assert_eq!(c.response(id).await["error"][0], json!(20), "{bad}");
    }
    c.send(json!({"id": 7, "method": "mining.authorize", "params": [ADDR, "x"]}))
        .await;
    assert_eq!(c.response(7).await["result"], json!(true));
    NotifyJob::parse(&c.notification("mining.notify").await);
}

#[tokio::test]
async fn renotify_new_work_and_new_block() {
    let config = WorkerConfig {
        renotify_interval: Duration::from_millis(300),
        ..test_config()
    };
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), config).await;
    let mut c = Client::connect(server.addr).await;
    let (_, first, _) = c.handshake(&pseudo_user()).await;
    let again = NotifyJob::parse(&c.notification("mining.notify").await);
    assert_ne!(again.id, first.id, "job ids are unique every time");
    assert!(!again.clean);

    server.provider.new_work();
    let work = NotifyJob::parse(&c.notification("mining.notify").await);
    assert_eq!(work.ntime, first.ntime + 1);
    assert_eq!(work.prev, first.prev);

    server.provider.new_block();
    let mut block = NotifyJob::parse(&c.notification("mining.notify").await);
    while !block.clean {
        block = NotifyJob::parse(&c.notification("mining.notify").await);
    }
    assert_ne!(block.prev, first.prev);
}

#[tokio::test]
async fn vardiff_raises_and_jobs_keep_the_difficulty_they_were_issued_with() {
    let config = WorkerConfig {
        vardiff: VardiffConfig {
            initial: 1e-9,
            min: 1e-10,
            retarget_shares: 4,
            target_interval: Duration::from_secs(10),
            window: Duration::from_secs(60),
            ..VardiffConfig::default()
        },
        ..test_config()
    };
    // Share target far away, so every submit here is a pseudo-share only.
    let server = start(TestProvider::new(1e-3, 1e-2), config).await;
    let mut c = Client::connect(server.addr).await;
    let (en1, job, diff) = c.handshake(ADDR).await;
    assert_eq!(diff, 1e-9);
    let old = difficulty_to_target(1e-9);
    let en2 = [1, 2, 3, 4];
    let mut nonce = 0;
    for id in 10..14 {
        let (n, _) = job.grind(&en1, &en2, job.version, nonce, |h| meets(h, old));
        nonce = n + 1;
        c.send(job.submit(id, &en2, n, None)).await;
        assert_eq!(c.response(id).await["result"], json!(true));
    }
    let new_diff = c.notification("mining.set_difficulty").await["params"][0]
        .as_f64()
        .expect("d");
    assert!((new_diff - 16e-9).abs() < 1e-15, "{new_diff}");
    let new_job = NotifyJob::parse(&c.notification("mining.notify").await);
    let new = difficulty_to_target(new_diff);

    // The old job still takes the old difficulty ...
    let (n, _) = job.grind(&en1, &en2, job.version, nonce, |h| {
        meets(h, old) && !meets(h, new)
    });
    c.send(job.submit(20, &en2, n, None)).await;
    assert_eq!(c.response(20).await["result"], json!(true));
    // ... the new one does not.
    let (n, _) = new_job.grind(&en1, &en2, new_job.version, 0, |h| {
        meets(h, old) && !meets(h, new)
    });
    c.send(new_job.submit(21, &en2, n, None)).await;
    let r = c.response(21).await;
    assert_eq!(r["error"][0], json!(23), "{r}");
}

#[tokio::test]
async fn subscribe_resumes_a_previous_extranonce() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"id": 1, "method": "mining.subscribe", "params": ["m/1"]}))
        .await;
    let sid = c.response(1).await["result"][0][1][1]
        .as_str()
        .expect("sid")
        .to_owned();
    drop(c);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut c = Client::connect(server.addr).await;
        c.send(json!({"id": 1, "method": "mining.subscribe", "params": ["m/1", sid]}))
            .await;
        let r = c.response(1).await;
        if r["result"][1] == json!(sid) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "resume never granted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn blocks_are_handed_over_with_meets_block() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    let (en1, job, _) = c.handshake(&pseudo_user()).await;
    let block = difficulty_to_target(BLOCK_DIFF);
    let en2 = [0xff, 0, 0, 1];
    let (nonce, header) = job.grind(&en1, &en2, job.version, 0, |h| meets(h, block));
    c.send(job.submit(3, &en2, nonce, None)).await;
    assert_eq!(c.response(3).await["result"], json!(true));
    let found = server.provider.wait_found(1).await;
    assert!(found[0].meets_block && found[0].meets_share);
    let mut extranonce = en1;
    extranonce.extend_from_slice(&en2);
    check_found(&found[0], &header, &extranonce);
    assert_eq!(
        found[0].job.context.downcast_ref::<u32>(),
        Some(&found[0].job.height)
    );
    assert_eq!(server.port.stats().blocks, 1);
}

#[tokio::test]
async fn one_job_build_per_payout_script_and_no_work_is_reported() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(server.addr).await;
        c.handshake(&format!("{ADDR}.w{i}")).await;
        clients.push(c);
    }
    let mut other = Client::connect(server.addr).await;
    other.handshake(ADDR2).await;
    assert_eq!(server.provider.builds(), 2);

    server
        .provider
        .set_no_work(Some("node is far behind its peers"));
    let mut idle = Client::connect(server.addr).await;
    idle.send(json!({"id": 1, "method": "mining.subscribe", "params": []}))
        .await;
    idle.response(1).await;
    idle.send(json!({"id": 2, "method": "mining.authorize", "params": [ADDR, "x"]}))
        .await;
    assert_eq!(idle.response(2).await["result"], json!(true));
    let stats = server.port.stats();
    assert!(stats.no_work >= 1);
    assert_eq!(
        stats.last_no_work.as_deref(),
        Some("node is far behind its peers")
    );
    server.provider.set_no_work(None);
    server.provider.new_block();
    let job = NotifyJob::parse(&idle.notification("mining.notify").await);
    assert!(job.clean);
    assert_eq!(server.port.stats().connections, 5);
}

#[tokio::test]
async fn block_target_easier_than_share_target_still_reaches_the_node() {
    // Regtest: the block target can be easier than the share target. The difficulty handed out
    // follows the easier one, and a block that is not a share is still handed over.
    let server = start(TestProvider::new(1e-3, SHARE_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    let (en1, job, diff) = c.handshake(ADDR).await;
    // At most the block difficulty: a miner not yet measured is not held back from it.
    assert!(diff <= SHARE_DIFF, "{diff}");
    let block = difficulty_to_target(SHARE_DIFF);
    let share = difficulty_to_target(1e-3);
    let en2 = [0, 1, 0, 1];
    let (nonce, header) = job.grind(&en1, &en2, job.version, 0, |h| {
        meets(h, block) && !meets(h, share)
    });
    c.send(job.submit(3, &en2, nonce, None)).await;
    assert_eq!(c.response(3).await["result"], json!(true));
    let found = server.provider.wait_found(1).await;
    assert!(found[0].meets_block && !found[0].meets_share);
    let mut extranonce = en1;
    extranonce.extend_from_slice(&en2);
    check_found(&found[0], &header, &extranonce);
}

#[tokio::test]
async fn shutdown_closes_every_connection() {
    let server = start(TestProvider::new(SHARE_DIFF, BLOCK_DIFF), test_config()).await;
    let mut c = Client::connect(server.addr).await;
    c.handshake(ADDR).await;
    drop(server);
    assert!(c.closed().await, "sessions end with the port");
}
