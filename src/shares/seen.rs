//! The first-seen log: when this node took each share in, and from whom (shown on the status
//! page). Entries leave with their share.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use libp2p::PeerId;
use sharechain::ShareHash;

/// When this node first took a share in, and from whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstSeen {
    /// Unix time, seconds.
    pub time: u64,
    /// The peer that sent it; `None` for a share of this node's own miners.
    pub peer: Option<PeerId>,
}

/// The local clock, Unix seconds.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// First-seen entries of the shares held this run.
#[derive(Debug, Default)]
pub(super) struct SeenLog {
    entries: HashMap<ShareHash, FirstSeen>,
}

impl SeenLog {
    pub(super) fn get(&self, hash: &ShareHash) -> Option<FirstSeen> {
        self.entries.get(hash).copied()
    }

    /// Shares `added` arrived now from `peer`; shares `removed` left the chain.
    pub(super) fn record(
        &mut self,
        added: impl IntoIterator<Item = ShareHash>,
        removed: &[ShareHash],
        peer: Option<PeerId>,
    ) {
        let seen = FirstSeen {
            time: unix_now(),
            peer,
        };
        for hash in added {
            self.entries.entry(hash).or_insert(seen);
        }
        for hash in removed {
            self.entries.remove(hash);
        }
    }
}
