//! PoSpace shares over the real share network on loopback: two nodes each run the share service
//! of the Chia proof-of-space kind (real libp2p swarms under the kind's own topic and sync
//! protocol, real redb stores, shares carrying real chiapos k18 proofs and BLS signatures).
//!
//! ```text
//! sync:     A(6 shares) ── B     B fetches A's chain and verifies it
//! gossip:   A mines 6 more       B takes each from gossip and verifies it
//! restart:  B stops, starts      B loads all 12 from its store; they wait for their signage
//!                                points, then verify again
//! ```

use std::path::Path;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use p2pool::p2p::{self, P2pConfig};
use p2pool::shares::{PoSpace, PoSpaceService, ShareKind};
use p2pool::store::ShareStore;
use sharechain::pospace_share::testkit::ProofBook;
use sharechain::pospace_share::{
    new_pospace_tracker, required_difficulty, ChiaNetwork, PoSpaceShare,
};
use sharechain::{NetworkParams, ShareHash};
use wait::{check, wait_until};

mod crash;
mod wait;

const PROOFS: &str = include_str!("../sharechain/tests/vectors/chia/pospace_share_proofs_k18.csv");
const SHARES: usize = 12;

fn network() -> &'static ChiaNetwork {
    &ChiaNetwork::REGTEST
}

fn book() -> &'static ProofBook {
    static BOOK: std::sync::OnceLock<ProofBook> = std::sync::OnceLock::new();
    BOOK.get_or_init(|| ProofBook::parse(PROOFS))
}

/// One chain of `n` shares, share `i` answering proof `i` of the book, each with the difficulty
/// its chain requires and two seconds after its parent.
fn chain(n: usize) -> Vec<PoSpaceShare> {
    let net = network();
    let mut builder = new_pospace_tracker(net);
    for i in 0..n {
        builder
            .verifier_mut()
            .signage_points_mut()
            .insert(book().signage_point(i));
    }
    let mut out: Vec<PoSpaceShare> = Vec::new();
    for i in 0..n {
        let prev = out.last().map(PoSpaceShare::hash);
        let difficulty = required_difficulty(net, builder.chain(), prev.as_ref());
        let content = book().content(
            i,
            prev,
            difficulty,
            1_700_000_000 + 2 * i as u64,
            [i as u8; 32],
        );
        let share = book().share(&content, net);
        let changes = builder.insert(share.clone()).expect("insert");
        assert!(
            changes.invalid.is_empty(),
            "share {i}: {:?}",
            changes.invalid
        );
        assert!(
            builder.chain().is_verified(&share.hash()),
            "share {i} verifies"
        );
        out.push(share);
    }
    out
}

/// The node's signage points: those of the book's first proofs (the ones the chain answers).
async fn learn_signage_points(svc: &PoSpaceService) {
    learn_signage_points_of(svc, SHARES).await;
}

/// The signage points of the first `n` shares of [`chain`].
async fn learn_signage_points_of(svc: &PoSpaceService, n: usize) {
    svc.update_rules(move |v| {
        for i in 0..n {
            v.signage_points_mut().insert(book().signage_point(i));
        }
    })
    .await
    .expect("service running");
}

/// A PoSpace share service on loopback, storing in `dir`, dialling `bootstrap`.
async fn node(dir: &Path, bootstrap: Vec<Multiaddr>) -> (PoSpaceService, Multiaddr) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // The share network's Bitcoin parameters only set defaults (port, bootstrap section): the
    // swarm carries the PoSpace kind's names.
    let mut cfg = P2pConfig::new(&NetworkParams::REGTEST);
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.bootstrap = bootstrap;
    cfg.datadir = Some(dir.to_owned());
    cfg.target_peers = 1;
    cfg.names = Some(PoSpace::names(network()));
    let (h, rx) = p2p::spawn(cfg).await.expect("network starts");
    let addr = h.listen_addrs().await[0]
        .clone()
        .with_p2p(h.local_peer_id())
        .unwrap();
    let store = ShareStore::open(&dir.join("shares.redb")).unwrap();
    let svc = PoSpaceService::start(network(), store, h, rx)
        .await
        .expect("service starts");
    (svc, addr)
}

/// What `svc` holds of `shares`: (held, verified) counts and its best share.
async fn holding(
    svc: &PoSpaceService,
    shares: &[PoSpaceShare],
) -> (usize, usize, Option<ShareHash>) {
    let hashes: Vec<ShareHash> = shares.iter().map(PoSpaceShare::hash).collect();
    svc.query(move |t| {
        let held = hashes.iter().filter(|h| t.chain().contains(h)).count();
        let verified = hashes.iter().filter(|h| t.chain().is_verified(h)).count();
        (held, verified, t.best())
    })
    .await
    .expect("the share service runs")
}

async fn wait_verified(what: &str, svc: &PoSpaceService, shares: &[PoSpaceShare]) {
    let tip = shares.last().map(PoSpaceShare::hash);
    let n = shares.len();
    wait_until(what, Duration::from_secs(30), || async {
        let seen = holding(svc, shares).await;
        check(seen.1 == n && seen.2 == tip, seen)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pospace_shares_sync_gossip_verify_and_survive_a_restart() {
    let shares = chain(SHARES);
    let (first, second) = shares.split_at(SHARES / 2);
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();

    let (a, addr_a) = node(dir_a.path(), vec![]).await;
    learn_signage_points(&a).await;
    for s in first {
        a.submit_local_share(s.clone())
            .await
            .expect("A takes its own share");
    }
    assert_eq!(
        holding(&a, first).await,
        (first.len(), first.len(), Some(first[5].hash()))
    );

    // Sync: B joins late and fetches A's chain.
    let (b, _) = node(dir_b.path(), vec![addr_a.clone()]).await;
    learn_signage_points(&b).await;
    wait_verified("B to sync and verify A's chain", &b, first).await;

    // Gossip: A's new shares reach B one by one; B verifies each.
    for s in second {
        a.submit_local_share(s.clone())
            .await
            .expect("A takes its own share");
    }
    wait_verified("B to take A's gossiped shares", &b, &shares).await;
    let a_id: PeerId = a.p2p().local_peer_id();
    let seen = b
        .first_seen(&shares[SHARES - 1].hash())
        .expect("first seen");
    assert_eq!(seen.peer, Some(a_id), "B took the last share from A");
    assert_eq!(b.snapshot().height, SHARES as u32);
    assert_eq!(b.snapshot().invalid, 0);

    // Restart: B loads every share from its store; they wait for their signage points.
    b.shutdown().await;
    drop(b);
    let (b, _) = node(dir_b.path(), vec![]).await;
    let (held, verified, _) = holding(&b, &shares).await;
    assert_eq!(
        (held, verified),
        (SHARES, 0),
        "loaded, pending until the signage points are known"
    );
    learn_signage_points(&b).await;
    wait_verified("B to verify its stored chain again", &b, &shares).await;

    b.shutdown().await;
    a.shutdown().await;
}

/// Bytes that are not a PoSpace share are refused with a typed error before anything costly.
#[test]
fn malformed_pospace_bytes_are_refused() {
    let share = &chain(1)[0];
    let mut bytes = PoSpace::encode(share);
    assert_eq!(
        PoSpace::decode(&bytes, network(), 1_700_000_000)
            .expect("round trip")
            .hash(),
        share.hash()
    );
    bytes.push(0);
    assert!(PoSpace::decode(&bytes, network(), 1_700_000_000).is_err());
    bytes.truncate(10);
    assert!(PoSpace::decode(&bytes, network(), 1_700_000_000).is_err());
}

/// Shares of the crash test's stream (nothing is pruned: every acked share must stay).
const CRASH_SHARES: usize = 60;

/// The crash test's child role (`POSPACE_CRASH_CHILD` names its data directory): the PoSpace
/// share service takes the shares of [`chain`] it does not hold yet, printing `ack <hash>` once
/// each is durably stored, as a harvester's proof is acknowledged.
#[test]
fn pospace_crash_child() {
    let Ok(dir) = std::env::var("POSPACE_CRASH_CHILD") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        use std::io::Write;
        let (svc, _) = node(Path::new(&dir), vec![]).await;
        learn_signage_points_of(&svc, CRASH_SHARES).await;
        let mut out = std::io::stdout();
        let loaded = svc.view().shares;
        writeln!(out, "loaded {loaded}").unwrap();
        for share in chain(CRASH_SHARES) {
            let hash = share.hash();
            if svc.query(move |t| t.chain().contains(&hash)).await.unwrap() {
                continue;
            }
            svc.submit_local_share(share).await.expect("stored");
            writeln!(out, "ack {hash}").unwrap();
            out.flush().unwrap();
        }
        writeln!(out, "best {}", svc.best_share_hash().expect("a best share")).unwrap();
        writeln!(out, "done").unwrap();
        out.flush().unwrap();
    });
}

/// `kill -9` of a node in the middle of taking PoSpace shares, several times: every share it
/// acknowledged is in its store after each restart, and the last run ends on the chain's tip.
#[test]
fn kill_9_while_taking_pospace_shares_loses_no_acknowledged_share() {
    use std::collections::HashSet;
    if std::env::var("POSPACE_CRASH_CHILD").is_ok() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    std::fs::create_dir_all(&dir).unwrap();
    // Kill after these many acks in each run (varied, including right at start-up).
    let crash::Rounds { acked, last_best } = crash::kill_and_restart(
        "pospace_crash_child",
        "POSPACE_CRASH_CHILD",
        &dir,
        &[9, 1, 20, 0, 13],
    );
    let tip = chain(CRASH_SHARES).last().map(|s| s.hash().to_string());
    assert_eq!(last_best, tip);
    let store = ShareStore::open(&dir.join("shares.redb"))
        .unwrap()
        .table(PoSpace::TABLE)
        .unwrap();
    let held: HashSet<String> = store
        .load()
        .unwrap()
        .into_iter()
        .map(|(h, _)| h.to_string())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|h| !held.contains(*h)).collect();
    assert!(lost.is_empty(), "acked shares lost: {lost:?}");
    assert_eq!(held.len(), CRASH_SHARES);
}
