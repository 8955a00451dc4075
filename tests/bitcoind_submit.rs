//! The block submitter against the devchain: a block built from the template lands through RPC
//! and P2P together, through P2P alone when `submitblock` fails (wrong password, dead port), and
//! through RPC alone when the P2P link is down. Outcomes are recorded, newest first.

#![cfg(feature = "devchain")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::{Block, BlockHash, Network};
use common::*;
use p2pool::bitcoind::{
    Backoff, BitcoindP2p, Credentials, P2pConfig, RpcClient, SubmitBlockResult,
};
use p2pool::devchain::Devchain;
use p2pool::submit::{BlockSubmitter, P2pOutcome, RpcOutcome, SubmitConfig};
use serde_json::json;

fn credentials(devchain: &Devchain) -> Credentials {
    let (user, password) = devchain.rpc_auth();
    Credentials::UserPassword {
        user: user.into(),
        password: password.into(),
    }
}

fn client(devchain: &Devchain) -> RpcClient {
    RpcClient::new(&devchain.rpc_url(), credentials(devchain)).unwrap()
}

async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn config() -> SubmitConfig {
    SubmitConfig {
        rpc_retry_for: Duration::from_millis(500),
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
        p2p_wait: Duration::from_millis(200),
        p2p_confirm_wait: Duration::from_secs(5),
        history: 2,
    }
}

async fn p2p_link(addr: SocketAddr) -> BitcoindP2p {
    BitcoindP2p::spawn(P2pConfig {
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(200)),
        ..P2pConfig::new(addr, Network::Regtest)
    })
}

async fn connected(p2p: &BitcoindP2p) {
    timed("p2p handshake", p2p.connected().wait_for(|c| *c))
        .await
        .unwrap();
}

/// A valid block on the current tip, with the coinbase witness a P2P `block` needs.
async fn next_block(rpc: &Rpc) -> Block {
    let mut block = block_from_template(&template(rpc).await, |_| {});
    grind(&mut block.header, true);
    block
}

async fn wait_tip(rpc: &Rpc, hash: BlockHash) {
    timed("tip", async {
        while rpc.call("getbestblockhash", json!([])).await != json!(hash.to_string()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_lands_by_rpc_and_p2p() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let p2p = p2p_link(devchain.p2p_addr()).await;
    connected(&p2p).await;
    let submitter = BlockSubmitter::new(client(&devchain), Some(p2p), config());
    let block = next_block(&rpc).await;
    let found = timed("submit", submitter.submit(block.clone())).await;
    assert_eq!(found.hash, block.block_hash());
    assert_eq!(found.height, Some(1));
    assert_eq!(found.p2p, P2pOutcome::Sent);
    // Whichever path arrived first, bitcoind has the block.
    assert!(
        matches!(
            found.rpc,
            RpcOutcome::Answered(SubmitBlockResult::Accepted | SubmitBlockResult::Duplicate)
        ),
        "{found:?}"
    );
    assert_eq!(found.accepted, Some(true));
    wait_tip(&rpc, block.block_hash()).await;

    // A block that misses its target is rejected, and recorded so.
    let mut bad = block_from_template(&template(&rpc).await, |_| {});
    grind(&mut bad.header, false);
    let found = timed("submit", submitter.submit(bad)).await;
    assert_eq!(
        found.rpc,
        RpcOutcome::Answered(SubmitBlockResult::Rejected("high-hash".into()))
    );
    assert_eq!(found.accepted, Some(false));
    let recent = submitter.recent();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0], found);
    assert_eq!(recent[1].hash, block.block_hash());
    // The record is bounded.
    let block = next_block(&rpc).await;
    timed("submit", submitter.submit(block.clone())).await;
    let recent = submitter.recent();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].hash, block.block_hash());
    assert!(serde_json::to_value(&recent).is_ok());
    devchain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_lands_by_p2p_when_rpc_fails() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let p2p = p2p_link(devchain.p2p_addr()).await;
    connected(&p2p).await;

    // Wrong password: persistent, no retry.
    let wrong = RpcClient::new(
        &devchain.rpc_url(),
        Credentials::UserPassword {
            user: "__cookie__".into(),
            password: "wrong".into(),
        },
    )
    .unwrap();
    let submitter = BlockSubmitter::new(wrong, Some(p2p.clone()), config());
    let block = next_block(&rpc).await;
    let found = timed("submit", submitter.submit(block.clone())).await;
    assert!(
        matches!(found.rpc, RpcOutcome::Failed { attempts: 1, .. }),
        "{found:?}"
    );
    assert_eq!(found.p2p, P2pOutcome::Sent);
    assert_eq!(
        found.accepted,
        Some(true),
        "bitcoind's active chain, asked over P2P, has the block"
    );
    assert!(found.delivered());
    wait_tip(&rpc, block.block_hash()).await;

    // A block bitcoind refuses is not taken for accepted when only P2P reached it.
    let mut bad = block_from_template(&template(&rpc).await, |_| {});
    grind(&mut bad.header, false);
    let found = timed("submit", submitter.submit(bad)).await;
    assert_eq!(found.p2p, P2pOutcome::Sent);
    assert_eq!(found.accepted, None, "{found:?}");
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(1));
    connected(&p2p).await;

    // Dead port: transient, retried until the retry window closes.
    let dead =
        RpcClient::new(&format!("http://{}/", dead_addr().await), Credentials::None).unwrap();
    let submitter = BlockSubmitter::new(dead, Some(p2p.clone()), config());
    let block = next_block(&rpc).await;
    let found = timed("submit", submitter.submit(block.clone())).await;
    assert!(
        matches!(found.rpc, RpcOutcome::Failed { attempts, .. } if attempts > 1),
        "{found:?}"
    );
    assert_eq!(found.p2p, P2pOutcome::Sent);
    wait_tip(&rpc, block.block_hash()).await;
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(2));

    // A block whose coinbase lacks the witness reserved value still lands over P2P: the
    // submitter adds it, as submitblock would.
    let mut block = next_block(&rpc).await;
    block.txdata[0].input[0].witness.clear();
    let submitter = BlockSubmitter::new(
        RpcClient::new(&format!("http://{}/", dead_addr().await), Credentials::None).unwrap(),
        Some(p2p_link(devchain.p2p_addr()).await),
        SubmitConfig {
            rpc_retry_for: Duration::ZERO,
            p2p_wait: Duration::from_secs(10),
            ..config()
        },
    );
    let found = timed("submit", submitter.submit(block.clone())).await;
    assert_eq!(found.p2p, P2pOutcome::Sent);
    wait_tip(&rpc, block.block_hash()).await;
    devchain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_lands_by_rpc_when_p2p_is_down() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let p2p = p2p_link(dead_addr().await).await;
    let submitter = BlockSubmitter::new(client(&devchain), Some(p2p), config());
    let block = next_block(&rpc).await;
    let found = timed("submit", submitter.submit(block.clone())).await;
    assert_eq!(found.rpc, RpcOutcome::Answered(SubmitBlockResult::Accepted));
    assert!(matches!(found.p2p, P2pOutcome::Failed(_)), "{found:?}");
    assert_eq!(found.accepted, Some(true));
    wait_tip(&rpc, block.block_hash()).await;

    // Neither path: recorded as undelivered (and logged with the block's hex).
    let dead =
        RpcClient::new(&format!("http://{}/", dead_addr().await), Credentials::None).unwrap();
    let submitter = BlockSubmitter::new(dead, None, config());
    let found = timed("submit", submitter.submit(next_block(&rpc).await)).await;
    assert_eq!(found.p2p, P2pOutcome::Disabled);
    assert!(!found.delivered());
    assert_eq!(submitter.recent(), vec![found]);
    devchain.shutdown().await.unwrap();
}

/// The whole bitcoind side from command-line options: cookie found in the data directory,
/// checks passed, a found block lands and refreshes the template; a wrong network is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_from_options_and_mine() {
    use clap::Parser;
    use p2pool::bitcoind::{Bitcoind, BitcoindArgs, TemplateConfig};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bitcoind: BitcoindArgs,
    }

    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let cookie = devchain.cookie_path().unwrap().display().to_string();
    let url = devchain.rpc_url();
    let p2p = devchain.p2p_addr().to_string();
    let cli = Cli::try_parse_from([
        "p2pool",
        "--bitcoind-rpc",
        &url,
        "--bitcoind-rpc-cookie",
        &cookie,
        "--bitcoind-p2p",
        &p2p,
    ])
    .unwrap();
    let bitcoind = timed(
        "connect",
        Bitcoind::connect(
            &cli.bitcoind,
            Network::Regtest,
            Backoff::default(),
            TemplateConfig {
                long_poll: false,
                slow_poll: Duration::from_secs(3600),
                ..TemplateConfig::default()
            },
            config(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(bitcoind.info.chain, "regtest");
    connected(bitcoind.p2p.as_ref().unwrap()).await;
    let block = next_block(&rpc).await;
    let found = timed("submit", bitcoind.submitter.submit(block.clone())).await;
    assert_eq!(found.accepted, Some(true));
    assert_eq!(found.p2p, P2pOutcome::Sent);
    // The submitter refreshes the template: bitcoind does not announce our own block back to us.
    let mut templates = bitcoind.templates.templates();
    timed(
        "template on the new tip",
        templates.wait_for(|t| t.previous_block_hash == block.block_hash()),
    )
    .await
    .unwrap();
    // A wrong network is refused at once.
    let err = timed(
        "connect",
        Bitcoind::connect(
            &cli.bitcoind,
            Network::Signet,
            Backoff::default(),
            TemplateConfig::default(),
            config(),
        ),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("regtest"), "{err}");
    devchain.shutdown().await.unwrap();
}
