//! The bitcoind RPC client against the devchain: typed `getblocktemplate` fields, error classes
//! (wrong password persistent, refused connection transient), credentials discovery from a
//! bitcoin data directory, and the start-up checks.

#![cfg(feature = "devchain")]

mod common;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use bitcoin::{Amount, BlockHash, Network};
use common::*;
use p2pool::bitcoind::{
    startup_checks, wait_until_ready, Backoff, Credentials, RpcClient, RpcError, RpcOptions,
    StartupError,
};
use p2pool::devchain::{Devchain, DevchainConfig, RpcAuth};
use serde_json::json;

fn client(devchain: &Devchain) -> RpcClient {
    let (user, password) = devchain.rpc_auth();
    let credentials = Credentials::UserPassword {
        user: user.into(),
        password: password.into(),
    };
    RpcClient::new(&devchain.rpc_url(), credentials).unwrap()
}

/// A loopback port nobody listens on.
async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_template_matches_the_json() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    rpc.call(
        "generatetoaddress",
        json!([101, op_true_address().to_string()]),
    )
    .await;
    // A mempool transaction, so the template has one.
    let (outpoint, value) = coinbase_at(&rpc, 1).await;
    let tx = spend_op_true(outpoint, value, Amount::from_sat(2_000));
    rpc.call(
        "sendrawtransaction",
        json!([bitcoin::consensus::encode::serialize_hex(&tx)]),
    )
    .await;

    let client = client(&devchain);
    let typed = timed("gbt", client.get_block_template(None)).await.unwrap();
    let raw = template(&rpc).await;
    assert_eq!(typed.height, 102);
    assert_eq!(i64::from(typed.version), raw["version"].as_i64().unwrap());
    assert_eq!(
        typed.previous_block_hash,
        BlockHash::from_str(raw["previousblockhash"].as_str().unwrap()).unwrap()
    );
    assert_eq!(
        typed.coinbase_value.to_sat(),
        raw["coinbasevalue"].as_u64().unwrap()
    );
    assert_eq!(typed.longpollid, raw["longpollid"].as_str().unwrap());
    assert_eq!(
        format!("{:08x}", typed.bits.to_consensus()),
        raw["bits"].as_str().unwrap()
    );
    assert_eq!(typed.target, bitcoin::Target::from_compact(typed.bits));
    assert_eq!(u64::from(typed.min_time), raw["mintime"].as_u64().unwrap());
    assert!(typed.cur_time >= typed.min_time);
    assert_eq!(typed.weight_limit, Some(4_000_000));
    assert!(typed.has_rule("segwit"));
    assert_eq!(
        typed
            .default_witness_commitment
            .as_ref()
            .map(|s| hex::encode(s.as_bytes())),
        raw["default_witness_commitment"]
            .as_str()
            .map(str::to_owned)
    );
    assert_eq!(typed.transactions.len(), 1);
    let t = &typed.transactions[0];
    assert_eq!(t.tx, tx);
    assert_eq!(t.txid, tx.compute_txid());
    assert_eq!(t.wtxid, tx.compute_wtxid());
    assert_eq!(t.fee, Amount::from_sat(2_000));
    assert_eq!(t.weight, tx.weight().to_wu());
    assert!(t.depends.is_empty());

    let info = client.get_blockchain_info().await.unwrap();
    assert_eq!((info.chain.as_str(), info.blocks), ("regtest", 101));
    assert_eq!(
        client.get_best_block_hash().await.unwrap(),
        typed.previous_block_hash
    );
    assert!(client.get_network_info().await.unwrap().version > 0);
    // An unknown method is Core's -32601, persistent.
    let err = client
        .call::<serde_json::Value>("nosuchmethod", json!([]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(-32601));
    assert!(!err.is_transient());
    // A reply of the wrong shape is a typed error.
    let err = client.call::<u64>("getbestblockhash", json!([])).await;
    assert!(matches!(err, Err(RpcError::BadReply { .. })), "{err:?}");
    devchain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_persistent_and_refused_connection_transient() {
    let devchain = start().await;
    let wrong = RpcClient::new(
        &devchain.rpc_url(),
        Credentials::UserPassword {
            user: "__cookie__".into(),
            password: "wrong".into(),
        },
    )
    .unwrap();
    let err = timed("call", wrong.get_block_count()).await.unwrap_err();
    assert!(matches!(err, RpcError::Unauthorized(401)), "{err:?}");
    assert!(!err.is_transient());

    let dead =
        RpcClient::new(&format!("http://{}/", dead_addr().await), Credentials::None).unwrap();
    let err = timed("call", dead.get_block_count()).await.unwrap_err();
    assert!(matches!(err, RpcError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    // The start-up checks wait out a transient error and give up on a persistent one.
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
    let waiting = wait_until_ready(&dead, Network::Regtest, backoff.clone());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), waiting)
            .await
            .is_err(),
        "still retrying"
    );
    let err = timed(
        "checks",
        wait_until_ready(&wrong, Network::Regtest, backoff),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StartupError::Rpc(RpcError::Unauthorized(_))));
    // A missing cookie file is transient: bitcoind may not have written it yet.
    let missing = RpcClient::new(
        &devchain.rpc_url(),
        Credentials::Cookie("/nonexistent/.cookie".into()),
    )
    .unwrap();
    assert!(missing.get_block_count().await.unwrap_err().is_transient());
    devchain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_checks_name_a_wrong_network() {
    let devchain = start().await;
    let client = client(&devchain);
    let info = timed("checks", startup_checks(&client, Network::Regtest))
        .await
        .unwrap();
    assert_eq!(info.chain, "regtest");
    for network in [Network::Bitcoin, Network::Testnet4, Network::Signet] {
        let err = timed("checks", startup_checks(&client, network))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StartupError::WrongChain { actual, .. } if actual == "regtest"),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert!(err.to_string().contains("regtest"), "{err}");
    }
    devchain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_bitcoin_datadir() {
    // Cookie: `DATADIR/regtest/.cookie`, found with no options but the data directory.
    let devchain = start().await;
    let home = tempfile::tempdir().unwrap();
    let datadir = home.path().join(".bitcoin");
    std::fs::create_dir_all(datadir.join("regtest")).unwrap();
    std::fs::copy(
        devchain.cookie_path().unwrap(),
        datadir.join("regtest/.cookie"),
    )
    .unwrap();
    let port = devchain.rpc_addr().port();
    // Mainnet's rpcport at the top level must not apply to regtest; the section's does.
    std::fs::write(
        datadir.join("bitcoin.conf"),
        format!("server=1\nrpcport=1\n[regtest]\nrpcport={port}\n"),
    )
    .unwrap();
    let options = RpcOptions {
        datadir: Some(datadir.clone()),
        ..Default::default()
    };
    let (url, credentials) = options.resolve(Network::Regtest).unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{port}/"));
    assert_eq!(
        credentials,
        Credentials::Cookie(datadir.join("regtest/.cookie"))
    );
    let client = RpcClient::new(&url, credentials).unwrap();
    assert_eq!(timed("call", client.get_block_count()).await.unwrap(), 0);
    // Without --network's section, the default port.
    let (url, _) = options.resolve(Network::Signet).unwrap();
    assert_eq!(url, "http://127.0.0.1:38332/");
    devchain.shutdown().await.unwrap();

    // rpcuser/rpcpassword in the network's section, beside a cookie: the password wins, as in
    // bitcoin-cli; `datadir=` moves the cookie but not the conf.
    let config = DevchainConfig {
        rpc_auth: RpcAuth::UserPassword {
            user: "alice".into(),
            password: "s3cret".into(),
        },
        ..DevchainConfig::ephemeral()
    };
    let devchain = timed("start", Devchain::start(config)).await.unwrap();
    let port = devchain.rpc_addr().port();
    std::fs::write(
        datadir.join("bitcoin.conf"),
        format!(
            "rpcuser=bob\nrpcpassword=wrong\nregtest.rpcuser=alice\n[regtest]\nrpcport={port}\n\
             rpcpassword=s3cret\n[main]\nrpcpassword=mainpw\n"
        ),
    )
    .unwrap();
    let (url, credentials) = options.resolve(Network::Regtest).unwrap();
    assert_eq!(
        credentials,
        Credentials::UserPassword {
            user: "alice".into(),
            password: "s3cret".into()
        }
    );
    let client = RpcClient::new(&url, credentials).unwrap();
    assert_eq!(timed("call", client.get_block_count()).await.unwrap(), 0);

    // Explicit options win over everything found on disk.
    let explicit = RpcOptions {
        url: Some("http://10.0.0.1:1/".into()),
        cookie: Some("/tmp/c".into()),
        datadir: Some(datadir.clone()),
        ..Default::default()
    };
    assert_eq!(
        explicit.resolve(Network::Regtest).unwrap(),
        (
            "http://10.0.0.1:1/".into(),
            Credentials::Cookie("/tmp/c".into())
        )
    );

    let elsewhere = home.path().join("elsewhere");
    std::fs::write(
        datadir.join("bitcoin.conf"),
        format!(
            "datadir={}\n[signet]\nrpccookiefile=my.cookie\n",
            elsewhere.display()
        ),
    )
    .unwrap();
    assert_eq!(
        options.resolve(Network::Testnet4).unwrap().1,
        Credentials::Cookie(elsewhere.join("testnet4/.cookie"))
    );
    assert_eq!(
        options.resolve(Network::Signet).unwrap().1,
        Credentials::Cookie(elsewhere.join("signet/my.cookie"))
    );
    assert_eq!(
        options.resolve(Network::Bitcoin).unwrap(),
        (
            "http://127.0.0.1:8332/".into(),
            Credentials::Cookie(elsewhere.join(".cookie"))
        )
    );
    devchain.shutdown().await.unwrap();
}

/// Serve one canned reply (raw bytes) to every connection; `None` accepts and never answers.
async fn fake_server(reply: Option<Vec<u8>>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                match reply {
                    Some(reply) => {
                        let _ = stream.write_all(&reply).await;
                        let _ = stream.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    addr
}

/// Regression: a reply of any shape is a typed error with the right class, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_replies_are_typed_errors() {
    let cases: [(&[u8], bool); 6] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{bad}", false),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", false),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n{\"result\":\"zz\",\"error\":null}   ",
            false,
        ),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
            true,
        ),
        (b"\xf9\xbe\xb4\xd9version\0\0\0\0\0garbage", false),
        // The connection closes mid-reply.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"res",
            true,
        ),
    ];
    for (reply, transient) in cases {
        let addr = fake_server(Some(reply.to_vec())).await;
        let client = RpcClient::new(&format!("http://{addr}/"), Credentials::None).unwrap();
        let err = timed("call", client.get_best_block_hash())
            .await
            .unwrap_err();
        assert_eq!(err.is_transient(), transient, "{err:?} for {reply:?}");
        let err = timed("gbt", client.get_block_template(None))
            .await
            .unwrap_err();
        assert_eq!(err.is_transient(), transient, "{err:?} for {reply:?}");
    }
    let addr = fake_server(None).await;
    let client = RpcClient::new(&format!("http://{addr}/"), Credentials::None)
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let err = timed("call", client.get_block_count()).await.unwrap_err();
    assert!(matches!(err, RpcError::Timeout(_)), "{err:?}");
    assert!(err.is_transient());
}

fn http_ok(result: serde_json::Value) -> Vec<u8> {
    let body = json!({"result": result, "error": null, "id": 1}).to_string();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One reply that parses as `getblockchaininfo`, `getnetworkinfo` and `getblocktemplate` alike
/// (unknown fields are ignored), for a fake bitcoind answering every call the same.
fn universal_reply(chain: &str, ibd: bool, rules: &[&str]) -> Vec<u8> {
    http_ok(json!({
        "chain": chain, "blocks": 10, "headers": 20, "bestblockhash": "11".repeat(32),
        "initialblockdownload": ibd, "verificationprogress": 0.5,
        "version": 1, "subversion": "/Satoshi:28.0.0/", "protocolversion": 70016,
        "previousblockhash": "11".repeat(32), "transactions": [], "coinbasevalue": 1,
        "longpollid": "x", "target": "00".repeat(32), "mintime": 1, "curtime": 2,
        "bits": "1d00ffff", "height": 11, "rules": rules,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_checks_wait_for_ibd_and_need_segwit() {
    init_tracing();
    let fake = |reply| async move {
        let addr = fake_server(Some(reply)).await;
        RpcClient::new(&format!("http://{addr}/"), Credentials::None).unwrap()
    };
    let ok = fake(universal_reply("main", false, &["csv", "!segwit"])).await;
    let info = timed("checks", startup_checks(&ok, Network::Bitcoin))
        .await
        .unwrap();
    assert_eq!(info.subversion, "/Satoshi:28.0.0/");

    let syncing = fake(universal_reply("main", true, &["!segwit"])).await;
    let err = timed("checks", startup_checks(&syncing, Network::Bitcoin))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StartupError::InitialBlockDownload { .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("50.0%"), "{err}");
    // Only mainnet waits for the initial block download.
    let testnet = fake(universal_reply("testnet4", true, &["!segwit"])).await;
    timed("checks", startup_checks(&testnet, Network::Testnet4))
        .await
        .unwrap();

    let old = fake(universal_reply("main", false, &["csv"])).await;
    let err = timed("checks", startup_checks(&old, Network::Bitcoin))
        .await
        .unwrap_err();
    assert!(matches!(err, StartupError::NoSegwit(_)), "{err:?}");
    assert!(!err.is_transient());
}
