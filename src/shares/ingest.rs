//! The worker: one job at a time, shares go in (gossip, sync replies, this node's miners), the
//! tracker verifies them, the store is written, gossip gets its verdict, senders of invalid
//! shares are penalised and missing parents are requested.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use libp2p::gossipsub::MessageAcceptance;
use libp2p::PeerId;
use sharechain::tracker::{Changes, InsertError, TrackedShare};
use sharechain::ShareHash;
use tokio::sync::mpsc;

use super::context::{ContextVerdict, Held};
use super::kind::{Refusal, ShareKind};
use super::seen::unix_now;
use super::{Inner, Job, SubmitError};
use crate::p2p::{Offence, Via};
use crate::store::{ShareStore, StoreBatch};

/// Local shares stored in one commit at most.
const LOCAL_GROUP: usize = 64;

type LocalReply<K> =
    tokio::sync::oneshot::Sender<Result<ShareHash, SubmitError<<K as ShareKind>::VerifyError>>>;

/// Adds `later` to `acc`, as if `later` were written after it in its own transaction.
fn merge(acc: &mut StoreBatch, later: StoreBatch) {
    let put: HashSet<ShareHash> = later.put.iter().map(|(h, _)| *h).collect();
    let removed: HashSet<ShareHash> = later.remove.iter().copied().collect();
    acc.remove.retain(|h| !put.contains(h));
    acc.put.retain(|(h, _)| !removed.contains(h));
    acc.put.extend(later.put);
    acc.remove.extend(later.remove);
    if later.best.is_some() {
        acc.best = later.best;
    }
}

/// What one insert batch did.
pub(super) struct Outcome<E> {
    pub(super) batch: StoreBatch,
    pub(super) errors: Vec<SubmitError<E>>,
    pub(super) missing: Vec<ShareHash>,
    pub(super) best: Option<ShareHash>,
    pub(super) best_changed: bool,
    /// The highest share inserted (height, hash).
    pub(super) top: Option<(u32, ShareHash)>,
}

impl<E> Default for Outcome<E> {
    fn default() -> Self {
        Outcome {
            batch: StoreBatch::default(),
            errors: Vec::new(),
            missing: Vec::new(),
            best: None,
            best_changed: false,
            top: None,
        }
    }
}

impl<K: ShareKind> Inner<K> {
    /// The worker: the insert pipeline, one job at a time.
    pub(super) fn run(self: Arc<Self>, mut jobs: mpsc::Receiver<Job<K>>, store: ShareStore) {
        // A job taken from the queue while gathering local shares, to run next.
        let mut next = None;
        while let Some(job) = next.take().or_else(|| jobs.blocking_recv()) {
            let tip = self.pending_tip.lock().take();
            if let Some(tip) = tip {
                self.apply_tip(&store, tip);
            }
            match job {
                Job::Shares { from, shares, via } => self.ingest(&store, from, shares, via),
                Job::Local { share, reply } => {
                    // Local shares waiting together are stored in one commit: one fsync for
                    // all of them instead of one each, queued behind one another.
                    let mut group = vec![(share, reply)];
                    while group.len() < LOCAL_GROUP {
                        match jobs.try_recv() {
                            Ok(Job::Local { share, reply }) => group.push((share, reply)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.ingest_local(&store, group);
                }
                // Applied above from `pending_tip`, which holds the latest.
                Job::SetTip => {}
                Job::Rules(update) => self.apply_rules(&store, update),
                Job::Recheck => self.recheck_held(&store),
                Job::Query(f) => f(&self.tracker.lock()),
                Job::Stop(done) => {
                    drop(store);
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// The tip changed: the best share may change with it.
    fn apply_tip(&self, store: &ShareStore, tip: Option<K::Tip>) {
        let (changes, best) = {
            let mut t = self.tracker.lock();
            let ch = t.set_tip(tip);
            self.publish(&t);
            (ch, t.best())
        };
        if changes.best.is_some() {
            if let Err(e) = store.apply(&StoreBatch {
                best,
                ..StoreBatch::default()
            }) {
                tracing::error!(kind = K::NAME, "share store write failed: {e}");
            }
            self.best_tx.send_replace(best);
        }
    }

    /// New outside facts for the verifier; pending shares are verified again.
    fn apply_rules(&self, store: &ShareStore, update: super::RulesUpdate<K>) {
        let (changes, best): (Changes<K::VerifyError>, _) = {
            let mut t = self.tracker.lock();
            update(t.verifier_mut());
            let ch = t.retry_pending();
            self.publish(&t);
            (ch, t.best())
        };
        let mut batch = StoreBatch::default();
        batch.remove.extend(changes.invalid.iter().map(|r| r.hash));
        batch.remove.extend(changes.pruned.iter().copied());
        if changes.best.is_some() {
            batch.best = best;
        }
        self.seen.lock().record([], &batch.remove, None);
        if let Err(e) = store.apply(&batch) {
            tracing::error!(kind = K::NAME, "share store write failed: {e}");
        }
        if changes.best.is_some() {
            self.best_tx.send_replace(best);
        }
        if !changes.verified.is_empty() || !changes.invalid.is_empty() {
            tracing::debug!(
                kind = K::NAME,
                verified = changes.verified.len(),
                invalid = changes.invalid.len(),
                "pending shares verified again"
            );
        }
    }

    /// Shares found by this node's miners: each inserted on its own (its own verdict), all
    /// stored in one durable commit, then acknowledged and gossiped.
    fn ingest_local(&self, store: &ShareStore, group: Vec<(K::Share, LocalReply<K>)>) {
        // Proofs and signatures checked before the tracker is locked (shares already held
        // are left out: nothing would take their results).
        let fresh: Vec<&K::Share> = {
            let t = self.tracker.lock();
            group
                .iter()
                .map(|(s, _)| s)
                .filter(|s| !t.chain().contains(&s.hash()))
                .collect()
        };
        if let Some(update) = K::precheck(self.params, &fresh) {
            update(self.tracker.lock().verifier_mut());
        }
        let mut batch = StoreBatch::default();
        let mut best = None;
        let mut stored = Vec::with_capacity(group.len());
        for (share, reply) in group {
            let hash = share.hash();
            let bytes = K::encode(&share);
            let mut outcome = self.insert_batch(vec![(share, bytes.clone())], None);
            if let Some(e) = outcome.errors.pop() {
                let _ = reply.send(Err(e));
                continue;
            }
            merge(&mut batch, outcome.batch);
            if outcome.best_changed {
                best = Some(outcome.best);
            }
            stored.push((hash, bytes, reply));
        }
        if let Err(e) = store.apply(&batch) {
            let e = Arc::new(e);
            for (_, _, reply) in stored {
                let _ = reply.send(Err(SubmitError::Store(e.clone())));
            }
            return;
        }
        if let Some(best) = best {
            self.best_tx.send_replace(best);
        }
        for (hash, bytes, reply) in stored {
            self.net.publish_share(bytes);
            let _ = reply.send(Ok(hash));
        }
    }

    pub(super) fn ingest(
        self: &Arc<Self>,
        store: &ShareStore,
        from: PeerId,
        shares: Vec<Vec<u8>>,
        via: Via,
    ) {
        self.received
            .fetch_add(shares.len() as u64, Ordering::Relaxed);
        let now = unix_now();
        let mut offence = None;
        let mut checked = Vec::with_capacity(shares.len());
        // Sync replies come newest first; insert parents first.
        for bytes in shares.into_iter().rev() {
            match K::decode(&bytes, self.params, now) {
                Ok(s) => checked.push((s, bytes)),
                Err(e) => match K::refusal(&e) {
                    // Clock skew between honest nodes: drop the share, keep the peer.
                    Refusal::Early => {}
                    Refusal::Malformed => offence = Some(Offence::Undecodable(e.to_string())),
                    Refusal::Invalid => offence = Some(Offence::InvalidShare(e.to_string())),
                },
            }
        }
        if let (Via::Gossip(_), Some(context)) = (&via, self.context.lock().clone()) {
            checked = self.check_context(&*context, checked, from, &mut offence);
        }
        let outcome = self.insert_batch(checked, Some(from));
        if let Some(e) = outcome.errors.first() {
            offence = Some(Offence::InvalidShare(e.to_string()));
        }
        if let Err(e) = store.apply(&outcome.batch) {
            tracing::error!(kind = K::NAME, "share store write failed: {e}");
        }
        if outcome.best_changed {
            self.best_tx.send_replace(outcome.best);
            if let Some(best) = outcome.best {
                let height = self.view.load().height;
                tracing::debug!(kind = K::NAME, %best, height, "new best share");
            }
        }
        if matches!(via, Via::Sync) && !outcome.batch.put.is_empty() {
            let (held, missing, height) = {
                let t = self.tracker.lock();
                let height = outcome.best.map(|b| K::height(t.chain(), &b)).unwrap_or(0);
                (t.chain().len(), t.missing_parents().len(), height)
            };
            let peer_height = self.sync_status().peer_height;
            tracing::info!(
                kind = K::NAME,
                peer = %from,
                received = outcome.batch.put.len(),
                held,
                height,
                peer_height,
                complete = missing == 0,
                "share chain sync progress"
            );
        }
        if let Via::Gossip(id) = via {
            let acceptance = if offence.is_some() {
                MessageAcceptance::Reject
            } else if outcome.batch.put.is_empty() {
                MessageAcceptance::Ignore
            } else {
                MessageAcceptance::Accept
            };
            self.net.validated(id, from, acceptance);
            if let Some((height, hash)) = outcome.top {
                self.note_sent(from, height, hash);
            }
        }
        if let Some(offence) = offence {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            self.peers.lock().remove(&from);
            self.refresh_sync();
            self.net.penalise(from, offence);
            return;
        }
        for hash in outcome.missing {
            self.request_shares(from, hash);
        }
    }

    /// Sorts gossiped shares by what `context` knows of them: known ones are returned (the
    /// verifier given their facts), unknown ones held, contradicting ones set `offence`.
    fn check_context(
        &self,
        context: &dyn super::ShareContext<K>,
        shares: Vec<(K::Share, Vec<u8>)>,
        from: PeerId,
        offence: &mut Option<Offence>,
    ) -> Vec<(K::Share, Vec<u8>)> {
        let mut known = Vec::with_capacity(shares.len());
        for (share, bytes) in shares {
            let hash = share.hash();
            let in_chain = self.tracker.lock().chain().contains(&hash);
            if in_chain || self.held.lock().contains(&hash) {
                continue;
            }
            match context.check(&share) {
                ContextVerdict::Known => {
                    context.admit(&share, self.tracker.lock().verifier_mut());
                    known.push((share, bytes));
                }
                ContextVerdict::Unknown(reason) => {
                    tracing::debug!(kind = K::NAME, peer = %from, share = %hash, %reason, "share held until its context is known");
                    let held = Held {
                        share,
                        bytes,
                        from,
                        since: std::time::Instant::now(),
                        reason,
                    };
                    if !self.held.lock().hold(held) {
                        tracing::warn!(
                            kind = K::NAME,
                            peer = %from,
                            share = %hash,
                            "share dropped: {} shares already wait for their context",
                            super::context::MAX_HELD
                        );
                    }
                }
                ContextVerdict::Invalid(reason) => {
                    tracing::warn!(kind = K::NAME, peer = %from, share = %hash, %reason, "share refused");
                    {
                        let mut held = self.held.lock();
                        held.counts.refused += 1;
                        held.count_reason(&reason);
                    }
                    *offence = Some(Offence::InvalidShare(reason));
                }
            }
        }
        known
    }

    /// Checks held shares against their context again: known ones are inserted, stored and
    /// gossiped on; ones past the grace period are dropped and their senders penalised.
    fn recheck_held(self: &Arc<Self>, store: &ShareStore) {
        let Some(context) = self.context.lock().clone() else {
            return;
        };
        let grace = context.grace();
        let held = self.held.lock().take();
        for mut h in held {
            let verdict = context.check(&h.share);
            let hash = h.share.hash();
            let offence = match verdict {
                ContextVerdict::Known => {
                    self.held.lock().counts.released += 1;
                    context.admit(&h.share, self.tracker.lock().verifier_mut());
                    let outcome = self.insert_batch(vec![(h.share, h.bytes.clone())], Some(h.from));
                    if let Err(e) = store.apply(&outcome.batch) {
                        tracing::error!(kind = K::NAME, "share store write failed: {e}");
                    }
                    if outcome.best_changed {
                        self.best_tx.send_replace(outcome.best);
                    }
                    tracing::debug!(
                        kind = K::NAME,
                        share = %hash,
                        waited_ms = h.since.elapsed().as_millis() as u64,
                        "held share's context is known"
                    );
                    if let Some(e) = outcome.errors.first() {
                        Some(Offence::InvalidShare(e.to_string()))
                    } else {
                        if !outcome.batch.put.is_empty() {
                            self.net.publish_share(h.bytes);
                        }
                        for missing in outcome.missing {
                            self.request_shares(h.from, missing);
                        }
                        None
                    }
                }
                ContextVerdict::Unknown(reason) if h.since.elapsed() < grace => {
                    h.reason = reason;
                    self.held.lock().hold_again(h);
                    continue;
                }
                ContextVerdict::Unknown(reason) => {
                    let text = format!("{reason} after {} s", grace.as_secs());
                    tracing::warn!(
                        kind = K::NAME,
                        peer = %h.from,
                        share = %hash,
                        "share dropped, its sender penalised: {text}"
                    );
                    let mut held = self.held.lock();
                    held.counts.expired += 1;
                    held.count_reason(&reason);
                    Some(Offence::InvalidShare(text))
                }
                ContextVerdict::Invalid(reason) => {
                    tracing::warn!(kind = K::NAME, peer = %h.from, share = %hash, %reason, "held share refused");
                    let mut held = self.held.lock();
                    held.counts.refused += 1;
                    held.count_reason(&reason);
                    Some(Offence::InvalidShare(reason))
                }
            };
            if let Some(offence) = offence {
                self.invalid.fetch_add(1, Ordering::Relaxed);
                self.peers.lock().remove(&h.from);
                self.net.penalise(h.from, offence);
            }
        }
    }

    /// Inserts shares (parents first; from `peer`, or this node's miners) and collects what to
    /// store, what to ask for and what went wrong.
    fn insert_batch(
        &self,
        shares: Vec<(K::Share, Vec<u8>)>,
        peer: Option<PeerId>,
    ) -> Outcome<K::VerifyError> {
        let mut out = Outcome::default();
        let mut t = self.tracker.lock();
        let before = t.best();
        let ours: HashSet<ShareHash> = shares.iter().map(|(s, _)| s.hash()).collect();
        for (share, bytes) in shares {
            let hash = share.hash();
            match t.insert(share) {
                Ok(ch) => {
                    out.batch.put.push((hash, bytes));
                    let height = K::height(t.chain(), &hash);
                    if out.top.is_none_or(|(h, _)| height > h) {
                        out.top = Some((height, hash));
                    }
                    for r in &ch.invalid {
                        if r.direct && ours.contains(&r.hash) {
                            out.errors.push(SubmitError::Invalid(r.error.clone()));
                        }
                        out.batch.remove.push(r.hash);
                    }
                    out.batch.remove.extend(ch.pruned);
                    out.missing.extend(ch.missing_parents);
                }
                Err(InsertError::Duplicate(_)) => {}
                Err(e @ InsertError::InvalidParent { .. }) => {
                    if let InsertError::InvalidParent { dropped, .. } = &e {
                        out.batch.remove.extend(dropped.iter().copied());
                    }
                    out.errors.push(SubmitError::Insert(e));
                }
                Err(e) => out.errors.push(SubmitError::Insert(e)),
            }
        }
        out.best = t.best();
        out.best_changed = out.best != before;
        if out.best_changed {
            out.batch.best = out.best;
        }
        let removed: HashSet<ShareHash> = out.batch.remove.iter().copied().collect();
        out.missing
            .retain(|m| !removed.contains(m) && !t.chain().contains(m));
        if !out.batch.put.is_empty() || !out.batch.remove.is_empty() || out.best_changed {
            self.publish(&t);
        }
        drop(t);
        self.seen.lock().record(
            out.batch.put.iter().map(|(h, _)| *h),
            &out.batch.remove,
            peer,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn h(n: u8) -> ShareHash {
        ShareHash::from_byte_array([n; 32])
    }

    #[test]
    fn merged_batches_write_as_the_later_one_would_after_the_earlier() {
        let mut acc = StoreBatch {
            put: vec![(h(1), vec![1]), (h(2), vec![2])],
            remove: vec![h(3)],
            best: Some(h(2)),
        };
        // Share 1 pruned by the later batch; share 3 put back; no new best.
        merge(
            &mut acc,
            StoreBatch {
                put: vec![(h(3), vec![3])],
                remove: vec![h(1)],
                best: None,
            },
        );
        assert_eq!(acc.put, vec![(h(2), vec![2]), (h(3), vec![3])]);
        assert_eq!(acc.remove, vec![h(1)]);
        assert_eq!(acc.best, Some(h(2)));
        merge(
            &mut acc,
            StoreBatch {
                best: Some(h(3)),
                ..StoreBatch::default()
            },
        );
        assert_eq!(acc.best, Some(h(3)));
    }
}
