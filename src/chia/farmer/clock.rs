//! The embedded regtest signage clock: signage points every [`SignageClock::interval`],
//! derived from the share chain's identity and the time alone, so every node of the network
//! agrees on them without a chia node. Signage point number `n` is the `n`-th interval since
//! the Unix epoch: its sub-slot challenge hashes the identity and `n / 64`, its hash the
//! identity and `n`, its index is `n % 64` and its peak height `n / signage_points_per_block`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::hashes::{sha256, Hash, HashEngine};
use sharechain::pospace_share::{ChiaNetwork, SignagePoint};

/// Interval of the regtest clock.
pub const REGTEST_INTERVAL: Duration = Duration::from_secs(2);

/// Prefix of every hash the clock derives.
const DOMAIN: &[u8] = b"p2pool-rs signage clock";

/// Signage points of a network, derived from the time.
#[derive(Debug, Clone, Copy)]
pub struct SignageClock {
    network: &'static ChiaNetwork,
    interval: Duration,
}

fn hash(network: &ChiaNetwork, tag: &[u8], n: u64) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(DOMAIN);
    engine.input(&network.identity);
    engine.input(tag);
    engine.input(&n.to_be_bytes());
    sha256::Hash::from_engine(engine).to_byte_array()
}

impl SignageClock {
    /// The clock of `network`, one signage point per `interval` (at least 1 ms).
    pub fn new(network: &'static ChiaNetwork, interval: Duration) -> SignageClock {
        SignageClock {
            network,
            interval: interval.max(Duration::from_millis(1)),
        }
    }

    /// The network.
    pub fn network(&self) -> &'static ChiaNetwork {
        self.network
    }

    /// Time between signage points.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The number of the signage point current at `at`.
    pub fn number_at(&self, at: SystemTime) -> u64 {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        (since.as_millis() / self.interval.as_millis()) as u64
    }

    /// The number of the signage point current now.
    pub fn current(&self) -> u64 {
        self.number_at(SystemTime::now())
    }

    /// When signage point `n` starts.
    pub fn start_of(&self, n: u64) -> SystemTime {
        let ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        UNIX_EPOCH + Duration::from_millis(n.saturating_mul(ms))
    }

    /// Signage point number `n`.
    pub fn point(&self, n: u64) -> SignagePoint {
        let per_sub_slot = u64::from(self.network.signage_points_per_sub_slot.max(1));
        let per_block = u64::from(self.network.signage_points_per_block.max(1));
        SignagePoint {
            challenge_hash: hash(self.network, b"cc", n / per_sub_slot),
            sp_hash: hash(self.network, b"sp", n),
            index: (n % per_sub_slot) as u8,
            peak_height: u32::try_from(n / per_block).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_changing() {
        let clock = SignageClock::new(&ChiaNetwork::REGTEST, REGTEST_INTERVAL);
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_001);
        let n = clock.number_at(t);
        assert_eq!(n, 900_000_000);
        assert_eq!(clock.point(n), clock.point(n));
        assert_ne!(clock.point(n).sp_hash, clock.point(n + 1).sp_hash);
        assert_eq!(clock.point(n).index, (n % 64) as u8);
        // One sub-slot shares its challenge.
        let first = n - n % 64;
        assert_eq!(
            clock.point(first).challenge_hash,
            clock.point(first + 63).challenge_hash
        );
        assert_ne!(
            clock.point(first).challenge_hash,
            clock.point(first + 64).challenge_hash
        );
        assert_eq!(clock.start_of(n), t - Duration::from_secs(1));
        // Another network's clock gives other points.
        let other = SignageClock::new(&ChiaNetwork::SIMULATOR0, REGTEST_INTERVAL);
        assert_ne!(other.point(n).sp_hash, clock.point(n).sp_hash);
    }
}
