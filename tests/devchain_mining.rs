//! Mining against the devchain over JSON-RPC: `generatetoaddress`, a hand-built block from
//! `getblocktemplate` carrying a mempool transaction, Core's BIP22 reasons for invalid blocks,
//! long polling, and resuming the chain after a restart.

#![cfg(feature = "devchain")]

mod common;

use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, ScriptBuf};
use common::*;
use p2pool::devchain::{Devchain, DevchainConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mine_spend_and_submit_a_hand_built_block() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let address = op_true_address().to_string();
    let hashes = rpc.call("generatetoaddress", json!([101, address])).await;
    assert_eq!(hashes.as_array().unwrap().len(), 101);
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(101));

    // The coinbase of block 3 may be spent from height 103 on; the next block is 102.
    let (immature, value) = coinbase_at(&rpc, 3).await;
    let tx = spend_op_true(immature, value, Amount::from_sat(1000));
    let err = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&tx)]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], json!(-26));
    assert_eq!(
        err["message"],
        json!("bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth 99")
    );

    // A mature coinbase spend enters the mempool and the template with its fee.
    let (outpoint, value) = coinbase_at(&rpc, 1).await;
    let fee = Amount::from_sat(5_000);
    let tx = spend_op_true(outpoint, value, fee);
    let txid = rpc
        .call("sendrawtransaction", json!([serialize_hex(&tx)]))
        .await;
    assert_eq!(txid, json!(tx.compute_txid().to_string()));
    assert_eq!(rpc.call("getrawmempool", json!([])).await, json!([txid]));
    // A double spend of the same coin is refused.
    let double = spend_op_true(outpoint, value, Amount::from_sat(9_000));
    let err = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&double)]))
        .await
        .unwrap_err();
    assert_eq!(err["message"], json!("txn-mempool-conflict"));

    let gbt = template(&rpc).await;
    assert_eq!(gbt["height"], json!(102));
    let txs = gbt["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0]["txid"], txid);
    assert_eq!(txs[0]["hash"], json!(tx.compute_wtxid().to_string()));
    assert_ne!(
        txs[0]["txid"], txs[0]["hash"],
        "segwit spend: txid != wtxid"
    );
    assert_eq!(txs[0]["fee"], json!(fee.to_sat()));
    let subsidy = 5_000_000_000u64;
    assert_eq!(gbt["coinbasevalue"], json!(subsidy + fee.to_sat()));

    let mut block = block_from_template(&gbt, |_| {});
    grind(&mut block.header, true);
    let result = rpc.call("submitblock", json!([block_hex(&block)])).await;
    assert_eq!(result, json!(null));
    assert_eq!(
        rpc.call("getbestblockhash", json!([])).await,
        json!(block.block_hash().to_string())
    );
    assert_eq!(rpc.call("getrawmempool", json!([])).await, json!([]));
    let again = rpc.call("submitblock", json!([block_hex(&block)])).await;
    assert_eq!(again, json!("duplicate"));

    // The block as the chain stored it: verbosity 2 shows the spend with its txid and wtxid.
    let stored = rpc
        .call("getblock", json!([block.block_hash().to_string(), 2]))
        .await;
    assert_eq!(stored["height"], json!(102));
    assert_eq!(stored["tx"][1]["txid"], txid);
    assert_eq!(
        stored["tx"][1]["hash"],
        json!(tx.compute_wtxid().to_string())
    );

    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_blocks_get_cores_reject_reasons() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    rpc.call(
        "generatetoaddress",
        json!([3, op_true_address().to_string()]),
    )
    .await;
    let gbt = template(&rpc).await;

    let submit = |block: bitcoin::Block| {
        let rpc = &rpc;
        async move { rpc.call("submitblock", json!([block_hex(&block)])).await }
    };

    // Proof of work does not meet the target (not remembered: sent again, same answer).
    let mut block = block_from_template(&gbt, |_| {});
    grind(&mut block.header, false);
    assert_eq!(submit(block.clone()).await, json!("high-hash"));
    assert_eq!(submit(block).await, json!("high-hash"));

    // Merkle root does not commit to the transactions.
    let mut block = block_from_template(&gbt, |_| {});
    block.header.merkle_root =
        bitcoin::TxMerkleNode::from_raw_hash(bitcoin::hashes::Hash::hash(b"not the root"));
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("bad-txnmrklroot"));

    // BIP34 height of the wrong block.
    let height = gbt["height"].as_i64().unwrap();
    let mut block = block_from_template(&gbt, |cb| {
        cb.input[0].script_sig = bitcoin::script::Builder::new()
            .push_int(height + 1)
            .push_int(7)
            .into_script();
    });
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("bad-cb-height"));

    // Witness commitment that does not match.
    let mut block = block_from_template(&gbt, |cb| {
        let mut bytes = cb.output[1].script_pubkey.to_bytes();
        bytes[37] ^= 1;
        cb.output[1].script_pubkey = ScriptBuf::from_bytes(bytes);
    });
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("bad-witness-merkle-match"));

    // Coinbase pays more than subsidy + fees.
    let mut block = block_from_template(&gbt, |cb| {
        cb.output[0].value += Amount::from_sat(1);
    });
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("bad-cb-amount"));

    // Timestamp not after the median time past.
    let mut block = block_from_template(&gbt, |_| {});
    block.header.time = gbt["mintime"].as_u64().unwrap() as u32 - 1;
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("time-too-old"));

    // Wrong difficulty bits.
    let mut block = block_from_template(&gbt, |_| {});
    block.header.bits = bitcoin::CompactTarget::from_consensus(0x207f_fffe);
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("bad-diffbits"));

    // Unknown parent.
    let mut block = block_from_template(&gbt, |_| {});
    block.header.prev_blockhash =
        bitcoin::BlockHash::from_raw_hash(bitcoin::hashes::Hash::hash(b"nowhere"));
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("prev-blk-not-found"));

    // Block version below 4 after BIP34/65/66 (all active from height 1 on regtest).
    let mut block = block_from_template(&gbt, |_| {});
    block.header.version = bitcoin::block::Version::from_consensus(3);
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("bad-version(0x00000003)"));

    // An invalid block sent again is known to be invalid.
    let mut block = block_from_template(&gbt, |cb| {
        cb.output[0].value += Amount::from_sat(1);
    });
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!("duplicate-invalid"));

    // Not a block at all: Core's RPC error.
    let err = rpc
        .try_call("submitblock", json!(["00ff"]))
        .await
        .unwrap_err();
    assert_eq!(err, json!({"code": -22, "message": "Block decode failed"}));

    // After all that the chain still accepts a valid block.
    let mut block = block_from_template(&gbt, |_| {});
    grind(&mut block.header, true);
    assert_eq!(submit(block).await, json!(null));
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(4));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitblock_adds_the_missing_witness_reserved_value() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let gbt = template(&rpc).await;
    let mut block = block_from_template(&gbt, |cb| cb.input[0].witness.clear());
    grind(&mut block.header, true);
    assert_eq!(
        rpc.call("submitblock", json!([block_hex(&block)])).await,
        json!(null)
    );
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_when_a_block_is_found() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let gbt = template(&rpc).await;
    let longpollid = gbt["longpollid"].clone();
    let waiter = Rpc::new(&devchain);
    let poll = tokio::spawn(async move {
        waiter
            .call(
                "getblocktemplate",
                json!([{"rules": ["segwit"], "longpollid": longpollid}]),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "long poll waits while the tip is unchanged"
    );
    rpc.call(
        "generatetoaddress",
        json!([1, op_true_address().to_string()]),
    )
    .await;
    let next = timed("long poll", poll).await.unwrap();
    assert_eq!(next["height"], json!(2));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_the_datadir_resumes_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevchainConfig {
        datadir: Some(dir.path().to_path_buf()),
        ..DevchainConfig::ephemeral()
    };
    let devchain = timed("start", Devchain::start(config.clone()))
        .await
        .unwrap();
    let cookie = devchain.cookie_path().unwrap().to_path_buf();
    let (user, password) = devchain.rpc_auth();
    assert_eq!(
        std::fs::read_to_string(&cookie).unwrap(),
        format!("{user}:{password}")
    );
    let rpc = Rpc::new(&devchain);
    rpc.call(
        "generatetoaddress",
        json!([101, op_true_address().to_string()]),
    )
    .await;
    let (outpoint, value) = coinbase_at(&rpc, 1).await;
    let best = rpc.call("getbestblockhash", json!([])).await;
    timed("shutdown", devchain.shutdown()).await.unwrap();
    assert!(!cookie.exists(), "cookie removed at shutdown");

    let devchain = timed("restart", Devchain::start(config)).await.unwrap();
    let rpc = Rpc::new(&devchain);
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(101));
    assert_eq!(rpc.call("getbestblockhash", json!([])).await, best);
    // The UTXO set was rebuilt: the mature coinbase is still spendable.
    let tx = spend_op_true(outpoint, value, Amount::from_sat(1_000));
    rpc.call("sendrawtransaction", json!([serialize_hex(&tx)]))
        .await;
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_branch_reorganises_the_chain() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let gbt = template(&rpc).await;
    // Two blocks at height 1 differing only in the coinbase's extranonce.
    let mut first = block_from_template(&gbt, |_| {});
    grind(&mut first.header, true);
    let mut second = block_from_template(&gbt, |cb| {
        cb.input[0].script_sig = bitcoin::script::Builder::new()
            .push_int(1)
            .push_int(2)
            .into_script();
    });
    grind(&mut second.header, true);
    assert_eq!(
        rpc.call("submitblock", json!([block_hex(&first)])).await,
        json!(null)
    );
    // Same work as the tip: stored, not connected.
    assert_eq!(
        rpc.call("submitblock", json!([block_hex(&second)])).await,
        json!("inconclusive")
    );
    let side = rpc
        .call("getblockheader", json!([second.block_hash().to_string()]))
        .await;
    assert_eq!(side["confirmations"], json!(-1));

    // A child of the second block makes its branch the longest.
    let mut on_second = gbt.clone();
    on_second["previousblockhash"] = json!(second.block_hash().to_string());
    on_second["height"] = json!(2);
    on_second["curtime"] = json!(gbt["curtime"].as_u64().unwrap() + 1);
    let mut third = block_from_template(&on_second, |_| {});
    grind(&mut third.header, true);
    assert_eq!(
        rpc.call("submitblock", json!([block_hex(&third)])).await,
        json!(null)
    );
    assert_eq!(
        rpc.call("getblockhash", json!([1])).await,
        json!(second.block_hash().to_string())
    );
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(2));
    // Templates follow the new tip, and mining on it works.
    let gbt = template(&rpc).await;
    assert_eq!(
        gbt["previousblockhash"],
        json!(third.block_hash().to_string())
    );
    rpc.call(
        "generatetoaddress",
        json!([1, op_true_address().to_string()]),
    )
    .await;
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(3));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mempool_checks_scripts_and_orders_parents_first() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    rpc.call(
        "generatetoaddress",
        json!([102, op_true_address().to_string()]),
    )
    .await;
    let (outpoint, value) = coinbase_at(&rpc, 1).await;

    // The kernel's script interpreter refuses a witness that does not match the P2WSH program.
    let mut bad = spend_op_true(outpoint, value, Amount::from_sat(1_000));
    bad.input[0].witness = {
        let mut w = bitcoin::Witness::new();
        w.push([0x52]); // OP_2: a different script than the one committed to
        w
    };
    let err = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&bad)]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], json!(-26));
    assert!(err["message"]
        .as_str()
        .unwrap()
        .starts_with("mandatory-script-verify-flag-failed"));

    // Unknown inputs: Core's -25.
    let orphan = spend_op_true(
        bitcoin::OutPoint::new(
            bitcoin::Txid::from_raw_hash(bitcoin::hashes::Hash::hash(b"x")),
            0,
        ),
        value,
        Amount::from_sat(1_000),
    );
    let err = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&orphan)]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        json!({"code": -25, "message": "bad-txns-inputs-missingorspent"})
    );

    // A fee above maxfeerate (default 0.10 BTC/kvB) is refused unless the caller raises it.
    let greedy = spend_op_true(outpoint, value, Amount::from_sat(1_000_000_000));
    let err = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&greedy)]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], json!(-25));
    assert!(err["message"]
        .as_str()
        .unwrap()
        .starts_with("Fee exceeds maximum"));
    // Outputs spending more than the inputs.
    let inflating = spend_op_true(outpoint, Amount::from_sat(value.to_sat() * 2), Amount::ZERO);
    let err = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&inflating)]))
        .await
        .unwrap_err();
    assert_eq!(
        err["message"],
        json!("bad-txns-in-belowout, value in (50.00) < value out (100.00)")
    );

    // A parent and its child: the template lists the parent first and the child depends on it.
    let parent = spend_op_true(outpoint, value, Amount::from_sat(1_000));
    let child = spend_op_true(
        bitcoin::OutPoint::new(parent.compute_txid(), 0),
        parent.output[0].value,
        Amount::from_sat(2_000),
    );
    rpc.call("sendrawtransaction", json!([serialize_hex(&parent)]))
        .await;
    rpc.call("sendrawtransaction", json!([serialize_hex(&child)]))
        .await;
    let verbose = rpc.call("getrawmempool", json!([true])).await;
    assert_eq!(
        verbose[child.compute_txid().to_string()]["depends"],
        json!([parent.compute_txid().to_string()])
    );
    let gbt = template(&rpc).await;
    let txs = gbt["transactions"].as_array().unwrap();
    assert_eq!(txs[0]["txid"], json!(parent.compute_txid().to_string()));
    assert_eq!(txs[1]["depends"], json!([1]));
    assert_eq!(gbt["coinbasevalue"], json!(5_000_000_000u64 + 3_000));
    let mut block = block_from_template(&gbt, |_| {});
    grind(&mut block.header, true);
    assert_eq!(
        rpc.call("submitblock", json!([block_hex(&block)])).await,
        json!(null)
    );
    assert_eq!(rpc.call("getrawmempool", json!([])).await, json!([]));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}
