//! Where the farmer endpoint's signage points come from: one interface, a bounded channel of
//! [`SourceEvent`]s, fed either by the embedded regtest clock ([`run_clock`]) or by the link to a
//! chia full node (`crate::chia::full_node`). [`super::Farmer::run_source`] consumes it, so
//! harvesters get a full node's signage points exactly as they get the clock's.

use std::time::{Duration, SystemTime};

use sharechain::pospace_share::SignagePoint;
use tokio::sync::mpsc;

use super::clock::SignageClock;

/// Events waiting for the farmer endpoint (a full node sends at most a few signage points a
/// second; the clock one per interval).
pub const SOURCE_QUEUE: usize = 64;

/// What the chain said about a signage point (a full node's; the clock has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPoint {
    /// The chain's block difficulty.
    pub difficulty: u64,
    /// The chain's sub-slot iterations.
    pub sub_slot_iters: u64,
    /// The reward-chain signage point hash (signed when a block is farmed).
    pub reward_chain_sp: [u8; 32],
    /// Height of the latest transaction block.
    pub last_tx_height: u32,
    /// The v2 plot filter's challenge, when the chain has one.
    pub filter_challenge: Option<[u8; 32]>,
}

/// A signage point with its metadata, as a source gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePoint {
    /// Its number: increasing along the source's signage points (the clock's interval count,
    /// a full node link's arrival count). Lateness is measured in these numbers.
    pub number: u64,
    /// The signage point (index 0 is an end of sub-slot).
    pub point: SignagePoint,
    /// The chain's figures, for a full node's signage point.
    pub chain: Option<ChainPoint>,
}

/// What a source tells the farmer endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// A new signage point to announce.
    Point(SourcePoint),
    /// Proofs may become shares (`None`), or not, and why (e.g. the full node is syncing).
    Gate(Option<String>),
    /// The signage point with this `challenge_chain_sp` hash was reverted: no new shares on it.
    Reverted([u8; 32]),
}

/// A source's sending side.
pub type SourceSender = mpsc::Sender<SourceEvent>;
/// The farmer endpoint's receiving side.
pub type SourceReceiver = mpsc::Receiver<SourceEvent>;

/// A new bounded source channel.
pub fn channel() -> (SourceSender, SourceReceiver) {
    mpsc::channel(SOURCE_QUEUE)
}

/// The embedded clock as a source: each new signage point of `clock` is sent; returns when the
/// receiver is gone.
pub async fn run_clock(clock: SignageClock, events: SourceSender) {
    let mut last = None;
    loop {
        let n = clock.current();
        if last != Some(n) {
            last = Some(n);
            let point = SourcePoint {
                number: n,
                point: clock.point(n),
                chain: None,
            };
            if events.send(SourceEvent::Point(point)).await.is_err() {
                return;
            }
        }
        let wait = clock
            .start_of(n + 1)
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::from_millis(1));
        tokio::time::sleep(wait).await;
    }
}
