//! The JSON API and `/metrics` of a node mining on the embedded regtest chain: every endpoint's
//! shape after two miners found blocks, 404 JSON errors for bad input, and statistics saved to
//! the data directory on shutdown.

#![cfg(feature = "devchain")]

mod miner;

use std::time::Duration;

use miner::{address, http_get_status, mine_blocks, p2wpkh, start_node_in, Miner};
use p2pool::stats::{unix_now, Period, Stats, STATS_FILE};
use serde_json::Value;

async fn get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    let (status, body) = http_get_status(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn is_hash(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_has_its_shape_on_a_mining_node() {
    let dir = std::env::temp_dir().join(format!("p2pool-http-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let node = start_node_in(Some(dir.clone())).await;
    let addr = node.worker_addr();
    let scripts = [p2wpkh(0xc1), p2wpkh(0xd2)];
    let addrs: Vec<String> = scripts.iter().map(address).collect();
    let mut miners = Vec::new();
    for a in &addrs {
        miners.push(Miner::connect(addr, format!("{a}.rig")).await);
    }
    let found = mine_blocks(&node, &mut miners, 6).await;

    // P2Pool's endpoints.
    let rate = get_json(addr, "/rate").await;
    assert!(rate.as_f64().is_some_and(|r| r > 0.0), "{rate}");
    let diff = get_json(addr, "/difficulty").await;
    assert!(diff.as_f64().is_some_and(|d| d > 0.0), "{diff}");
    let users = get_json(addr, "/users").await;
    let total: f64 = users
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-9, "{users}");
    assert!(
        addrs.iter().all(|a| users[a].as_f64().unwrap() > 0.0),
        "{users}"
    );
    assert_eq!(get_json(addr, "/fee").await, Value::from(0.0));
    let payouts = get_json(addr, "/current_payouts").await;
    for a in &addrs {
        assert!(
            payouts[a].as_f64().is_some_and(|btc| btc > 0.0),
            "{payouts}"
        );
    }
    let paid: f64 = payouts
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!(
        paid > 49.0 && paid <= 50.0,
        "all but the finder's part: {paid}"
    );

    let global = get_json(addr, "/global_stats").await;
    for k in [
        "pool_hash_rate",
        "pool_nonstale_hash_rate",
        "pool_stale_prop",
        "min_difficulty",
        "network_block_difficulty",
        "network_hashrate",
    ] {
        assert!(global[k].is_number(), "{k}: {global}");
    }
    assert!(global["pool_hash_rate"].as_f64().unwrap() > 0.0);

    let local = get_json(addr, "/local_stats").await;
    assert!(local["found_blocks"].as_u64().unwrap() >= 6, "{local}");
    assert!(local["uptime"].is_number());
    assert_eq!(local["peers"]["incoming"], Value::from(0));
    assert_eq!(local["peers"]["outgoing"], Value::from(0));
    for k in ["total", "orphan", "dead"] {
        assert!(local["shares"][k].is_u64(), "{k}: {local}");
        assert!(local["pool_shares"][k].is_u64(), "{k}: {local}");
    }
    assert!(local["shares"]["total"].as_u64().unwrap() >= 6, "{local}");
    assert!(
        local["pool_shares"]["total"].as_u64().unwrap() >= 5,
        "{local}"
    );
    for a in &addrs {
        let name = format!("{a}.rig");
        assert!(
            local["miner_hash_rates"][&name].as_f64().unwrap() > 0.0,
            "{local}"
        );
        assert!(local["miner_dead_hash_rates"][&name].is_number(), "{local}");
    }
    for k in [
        "attempts_to_share",
        "attempts_to_block",
        "block_value",
        "fee",
    ] {
        assert!(local[k].is_number(), "{k}: {local}");
    }
    assert!(local["version"].is_string() && local["warnings"].is_array());

    let (status, peers) = http_get_status(addr, "/peer_addresses").await;
    assert_eq!((status, peers.as_str()), (200, ""));
    assert_eq!(get_json(addr, "/web/peers").await, Value::Array(vec![]));

    let blocks = get_json(addr, "/recent_blocks").await;
    let blocks = blocks.as_array().unwrap();
    assert_eq!(blocks.len(), found.len());
    assert_eq!(
        blocks[0]["hash"],
        Value::from(found.last().unwrap().to_string())
    );
    for b in blocks {
        assert!(is_hash(&b["hash"]) && is_hash(&b["share"]), "{b}");
        assert!(b["ts"].is_u64() && b["number"].is_u64(), "{b}");
    }

    assert!(get_json(addr, "/uptime").await.is_number());
    assert!(get_json(addr, "/web/version")
        .await
        .as_str()
        .unwrap()
        .starts_with("p2pool-rs/"));
    let best = get_json(addr, "/web/best_share_hash").await;
    assert_eq!(best, Value::from(found.last().unwrap().to_string()));
    let heads = get_json(addr, "/web/heads").await;
    assert_eq!(heads, Value::Array(vec![best.clone()]));

    let share = get_json(addr, &format!("/web/share/{}", best.as_str().unwrap())).await;
    assert!(is_hash(&share["parent"]), "{share}");
    assert_eq!(share["children"], Value::Array(vec![]));
    assert_eq!(share["local"]["verified"], Value::Bool(true));
    // Mined here, in this test: seen within the last minutes, from no peer.
    let seen = share["local"]["time_first_seen"]
        .as_u64()
        .expect("time_first_seen");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(seen <= now && seen + 600 > now, "{share}");
    assert_eq!(share["local"]["peer_first_received_from"], Value::Null);
    assert!(addrs.contains(
        &share["share_data"]["payout_address"]
            .as_str()
            .unwrap()
            .to_owned()
    ));
    assert!(share["share_data"]["absheight"].is_u64());
    assert_eq!(share["block"]["hash"], best);
    assert!(is_hash(&share["block"]["header"]["previous_block"]));
    assert!(is_hash(&share["block"]["gentx"]["hash"]));
    // The parent lists the best share as its child.
    let parent = get_json(
        addr,
        &format!("/web/share/{}", share["parent"].as_str().unwrap()),
    )
    .await;
    assert_eq!(parent["children"], Value::Array(vec![best.clone()]));

    // Graphs: the sampler runs every 5 s; wait for a sample taken after the mining.
    let mut graph = Value::Null;
    for _ in 0..100 {
        graph = get_json(addr, "/web/graph_data/local_hash_rate/last_hour").await;
        if graph[0][1].as_f64().is_some_and(|v| v > 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let points = graph.as_array().unwrap();
    assert_eq!(points.len(), 60);
    assert!(points[0][1].as_f64().unwrap() > 0.0, "{graph}");
    assert!(points[0][0].is_f64() && points[0][2].is_f64());
    for stream in [
        "local_dead_hash_rate",
        "pool_rates",
        "miner_hash_rates",
        "peers",
        "shares",
    ] {
        for period in ["last_hour", "last_day", "last_week"] {
            let g = get_json(addr, &format!("/web/graph_data/{stream}/{period}")).await;
            assert!(!g.as_array().unwrap().is_empty(), "{stream}/{period}");
        }
    }
    let pool = get_json(addr, "/web/graph_data/pool_rates/last_day").await;
    assert!(pool[0][1]["good"].as_f64().unwrap() > 0.0, "{pool}");

    let status = get_json(addr, "/web/node_status").await;
    assert_eq!(status["bitcoind"]["connected"], Value::Bool(true));
    assert_eq!(status["bitcoind"]["chain"], Value::from("regtest"));
    assert!(status["template"]["height"].is_u64());

    // Bad input: JSON 404s, no panic.
    for path in [
        "/web/share/00",
        "/web/share/not-a-hash",
        &format!("/web/share/{}", "ab".repeat(32)),
        "/web/graph_data/local_hash_rate/last_year",
        "/web/graph_data/nope/last_hour",
        "/web/graph_data/local_hash_rate",
        "/no/such/thing",
    ] {
        let (status, body) = http_get_status(addr, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].is_string(), "{path}: {body}");
    }

    // Other origins may read the API.
    let (status, head) = http_head(addr, "/rate").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{head}"
    );

    // The page and its parts are served.
    let (status, page) = http_get_status(addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<canvas") && page.contains("/static/app.js"));
    for path in ["/static/app.js", "/static/app.css"] {
        assert_eq!(http_get_status(addr, path).await.0, 200, "{path}");
    }

    // /metrics is valid Prometheus text.
    let (status, text) = http_get_status(addr, "/metrics").await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert!(value("p2pool_blocks_found_total") >= 6.0);
    assert!(value("p2pool_local_hashrate") > 0.0);
    assert!(value("p2pool_pool_hashrate") > 0.0);
    let miner_rates = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "p2pool_miner_hashrate")
        .count();
    assert_eq!(miner_rates, 2);
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let v = line.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "{line}");
    }

    // Statistics are saved on shutdown and read back.
    node.shutdown().await;
    assert!(dir.join(STATS_FILE).exists());
    let stats = Stats::open(&dir);
    let g = stats
        .graph_data("local_hash_rate", Period::LastDay, unix_now())
        .unwrap();
    assert!(g.iter().any(|p| p.1.as_f64().is_some_and(|v| v > 0.0)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Status and response headers of `GET path`.
async fn http_head(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split("\r\n\r\n").next().unwrap_or_default().to_owned(),
    )
}
