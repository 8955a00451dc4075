//! Crash test: `kill -9` a node in the middle of share ingestion, several times.
//!
//! The parent re-runs this test binary as a child (`P2P_CRASH_CHILD` selects the role). The child
//! opens its store, starts the share service, and submits the shares of a deterministic stream it
//! does not hold yet, printing `ack <hash>` once each is durably stored. The parent kills it with
//! SIGKILL after a varying number of acks, restarts it, and finally checks that every acked share
//! is in the store and that the restarted node ends on the stream's tip (the best chain).
#![allow(clippy::print_stdout)] // reason: the child talks to the parent on stdout

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use p2pool::p2p::{self, P2pConfig};
use p2pool::shares::ShareService;
use p2pool::store::ShareStore;
use sharechain::encode::Encode;
use sharechain::testkit::{build_chain, easy_params, p2wpkh};
use sharechain::{CheckedShare, NetworkParams};

mod crash;

const SHARES: usize = 300;

fn params() -> &'static NetworkParams {
    // Longer than the stream: nothing is pruned, so every acked share must stay.
    easy_params(&NetworkParams::REGTEST, 400, 20)
}

/// The child role: ingest the stream into the store at `dir`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("P2P_CRASH_CHILD") else {
        return;
    };
    // The parent writes the stream beside the node's directory.
    let stream_path = Path::new(&dir).parent().unwrap().join("stream.hex");
    let stream = std::fs::read_to_string(stream_path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = Path::new(&dir);
        let p = params();
        let mut cfg = P2pConfig::new(p);
        cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        cfg.datadir = Some(dir.to_owned());
        let (h, rx) = p2p::spawn(cfg).await.unwrap();
        let store = ShareStore::open(&dir.join("shares.redb")).unwrap();
        let svc = ShareService::start(p, store, h, rx).await.unwrap();
        let mut out = std::io::stdout();
        writeln!(out, "loaded {}", svc.snapshot().shares).unwrap();
        let now = u64::from(u32::MAX);
        for line in stream.lines() {
            let share = CheckedShare::from_bytes(&hex::decode(line).unwrap(), p, now).unwrap();
            let hash = share.hash();
            if svc.query(move |t| t.chain().contains(&hash)).await.unwrap() {
                continue;
            }
            svc.submit_local_share(share).await.unwrap();
            writeln!(out, "ack {hash}").unwrap();
            out.flush().unwrap();
        }
        writeln!(out, "best {}", svc.best_share_hash().unwrap()).unwrap();
        writeln!(out, "done").unwrap();
        out.flush().unwrap();
    });
}

#[test]
fn kill_9_during_ingestion_loses_no_acknowledged_share() {
    if std::env::var("P2P_CRASH_CHILD").is_ok() {
        return;
    }
    let p = params();
    let scripts: Vec<_> = (0..10).map(p2wpkh).collect();
    let (_, chain) = build_chain(p, SHARES, &scripts);
    let root = tempfile::tempdir().unwrap();
    let stream = root.path().join("stream.hex");
    let text: String = chain
        .iter()
        .map(|s| format!("{}\n", hex::encode(s.share().to_bytes())))
        .collect();
    std::fs::write(&stream, text).unwrap();
    let dir = root.path().join("node");
    std::fs::create_dir_all(&dir).unwrap();

    // Kill after these many acks in each run (varied, including right at start-up).
    let crash::Rounds { acked, last_best } = crash::kill_and_restart(
        "crash_child",
        "P2P_CRASH_CHILD",
        &dir,
        &[37, 1, 64, 13, 50, 0],
    );
    assert_eq!(last_best, Some(chain.last().unwrap().hash().to_string()));
    let store = ShareStore::open(&dir.join("shares.redb")).unwrap();
    let held: HashSet<String> = store
        .load()
        .unwrap()
        .into_iter()
        .map(|(h, _)| h.to_string())
        .collect();
    assert!(
        acked.iter().all(|h| held.contains(h)),
        "an acked share was lost"
    );
    assert_eq!(held.len(), SHARES);
}
