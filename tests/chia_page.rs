//! The Chia node (`ChiaNode`, what `p2pool run --chain chia --network regtest` starts) farmed by
//! chia-blockchain 2.7.5's REAL harvester with two k18 plots (`tests/chia_common`), seen through
//! its JSON API and its status page in real headless Chromium (`tests/cdp`):
//!
//! - `/kind` says chia; `/chia/harvesters` lists the harvester with its two plots, their size
//!   and k, lookup times and counts; `/chia/signage_points` the numbers, times and difficulty;
//!   `/chia/blocks` is empty; `/chia/payouts`, `/users` and `/current_payouts` give the one
//!   farmer's address all of the pool part (PPLNS with `sharechain`'s window and split).
//! - Every share of `/chia/shares` links to its parent, and is rebuilt from its JSON fields
//!   alone (share content and signature, not the `share` bytes): same hash, and
//!   `check_share` over the signage point of the JSON gives the same quality and iterations.
//! - The page shows the Chia view: the harvester with its plot count, shares with their plot
//!   ids, the payout address at 100 %, "none yet" for blocks, the signage point number
//!   advancing; no console errors; it fits a phone's width.
//!
//! Skips without chia-blockchain's venv; only the browser part skips (with a message) when
//! `/usr/bin/chromium` is absent.

#![allow(clippy::print_stdout)] // reason: a skipped part and the screenshot's path are told

mod cdp;
mod chia_common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chia_bls::{PublicKey, Signature};
use chia_common::{farmer_plots, venv, ChiaHarvester, MNEMONIC, NETWORK};
use chia_protocol::{Bytes, Bytes32, ProofOfSpace};
use p2pool::chia::farmer::FarmerKeys;
use p2pool::chia::node::{ChiaNode, ChiaNodeOptions, ChiaRunArgs};
use serde_json::{json, Value};
use sharechain::pospace_share::{check_share, KnownSignagePoints, ShareContent, SignagePoint};
use sharechain::ShareHash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The farmer's payout address (puzzle hash 07…07).
const TXCH: &str = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";

/// The status line and body of `GET path`.
async fn get_text(addr: SocketAddr, path: &str) -> (String, String) {
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut reply = String::new();
        tcp.read_to_string(&mut reply).await.unwrap();
        reply
    };
    let reply = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer in time"));
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get_text(addr, path).await;
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "{path}: {status} {body}"
    );
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn bytes<const N: usize>(v: &Value) -> [u8; N] {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {v}"));
    hex::decode(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .try_into()
        .unwrap_or_else(|_| panic!("{s}: not {N} bytes"))
}

/// The share a `/chia/shares` entry describes, rebuilt from its fields (not its `share` bytes)
/// and checked as a node checks it; panics on any difference.
fn reverify(s: &Value) {
    let pos = &s["proof_of_space"];
    let proof_of_space = ProofOfSpace::new(
        Bytes32::new(bytes(&pos["challenge"])),
        (!pos["pool_public_key"].is_null())
            .then(|| PublicKey::from_bytes(&bytes(&pos["pool_public_key"])).unwrap()),
        (!pos["pool_contract_puzzle_hash"].is_null())
            .then(|| Bytes32::new(bytes(&pos["pool_contract_puzzle_hash"]))),
        PublicKey::from_bytes(&bytes(&pos["plot_public_key"])).unwrap(),
        0,
        0,
        0,
        0,
        u8::try_from(pos["k"].as_u64().unwrap()).unwrap(),
        Bytes::new(hex::decode(pos["proof"].as_str().unwrap()).unwrap()),
    );
    let sp = &s["signage_point"];
    let content = ShareContent {
        version: u8::try_from(s["version"].as_u64().unwrap()).unwrap(),
        prev_share: s["prev_share_hash"]
            .as_str()
            .map(|h| ShareHash::from_str(h).unwrap()),
        challenge_hash: bytes(&sp["challenge_hash"]),
        sp_hash: bytes(&sp["sp_hash"]),
        signage_point_index: u8::try_from(sp["index"].as_u64().unwrap()).unwrap(),
        peak_height: u32::try_from(sp["peak_height"].as_u64().unwrap()).unwrap(),
        proof_of_space,
        payout_puzzle_hash: bytes(&s["payout_puzzle_hash"]),
        difficulty: s["difficulty"].as_u64().unwrap(),
        timestamp: s["timestamp"].as_u64().unwrap(),
    };
    let signature = Signature::from_bytes(&bytes(&s["signature"])).unwrap();
    let share = content.sign(&signature, NETWORK).unwrap();
    assert_eq!(share.hash().to_string(), s["hash"], "{s}");
    assert_eq!(hex::encode(share.plot_id()), s["plot_id"], "{s}");
    assert_eq!(hex::encode(share.message()), s["message"], "{s}");
    let mut known = KnownSignagePoints::new();
    known.insert(SignagePoint {
        challenge_hash: content.challenge_hash,
        sp_hash: content.sp_hash,
        index: content.signage_point_index,
        peak_height: content.peak_height,
    });
    let quality = check_share(&share, NETWORK, &known).unwrap_or_else(|e| panic!("{e}: {s}"));
    assert_eq!(hex::encode(quality.quality), s["quality"], "{s}");
    assert_eq!(json!(quality.iters), s["required_iterations"], "{s}");
    assert!(quality.iters < s["iterations_limit"].as_u64().unwrap());
}

/// Shares of `/chia/shares` once the harvester made at least 3 from both plots.
async fn wait_for_shares(
    addr: SocketAddr,
    plot_ids: &HashSet<String>,
    log: impl Fn() -> String,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let shares = get(addr, "/chia/shares?limit=500").await["shares"]
            .as_array()
            .unwrap()
            .clone();
        let from: HashSet<String> = shares
            .iter()
            .map(|s| s["plot_id"].as_str().unwrap().to_owned())
            .collect();
        if &from == plot_ids && shares.len() >= 3 {
            println!("{} shares after {:?}", shares.len(), started.elapsed());
            return shares;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no shares from both plots: {} shares; harvesters {}\nharvester log:\n{}",
            shares.len(),
            get(addr, "/chia/harvesters").await,
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chia_view_and_api_show_the_real_harvesters_farm() {
    let Some(venv) = venv() else { return };
    let _ = tracing_subscriber::fmt()
        .with_env_filter("p2pool=info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let keys = FarmerKeys::from_mnemonic(MNEMONIC).unwrap();
    let (plots, ids) = farmer_plots(&venv, &keys, &[("fa", "og"), ("fb", "og")]);
    let plot_ids: HashSet<String> = ids.iter().map(hex::encode).collect();
    let mnemonic = dir.path().join("mnemonic.txt");
    std::fs::write(&mnemonic, MNEMONIC).unwrap();
    let root = dir.path().join("node-root");
    let ca_dir = root.join("config/ssl/ca");
    p2pool::chia::ssl::create_ca(&ca_dir).unwrap();
    let mut p2p = p2pool::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let node = ChiaNode::start(ChiaNodeOptions {
        network: "regtest".into(),
        datadir: Some(dir.path().join("node")),
        address: Some(TXCH.into()),
        worker_addr: ("127.0.0.1".parse().unwrap(), Some(0)),
        worker: p2pool::worker::WorkerConfig::default(),
        chia: ChiaRunArgs {
            chia_root: Some(root),
            chia_mnemonic_file: Some(mnemonic),
            ..ChiaRunArgs::default()
        },
        p2p,
    })
    .await
    .expect("the chia node starts");
    let addr = node.worker_addr;
    let harvester_dir = dir.path().join("harvester");
    std::fs::create_dir_all(&harvester_dir).unwrap();
    let harvester = tokio::task::block_in_place(|| {
        ChiaHarvester::start(&venv, &harvester_dir, &ca_dir, addr.port(), &plots)
    });

    // The JSON API.
    let kind = get(addr, "/kind").await;
    assert_eq!(kind["kind"], "chia", "{kind}");
    assert_eq!(kind["network"], "regtest", "{kind}");
    assert_eq!(kind["payout_address"], TXCH, "{kind}");
    let shares = wait_for_shares(addr, &plot_ids, || harvester.log()).await;
    let harvesters = get(addr, "/chia/harvesters").await;
    let h = &harvesters["harvesters"][0];
    assert_eq!(
        harvesters["harvesters"].as_array().unwrap().len(),
        1,
        "{harvesters}"
    );
    assert_eq!(h["plot_count"], 2, "{h}");
    assert_eq!(h["k_sizes"], json!({ "18": 2 }), "{h}");
    assert!(h["plots_size"].as_u64().is_some_and(|b| b > 0), "{h}");
    assert!(
        h["lookup"]["samples"].as_u64().is_some_and(|n| n > 0),
        "{h}"
    );
    assert!(h["lookup"]["median_ms"].as_f64().is_some(), "{h}");
    assert!(
        h["lookup"]["max_ms"].as_f64() >= h["lookup"]["median_ms"].as_f64(),
        "{h}"
    );
    assert!(h["proofs"].as_u64() >= h["shares"].as_u64(), "{h}");
    assert!(h["shares"].as_u64().is_some_and(|n| n >= 1), "{h}");
    assert!(h["last_seen"].as_u64().is_some_and(|t| t > 0), "{h}");
    assert!(h["refused_by_reason"].is_object(), "{h}");
    assert!(
        harvesters["counters"]["proofs"]
            .as_u64()
            .is_some_and(|n| n >= 3),
        "{harvesters}"
    );
    let harvester_id = h["id"].clone();

    for (i, s) in shares.iter().enumerate() {
        reverify(s);
        assert!(plot_ids.contains(s["plot_id"].as_str().unwrap()), "{s}");
        assert_eq!(s["payout_address"], TXCH, "{s}");
        assert_eq!(s["verified"], true, "{s}");
        assert_eq!(s["proof_of_space"]["k"], 18, "{s}");
        assert!(s["received"].as_u64().is_some_and(|t| t > 0), "{s}");
        // Shares of this node's harvester say so; each links to the one below it.
        assert_eq!(s["harvester"], harvester_id, "{s}");
        if let Some(parent) = shares.get(i + 1) {
            assert_eq!(s["prev_share_hash"], parent["hash"], "{s}");
            assert_eq!(
                s["height"].as_u64().unwrap(),
                parent["height"].as_u64().unwrap() + 1
            );
        }
        let one = get(
            addr,
            &format!("/chia/share/{}", s["hash"].as_str().unwrap()),
        )
        .await;
        assert_eq!(one["hash"], s["hash"]);
        assert_eq!(one["share"], s["share"]);
    }
    let (status, _) = get_text(addr, &format!("/chia/share/{}", "00".repeat(32))).await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");

    let payouts = get(addr, "/chia/payouts").await;
    let payees = payouts["payouts"].as_array().unwrap();
    assert_eq!(payees.len(), 1, "{payouts}");
    assert_eq!(payees[0]["address"], TXCH, "{payouts}");
    assert_eq!(payees[0]["fraction"], 1.0, "{payouts}");
    assert_eq!(payees[0]["mojos"], payouts["pool_part_mojos"], "{payouts}");
    assert_eq!(
        payouts["pool_part_mojos"].as_u64().unwrap(),
        sharechain::pospace_share::pool_reward_part(
            payouts["block_reward_mojos"].as_u64().unwrap()
        )
    );
    assert!(
        payouts["shares"].as_u64().is_some_and(|n| n >= 3),
        "{payouts}"
    );
    assert_eq!(get(addr, "/users").await, json!({ TXCH: 1.0 }));
    let xch = get(addr, "/current_payouts").await[TXCH].as_f64().unwrap();
    assert!((xch - 0.875).abs() < 1e-9, "{xch}");
    assert_eq!(get(addr, "/chia/blocks").await, json!({ "blocks": [] }));
    let sps = get(addr, "/chia/signage_points").await;
    let latest = &sps["latest"];
    assert!(latest["number"].as_u64().is_some(), "{sps}");
    assert!(latest["age"].as_u64().is_some_and(|a| a <= 10), "{sps}");
    for p in sps["signage_points"].as_array().unwrap() {
        assert!(p["time"].as_u64().is_some_and(|t| t > 0), "{p}");
        assert!(p["difficulty"].as_u64().is_some_and(|d| d >= 1), "{p}");
        assert_eq!(p["sp_hash"].as_str().map(str::len), Some(64), "{p}");
    }

    // The page, in Chromium.
    let Some((browser, mut cdp)) = cdp::Browser::launch().await else {
        println!("skipped the page: {} is not installed", cdp::CHROMIUM);
        node.shutdown().await;
        return;
    };
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1100, "height": 1800, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await;
    cdp.call("Page.navigate", json!({ "url": format!("http://{addr}/") }))
        .await;
    let check = "JSON.stringify({ bitcoin_hidden: document.getElementById('bitcoin-view').hidden, \
         chia_hidden: document.getElementById('chia-view').hidden, \
         network: document.getElementById('network').textContent, \
         sp: document.getElementById('chia-sp').textContent, \
         harvesters: [...document.querySelectorAll('#chia-harvesters tr')].map(tr => \
           [...tr.cells].map(td => td.textContent)), \
         shares: document.getElementById('chia-shares').innerHTML, \
         payouts: [...document.querySelectorAll('#chia-payouts tr')].map(tr => \
           [...tr.cells].map(td => td.textContent)), \
         blocks: document.getElementById('chia-blocks').textContent, \
         points: document.querySelectorAll('#chia-signage-points tr').length, \
         updated: document.getElementById('updated').textContent })";
    let sp_number =
        |state: &Value| -> Option<u64> { state["sp"].as_str()?.split(' ').next()?.parse().ok() };
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let state: Value = cdp
            .eval(check)
            .await
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let plots_shown = state["harvesters"][0][1] == "2";
        let share_shown = plot_ids.iter().any(|id| {
            state["shares"]
                .as_str()
                .is_some_and(|s| s.contains(&id[..16]))
        });
        let paid = state["payouts"][0][0] == TXCH && state["payouts"][0][1] == "100.00%";
        if plots_shown && share_shown && paid && sp_number(&state).is_some() {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "page not ready: {state}; errors: {:?}",
            cdp.errors()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(state["bitcoin_hidden"], true, "{state}");
    assert_eq!(state["chia_hidden"], false, "{state}");
    assert_eq!(state["network"], "chia regtest", "{state}");
    assert!(
        state["blocks"].as_str().unwrap().contains("none yet"),
        "{state}"
    );
    assert!(state["points"].as_u64().is_some_and(|n| n >= 2), "{state}");
    assert!(
        state["shares"].as_str().unwrap().contains("/chia/share/"),
        "{state}"
    );
    // The signage point number advances on the page (it refreshes every 5 s).
    let first = sp_number(&state).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now: Value = cdp
            .eval(check)
            .await
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        if sp_number(&now).is_some_and(|n| n > first) {
            println!("signage point {first} → {}", sp_number(&now).unwrap());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "signage point stuck at {first}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let dir_out = cdp::artifacts_dir();
    cdp.screenshot(&dir_out.join("chia-page.png")).await;
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let overflow = cdp
        .eval("document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_f64().is_some_and(|o| o <= 0.0),
        "page is wider than a phone by {overflow}"
    );
    cdp.screenshot(&dir_out.join("chia-page-phone.png")).await;
    let errors = cdp.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    println!("screenshot: {}", dir_out.join("chia-page.png").display());
    browser.close(cdp).await;
    drop(harvester);
    node.shutdown().await;
}
