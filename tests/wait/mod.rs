//! Bounded waits on asynchronous conditions, for tests that drive real sockets.
//!
//! A condition is an async probe returning `Ok` once it holds, or `Err` with what it saw
//! instead: a wait that times out, or a check that breaks, fails with that last observation
//! rather than a bare "timed out". Probes run every [`POLL`], so a condition that turns true
//! between two probes is caught at the next one.

#![allow(dead_code)] // reason: each test binary uses a different subset of the helpers

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Time between two probes.
pub const POLL: Duration = Duration::from_millis(50);

/// `Ok(())` when `holds`, else `Err(seen)`: the usual shape of a probe's result.
pub fn check<S>(holds: bool, seen: S) -> Result<(), S> {
    if holds {
        Ok(())
    } else {
        Err(seen)
    }
}

/// Probe until `probe` returns `Ok`, for at most `timeout`; returns its value, or panics with
/// `what` and the last thing the probe saw.
pub async fn wait_until<T, S, F>(what: &str, timeout: Duration, mut probe: impl FnMut() -> F) -> T
where
    S: Debug,
    F: Future<Output = Result<T, S>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last saw {seen:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Probe for the whole of `window` and panic with `what` and the observation as soon as
/// `probe` fails: a negative check ("M never comes back") watched throughout, not sampled once
/// at the end of a sleep.
pub async fn holds_for<S, F>(what: &str, window: Duration, mut probe: impl FnMut() -> F)
where
    S: Debug,
    F: Future<Output = Result<(), S>>,
{
    let end = Instant::now() + window;
    loop {
        if let Err(seen) = probe().await {
            panic!("{what} broke: saw {seen:?}");
        }
        if Instant::now() >= end {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
