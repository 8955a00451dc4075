//! The status page in real headless Chromium, driven over the DevTools protocol: after a miner
//! found blocks through the node, the page loads without console errors, draws a non-empty
//! hashrate graph, lists the miner's payout, and fits a phone's width (the browser and the
//! DevTools session: `tests/cdp`). Screenshots go to `$CARGO_TARGET_DIR/test-artifacts/` (not
//! the repository).
//!
//! Skips (passes with a message) only when `/usr/bin/chromium` is not installed.

#![cfg(feature = "devchain")]
#![allow(clippy::print_stderr)] // reason: a skipped run and the screenshot's path are told on stderr

mod cdp;
mod miner;

use std::path::Path;
use std::time::{Duration, Instant};

use cdp::{artifacts_dir, Browser, CHROMIUM};
use miner::{address, get_json_value, mine_blocks, p2wpkh, start_node, Miner};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_graphs_and_payouts_in_chromium() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("SKIPPED: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let node = start_node().await;
    let addr = node.worker_addr();
    let payout = address(&p2wpkh(0xe5));
    let mut miners = vec![Miner::connect(addr, format!("{payout}.page")).await];
    mine_blocks(&node, &mut miners, 3).await;
    // Wait for the sampler (every 5 s) to record the miners' hashrate.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let g = get_json_value(addr, "/web/graph_data/local_hash_rate/last_hour").await;
        if g[0][1].as_f64().is_some_and(|v| v > 0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no hashrate sample: {g}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (browser, mut cdp) = Browser::launch().await.expect("chromium starts");
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1100, "height": 1800, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await;
    cdp.call("Page.navigate", json!({ "url": format!("http://{addr}/") }))
        .await;

    let check = "JSON.stringify({ points: +document.getElementById('local-graph').dataset.points, \
         payouts: document.getElementById('payouts').textContent, \
         updated: document.getElementById('updated').textContent, \
         health: document.getElementById('health').textContent, \
         miners: document.getElementById('miners').textContent })";
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let v = cdp.eval(check).await;
        let state: Value = v
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let ready = state["points"].as_f64().is_some_and(|p| p > 0.0)
            && state["payouts"]
                .as_str()
                .is_some_and(|p| p.contains(&payout))
            && state["updated"] != json!("never");
        if ready {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "page not ready: {state}; errors: {:?}",
            cdp.errors()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        state["miners"].as_str().unwrap().contains(&payout),
        "{state}"
    );
    assert!(
        state["health"].as_str().unwrap().starts_with("healthy"),
        "{state}"
    );
    // The payout is an amount of BTC.
    let payout_btc = cdp
        .eval("document.querySelector('#payouts tr td:nth-child(2)').textContent")
        .await;
    assert!(
        payout_btc
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|b| b > 0.0),
        "{payout_btc}"
    );
    let dir = artifacts_dir();
    let desktop = dir.join("status-page.png");
    cdp.screenshot(&desktop).await;

    // A phone: nothing wider than the screen.
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
    cdp.screenshot(&dir.join("status-page-phone.png")).await;

    // Let one more refresh happen, then look for errors.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let errors = cdp.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    eprintln!("screenshot: {}", desktop.display());

    browser.close(cdp).await;
    node.shutdown().await;
}
