//! In-process share-network tests on loopback: real libp2p swarms, real redb stores, real shares
//! mined at easy targets.
//!
//! ```text
//! line:       A ── B ── C            every node ends on one best share
//! late join:  A(300 shares) ── D     D syncs the whole chain
//! partition:  A ╳ B, then A ── B     both end on the most-work branch
//! ban:        M ── A ── B            M sends junk: A bans M, B still gets A's shares
//! networks:   regtest X ╳ testnet4 Y they connect, see another network, and part
//! ```

use std::path::Path;
use std::time::Duration;

use bitcoin::hashes::Hash;
use libp2p::Multiaddr;
use p2pool::p2p::{self, P2pConfig, P2pHandle};
use p2pool::shares::ShareService;
use p2pool::store::ShareStore;
use sharechain::encode::Encode;
use sharechain::share::ShareError;
use sharechain::testkit::{easy_params, next_share_on, p2wpkh};
use sharechain::{CheckedShare, NetworkParams, ShareHash};
use wait::{check, holds_for, wait_until};

mod wait;

struct Node {
    svc: ShareService,
    addr: Multiaddr,
    _dir: tempfile::TempDir,
}

fn params() -> &'static NetworkParams {
    easy_params(&NetworkParams::REGTEST, 120, 10)
}

type Net = (
    P2pHandle,
    tokio::sync::mpsc::Receiver<p2p::Inbound>,
    Multiaddr,
);

async fn net(params: &'static NetworkParams, bootstrap: Vec<Multiaddr>, dir: &Path) -> Net {
    net_with(params, bootstrap, dir, |_| {}).await
}

async fn net_with(
    params: &'static NetworkParams,
    bootstrap: Vec<Multiaddr>,
    dir: &Path,
    tweak: impl FnOnce(&mut P2pConfig),
) -> Net {
    let mut cfg = P2pConfig::new(params);
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.bootstrap = bootstrap;
    cfg.datadir = Some(dir.to_owned());
    // Keep lines lines: no kad-driven extra connections.
    cfg.target_peers = 1;
    tweak(&mut cfg);
    let (h, rx) = p2p::spawn(cfg).await.expect("network starts");
    let addr = h.listen_addrs().await[0]
        .clone()
        .with_p2p(h.local_peer_id())
        .unwrap();
    (h, rx, addr)
}

async fn node(params: &'static NetworkParams, bootstrap: Vec<Multiaddr>) -> Node {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let (h, rx, addr) = net(params, bootstrap, dir.path()).await;
    let store = ShareStore::open(&dir.path().join("shares.redb")).unwrap();
    let svc = ShareService::start(params, store, h, rx).await.unwrap();
    Node {
        svc,
        addr,
        _dir: dir,
    }
}

/// The ids of `h`'s connected peers, and whether each is ready: what a failed wait shows.
async fn peer_ids(h: &P2pHandle) -> Vec<(libp2p::PeerId, bool)> {
    h.peers().await.iter().map(|p| (p.peer, p.ready)).collect()
}

/// Mines `n` shares on `node`'s best share and submits them as its miners would.
async fn mine(node: &Node, n: u32, tag: u32) -> Vec<ShareHash> {
    let params = node.svc.params();
    let mut out = Vec::new();
    for i in 0..n {
        let view = node.svc.view();
        let (height, ts) = view
            .kind
            .best_share()
            .map(|s| {
                (
                    s.share().share_info.absheight,
                    s.share().share_info.timestamp,
                )
            })
            .unwrap_or((0, 1_700_000_000));
        let base = view.kind.work.as_ref().expect("the best share is prepared");
        let share = next_share_on(
            base,
            p2wpkh(tag),
            ts + params.share_period,
            height + i + tag,
        )
        .unwrap();
        out.push(node.svc.submit_local_share(share).await.unwrap());
    }
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_in_a_line_converge() {
    let p = params();
    let a = node(p, vec![]).await;
    let b = node(p, vec![a.addr.clone()]).await;
    let c = node(p, vec![b.addr.clone()]).await;
    let nodes = [&a, &b, &c];
    let before = unix_now();
    mine(&a, 10, 1).await;
    let best = a.svc.best_share_hash();
    wait_for("A's shares on C", 20, || {
        nodes.iter().all(|n| n.svc.best_share_hash() == best)
    })
    .await;
    // Each node knows when a share arrived, and from which peer (none: its own miners).
    let best_hash = best.unwrap();
    let ids: Vec<_> = nodes.iter().map(|n| n.svc.p2p().local_peer_id()).collect();
    for (i, n) in nodes.iter().enumerate() {
        let seen = n.svc.first_seen(&best_hash).expect("first seen");
        assert!((before..=unix_now()).contains(&seen.time), "{seen:?}");
        if i == 0 {
            assert_eq!(seen.peer, None, "A's own share");
        } else {
            let peer = seen.peer.expect("received from a peer");
            assert!(peer != ids[i] && ids.contains(&peer), "{seen:?}");
        }
    }
    assert_eq!(
        b.svc.first_seen(&best_hash).and_then(|s| s.peer),
        Some(ids[0]),
        "B has only A to hear A's shares from"
    );
    // And the other way along the line.
    let tip = *mine(&c, 5, 2).await.last().unwrap();
    wait_for("C's shares on A", 20, || {
        nodes.iter().all(|n| n.svc.best_share_hash() == Some(tip))
    })
    .await;
    assert!(!a.svc.sync_status().behind);
    assert_eq!(a.svc.snapshot().height, 15);
    // P2Pool's `/web/best_share_hash` body: a JSON string of 64 hex digits.
    let json = c.svc.best_share_hash_json();
    assert_eq!(json, format!("\"{tip}\""));
    assert_eq!(json.len(), 66);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_syncs_the_whole_chain() {
    let p = params();
    let a = node(p, vec![]).await;
    mine(&a, 300, 3).await;
    let d = node(p, vec![a.addr.clone()]).await;
    wait_for("D synced", 60, || {
        d.svc.best_share_hash() == a.svc.best_share_hash()
    })
    .await;
    // Everything A keeps (it prunes beyond 2 × chain_length) reached D.
    let (na, nd) = (a.svc.snapshot().shares, d.svc.snapshot().shares);
    assert_eq!(na, nd);
    assert_eq!(d.svc.snapshot().height, 300);
    assert!(!d.svc.sync_status().behind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_converges_on_the_most_work_chain() {
    let p = params();
    let a = node(p, vec![]).await;
    let b = node(p, vec![]).await;
    // Common history, then each side mines alone.
    mine(&a, 20, 4).await;
    let base: Vec<CheckedShare> = a
        .svc
        .query(|t| {
            let best = t.best().unwrap();
            let mut v: Vec<CheckedShare> =
                t.chain().ancestors(&best).map(|s| (**s).clone()).collect();
            v.reverse();
            v
        })
        .await
        .unwrap();
    for s in base {
        b.svc.submit_local_share(s).await.unwrap();
    }
    mine(&a, 5, 5).await;
    let b_tip = *mine(&b, 9, 6).await.last().unwrap();
    assert_ne!(a.svc.best_share_hash(), b.svc.best_share_hash());
    b.svc.p2p().dial(a.addr.clone()).await;
    wait_for("convergence", 30, || {
        a.svc.best_share_hash() == Some(b_tip) && b.svc.best_share_hash() == Some(b_tip)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_invalid_shares_is_banned_and_others_are_unaffected() {
    let p = params();
    let a = node(p, vec![]).await;
    let b = node(p, vec![a.addr.clone()]).await;
    mine(&a, 3, 7).await;
    // A share whose proof of work fails: a valid share with another header nonce.
    let mut bad = a.svc.view().kind.best_share().unwrap().share().clone();
    loop {
        bad.min_header.nonce = bad.min_header.nonce.wrapping_add(1);
        if let Err(ShareError::HighHash { .. }) = CheckedShare::check(bad.clone(), p, u64::MAX / 4)
        {
            break;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (m, _m_rx, _) = net(p, vec![a.addr.clone()], dir.path()).await;
    let m_id = m.local_peer_id();
    wait_until("M connected to A", Duration::from_secs(10), || async {
        let peers = peer_ids(a.svc.p2p()).await;
        check(peers.iter().any(|(p, _)| *p == m_id), peers)
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        m.publish_share(bad.to_bytes()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if a.svc.snapshot().invalid > 0 && !a.svc.p2p().peers().await.iter().any(|p| p.peer == m_id)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "M was not banned");
    }
    // Banned: M cannot come back, not even for a moment.
    m.dial(a.addr.clone()).await;
    holds_for("M kept out of A", Duration::from_millis(500), || async {
        let peers = peer_ids(a.svc.p2p()).await;
        check(!peers.iter().any(|(p, _)| *p == m_id), peers)
    })
    .await;
    // The honest pair still works.
    let tip = *mine(&a, 2, 8).await.last().unwrap();
    wait_for("B follows A", 20, || b.svc.best_share_hash() == Some(tip)).await;
    assert!(b
        .svc
        .p2p()
        .peers()
        .await
        .iter()
        .any(|p| p.peer == a.svc.p2p().local_peer_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_gets_its_sender_banned() {
    let p = params();
    let a = node(p, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let (m, _m_rx, _) = net(p, vec![a.addr.clone()], dir.path()).await;
    let m_id = m.local_peer_id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        m.publish_share(vec![0xff; 40]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if a.svc.snapshot().invalid > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "junk was not noticed"
        );
    }
    wait_until("M disconnected from A", Duration::from_secs(10), || async {
        let peers = peer_ids(a.svc.p2p()).await;
        check(!peers.iter().any(|(p, _)| *p == m_id), peers)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_different_networks_ignore_each_other() {
    let x = node(params(), vec![]).await;
    let y = node(
        easy_params(&NetworkParams::TESTNET4, 120, 10),
        vec![x.addr.clone()],
    )
    .await;
    mine(&x, 5, 9).await;
    mine(&y, 3, 10).await;
    // Y dials X at start; no share may cross while they meet and part.
    holds_for(
        "each node keeps its own shares",
        Duration::from_secs(2),
        || async {
            let counts = (x.svc.snapshot().shares, y.svc.snapshot().shares);
            check(counts == (5, 3), counts)
        },
    )
    .await;
    wait_until("X and Y parted", Duration::from_secs(10), || async {
        let peers = (peer_ids(x.svc.p2p()).await, peer_ids(y.svc.p2p()).await);
        check(peers.0.is_empty() && peers.1.is_empty(), peers)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_loads_its_chain_without_downloading() {
    let p = params();
    let dir = tempfile::tempdir().unwrap();
    let (best, held, newest) = {
        let (h, rx, _) = net(p, vec![], dir.path()).await;
        let store = ShareStore::open(&dir.path().join("shares.redb")).unwrap();
        let svc = ShareService::start(p, store, h, rx).await.unwrap();
        let n = Node {
            svc,
            addr: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            _dir: tempfile::tempdir().unwrap(),
        };
        // More than 2 × chain_length: the tracker prunes, and so must the store.
        let mined = mine(&n, 300, 11).await;
        let best = n.svc.best_share_hash();
        let held = n.svc.snapshot().shares;
        // First-seen entries leave with their pruned shares.
        assert!(n.svc.first_seen(&mined[0]).is_none());
        assert!(n.svc.first_seen(&mined[299]).is_some());
        n.svc.shutdown().await;
        (best, held, mined[299])
    };
    let bound = 2 * p.chain_length as usize + 1;
    assert!(held <= bound, "tracker holds {held} shares");
    let store = ShareStore::open(&dir.path().join("shares.redb")).unwrap();
    assert_eq!(
        store.len().unwrap() as usize,
        held,
        "the store is pruned with the tracker"
    );
    let (h, rx, _) = net(p, vec![], dir.path()).await;
    let svc = ShareService::start(p, store, h, rx).await.unwrap();
    assert_eq!(svc.best_share_hash(), best);
    assert_eq!(svc.snapshot().height, 300);
    assert_eq!(svc.snapshot().shares, held);
    assert!(svc.first_seen(&newest).is_none(), "loaded, not received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_blocks_and_bitcoin_tips_reach_every_node() {
    let p = params();
    let a = node(p, vec![]).await;
    let b = node(p, vec![a.addr.clone()]).await;
    let c = node(p, vec![b.addr.clone()]).await;
    let mut blocks = c.svc.p2p().subscribe_blocks();
    let mut tips = c.svc.p2p().subscribe_tips();
    let mut block = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    // Publish until the meshes are up and the messages arrive; gossip drops repeats, so each
    // attempt is a new block (another nonce meeting regtest's target).
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        let (mut got_block, mut got_tip) = (None, None);
        loop {
            loop {
                block.header.nonce = block.header.nonce.wrapping_add(1);
                if block.header.validate_pow(block.header.target()).is_ok() {
                    break;
                }
            }
            if got_block.is_none() {
                a.svc.p2p().publish_block(&block).await;
            }
            if got_tip.is_none() {
                a.svc.p2p().publish_tip(&block.header).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Ok((_, bytes)) = blocks.try_recv() {
                got_block = Some(bytes);
            }
            if let Ok((_, header)) = tips.try_recv() {
                got_tip = Some(header);
            }
            if let (Some(b), Some(t)) = (&got_block, &got_tip) {
                return (b.clone(), *t);
            }
        }
    })
    .await
    .expect("block and tip reach C");
    let got_block: bitcoin::Block = bitcoin::consensus::deserialize(&got.0).unwrap();
    assert!(got_block.check_merkle_root());
    assert!(got.1.validate_pow(got.1.target()).is_ok());
}

/// A peer claims a chain far above ours but never delivers it: the node stays "behind" (no work
/// for miners) and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_far_behind_its_peers_says_so() {
    use p2pool::p2p::ChainStatus;
    let p = params();
    let d = node(p, vec![]).await;
    mine(&d, 2, 12).await;

    // A peer claiming a long chain it never sends: a bare claim does not stop the node's work.
    let dir = tempfile::tempdir().unwrap();
    let claimed = ChainStatus {
        best: Some(ShareHash::from_byte_array([0x42; 32])),
        height: 500,
    };
    scripted_peer(p, &d, dir.path(), claimed, vec![]).await;
    wait_for("the liar connected", 20, || d.svc.snapshot().peers >= 1).await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = d.svc.sync_status();
        assert!(!status.behind, "{}", status.reason);
        assert_eq!(status.peer_height, 0);
    }

    // A peer whose best share (a real one, 30 shares up) arrives: now the node is behind, even
    // before the chain below it does.
    let (_chain, shares) = sharechain::testkit::build_chain(p, 30, &[p2wpkh(13)]);
    let tip = shares.last().unwrap().clone();
    let real = ChainStatus {
        best: Some(tip.hash()),
        height: tip.share().share_info.absheight,
    };
    let dir = tempfile::tempdir().unwrap();
    scripted_peer(p, &d, dir.path(), real, vec![tip.share().to_bytes()]).await;
    wait_for("behind", 20, || d.svc.sync_status().behind).await;
    let status = d.svc.sync_status();
    assert_eq!((status.height, status.peer_height), (2, real.height));
    assert!(
        status.reason.contains(&real.height.to_string()),
        "{}",
        status.reason
    );
    assert!(d.svc.snapshot().sync.behind);
}

/// A peer of `d` that answers every status request with `status` and every share request with
/// `shares`.
async fn scripted_peer(
    p: &'static NetworkParams,
    d: &Node,
    dir: &Path,
    status: p2pool::p2p::ChainStatus,
    shares: Vec<Vec<u8>>,
) {
    use p2pool::p2p::{Inbound, SyncRequest, SyncResponse};
    let (peer, mut rx, _) = net(p, vec![d.addr.clone()], dir).await;
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if let Inbound::Request { request, reply, .. } = msg {
                let response = match request {
                    SyncRequest::Status => SyncResponse::Status(status),
                    _ => SyncResponse::Shares {
                        status,
                        shares: shares.clone(),
                    },
                };
                peer.respond(reply, response).await;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_banned() {
    let p = params();
    let dir_a = tempfile::tempdir().unwrap();
    let (a, _a_rx, a_addr) = net_with(p, vec![], dir_a.path(), |c| {
        c.rate_per_sec = 1.0;
        c.rate_burst = 5.0;
    })
    .await;
    let dir_m = tempfile::tempdir().unwrap();
    let (m, _m_rx, _) = net(p, vec![a_addr], dir_m.path()).await;
    let (a_id, m_id) = (a.local_peer_id(), m.local_peer_id());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen_connected = false;
    loop {
        // A has no share service here: requests stay unanswered, only their number counts.
        for _ in 0..3 {
            let m = m.clone();
            tokio::spawn(async move { m.request(a_id, p2pool::p2p::SyncRequest::Status).await });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let connected = a.peers().await.iter().any(|p| p.peer == m_id);
        seen_connected |= connected;
        if seen_connected && !connected {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "M was not cut off");
    }
    // Banned: M's redial is refused.
    m.dial(a.listen_addrs().await[0].clone()).await;
    holds_for("M kept out of A", Duration::from_millis(500), || async {
        let peers = peer_ids(&a).await;
        check(!peers.iter().any(|(p, _)| *p == m_id), peers)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_find_each_other_through_kad() {
    let p = params();
    let more_peers = |c: &mut P2pConfig| c.target_peers = 8;
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, _ra, a_addr) = net_with(p, vec![], da.path(), more_peers).await;
    let (b, _rb, _) = net_with(p, vec![a_addr.clone()], db.path(), more_peers).await;
    let b_id = b.local_peer_id();
    // A must know B before C asks it: B is ready at A once identify has put B's addresses in
    // A's routing table.
    wait_until("B ready at A", Duration::from_secs(10), || async {
        let peers = peer_ids(&a).await;
        check(peers.contains(&(b_id, true)), peers)
    })
    .await;
    let (c, _rc, _) = net_with(p, vec![a_addr], dc.path(), more_peers).await;
    let c_id = c.local_peer_id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !c.peers().await.iter().any(|p| p.peer == b_id) {
        assert!(tokio::time::Instant::now() < deadline, "C never found B");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // B records the connection when its own event loop gets to it: wait for that too.
    while !b.peers().await.iter().any(|p| p.peer == c_id) {
        assert!(tokio::time::Instant::now() < deadline, "B never saw C");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = a;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_key_and_finds_its_peers_without_bootstrap() {
    let p = params();
    let (da, dx) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _ra, a_addr) = net(p, vec![], da.path()).await;
    let a_id = a.local_peer_id();
    let (x, _rx, _) = net(p, vec![a_addr], dx.path()).await;
    let x_id = x.local_peer_id();
    wait_until("X meets A", Duration::from_secs(10), || async {
        let peers = peer_ids(&x).await;
        check(peers.contains(&(a_id, true)), peers)
    })
    .await;
    x.shutdown().await;
    // The loop saves the address book as it stops.
    let book = dx.path().join("peers.txt");
    wait_for("address book", 10, || book.exists()).await;
    let (x2, _rx2, _) = net(p, vec![], dx.path()).await;
    assert_eq!(x2.local_peer_id(), x_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !x2.peers().await.iter().any(|p| p.peer == a_id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "X did not find A again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_starts_store_network_and_service_in_one_call() {
    let p = params();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = P2pConfig::new(p);
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let svc = ShareService::open(dir.path(), cfg).await.unwrap();
    assert_eq!(svc.best_share_hash_json(), "null");
    assert!(dir.path().join("shares.redb").exists());
    assert!(dir.path().join("node_key").exists());
    svc.shutdown().await;
}
