//! The share pipeline without sockets: shares come in as the network would deliver them, the
//! worker's verdicts, publications and penalties are recorded by a fake [`ShareNet`], and sync
//! requests go to a detached [`P2pHandle`].

use std::sync::Arc;
use std::time::Duration;

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use parking_lot::Mutex;
use sharechain::encode::Encode;
use sharechain::share::ShareError;
use sharechain::testkit::{build_chain, easy_params, next_share, p2wpkh};
use sharechain::{new_tracker, CheckedShare, NetworkParams};
use tokio::sync::mpsc;

use super::seen::unix_now;
use super::{ShareNet, ShareService};
use crate::p2p::handle::Command;
use crate::p2p::{Inbound, Offence, P2pHandle, SyncRequest, Via};
use crate::store::ShareStore;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Published(Vec<u8>),
    Validated(MessageId, PeerId, MessageAcceptance),
    Penalised(PeerId, Offence),
}

/// Records what the worker tells the network.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl ShareNet for Recorder {
    fn publish_share(&self, bytes: Vec<u8>) {
        self.0.lock().push(Event::Published(bytes));
    }
    fn validated(&self, id: MessageId, source: PeerId, acceptance: MessageAcceptance) {
        self.0.lock().push(Event::Validated(id, source, acceptance));
    }
    fn penalise(&self, peer: PeerId, offence: Offence) {
        self.0.lock().push(Event::Penalised(peer, offence));
    }
}

struct Harness {
    svc: ShareService,
    inbound: mpsc::Sender<Inbound>,
    net: Recorder,
    commands: mpsc::Receiver<Command>,
    store: ShareStore,
    _dir: tempfile::TempDir,
}

fn params() -> &'static NetworkParams {
    static P: std::sync::OnceLock<&'static NetworkParams> = std::sync::OnceLock::new();
    P.get_or_init(|| easy_params(&NetworkParams::REGTEST, 100, 10))
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = ShareStore::open(&dir.path().join("shares.redb")).unwrap();
    let (p2p, commands) = P2pHandle::detached(64);
    let (inbound, rx) = mpsc::channel(16);
    let net = Recorder::default();
    let svc = ShareService::start_with_net(params(), store.clone(), p2p, rx, Box::new(net.clone()))
        .await
        .unwrap();
    Harness {
        svc,
        inbound,
        net,
        commands,
        store,
        _dir: dir,
    }
}

impl Harness {
    async fn deliver(&self, from: PeerId, shares: Vec<Vec<u8>>, via: Via) {
        self.inbound
            .send(Inbound::Shares { from, shares, via })
            .await
            .unwrap();
    }

    /// The recorded events once there are `n` of them (fails after 5 s).
    async fn events(&self, n: usize) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let events = self.net.0.lock().clone();
            if events.len() >= n {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited for {n} events, saw {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the worker handled everything sent before (a local share is a round trip
    /// through the job queue).
    async fn settle(&self) {
        let (_, shares) = build_chain(params(), 1, &[p2wpkh(99)]);
        let _ = self.svc.submit_local_share(shares[0].clone()).await;
        self.net
            .0
            .lock()
            .retain(|e| !matches!(e, Event::Published(_)));
    }
}

fn gossip(n: u8) -> (MessageId, Via) {
    let id = MessageId::from(vec![n]);
    (id.clone(), Via::Gossip(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_share_is_stored_accepted_and_its_sender_remembered() {
    let h = harness().await;
    let (_, shares) = build_chain(params(), 2, &[p2wpkh(1)]);
    let peer = PeerId::random();
    let (id, via) = gossip(1);
    h.deliver(peer, vec![shares[0].share().to_bytes()], via)
        .await;
    assert_eq!(
        h.events(1).await,
        vec![Event::Validated(id, peer, MessageAcceptance::Accept)]
    );
    assert_eq!(h.svc.best_share_hash(), Some(shares[0].hash()));
    assert!(h
        .store
        .table("shares")
        .unwrap()
        .contains(&shares[0].hash())
        .unwrap());
    assert_eq!(
        h.svc.first_seen(&shares[0].hash()).unwrap().peer,
        Some(peer)
    );

    // The same share again: not forwarded, nobody penalised.
    let (again, via) = gossip(2);
    h.deliver(peer, vec![shares[0].share().to_bytes()], via)
        .await;
    assert_eq!(
        h.events(2).await[1],
        Event::Validated(again, peer, MessageAcceptance::Ignore)
    );
    assert_eq!(h.svc.snapshot().invalid, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bytes_are_rejected_and_their_sender_penalised() {
    let h = harness().await;
    let peer = PeerId::random();
    let (id, via) = gossip(1);
    h.deliver(peer, vec![vec![1, 2, 3]], via).await;
    let events = h.events(2).await;
    assert_eq!(
        events[0],
        Event::Validated(id, peer, MessageAcceptance::Reject)
    );
    assert!(
        matches!(&events[1], Event::Penalised(p, Offence::Undecodable(_)) if *p == peer),
        "{events:?}"
    );
    assert_eq!(h.svc.snapshot().invalid, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_failing_its_proof_of_work_is_invalid_not_undecodable() {
    let h = harness().await;
    let (_, shares) = build_chain(params(), 1, &[p2wpkh(1)]);
    let mut bad = shares[0].share().clone();
    loop {
        bad.min_header.nonce = bad.min_header.nonce.wrapping_add(1);
        if let Err(ShareError::HighHash { .. }) =
            CheckedShare::check(bad.clone(), params(), u64::MAX / 4)
        {
            break;
        }
    }
    let peer = PeerId::random();
    let (id, via) = gossip(1);
    h.deliver(peer, vec![bad.to_bytes()], via).await;
    let events = h.events(2).await;
    assert_eq!(
        events[0],
        Event::Validated(id, peer, MessageAcceptance::Reject)
    );
    assert!(
        matches!(&events[1], Event::Penalised(p, Offence::InvalidShare(_)) if *p == peer),
        "{events:?}"
    );
    assert_eq!(h.svc.best_share_hash(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_from_the_future_is_dropped_and_its_sender_kept() {
    let h = harness().await;
    let p = params();
    let mut t = new_tracker(p);
    let later = u32::try_from(unix_now() + 3 * 3600).unwrap();
    let early = next_share(&mut t, p, None, p2wpkh(1), later, 0).unwrap();
    let peer = PeerId::random();
    let (id, via) = gossip(1);
    h.deliver(peer, vec![early.share().to_bytes()], via).await;
    h.settle().await;
    assert_eq!(
        h.events(1).await,
        vec![Event::Validated(id, peer, MessageAcceptance::Ignore)]
    );
    assert_eq!(h.svc.snapshot().invalid, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_share_is_published_once_stored() {
    let h = harness().await;
    let (_, shares) = build_chain(params(), 1, &[p2wpkh(1)]);
    let hash = h.svc.submit_local_share(shares[0].clone()).await.unwrap();
    assert!(h.store.table("shares").unwrap().contains(&hash).unwrap());
    assert_eq!(
        h.events(1).await,
        vec![Event::Published(shares[0].share().to_bytes())]
    );
    assert_eq!(h.svc.first_seen(&hash).unwrap().peer, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_shares_submitted_together_are_each_stored_acknowledged_and_published() {
    let h = harness().await;
    let shares: Vec<_> = (1..=40u32)
        .map(|i| build_chain(params(), 1, &[p2wpkh(i)]).1.remove(0))
        .collect();
    // Submitted at once, they queue behind one another and are stored in few commits.
    let results =
        futures::future::join_all(shares.iter().map(|s| h.svc.submit_local_share(s.clone()))).await;
    let table = h.store.table("shares").unwrap();
    let mut hashes = std::collections::HashSet::new();
    for result in &results {
        let hash = result.as_ref().unwrap();
        assert!(table.contains(hash).unwrap());
        hashes.insert(*hash);
    }
    assert_eq!(hashes.len(), 40);
    let published: Vec<Vec<u8>> = h
        .events(40)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::Published(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(published.len(), 40);
    for share in &shares {
        assert!(published.contains(&share.share().to_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_shares_without_their_parent_ask_the_sender_for_it() {
    let mut h = harness().await;
    let (_, shares) = build_chain(params(), 3, &[p2wpkh(1)]);
    let peer = PeerId::random();
    // Sync replies come newest first.
    let reply = vec![shares[2].share().to_bytes(), shares[1].share().to_bytes()];
    h.deliver(peer, reply, Via::Sync).await;
    let command = tokio::time::timeout(Duration::from_secs(5), h.commands.recv())
        .await
        .expect("a request in time")
        .expect("a command");
    match command {
        Command::Request {
            peer: to,
            request: SyncRequest::Shares { want, .. },
            ..
        } => {
            assert_eq!(to, peer);
            assert_eq!(want, vec![shares[0].hash()]);
        }
        other => panic!("expected a share request, got {other:?}"),
    }
    h.settle().await;
    // No verdict for sync replies, and nobody penalised.
    assert_eq!(h.events(0).await, vec![]);
}

mod pospace {
    use sharechain::pospace_share::testkit::ProofBook;
    use sharechain::pospace_share::{ChiaNetwork, PoSpaceShare};

    use super::*;
    use crate::shares::{PoSpace, PoSpaceService, ShareKind};

    const PROOFS: &str =
        include_str!("../../sharechain/tests/vectors/chia/pospace_share_proofs_k18.csv");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pospace_share_waits_for_its_signage_point_then_verifies() {
        let net = &ChiaNetwork::REGTEST;
        let book = ProofBook::parse(PROOFS);
        let content = book.content(0, None, net.initial_difficulty, 1_700_000_000, [1; 32]);
        let share: PoSpaceShare = book.share(&content, net);
        let sp = book.signage_point(0);

        let dir = tempfile::tempdir().unwrap();
        let store = ShareStore::open(&dir.path().join("shares.redb")).unwrap();
        let (p2p, _commands) = P2pHandle::detached(64);
        let (inbound, rx) = mpsc::channel(16);
        let rec = Recorder::default();
        let svc =
            PoSpaceService::start_with_net(net, store.clone(), p2p, rx, Box::new(rec.clone()))
                .await
                .unwrap();

        let peer = PeerId::random();
        let (_, via) = gossip(1);
        inbound
            .send(Inbound::Shares {
                from: peer,
                shares: vec![PoSpace::encode(&share)],
                via,
            })
            .await
            .unwrap();
        // Held and stored, not verified: its signage point is not known yet.
        let table = store.table(PoSpace::TABLE).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !table.contains(&share.hash()).unwrap() {
            assert!(tokio::time::Instant::now() < deadline, "share not stored");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let hash = share.hash();
        assert!(svc
            .query(move |t| t.chain().contains(&hash) && !t.chain().is_verified(&hash))
            .await
            .unwrap());
        assert_eq!(svc.best_share_hash(), None);

        svc.update_rules(move |v| v.signage_points_mut().insert(sp))
            .await
            .unwrap();
        let mut best = svc.subscribe_best();
        tokio::time::timeout(Duration::from_secs(5), best.wait_for(|b| b.is_some()))
            .await
            .expect("verified in time")
            .unwrap();
        assert_eq!(svc.best_share_hash(), Some(share.hash()));
        assert!(svc
            .query(move |t| t.chain().is_verified(&hash))
            .await
            .unwrap());
        assert!(
            !rec.0
                .lock()
                .iter()
                .any(|e| matches!(e, Event::Penalised(..))),
            "nobody penalised"
        );
        svc.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_requests_are_answered_newest_first_down_to_a_stop() {
    let h = harness().await;
    let (_, shares) = build_chain(params(), 4, &[p2wpkh(1)]);
    for s in &shares {
        h.svc.submit_local_share(s.clone()).await.unwrap();
    }
    let tip = shares[3].hash();
    let status = crate::p2p::ChainStatus {
        best: Some(tip),
        height: shares[3].share().share_info.absheight,
    };
    assert_eq!(
        h.svc.inner.serve(&SyncRequest::Status),
        crate::p2p::SyncResponse::Status(status)
    );
    let request = SyncRequest::Shares {
        want: vec![tip],
        parents: 10,
        stops: vec![shares[1].hash()],
    };
    assert_eq!(
        h.svc.inner.serve(&request),
        crate::p2p::SyncResponse::Shares {
            status,
            shares: vec![shares[3].share().to_bytes(), shares[2].share().to_bytes()],
        }
    );
    let request = SyncRequest::Shares {
        want: vec![tip],
        parents: 0,
        stops: vec![],
    };
    assert_eq!(
        h.svc.inner.serve(&request),
        crate::p2p::SyncResponse::Shares {
            status,
            shares: vec![shares[3].share().to_bytes()],
        }
    );
}

/// Every acknowledged local share is in the published view at once: best share, height, the
/// newest shares of the best chain, and a work base that builds exactly what `generate` builds
/// on the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_view_follows_each_local_share_and_builds_what_generate_builds() {
    let h = harness().await;
    let empty = h.svc.view();
    assert_eq!((empty.best, empty.height, empty.shares), (None, 0, 0));
    assert_eq!(empty.kind.work.as_ref().unwrap().parent(), None);

    let scripts: Vec<_> = (1..=3).map(p2wpkh).collect();
    let (mut t, shares) = build_chain(params(), 30, &scripts);
    for (i, share) in shares.iter().enumerate() {
        h.svc.submit_local_share(share.clone()).await.unwrap();
        let view = h.svc.view();
        assert_eq!(view.best, Some(share.hash()));
        assert_eq!(view.height, share.share().share_info.absheight);
        assert_eq!(view.shares, i + 1);
        assert_eq!(view.kind.best_hash(), Some(share.hash()));
        assert_eq!(view.kind.recent.len(), i + 1);
    }
    let view = h.svc.view();
    let base = view.kind.work.as_ref().unwrap();
    let best = shares.last().map(CheckedShare::hash);
    assert_eq!(base.parent(), best);
    for tag in [1, 2, 77] {
        let req = sharechain::testkit::request(params(), best, p2wpkh(tag), 1_800_000_000, tag);
        let (chain, verifier) = t.parts();
        let expected = sharechain::generate(chain, verifier.pplns_mut(), params(), &req).unwrap();
        assert_eq!(base.template(&req).unwrap(), expected);
    }
    // One share's details go through the worker.
    let hash = shares[3].hash();
    let absheight = h
        .svc
        .query(move |t| t.chain().get(&hash).map(|s| s.share().share_info.absheight))
        .await
        .unwrap();
    assert_eq!(absheight, Some(shares[3].share().share_info.absheight));
}
