//! The whole node on loopback: embedded regtest chain, bitcoind client, work builder and worker
//! port. A stratum miner (`tests/miner/`) mines blocks through the node for two payout addresses;
//! every block must be accepted by the chain (Bitcoin Core's engine) and pay both addresses
//! exactly their PPLNS share.

#![cfg(feature = "devchain")]

mod miner;

use std::collections::BTreeMap;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, ScriptBuf};
use miner::{address, http_get, p2wpkh, start_node, Miner};
use p2pool::bitcoind::RpcClient;
use p2pool::node::Node;
use p2pool::worker::difficulty_to_target;
use serde_json::{json, Value};
use sharechain::params::NetworkParams;
use sharechain::pplns::Pplns;
use sharechain::{generate, ShareHash, ShareRequest};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

async fn rpc(node: &Node) -> RpcClient {
    node.bitcoind().rpc.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stratum_miners_mine_blocks_that_pay_pplns() {
    let node = start_node().await;
    let rpc = rpc(&node).await;
    let scripts = [p2wpkh(0xa1), p2wpkh(0xb2)];
    let mut miners = Vec::new();
    for s in &scripts {
        miners.push(Miner::connect(node.worker_addr(), format!("{}.rig", address(s))).await);
    }
    let start_height: u64 = rpc.call("getblockcount", json!([])).await.unwrap();
    // Hashes at the network's easiest share target are shares, and on regtest blocks too.
    let share_target = NetworkParams::REGTEST.max_target();
    let mut found = Vec::new();
    for round in 0..12 {
        let m = &mut miners[round % 2];
        let hash = timeout(Duration::from_secs(60), m.mine_one(share_target))
            .await
            .expect("mined in time");
        found.push(hash);
        // Wait until the chain has the block before the next round.
        let want = start_height + found.len() as u64;
        for _ in 0..200 {
            let h: u64 = rpc.call("getblockcount", json!([])).await.unwrap();
            if h >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let height: u64 = rpc.call("getblockcount", json!([])).await.unwrap();
    assert!(
        height >= start_height + 10,
        "at least 10 blocks: {start_height} -> {height}"
    );
    let best: BlockHash = rpc.call("getbestblockhash", json!([])).await.unwrap();
    assert!(found.contains(&best), "the tip is one of ours");

    // Every found block is on the chain, and each coinbase pays its PPLNS share exactly.
    let mut paid_both = 0;
    for hash in &found {
        let block: Value = rpc
            .call("getblock", json!([hash.to_string(), 2]))
            .await
            .unwrap();
        assert_eq!(
            block["confirmations"].as_i64(),
            Some(1 + (height as i64 - block["height"].as_i64().unwrap())),
            "block {hash} is on the active chain"
        );
        let coinbase = &block["tx"][0];
        let outputs: BTreeMap<ScriptBuf, u64> = coinbase["vout"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let script = ScriptBuf::from_bytes(
                    hex::decode(o["scriptPubKey"]["hex"].as_str().unwrap()).unwrap(),
                );
                (
                    script,
                    Amount::from_btc(o["value"].as_f64().unwrap())
                        .unwrap()
                        .to_sat(),
                )
            })
            .filter(|(s, _)| !s.is_op_return())
            .collect();
        // Recompute what the share chain says this share's coinbase must pay.
        let share_hash = ShareHash::from_byte_array(hash.to_byte_array());
        let expected = node
            .work()
            .chain()
            .query(move |t| {
                let share = t
                    .chain()
                    .get(&share_hash)
                    .cloned()
                    .expect("the block is a share too");
                let req = ShareRequest::of_share(share.share());
                // A fresh PPLNS cache: the rule alone decides, not the node's cached windows.
                let template = generate(
                    t.chain(),
                    &mut Pplns::default(),
                    &NetworkParams::REGTEST,
                    &req,
                )
                .expect("rebuilds");
                template
                    .payouts
                    .iter()
                    .map(|p| (p.script.clone(), p.amount.to_sat()))
                    .collect::<BTreeMap<_, _>>()
            })
            .await
            .expect("the share service runs");
        assert_eq!(outputs, expected, "block {hash} pays the PPLNS outputs");
        let subsidy: u64 = expected.values().sum();
        assert_eq!(
            subsidy,
            50 * 100_000_000,
            "outputs add up to the coinbase value"
        );
        if scripts
            .iter()
            .all(|s| outputs.get(s).is_some_and(|&v| v > 0))
        {
            paid_both += 1;
        }
    }
    assert!(
        paid_both >= 8,
        "later blocks pay both miners ({paid_both} did)"
    );

    // The node reports what happened.
    let stats = http_get(node.worker_addr(), "/local_stats").await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["found_blocks"].as_u64().unwrap() >= 10, "{stats}");
    let best_share = http_get(node.worker_addr(), "/web/best_share_hash").await;
    assert_eq!(
        best_share.trim_matches('"'),
        found.last().unwrap().to_string()
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_address_fails_authorize_with_the_accepted_kinds() {
    let node = start_node().await;
    let stream = TcpStream::connect(node.worker_addr()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"1BoatSLRHtKNngkdXEeobR76b53LETtpyT\",\"x\"]}\n").await.unwrap();
    loop {
        let line = timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == json!(2) {
            assert_eq!(v["result"], json!(false));
            let msg = v["error"][1].as_str().unwrap().to_lowercase();
            assert!(msg.contains("regtest") && msg.contains("p2wpkh"), "{msg}");
            break;
        }
    }
    let _ = difficulty_to_target(1.0);
    node.shutdown().await;
}
