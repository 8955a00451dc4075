//! Rate-limited log lines: a warning that a flood can repeat thousands of times a second is
//! written at most once per interval, with the number of times it was held back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets a repeated log line through at most once per `interval`.
#[derive(Debug)]
pub struct RateLimited {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    held: AtomicU64,
}

impl RateLimited {
    /// A limiter letting one line through per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(None),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when the line should be written now, `n` being how many were held back since
    /// the last one; `None` to hold this one back.
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        // A panic elsewhere while holding this lock leaves a plain timestamp: still usable.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(at) if now.duration_since(at) < self.interval => {
                self.held.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.held.swap(0, Ordering::Relaxed))
            }
        }
    }
}

/// A `tracing` event at `$level`, let through by the [`RateLimited`] `$limiter`; the count of
/// lines held back since the last one is added as the field `repeated`.
#[macro_export]
macro_rules! log_limited {
    ($limiter:expr, $level:ident, $($rest:tt)+) => {
        if let Some(repeated) = $limiter.allow() {
            ::tracing::$level!(repeated, $($rest)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let limiter = RateLimited::new(Duration::from_secs(3600));
        assert_eq!(limiter.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(limiter.allow(), None);
        }
        *limiter.last.lock().expect("not poisoned") =
            Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(limiter.allow(), Some(5));
        assert_eq!(limiter.allow(), None);
    }
}
