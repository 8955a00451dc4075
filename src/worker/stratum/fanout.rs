//! New work to every stratum session at once.
//!
//! A session registers its [`Conn`] once it is subscribed and authorized. On every work update
//! the port takes a snapshot of the registered connections, splits it across as many threads as
//! the machine has cores, and each thread issues the new job to its connections and writes the
//! notify straight to their sockets. No session task is woken for a new block: a connection's
//! task only runs again when its miner sends something, its timer fires, or a notify did not fit
//! the socket buffer and is left for the task to flush.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::session::{Conn, JobMemo};
use crate::worker::{Shared, WorkProvider};

/// Fewer connections than this per thread are not worth another thread.
const MIN_PER_THREAD: usize = 256;
/// Most threads one fan-out uses.
const MAX_THREADS: usize = 8;

/// The connections that receive new work.
pub(crate) struct Registry<P> {
    conns: Mutex<HashMap<u64, Arc<Conn<P>>>>,
    next: AtomicU64,
}

impl<P> Default for Registry<P> {
    fn default() -> Self {
        Registry {
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }
}

impl<P> Registry<P> {
    /// Add `conn`; it receives every update until the returned key is passed to
    /// [`Self::remove`].
    pub(crate) fn insert(&self, conn: Arc<Conn<P>>) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().insert(key, conn);
        key
    }

    pub(crate) fn remove(&self, key: u64) {
        self.conns.lock().remove(&key);
    }

    /// Registered connections.
    pub(crate) fn len(&self) -> usize {
        self.conns.lock().len()
    }

    /// The registered connections, in `parts` batches of nearly equal size.
    fn snapshot(&self, parts: usize) -> Vec<Vec<Arc<Conn<P>>>> {
        let conns = self.conns.lock();
        let parts = parts.clamp(1, conns.len().max(1));
        let per = conns.len().div_ceil(parts);
        let mut batches: Vec<Vec<Arc<Conn<P>>>> =
            (0..parts).map(|_| Vec::with_capacity(per)).collect();
        for (i, conn) in conns.values().enumerate() {
            batches[i / per.max(1)].push(Arc::clone(conn));
        }
        batches
    }
}

/// Threads for a fan-out to `n` connections.
fn threads_for(n: usize) -> usize {
    let cores = crate::cores();
    (n / MIN_PER_THREAD).clamp(1, cores.min(MAX_THREADS))
}

/// Deliver every work update to every registered session until the provider's updates end.
pub(crate) async fn run<P: WorkProvider>(shared: Arc<Shared<P>>) {
    let mut updates = shared.provider.updates();
    updates.borrow_and_update();
    while updates.changed().await.is_ok() {
        let clean = updates.borrow_and_update().clean;
        fan_out(&shared, clean).await;
    }
    // The provider is gone: nothing more to deliver, but the port keeps serving.
    std::future::pending::<()>().await;
}

/// One update to every registered session, on up to one thread per core.
pub(crate) async fn fan_out<P: WorkProvider>(shared: &Arc<Shared<P>>, clean: bool) {
    let batches = shared.fanout.snapshot(threads_for(shared.fanout.len()));
    let mut handles = Vec::with_capacity(batches.len());
    for batch in batches.into_iter().filter(|b| !b.is_empty()) {
        let shared = Arc::clone(shared);
        handles.push(tokio::task::spawn_blocking(move || {
            deliver(&shared, &batch, clean);
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
}

/// Issue the current job to each connection of `batch` and write what that produced.
fn deliver<P: WorkProvider>(shared: &Shared<P>, batch: &[Arc<Conn<P>>], clean: bool) {
    let mut written = 0;
    let mut memo = JobMemo::default();
    for conn in batch {
        written += conn.push_update(clean, &mut memo);
    }
    if written > 0 {
        shared.notified(written);
    }
}
