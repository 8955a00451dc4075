//! New tips reach the node: a long poll returns when a block is mined, the P2P link reports the
//! new tip, and the template source publishes a new template from either path (and from its slow
//! poll alone).

#![cfg(feature = "devchain")]

mod common;

use std::time::Duration;

use bitcoin::{BlockHash, Network};
use common::*;
use p2pool::bitcoind::{
    Backoff, BitcoindP2p, Credentials, P2pConfig, RpcClient, TemplateConfig, TemplateSource,
};
use p2pool::devchain::Devchain;
use serde_json::json;

fn client(devchain: &Devchain) -> RpcClient {
    let (user, password) = devchain.rpc_auth();
    let credentials = Credentials::UserPassword {
        user: user.into(),
        password: password.into(),
    };
    RpcClient::new(&devchain.rpc_url(), credentials).unwrap()
}

async fn mine(rpc: &Rpc, n: u64) -> BlockHash {
    let hashes = rpc
        .call(
            "generatetoaddress",
            json!([n, op_true_address().to_string()]),
        )
        .await;
    hashes
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn p2p_config(devchain: &Devchain) -> P2pConfig {
    P2pConfig {
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(200)),
        ..P2pConfig::new(devchain.p2p_addr(), Network::Regtest)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_when_a_block_is_mined() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let client = client(&devchain);
    let first = client.get_block_template(None).await.unwrap();
    let poll = tokio::spawn({
        let client = client.clone();
        let id = first.longpollid.clone();
        async move { client.get_block_template(Some(&id)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished(), "the long poll waits for a change");
    let tip = mine(&rpc, 1).await;
    let next = timed("long poll", poll).await.unwrap().unwrap();
    assert_eq!(next.previous_block_hash, tip);
    assert_eq!(next.height, first.height + 1);
    devchain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2p_link_reports_new_tips() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let p2p = BitcoindP2p::spawn(p2p_config(&devchain));
    let mut connected = p2p.connected();
    timed("p2p handshake", connected.wait_for(|c| *c))
        .await
        .unwrap();
    let mut tips = p2p.tips();
    for _ in 0..2 {
        let tip = mine(&rpc, 1).await;
        let announced = timed("announcement", tips.wait_for(|t| *t == Some(tip))).await;
        assert!(announced.is_ok());
    }
    devchain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_source_follows_the_tip() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let client = client(&devchain);

    // Long polling alone (no P2P, a slow poll that never fires in time).
    let config = TemplateConfig {
        slow_poll: Duration::from_secs(3600),
        ..TemplateConfig::default()
    };
    let long_poll = TemplateSource::start(client.clone(), config.clone(), None)
        .await
        .unwrap();
    // P2P announcements alone (no long poll).
    let p2p = BitcoindP2p::spawn(p2p_config(&devchain));
    timed("p2p handshake", p2p.connected().wait_for(|c| *c))
        .await
        .unwrap();
    let by_p2p = TemplateSource::start(
        client.clone(),
        TemplateConfig {
            long_poll: false,
            ..config.clone()
        },
        Some(p2p.tips()),
    )
    .await
    .unwrap();
    // The slow poll alone.
    let by_poll = TemplateSource::start(
        client.clone(),
        TemplateConfig {
            long_poll: false,
            slow_poll: Duration::from_millis(100),
            ..config
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(long_poll.current().height, 1);

    for height in 2..=3 {
        let tip = mine(&rpc, 1).await;
        for source in [&long_poll, &by_p2p, &by_poll] {
            let mut templates = source.templates();
            let t = timed(
                "new template",
                templates.wait_for(|t| t.previous_block_hash == tip),
            )
            .await
            .unwrap()
            .clone();
            assert_eq!(t.height, height);
        }
    }

    // A forced refresh is merged and harmless.
    let refresh = by_p2p.refresher();
    refresh.refresh();
    refresh.refresh();
    assert_eq!(by_p2p.current().height, 3);
    devchain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_source_survives_a_bitcoind_restart() {
    init_tracing();
    let datadir = tempfile::tempdir().unwrap();
    let config = p2pool::devchain::DevchainConfig {
        datadir: Some(datadir.path().to_path_buf()),
        rpc_auth: p2pool::devchain::RpcAuth::UserPassword {
            user: "u".into(),
            password: "p".into(),
        },
        ..p2pool::devchain::DevchainConfig::ephemeral()
    };
    let first = timed("start", Devchain::start(config.clone()))
        .await
        .unwrap();
    let addr = first.rpc_addr();
    let client = RpcClient::new(
        &first.rpc_url(),
        Credentials::UserPassword {
            user: "u".into(),
            password: "p".into(),
        },
    )
    .unwrap();
    let source = TemplateSource::start(
        client,
        TemplateConfig {
            slow_poll: Duration::from_millis(100),
            backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
            ..TemplateConfig::default()
        },
        None,
    )
    .await
    .unwrap();
    let p2p_addr = first.p2p_addr();
    let p2p = BitcoindP2p::spawn(P2pConfig {
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(200)),
        ..P2pConfig::new(p2p_addr, Network::Regtest)
    });
    let mut connected = p2p.connected();
    timed("p2p up", connected.wait_for(|c| *c)).await.unwrap();
    first.shutdown().await.unwrap();
    timed("p2p down", connected.wait_for(|c| !*c))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The last template stays published while bitcoind is away.
    assert_eq!(source.current().height, 1);
    let second = timed(
        "restart",
        Devchain::start(p2pool::devchain::DevchainConfig {
            rpc_addr: addr,
            p2p_addr,
            ..config
        }),
    )
    .await
    .unwrap();
    let rpc = Rpc::new(&second);
    let tip = mine(&rpc, 1).await;
    let mut templates = source.templates();
    timed(
        "template after restart",
        templates.wait_for(|t| t.previous_block_hash == tip),
    )
    .await
    .unwrap();
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_mempool_transaction_refreshes_the_template() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    mine(&rpc, 101).await;
    let source = TemplateSource::start(
        client(&devchain),
        TemplateConfig {
            long_poll: false,
            slow_poll: Duration::from_millis(100),
            ..TemplateConfig::default()
        },
        None,
    )
    .await
    .unwrap();
    assert!(source.current().transactions.is_empty());
    let (outpoint, value) = coinbase_at(&rpc, 1).await;
    let tx = spend_op_true(outpoint, value, bitcoin::Amount::from_sat(1_000));
    rpc.call(
        "sendrawtransaction",
        json!([bitcoin::consensus::encode::serialize_hex(&tx)]),
    )
    .await;
    let mut templates = source.templates();
    let t = timed(
        "template with the tx",
        templates.wait_for(|t| !t.transactions.is_empty()),
    )
    .await
    .unwrap()
    .clone();
    assert_eq!(t.transactions[0].txid, tx.compute_txid());
    assert_eq!(t.height, 102);
    devchain.shutdown().await.unwrap();
}
