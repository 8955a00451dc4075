//! Statistics over time for the status page: bounded ring buffers of averaged samples per stream
//! and period (last hour, day and week), kept in memory and persisted as a small JSON file in
//! the data directory so graphs survive a restart.
//!
//! A stream's sample is a map of named values: single-valued streams (`local_hash_rate`) use the
//! empty name and are served as plain numbers, multi-valued ones (`pool_rates`,
//! `miner_hash_rates`) as objects, as P2Pool's `/web/graph_data` does.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use tokio::sync::watch;

/// The graph streams and whether each holds several named values.
pub const STREAMS: &[(&str, bool)] = &[
    ("local_hash_rate", false),
    ("local_dead_hash_rate", false),
    ("pool_rates", true),
    ("miner_hash_rates", true),
    ("peers", true),
    ("shares", true),
];

/// At most this many named values per bin (miners beyond are left out of the graph).
const MAX_KEYS: usize = 64;

/// File name of the persisted statistics in the data directory.
pub const STATS_FILE: &str = "stats.json";

const FORMAT_VERSION: u32 = 1;

/// A time span a graph covers, with its bin width and bin count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The last hour, in 60 one-minute bins.
    LastHour,
    /// The last day, in 96 fifteen-minute bins.
    LastDay,
    /// The last week, in 84 two-hour bins.
    LastWeek,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 3] = [Period::LastHour, Period::LastDay, Period::LastWeek];

    /// The name in `/web/graph_data/<stream>/<period>`.
    pub fn name(self) -> &'static str {
        match self {
            Period::LastHour => "last_hour",
            Period::LastDay => "last_day",
            Period::LastWeek => "last_week",
        }
    }

    /// The period named `name` (`last_hour`, `last_day` or `last_week`).
    pub fn from_name(name: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Seconds per bin.
    pub fn bin_width(self) -> u64 {
        match self {
            Period::LastHour => 60,
            Period::LastDay => 15 * 60,
            Period::LastWeek => 2 * 60 * 60,
        }
    }

    /// Number of bins the period keeps (its length divided by [`Period::bin_width`]).
    pub fn bins(self) -> usize {
        match self {
            Period::LastHour => 60,
            Period::LastDay => 96,
            Period::LastWeek => 84,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One sample of a stream: named values (the empty name for a single-valued stream).
pub type Sample = BTreeMap<String, f64>;

/// A sample of every stream at one moment.
pub type Snapshot = BTreeMap<&'static str, Sample>;

/// A single-valued sample.
pub fn single(value: f64) -> Sample {
    Sample::from([(String::new(), value)])
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Bin {
    /// `unix time / bin width` of this bin.
    slot: u64,
    /// Samples added.
    count: u32,
    sums: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Ring {
    /// Oldest first; at most `period.bins()`, all within the period.
    bins: VecDeque<Bin>,
}

impl Ring {
    fn add(&mut self, period: Period, now: u64, sample: &Sample) {
        let slot = now / period.bin_width();
        if self.bins.back().is_none_or(|b| b.slot < slot) {
            self.bins.push_back(Bin {
                slot,
                ..Bin::default()
            });
        }
        let Some(bin) = self.bins.back_mut().filter(|b| b.slot == slot) else {
            // A sample from before the newest bin (the clock went back): dropped.
            return;
        };
        bin.count = bin.count.saturating_add(1);
        for (k, v) in sample {
            if !v.is_finite() {
                continue;
            }
            if let Some(s) = bin.sums.get_mut(k) {
                *s += v;
            } else if bin.sums.len() < MAX_KEYS {
                bin.sums.insert(k.clone(), *v);
            }
        }
        self.trim(period, slot);
    }

    fn trim(&mut self, period: Period, slot: u64) {
        let keep = period.bins() as u64;
        while self
            .bins
            .front()
            .is_some_and(|b| b.slot + keep <= slot || self.bins.len() > period.bins())
        {
            self.bins.pop_front();
        }
    }
}

/// One point of `/web/graph_data`: bin middle (unix seconds), the value (`null` when no sample
/// fell in the bin), bin width in seconds. Newest first.
pub type Point = (f64, Value, f64);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Db {
    version: u32,
    streams: BTreeMap<String, [Ring; 3]>,
}

/// Why statistics could not be loaded or saved.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StatsError {
    /// The statistics file could not be read or written.
    #[error("reading or writing {path}: {source}")]
    Io {
        /// The statistics file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The statistics file is not valid JSON of the expected shape.
    #[error("decoding {path}: {source}")]
    Decode {
        /// The statistics file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// The statistics store; shared by the sampler and the web handlers.
#[derive(Debug)]
pub struct Stats {
    db: Mutex<Db>,
    path: Option<PathBuf>,
}

impl Stats {
    /// An empty store kept only in memory.
    pub fn in_memory() -> Stats {
        Stats {
            db: Mutex::new(Db {
                version: FORMAT_VERSION,
                ..Db::default()
            }),
            path: None,
        }
    }

    /// A store persisted in `datadir/stats.json`; starts from the file when it is readable (a
    /// corrupt or foreign file is logged and replaced).
    pub fn open(datadir: &Path) -> Stats {
        let path = datadir.join(STATS_FILE);
        let db = match load(&path) {
            Ok(Some(db)) => db,
            Ok(None) => Db {
                version: FORMAT_VERSION,
                ..Db::default()
            },
            Err(e) => {
                tracing::warn!(%e, "statistics not loaded; starting afresh");
                Db {
                    version: FORMAT_VERSION,
                    ..Db::default()
                }
            }
        };
        Stats {
            db: Mutex::new(db),
            path: Some(path),
        }
    }

    /// Adds a sample of every stream in `snapshot` taken at `now` (unix seconds).
    pub fn record(&self, now: u64, snapshot: &Snapshot) {
        let mut db = self.db.lock();
        for (stream, sample) in snapshot {
            if !STREAMS.iter().any(|(s, _)| s == stream) {
                continue;
            }
            let rings = db.streams.entry((*stream).to_owned()).or_default();
            for p in Period::ALL {
                rings[p.index()].add(p, now, sample);
            }
        }
    }

    /// The graph of `stream` over `period` at `now`: `period.bins()` points, newest first;
    /// `None` for an unknown stream.
    pub fn graph_data(&self, stream: &str, period: Period, now: u64) -> Option<Vec<Point>> {
        let multi = STREAMS.iter().find(|(s, _)| *s == stream)?.1;
        let db = self.db.lock();
        let ring = db.streams.get(stream).map(|r| &r[period.index()]);
        let width = period.bin_width();
        let slot = now / width;
        let mut out = Vec::with_capacity(period.bins());
        for i in 0..period.bins() as u64 {
            let Some(s) = slot.checked_sub(i) else {
                break;
            };
            let start = s * width;
            // The current bin is only partly over.
            let w = if i == 0 { (now - start).max(1) } else { width };
            let value = ring
                .and_then(|r| r.bins.iter().rev().find(|b| b.slot == s))
                .filter(|b| b.count > 0)
                .map(|b| {
                    let avg = |v: f64| v / f64::from(b.count);
                    if multi {
                        Value::Object(
                            b.sums
                                .iter()
                                .map(|(k, v)| (k.clone(), Value::from(avg(*v))))
                                .collect(),
                        )
                    } else {
                        b.sums.get("").map_or(Value::Null, |v| Value::from(avg(*v)))
                    }
                })
                .unwrap_or(Value::Null);
            out.push((start as f64 + w as f64 / 2.0, value, w as f64));
        }
        Some(out)
    }

    /// Writes the store to its file (atomically: a temporary file renamed over it).
    pub fn save(&self) -> Result<(), StatsError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&*self.db.lock()).map_err(|source| StatsError::Decode {
            path: path.clone(),
            source,
        })?;
        let tmp = path.with_extension("json.new");
        let io = |source| StatsError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

fn load(path: &Path) -> Result<Option<Db>, StatsError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StatsError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let db: Db = serde_json::from_slice(&bytes).map_err(|source| StatsError::Decode {
        path: path.to_owned(),
        source,
    })?;
    if db.version != FORMAT_VERSION {
        return Ok(None);
    }
    let mut db = db;
    // A file written by hand or by another build may hold more than the bounds allow.
    db.streams
        .retain(|name, _| STREAMS.iter().any(|(s, _)| s == name));
    for rings in db.streams.values_mut() {
        for p in Period::ALL {
            let ring = &mut rings[p.index()];
            if let Some(newest) = ring.bins.back().map(|b| b.slot) {
                ring.trim(p, newest);
            }
            for bin in &mut ring.bins {
                while bin.sums.len() > MAX_KEYS {
                    bin.sums.pop_last();
                }
            }
        }
    }
    Ok(Some(db))
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How often the sampler samples and saves.
#[derive(Debug, Clone, Copy)]
pub struct SamplerConfig {
    /// Time between two samples.
    pub sample_every: Duration,
    /// Time between two saves to disk.
    pub save_every: Duration,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            sample_every: Duration::from_secs(5),
            save_every: Duration::from_secs(60),
        }
    }
}

/// Samples `snapshot()` into `stats` now and then every `sample_every`, saves every
/// `save_every` and once more when `shutdown` turns true (or its sender is gone).
pub async fn run_sampler(
    stats: Arc<Stats>,
    config: SamplerConfig,
    snapshot: impl Fn() -> Snapshot + Send + 'static,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sample = tokio::time::interval(config.sample_every);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut save = tokio::time::interval(config.save_every);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    save.tick().await;
    loop {
        tokio::select! {
            _ = sample.tick() => stats.record(unix_now(), &snapshot()),
            _ = save.tick() => {
                if let Err(e) = stats.save() {
                    tracing::warn!(%e, "saving statistics");
                }
            }
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    if let Err(e) = stats.save() {
        tracing::warn!(%e, "saving statistics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(rate: f64, miners: &[(&str, f64)]) -> Snapshot {
        Snapshot::from([
            ("local_hash_rate", single(rate)),
            (
                "miner_hash_rates",
                miners.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ),
        ])
    }

    #[test]
    fn samples_in_a_bin_are_averaged_and_empty_bins_are_null() {
        let s = Stats::in_memory();
        let t = 1_000_020;
        s.record(t, &snap(10.0, &[("a", 1.0)]));
        s.record(t + 5, &snap(20.0, &[("a", 3.0), ("b", 2.0)]));
        let g = s
            .graph_data("local_hash_rate", Period::LastHour, t + 10)
            .unwrap();
        assert_eq!(g.len(), 60);
        assert_eq!(g[0].1, Value::from(15.0));
        assert!(g[1..].iter().all(|p| p.1.is_null()));
        let m = s
            .graph_data("miner_hash_rates", Period::LastHour, t + 10)
            .unwrap();
        assert_eq!(m[0].1["a"], Value::from(2.0));
        assert_eq!(m[0].1["b"], Value::from(1.0));
        assert!(s.graph_data("nope", Period::LastHour, t).is_none());
    }

    #[test]
    fn rings_stay_bounded() {
        let s = Stats::in_memory();
        for i in 0..10_000u64 {
            s.record(1_000_000 + i * 37, &snap(i as f64, &[]));
        }
        let db = s.db.lock();
        for p in Period::ALL {
            assert!(db.streams["local_hash_rate"][p.index()].bins.len() <= p.bins());
        }
    }

    proptest::proptest! {
        /// Against a naive model: every bin shown is the mean of the samples whose time falls
        /// in it, `null` where none did, whatever the spacing of the samples.
        #[test]
        fn graphs_match_a_naive_model(steps in proptest::collection::vec((0u64..4000, 0u32..1000), 1..200)) {
            let s = Stats::in_memory();
            let mut t = 1_700_000_000u64;
            let mut samples = Vec::new();
            for (dt, v) in steps {
                t += dt;
                samples.push((t, f64::from(v)));
                s.record(t, &Snapshot::from([("local_hash_rate", single(f64::from(v)))]));
            }
            for p in Period::ALL {
                let g = s.graph_data("local_hash_rate", p, t).unwrap();
                proptest::prop_assert_eq!(g.len(), p.bins());
                for (i, point) in g.iter().enumerate() {
                    let slot = t / p.bin_width() - i as u64;
                    let in_bin: Vec<f64> = samples
                        .iter()
                        .filter(|(ts, _)| ts / p.bin_width() == slot)
                        .map(|(_, v)| *v)
                        .collect();
                    if in_bin.is_empty() {
                        proptest::prop_assert!(point.1.is_null());
                    } else {
                        let mean = in_bin.iter().sum::<f64>() / in_bin.len() as f64;
                        let got = point.1.as_f64().unwrap();
                        proptest::prop_assert!((got - mean).abs() < 1e-9, "{} vs {}", got, mean);
                    }
                }
            }
        }
    }

    #[test]
    fn an_oversized_file_is_cut_to_the_bounds() {
        let dir = std::env::temp_dir().join(format!("p2pool-stats-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bins: Vec<Value> = (0..500u64)
            .map(|slot| serde_json::json!({ "slot": slot, "count": 1, "sums": { "": 1.0 } }))
            .collect();
        let ring = serde_json::json!({ "bins": bins });
        let file = serde_json::json!({
            "version": FORMAT_VERSION,
            "streams": { "local_hash_rate": [ring, ring, ring], "unknown": [ring, ring, ring] },
        });
        std::fs::write(dir.join(STATS_FILE), file.to_string()).unwrap();
        let s = Stats::open(&dir);
        let db = s.db.lock();
        assert_eq!(db.streams.len(), 1);
        for p in Period::ALL {
            assert!(db.streams["local_hash_rate"][p.index()].bins.len() <= p.bins());
        }
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_saved_store_reopens_with_its_graphs() {
        let dir = std::env::temp_dir().join(format!("p2pool-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Stats::open(&dir);
        s.record(2_000_000, &snap(7.0, &[]));
        s.save().unwrap();
        let again = Stats::open(&dir);
        let g = again
            .graph_data("local_hash_rate", Period::LastDay, 2_000_001)
            .unwrap();
        assert_eq!(g[0].1, Value::from(7.0));
        std::fs::write(dir.join(STATS_FILE), b"not json").unwrap();
        let fresh = Stats::open(&dir);
        assert!(fresh
            .graph_data("local_hash_rate", Period::LastDay, 2_000_001)
            .unwrap()[0]
            .1
            .is_null());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
