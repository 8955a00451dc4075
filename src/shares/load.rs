//! Loading the stored chain at start: every share is decoded, checked and re-verified (the store
//! is a cache, never a source of trust); what no longer belongs (invalid, pruned) is deleted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use sharechain::tracker::{InsertError, TrackedShare};
use sharechain::ShareHash;

use super::kind::{KindTracker, ShareKind};
use super::seen::unix_now;
use crate::store::{ShareStore, StoreBatch, StoreError};

/// Orders shares so that every parent comes before its children (roots first).
pub(super) fn parent_first<S: TrackedShare>(shares: Vec<S>) -> Vec<S> {
    let held: HashSet<ShareHash> = shares.iter().map(S::hash).collect();
    let mut children: HashMap<ShareHash, Vec<usize>> = HashMap::new();
    let mut queue = VecDeque::new();
    for (i, s) in shares.iter().enumerate() {
        match s.prev_hash().filter(|p| held.contains(p)) {
            Some(p) => children.entry(p).or_default().push(i),
            None => queue.push_back(i),
        }
    }
    let mut slots: Vec<Option<S>> = shares.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    while let Some(i) = queue.pop_front() {
        let Some(s) = slots[i].take() else { continue };
        if let Some(c) = children.remove(&s.hash()) {
            queue.extend(c);
        }
        out.push(s);
    }
    out
}

/// Loads and verifies `store`'s table of kind `K`; deletes what no longer belongs.
pub(super) fn load<K: ShareKind>(
    params: &'static K::Params,
    store: &ShareStore,
) -> Result<KindTracker<K>, StoreError> {
    let started = Instant::now();
    let rows = store.load()?;
    let now = unix_now();
    let mut bad = Vec::new();
    let mut checked = Vec::with_capacity(rows.len());
    for (hash, bytes) in rows {
        match K::decode(&bytes, params, now) {
            Ok(s) if s.hash() == hash => checked.push(s),
            Ok(s) => {
                tracing::warn!(kind = K::NAME, %hash, stored = %s.hash(), "stored share under another hash; dropped");
                bad.push(hash);
            }
            Err(e) => {
                tracing::warn!(kind = K::NAME, %hash, "stored share refused: {e}");
                bad.push(hash);
            }
        }
    }
    let mut tracker = K::new_tracker(params);
    let count = checked.len();
    for share in parent_first(checked) {
        match tracker.insert(share) {
            Ok(ch) => {
                bad.extend(ch.invalid.iter().map(|r| r.hash));
                bad.extend(ch.pruned);
            }
            Err(InsertError::InvalidParent { share, dropped, .. }) => {
                bad.push(share);
                bad.extend(dropped);
            }
            Err(e) => tracing::debug!(kind = K::NAME, "stored share not loaded: {e}"),
        }
    }
    if !bad.is_empty() {
        store.apply(&StoreBatch {
            remove: bad.clone(),
            ..StoreBatch::default()
        })?;
    }
    tracing::info!(
        kind = K::NAME,
        network = K::network_name(params),
        loaded = count,
        dropped = bad.len(),
        best = ?tracker.best(),
        ms = started.elapsed().as_millis() as u64,
        "share chain loaded from the store"
    );
    Ok(tracker)
}
