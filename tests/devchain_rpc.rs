//! The devchain's JSON-RPC follows Bitcoin Core's conventions: envelopes with the id echoed,
//! HTTP statuses, error codes, named parameters, batches, JSON-RPC 2.0, and the read methods.

#![cfg(feature = "devchain")]

mod common;

use common::*;
use p2pool::devchain::{Devchain, DevchainConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_envelope_conventions() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let addr = devchain.rpc_addr();

    // Bad or missing credentials: 401 with a basic challenge, as Core.
    let reply = http_post(addr, Some(("__cookie__", "wrong")), "{}").await;
    assert_eq!(reply.status, 401);
    assert!(reply
        .headers
        .to_ascii_lowercase()
        .contains("www-authenticate: basic realm=\"jsonrpc\""));
    assert_eq!(http_post(addr, None, "{}").await.status, 401);

    // Only POST.
    let (user, password) = devchain.rpc_auth();
    let reply = http_request(addr, "GET", Some((user, password)), "").await;
    assert_eq!(reply.status, 405);

    // Success: result, error null, id echoed (any JSON value).
    let reply = rpc
        .raw(r#"{"method":"getblockcount","params":[],"id":{"k":[1,"x"]}}"#)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"result": 0, "error": null, "id": {"k": [1, "x"]}})
    );

    // Parse error: HTTP 500, code -32700, id null.
    let reply = rpc.raw("{not json").await;
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json(),
        json!({"result": null, "error": {"code": -32700, "message": "Parse error"}, "id": null})
    );

    // Unknown method: HTTP 404, -32601.
    let reply = rpc.raw(r#"{"method":"nosuchmethod","id":"a"}"#).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], json!(-32601));
    assert_eq!(reply.json()["id"], json!("a"));

    // Invalid request object: HTTP 400, -32600.
    let reply = rpc.raw(r#"{"method":5,"id":1}"#).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["code"], json!(-32600));

    // Application errors: HTTP 500 with Core's code and message.
    let reply = rpc
        .raw(r#"{"method":"getblockhash","params":[5],"id":2}"#)
        .await;
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json(),
        json!({"result": null, "error": {"code": -8, "message": "Block height out of range"}, "id": 2})
    );
    let reply = rpc
        .raw(r#"{"method":"getblockhash","params":["x"],"id":3}"#)
        .await;
    assert_eq!(reply.json()["error"]["code"], json!(-3));
    let err = rpc
        .try_call("getblock", json!(["00".repeat(32)]))
        .await
        .unwrap_err();
    assert_eq!(err, json!({"code": -5, "message": "Block not found"}));
    let err = rpc.try_call("getblock", json!(["zz"])).await.unwrap_err();
    assert_eq!(err["code"], json!(-8));
    let err = rpc
        .try_call("sendrawtransaction", json!(["beef"]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], json!(-22));
    let err = rpc
        .try_call("generatetoaddress", json!([1, "notanaddress"]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        json!({"code": -5, "message": "Error: Invalid address"})
    );
    // Too many parameters: Core answers with the usage text as a misc error.
    let err = rpc.try_call("getblockcount", json!([1])).await.unwrap_err();
    assert_eq!(err["code"], json!(-1));
    // getblocktemplate insists on the segwit rule.
    let err = rpc
        .try_call("getblocktemplate", json!([{}]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], json!(-8));
    assert!(err["message"].as_str().unwrap().contains("segwit"));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_parameters_batches_and_jsonrpc_2() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    rpc.call(
        "generatetoaddress",
        json!({"nblocks": 2, "address": op_true_address().to_string()}),
    )
    .await;
    let by_position = rpc.call("getblockhash", json!([1])).await;
    let by_name = rpc.call("getblockhash", json!({"height": 1})).await;
    assert_eq!(by_position, by_name);
    let err = rpc
        .try_call("getblockhash", json!({"hieght": 1}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        json!({"code": -8, "message": "Unknown named parameter hieght"})
    );
    // Named parameters may skip optional ones.
    let header = rpc
        .call(
            "getblockheader",
            json!({"blockhash": by_name, "verbose": false}),
        )
        .await;
    assert_eq!(header.as_str().unwrap().len(), 160);

    // A batch: one reply per request, in order, errors inline, HTTP 200.
    let reply = rpc
        .raw(
            r#"[{"method":"getblockcount","id":1},
                {"method":"getblockhash","params":[99],"id":2},
                {"method":"nosuchmethod","id":3},
                {"method":"getbestblockhash","id":4}]"#,
        )
        .await;
    assert_eq!(reply.status, 200);
    let replies = reply.json();
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[0], json!({"result": 2, "error": null, "id": 1}));
    assert_eq!(replies[1]["error"]["code"], json!(-8));
    assert_eq!(replies[2]["error"]["code"], json!(-32601));
    assert_eq!(replies[3]["id"], json!(4));
    assert_eq!(
        replies[3]["result"],
        rpc.call("getbestblockhash", json!([])).await
    );

    // JSON-RPC 2.0: no "error" on success, HTTP 200 on errors, 204 for notifications.
    let reply = rpc
        .raw(r#"{"jsonrpc":"2.0","method":"getblockcount","id":9}"#)
        .await;
    assert_eq!(
        reply.json(),
        json!({"jsonrpc": "2.0", "result": 2, "id": 9})
    );
    let reply = rpc
        .raw(r#"{"jsonrpc":"2.0","method":"nosuchmethod","id":10}"#)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["error"]["code"], json!(-32601));
    assert!(reply.json().get("result").is_none());
    let reply = rpc
        .raw(r#"{"jsonrpc":"3.0","method":"getblockcount","id":1}"#)
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["code"], json!(-32600));
    let reply = rpc
        .raw(r#"{"jsonrpc":"2.0","method":"getblockcount"}"#)
        .await;
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_methods_describe_the_chain() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let info = rpc.call("getblockchaininfo", json!([])).await;
    assert_eq!(info["chain"], json!("regtest"));
    assert_eq!(info["blocks"], json!(0));
    assert_eq!(
        info["bestblockhash"],
        json!("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
    );
    assert_eq!(info["bits"], json!("207fffff"));

    let hashes = rpc
        .call(
            "generatetoaddress",
            json!([3, op_true_address().to_string()]),
        )
        .await;
    let second = hashes[1].clone();
    let header = rpc.call("getblockheader", json!([second])).await;
    assert_eq!(header["height"], json!(2));
    assert_eq!(header["confirmations"], json!(2));
    assert_eq!(header["previousblockhash"], hashes[0]);
    assert_eq!(header["nextblockhash"], hashes[2]);
    assert_eq!(header["nTx"], json!(1));
    assert_eq!(header["chainwork"], json!(format!("{:064x}", 6)));

    let raw = rpc.call("getblock", json!([second, 0])).await;
    let block: bitcoin::Block =
        bitcoin::consensus::encode::deserialize(&hex::decode(raw.as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(json!(block.block_hash().to_string()), second);
    let verbose = rpc.call("getblock", json!([second, 1])).await;
    assert_eq!(
        verbose["tx"],
        json!([block.txdata[0].compute_txid().to_string()])
    );
    let full = rpc.call("getblock", json!([second, 2])).await;
    let coinbase = &full["tx"][0];
    assert!(coinbase["vin"][0]["coinbase"].is_string());
    assert_eq!(coinbase["vout"][0]["value"], json!(50.0));
    assert_eq!(
        coinbase["vout"][0]["scriptPubKey"]["address"],
        json!(op_true_address().to_string())
    );
    assert_eq!(
        coinbase["vout"][1]["scriptPubKey"]["type"],
        json!("nulldata"),
        "witness commitment output"
    );

    let network = rpc.call("getnetworkinfo", json!([])).await;
    assert_eq!(network["connections"], json!(0));
    assert!(network["version"].as_u64().unwrap() > 0);
    let mining = rpc.call("getmininginfo", json!([])).await;
    assert_eq!(mining["blocks"], json!(3));
    assert_eq!(mining["chain"], json!("regtest"));
    assert_eq!(rpc.call("getrawmempool", json!([true])).await, json!({}));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_servers_and_shutdown_cleans_up() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    assert_eq!(
        rpc.call("stop", json!([])).await,
        json!("devchain stopping")
    );
    timed("stopped", devchain.stopped()).await;
    let datadir = devchain.datadir().to_path_buf();
    assert!(datadir.join("regtest").join(".cookie").exists());
    timed("shutdown", devchain.shutdown()).await.unwrap();
    assert!(!datadir.exists(), "the temporary data directory is removed");
}

/// `bitcoincore-rpc`, an existing bitcoind client, works unchanged: cookie auth from the file,
/// typed replies, template, mining, mempool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_rpc_library_works_unchanged() {
    use bitcoincore_rpc::json::{GetBlockTemplateModes, GetBlockTemplateRules};
    use bitcoincore_rpc::{Auth, Client, RpcApi};

    let devchain = start().await;
    let url = devchain.rpc_url();
    let cookie = devchain.cookie_path().unwrap().to_path_buf();
    let result = timed(
        "bitcoincore-rpc session",
        tokio::task::spawn_blocking(move || {
            let client = Client::new(&url, Auth::CookieFile(cookie)).unwrap();
            let info = client.get_blockchain_info().unwrap();
            assert_eq!(info.chain, bitcoin::Network::Regtest);
            let hashes = client.generate_to_address(101, &op_true_address()).unwrap();
            assert_eq!(hashes.len(), 101);
            assert_eq!(client.get_block_count().unwrap(), 101);
            assert_eq!(client.get_best_block_hash().unwrap(), hashes[100]);
            assert_eq!(client.get_block_hash(1).unwrap(), hashes[0]);
            let header = client.get_block_header_info(&hashes[50]).unwrap();
            assert_eq!(header.height, 51);
            assert_eq!(header.next_block_hash, Some(hashes[51]));
            let block = client.get_block(&hashes[0]).unwrap();
            assert_eq!(block.block_hash(), hashes[0]);
            assert_eq!(client.get_block_info(&hashes[0]).unwrap().tx.len(), 1);
            client.get_network_info().unwrap();
            client.get_mining_info().unwrap();

            let coinbase = &block.txdata[0];
            let tx = spend_op_true(
                bitcoin::OutPoint::new(coinbase.compute_txid(), 0),
                coinbase.output[0].value,
                bitcoin::Amount::from_sat(2_000),
            );
            let txid = client.send_raw_transaction(&tx).unwrap();
            assert_eq!(client.get_raw_mempool().unwrap(), vec![txid]);

            let template = client
                .get_block_template(
                    GetBlockTemplateModes::Template,
                    &[GetBlockTemplateRules::SegWit],
                    &[],
                )
                .unwrap();
            assert_eq!(template.height, 102);
            assert_eq!(template.transactions.len(), 1);
            assert_eq!(template.transactions[0].txid, txid);
            assert_eq!(template.transactions[0].fee.to_sat(), 2_000);
            let hashes = client.generate_to_address(1, &op_true_address()).unwrap();
            let mined = client.get_block(&hashes[0]).unwrap();
            assert_eq!(mined.txdata[1].compute_txid(), txid);
            assert!(client.get_raw_mempool().unwrap().is_empty());
            // A block already in the chain: Core's BIP22 reason comes back as a string.
            let err = client.submit_block(&mined).unwrap_err();
            assert!(err.to_string().contains("duplicate"), "{err}");
        }),
    )
    .await;
    result.unwrap();
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

/// Regression guard: odd parameters to any method get a JSON-RPC error, never a dropped
/// connection, and the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_parameters_get_errors_not_crashes() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let methods = [
        "getblocktemplate",
        "submitblock",
        "getblockchaininfo",
        "getbestblockhash",
        "getblockcount",
        "getblockhash",
        "getblockheader",
        "getblock",
        "getnetworkinfo",
        "getmininginfo",
        "generatetoaddress",
        "sendrawtransaction",
        "getrawmempool",
    ];
    let odd = [
        json!(["x"]),
        json!([{}]),
        json!([[]]),
        json!([-1]),
        json!([1e300]),
        json!([true, "x", -5]),
        json!(["00", {"a": 1}]),
        json!({"nosuch": 1}),
    ];
    for method in methods {
        for params in &odd {
            let body = json!({"method": method, "params": params, "id": 1}).to_string();
            let reply = rpc.raw(&body).await;
            let reply = reply.json();
            assert_eq!(reply["id"], json!(1), "{method} {params}");
            assert!(
                reply["error"].is_null() || reply["error"]["code"].is_i64(),
                "{method} {params}: {reply}"
            );
        }
    }
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(0));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

/// Ends the child process if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `p2pool devchain` as a command: cookie in the data directory, `stop` ends the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devchain_command_serves_until_stop() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_p2pool"))
            .args([
                "devchain",
                "--rpc-port",
                "0",
                "--p2p-port",
                "0",
                "--datadir",
            ])
            .arg(dir.path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    // Read the log on a thread for the whole run: a closed pipe would fail the child's writes.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("devchain ready") {
                if let (Some(tx), Some(start)) = (ready_tx.take(), line.find("http://")) {
                    let rest = &line[start + "http://".len()..];
                    let addr = rest.split('/').next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
            }
        }
    });
    let rpc_addr: std::net::SocketAddr = timed("devchain ready", ready_rx)
        .await
        .unwrap()
        .parse()
        .unwrap();
    let cookie = std::fs::read_to_string(dir.path().join("regtest").join(".cookie")).unwrap();
    let (user, password) = cookie.split_once(':').unwrap();
    let rpc = Rpc {
        addr: rpc_addr,
        user: user.to_owned(),
        password: password.to_owned(),
    };
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(0));
    rpc.call("stop", json!([])).await;
    let status = timed(
        "exit",
        tokio::task::spawn_blocking(move || child.0.wait().unwrap()),
    )
    .await
    .unwrap();
    assert!(status.success());
    assert!(!dir.path().join("regtest").join(".cookie").exists());
}

/// As bitcoind with `-rpcthreads=1 -rpcworkqueue=1`: one request runs (a long poll that waits
/// for a new block), one waits, and a third is refused at once with HTTP 503 and Core's text,
/// instead of joining a queue its caller would time out in. Once the long poll ends, the
/// waiting request is answered and new ones are taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_work_queue_answers_503_at_once() {
    init_tracing();
    let config = DevchainConfig {
        rpc_threads: 1,
        rpc_work_queue: 1,
        ..DevchainConfig::ephemeral()
    };
    let devchain = timed("start", Devchain::start(config)).await.unwrap();
    let rpc = std::sync::Arc::new(Rpc::new(&devchain));
    let gbt = rpc
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .await;
    let id = gbt["longpollid"].as_str().unwrap().to_owned();
    let poller = {
        let rpc = std::sync::Arc::clone(&rpc);
        tokio::spawn(async move {
            rpc.try_call(
                "getblocktemplate",
                json!([{"rules": ["segwit"], "longpollid": id}]),
            )
            .await
        })
    };
    // The long poll holds the one executor; wait until it does.
    let waiting = loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let rpc2 = std::sync::Arc::clone(&rpc);
        let waiting = tokio::spawn(async move { rpc2.try_call("getblockcount", json!([])).await });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if !waiting.is_finished() {
            break waiting;
        }
        assert!(!poller.is_finished(), "the long poll waits for a block");
    };
    let refused = timed(
        "a refusal at once",
        rpc.raw(&json!({"method": "getblockcount", "params": [], "id": 1}).to_string()),
    )
    .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.body, "Work queue depth exceeded");
    // A new block ends the long poll; the waiting request is answered, new ones are taken.
    let mut p2p = P2p::connect(devchain.p2p_addr()).await;
    p2p.handshake().await;
    let block = block_from_template(&gbt, |_| {});
    let mut block = block;
    grind(&mut block.header, true);
    p2p.send(bitcoin::p2p::message::NetworkMessage::Block(block))
        .await;
    timed("long poll ends", poller).await.unwrap().unwrap();
    assert_eq!(
        timed("queued answered", waiting).await.unwrap().unwrap(),
        json!(1)
    );
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(1));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}
