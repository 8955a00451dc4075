//! Curve arithmetic of the farmer's shares (completing a share's signature with the farmer key's)
//! off the async workers: on the blocking pool, at most one job per core at a time, first come first
//! served. A burst of proofs then neither stalls the harvester connections' I/O nor time-slices
//! all of its shares to the end of the burst together: each finishes as soon as its turn on a
//! core is over.

use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// One slot per core.
static SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(crate::cores())));

/// Runs `f` on the blocking pool when a core's slot is free. `None` when `f` panicked.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _slot = Arc::clone(&SLOTS).acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_reports_a_panic_as_none() {
        assert_eq!(run(|| 2 + 2).await, Some(4));
        let all = futures::future::join_all((0..16).map(|i| run(move || i * 2))).await;
        assert_eq!(all, (0..16).map(|i| Some(i * 2)).collect::<Vec<_>>());
        #[allow(clippy::panic)] // reason: the panic is what is tested
        let panicked = run(|| -> u8 { panic!("job fails") }).await;
        assert_eq!(panicked, None);
    }
}
