//! Chia harvester load: the node's farmer endpoint with 100 harvester connections announcing
//! 10,000 plots, plus chia-blockchain's real harvester, all on 127.0.0.1.
//!
//! `cargo bench --no-default-features --bench chia_harvesters` starts the Chia node in-process
//! as `p2pool run --chain chia --network regtest` does ([`ChiaNode::start`]: TLS on the worker
//! port, the embedded signage clock, shares stored by the PoSpace share service), with two of
//! its real options turned for load: `--chia-signage-interval-ms` and
//! `--chia-share-difficulty 1` (every proof good enough for the plot is a share, where the
//! retarget would soon make proofs rare).
//!
//! The load generator runs in a process of its own (this binary, started again with
//! `--load-generator`), as harvesters run on machines of their own: the node's process holds
//! only the node; `node_cpu_ms_per_share` is the node process's CPU time over the window per
//! share, `generator_cpu_s` what the harvesters cost the machine. It is the project's own
//! harvester client (`p2pool::harvester::client`), one per connection, each with a certificate
//! issued from the node's CA: websocket `/ws`, chia handshake, plot sync of 100 plots per
//! connection (10,000 in all), `new_proof_of_space` for each proof found,
//! `request_signatures` answered with the plot's real signature, and `farming_info`. The
//! connections' signage point lookups take turns (`Harvester::lookup_gate`): they stand for
//! harvesters on machines of their own, where a signature reply does not wait behind other
//! harvesters' lookups. The answering connections farm one real k18 plot each (the rest of
//! their plots, and all plots of the others, are announced only); every proof comes from a real
//! plot, each plot farmed by one connection. The plots are made once with chiapos
//! (`tests/harvester/make_keyed_plot.py`, the node's farmer keys in the memo) and kept in
//! `$CARGO_TARGET_DIR/chia-bench-plots`. Beside
//! them runs `chia_harvester` from `~/.cache/p2pool-rs/venv-chia` with two plots of its own,
//! pointed at the worker port as `tests/chia_farmer.rs` does ("skipped: real harvester" without
//! the venv).
//!
//! Two scenarios, one line each ([`FULL`]): `filter`, the per-signage-point burst of 10,000
//! plots on mainnet (its plot filter lets about 20 of them look up a signage point: 20
//! answering connections) at five signage points a second; and `every_plot`, all 100
//! connections answering every signage point, once a second.
//!
//! Once every connection has finished its plot sync, the node is watched for
//! [`MEASURE_SECS`]: `proofs_per_s` is the rate of `new_proof_of_space` messages it took,
//! `proof_to_share_ms` (median) and `proof_to_share_p99_ms` come from every share of the window
//! (`ShareRecord::proof_to_share_ms`: from reading the proof to the share stored and
//! acknowledged, the signature round trip included). `share_check_ms` is the floor measured in
//! the same run: `check_share` (proof and BLS signature) of those shares on one thread, median.
//! Refusals are printed by reason (`refused_*`); none is expected. The smoke run under
//! `cargo test --benches` uses 4 connections (2 answering), 400 plots, 5 s and no real
//! harvester. `CHIA_BENCH_SCENARIO=filter` (or `every_plot`) runs one scenario only.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark reports on stdout"
)]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/chia_common/mod.rs"]
mod chia_common;

use bitcoin::hashes::{sha256, Hash};
use chia_common::{ChiaHarvester, MNEMONIC};
use chia_protocol::Bytes32;
use p2pool::chia::farmer::{Farmer, FarmerKeys, ShareRecord};
use p2pool::chia::node::{ChiaNode, ChiaNodeOptions, ChiaRunArgs};
use p2pool::harvester::client::{CertSource, FarmConfig, Harvester, LookupGate};
use p2pool::harvester::plots::Consensus;
use p2pool::harvester::protocol::Plot2;
use sharechain::pospace_share::{check_share, KnownSignagePoints, PoSpaceShare};

const TXCH: &str = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";
/// Seconds of measurement: (full run, smoke run).
const MEASURE_SECS: (u64, u64) = (40, 5);
/// Harvester connections and plots they announce in all: (full run, smoke run).
const HARVESTERS: (usize, usize) = (100, 4);
const PLOTS: (usize, usize) = (10_000, 400);
/// What is measured, one after the other on a fresh node each.
struct Scenario {
    name: &'static str,
    /// Connections farming a real plot (the others only announce plots).
    answering: usize,
    /// Signage clock interval.
    interval_ms: u64,
}

/// Full run: `filter` is the burst 10,000 plots make on mainnet, where the plot filter (1 in
/// 512) lets about 20 plots look up each signage point: 20 connections answer every signage
/// point (regtest's filter passes every plot), five signage points a second (47 times
/// mainnet's rate). `every_plot` has every connection answer every signage point, once a
/// second: a burst five times mainnet's for 10,000 plots.
const FULL: [Scenario; 2] = [
    Scenario {
        name: "filter",
        answering: 20,
        interval_ms: 200,
    },
    Scenario {
        name: "every_plot",
        answering: 100,
        interval_ms: 1000,
    },
];
const SMOKE: [Scenario; 1] = [Scenario {
    name: "smoke",
    answering: 2,
    interval_ms: 500,
}];
/// Plots made at once on a cold cache (chiapos is mostly waiting on its temporary files).
const PLOTTERS: usize = 6;
/// Plots of the real harvester.
const REAL_PLOTS: [&str; 2] = ["real0", "real1"];

fn main() {
    if let Some(spec) = std::env::args().skip_while(|a| a != LOAD_GENERATOR).nth(1) {
        load_generator(&spec);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let pick = |pair: (usize, usize)| if full { pair.0 } else { pair.1 };
    let harvesters = pick(HARVESTERS);
    let plots = pick(PLOTS);
    let secs = if full { MEASURE_SECS.0 } else { MEASURE_SECS.1 };
    let Some(python) = plot_python() else {
        println!("skipped: no chiapos and chia_rs in ~/.cache/p2pool-rs/venv-chia or venv-plots (scripts/setup.sh)");
        return;
    };
    let chia_venv = if full { chia_venv() } else { None };
    if full && chia_venv.is_none() {
        println!("skipped: real harvester (no chia-blockchain in ~/.cache/p2pool-rs/venv-chia)");
    }
    let keys = FarmerKeys::from_mnemonic(MNEMONIC).expect("mnemonic");
    let cache = plot_cache(&keys);
    let scenarios: &'static [Scenario] = if full { &FULL } else { &SMOKE };
    let answering = scenarios.iter().map(|s| s.answering).max().unwrap_or(0);
    let sim_names: Vec<String> = (0..answering).map(|i| format!("sim{i:03}")).collect();
    let mut wanted: Vec<(PathBuf, String)> = sim_names
        .iter()
        .map(|n| (cache.join("sim"), n.clone()))
        .collect();
    if chia_venv.is_some() {
        wanted.extend(
            REAL_PLOTS
                .iter()
                .map(|n| (cache.join("real"), (*n).to_owned())),
        );
    }
    make_plots(&python, &keys, &wanted);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `CHIA_BENCH_SCENARIO=filter` (or `every_plot`) runs that scenario only.
    let only = std::env::var("CHIA_BENCH_SCENARIO").ok();
    for scenario in scenarios
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name))
    {
        let result = rt.block_on(run(Run {
            scenario,
            harvesters,
            plots,
            secs,
            sim_plots: sim_names
                .iter()
                .take(scenario.answering)
                .map(|n| cache.join("sim").join(format!("{n}.plot")))
                .collect(),
            real: chia_venv.clone().map(|venv| (venv, cache.join("real"))),
        }));
        match result {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("chia_harvesters: {e}");
                std::process::exit(1);
            }
        }
    }
    rt.shutdown_timeout(Duration::from_secs(5));
}

struct Run {
    scenario: &'static Scenario,
    harvesters: usize,
    plots: usize,
    secs: u64,
    sim_plots: Vec<PathBuf>,
    /// The chia venv and the real harvester's plot directory.
    real: Option<(PathBuf, PathBuf)>,
}

/// Refusal counters that mean a proof or share the node should have taken was not.
fn is_refusal(counter: &str) -> bool {
    counter.starts_with("proof_")
        || counter.starts_with("signature_")
        || counter.starts_with("share_")
        || counter.starts_with("refused_")
        || counter.starts_with("dropped_")
}

async fn run(run: Run) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = dir.path().join("ca-root");
    p2pool::chia::ssl::create_ca(&root.join("config/ssl/ca")).map_err(|e| e.to_string())?;
    let mnemonic = dir.path().join("mnemonic");
    std::fs::write(&mnemonic, MNEMONIC).map_err(|e| e.to_string())?;
    let mut p2p = p2pool::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    let node = ChiaNode::start(ChiaNodeOptions {
        network: "regtest".into(),
        datadir: Some(dir.path().join("node")),
        address: Some(TXCH.into()),
        worker_addr: ("127.0.0.1".parse().expect("ip"), Some(0)),
        worker: p2pool::worker::WorkerConfig::default(),
        chia: ChiaRunArgs {
            chia_root: Some(root),
            chia_mnemonic_file: Some(mnemonic),
            chia_signage_interval_ms: Some(run.scenario.interval_ms),
            chia_share_difficulty: Some(1),
            ..ChiaRunArgs::default()
        },
        p2p,
    })
    .await
    .map_err(|e| format!("node: {e:#}"))?;
    let farmer = node.farmer.clone();
    let network = farmer.config().network;
    let ca_dir = farmer.config().ca_dir.clone();
    let addr = node.worker_addr.to_string();

    // The load generator, in a process of its own (as harvesters are on machines of their
    // own): one harvester client per connection, each farming one real plot.
    let spec = GeneratorSpec {
        farmer: addr.clone(),
        ca_dir: ca_dir.clone(),
        network_id: farmer.config().network_id.clone(),
        difficulty_constant_factor: network.difficulty_constant_factor,
        filter_bits: network.plot_filter_prefix_bits(0),
        connections: run.harvesters,
        plots: run.sim_plots.clone(),
        announced_per_connection: run.plots / run.harvesters,
    };
    let generator = LoadGenerator::start(&spec)?;
    let real = run.real.as_ref().map(|(venv, plots)| {
        ChiaHarvester::start(venv, dir.path(), &ca_dir, node.worker_addr.port(), plots)
    });

    // Ready: every connection (and the real harvester) through its first plot sync.
    let started = Instant::now();
    let synced = loop {
        let hs = farmer.harvesters();
        let sim = hs
            .iter()
            .filter(|h| h.software_version.starts_with("p2pool-rs") && h.plot_syncs > 0)
            .count();
        let real_ok = real.is_none() || hs.iter().any(|h| is_real(h) && h.plot_syncs > 0);
        if sim == run.harvesters && real_ok {
            break hs;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let log = real.as_ref().map(ChiaHarvester::log).unwrap_or_default();
            return Err(format!(
                "{sim} of {} harvesters synced (real harvester synced: {real_ok}) after {:?}; \
                 counters {:?}\nreal harvester log:\n{log}",
                run.harvesters,
                started.elapsed(),
                farmer.counters()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sim_plots: usize = synced
        .iter()
        .filter(|h| !is_real(h))
        .map(|h| h.plots.len())
        .sum();
    let real_id = synced.iter().find(|h| is_real(h)).map(|h| h.id);
    eprintln!(
        "{} harvesters with {sim_plots} plots synced in {:.1} s; measuring {} s",
        synced.len(),
        started.elapsed().as_secs_f64(),
        run.secs
    );

    // The window: counters before and after, every share recorded in between.
    let mut seen: HashSet<String> = farmer.shares().into_iter().map(|r| r.hash).collect();
    let mut shares: Vec<ShareRecord> = Vec::new();
    let before = farmer.counters();
    let cpu0 = cpu_seconds(std::process::id());
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(run.secs) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        collect(&farmer, &mut seen, &mut shares);
    }
    let after = farmer.counters();
    let window = t0.elapsed().as_secs_f64();
    let node_cpu_s = cpu_seconds(std::process::id()) - cpu0;
    // Shares of proofs taken in the window may still be on their way.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    collect(&farmer, &mut seen, &mut shares);
    let lookups: Vec<u64> = farmer
        .harvesters()
        .iter()
        .filter(|h| !is_real(h))
        .flat_map(|h| h.lookup_times_us.iter().copied().collect::<Vec<_>>())
        .collect();

    let delta =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    let proofs = delta("proofs");
    let mut ms: Vec<f64> = shares.iter().map(|r| r.proof_to_share_ms).collect();
    ms.sort_unstable_by(f64::total_cmp);
    // The node's own part: all but the wait for the harvester's signature.
    let mut node_ms: Vec<f64> = shares
        .iter()
        .map(|r| r.proof_to_share_ms - r.signature_wait_ms)
        .collect();
    node_ms.sort_unstable_by(f64::total_cmp);
    let mut wait_ms: Vec<f64> = shares.iter().map(|r| r.signature_wait_ms).collect();
    wait_ms.sort_unstable_by(f64::total_cmp);
    let real_shares = shares
        .iter()
        .filter(|r| Some(r.harvester) == real_id)
        .count();
    // p99 of the project's harvester clients and of chia's own harvester apart.
    let p99_of = |real: bool| {
        let mut ms: Vec<f64> = shares
            .iter()
            .filter(|r| (Some(r.harvester) == real_id) == real)
            .map(|r| r.proof_to_share_ms)
            .collect();
        ms.sort_unstable_by(f64::total_cmp);
        percentile(&ms, 0.99)
    };
    let (sim_p99, real_p99) = (p99_of(false), p99_of(true));
    let floor = share_check_ms(&farmer, &shares);
    let mut refused = BTreeMap::new();
    for name in after.keys().filter(|n| is_refusal(n)) {
        let n = delta(name);
        if n > 0 {
            refused.insert(*name, n);
        }
    }
    let mut lookups = lookups;
    lookups.sort_unstable();

    let generator_cpu_s = generator.stop();
    drop(real);
    node.shutdown().await;

    let refused_text: String = refused
        .iter()
        .map(|(name, n)| format!(" refused_{}={n}", name.trim_start_matches("refused_")))
        .collect();
    eprintln!(
        "{} proofs, {} shares in {window:.1} s; proof_to_share_ms max {:.3}; harvester lookup_us median {}; counters {after:?}",
        proofs,
        shares.len(),
        ms.last().copied().unwrap_or(0.0),
        percentile_u64(&lookups, 0.5),
    );
    let line = format!(
        "RESULT scenario={} answering={} signage_interval_ms={} harvesters={} plots={sim_plots} proofs_per_s={:.1} proof_to_share_ms={:.3} \
         proof_to_share_p99_ms={:.3} sim_p99_ms={sim_p99:.3} real_p99_ms={real_p99:.3} \
         real_harvester_shares={real_shares} shares_per_s={:.1} \
         shares={} node_ms={:.3} node_p99_ms={:.3} signature_wait_ms={:.3} \
         signature_wait_p99_ms={:.3} share_check_ms={floor:.3} \
         node_cpu_ms_per_share={:.3} generator_cpu_s={generator_cpu_s:.1}{}{refused_text}",
        run.scenario.name,
        run.scenario.answering,
        run.scenario.interval_ms,
        run.harvesters,
        proofs as f64 / window,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        shares.len() as f64 / window,
        shares.len(),
        percentile(&node_ms, 0.5),
        percentile(&node_ms, 0.99),
        percentile(&wait_ms, 0.5),
        percentile(&wait_ms, 0.99),
        node_cpu_s * 1e3 / shares.len().max(1) as f64,
        if run.real.is_some() {
            ""
        } else {
            " real_harvester_skipped=1"
        },
    );
    let wrong: Vec<_> = refused
        .keys()
        .filter(|n| {
            !matches!(
                **n,
                "proof_late" | "proof_duplicate" | "proof_duplicate_plot_sp"
            )
        })
        .collect();
    if !wrong.is_empty() {
        return Err(format!("the node refused what it should take: {line}"));
    }
    if shares.is_empty() {
        return Err(format!("no share in the window: {line}"));
    }
    Ok(line)
}

/// The argument that makes this binary the load generator; the spec (JSON) follows it.
const LOAD_GENERATOR: &str = "--load-generator";

/// What the load generator process runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct GeneratorSpec {
    farmer: String,
    ca_dir: PathBuf,
    network_id: String,
    difficulty_constant_factor: u128,
    filter_bits: u8,
    /// Harvester connections.
    connections: usize,
    /// One real plot for each of the first connections.
    plots: Vec<PathBuf>,
    /// Plots each connection reports in plot sync (its real one included).
    announced_per_connection: usize,
}

/// The load generator process (this binary with [`LOAD_GENERATOR`]); it stops when it is
/// killed or its standard input closes.
struct LoadGenerator(Child);

impl LoadGenerator {
    fn start(spec: &GeneratorSpec) -> Result<LoadGenerator, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let spec = serde_json::to_string(spec).map_err(|e| e.to_string())?;
        Command::new(exe)
            .args([LOAD_GENERATOR, &spec])
            .stdin(Stdio::piped())
            .spawn()
            .map(LoadGenerator)
            .map_err(|e| format!("load generator: {e}"))
    }

    /// Stops the process; the CPU seconds it used (user + system), 0 when unknown.
    fn stop(mut self) -> f64 {
        let cpu = cpu_seconds(self.0.id());
        let _ = self.0.kill();
        let _ = self.0.wait();
        cpu
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User + system CPU seconds of process `pid` so far (`/proc/PID/stat`), 0 when unknown.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) end with ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// The load generator's main: the harvester clients of `spec` until standard input closes.
fn load_generator(spec: &str) {
    let spec: GeneratorSpec = match serde_json::from_str(spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("load generator: bad spec: {e}");
            std::process::exit(2);
        }
    };
    let keys = FarmerKeys::from_mnemonic(MNEMONIC).expect("mnemonic");
    let consensus = Consensus {
        difficulty_constant_factor: spec.difficulty_constant_factor,
        filter_bits: Some(spec.filter_bits),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The connections stand for harvesters on machines of their own: their lookups take turns
    // (one signage point lookup at a time in this process), so that no connection's signature
    // reply waits behind twenty lookups time-sliced on the same two cores.
    let gate = LookupGate::default();
    rt.block_on(async {
        for i in 0..spec.connections {
            let plots: Vec<PathBuf> = spec.plots.get(i).cloned().into_iter().collect();
            let harvester = match Harvester::new(FarmConfig {
                farmer: spec.farmer.clone(),
                plots: plots.clone(),
                certs: CertSource::CaDir(spec.ca_dir.clone()),
                network_id: spec.network_id.clone(),
                consensus,
            }) {
                Ok(h) if h.plots().len() == plots.len() => h,
                Ok(_) => {
                    eprintln!("load generator: {plots:?} is not a farmable plot");
                    std::process::exit(2);
                }
                Err(e) => {
                    eprintln!("load generator: harvester {i}: {e}");
                    std::process::exit(2);
                }
            };
            let announced = spec.announced_per_connection - plots.len();
            let harvester = harvester
                .announce_only(announced_only(i, announced, &keys))
                .lookup_gate(gate.clone());
            tokio::spawn(async move { harvester.run().await });
        }
        // The bench closes standard input (or dies): stop.
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await;
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn is_real(h: &p2pool::chia::farmer::HarvesterInfo) -> bool {
    !h.software_version.starts_with("p2pool-rs")
}

/// Records the shares not seen before. Polled every 250 ms, it copies only the newest
/// [`COLLECT_NEWEST`] records (the copying runs in the node's process and counts in its CPU).
fn collect(farmer: &Farmer, seen: &mut HashSet<String>, shares: &mut Vec<ShareRecord>) {
    let newest = farmer.newest_shares(COLLECT_NEWEST);
    if newest.len() == COLLECT_NEWEST && newest.first().is_some_and(|r| !seen.contains(&r.hash)) {
        eprintln!("more than {COLLECT_NEWEST} shares between two polls: some are not counted");
    }
    for record in newest {
        if seen.insert(record.hash.clone()) {
            shares.push(record);
        }
    }
}

/// Shares [`collect`] copies per poll: several times what 250 ms bring at the bench's rates.
const COLLECT_NEWEST: usize = 300;

/// `check_share` of up to 500 of the window's shares on this thread: median ms.
fn share_check_ms(farmer: &Farmer, shares: &[ShareRecord]) -> f64 {
    let network = farmer.config().network;
    let mut known = KnownSignagePoints::new();
    for (_, sp) in farmer.signage_points() {
        known.insert(sp);
    }
    let mut times = Vec::new();
    for record in shares.iter().rev().take(500) {
        let Some(share) = hex::decode(&record.share)
            .ok()
            .and_then(|b| PoSpaceShare::decode(&b, network).ok())
        else {
            continue;
        };
        if known
            .get(&share.content().challenge_hash, &share.content().sp_hash)
            .is_none()
        {
            continue;
        }
        let t = Instant::now();
        let ok = check_share(&share, network, &known).is_ok();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(ok, "a share the node took does not check");
    }
    times.sort_unstable_by(f64::total_cmp);
    percentile(&times, 0.5)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn percentile_u64(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Plot-sync entries for connection `i` beyond its real plot: OG plots of this farmer's keys
/// at paths no disk holds, never looked up.
fn announced_only(i: usize, n: usize, keys: &FarmerKeys) -> Vec<Plot2> {
    (0..n)
        .map(|j| {
            let id = sha256::Hash::hash(format!("bench plot {i} {j}").as_bytes()).to_byte_array();
            Plot2 {
                filename: format!("/bench/harvester{i:03}/announced{j:03}.plot"),
                size: 32,
                plot_id: Bytes32::new(id),
                pool_public_key: Some(keys.pool_pk()),
                pool_contract_puzzle_hash: None,
                plot_public_key: keys.farmer_pk(),
                file_size: 108_837_106_297,
                time_modified: 1_700_000_000,
                compression_level: Some(0),
                plot_index: 0,
                meta_group: 0,
            }
        })
        .collect()
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

fn python_has(venv: &Path, modules: &str) -> bool {
    Command::new(venv.join("bin/python"))
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn chia_venv() -> Option<PathBuf> {
    let venv = std::env::var_os("P2POOL_CHIA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/p2pool-rs/venv-chia"));
    python_has(&venv, "chia.harvester, chiapos, chia_rs").then_some(venv)
}

/// A Python with chiapos and chia_rs, to make keyed plots.
fn plot_python() -> Option<PathBuf> {
    let chia = std::env::var_os("P2POOL_CHIA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/p2pool-rs/venv-chia"));
    [chia, home().join(".cache/p2pool-rs/venv-plots")]
        .into_iter()
        .find(|v| python_has(v, "chiapos, chia_rs"))
        .map(|v| v.join("bin/python"))
}

/// Where the plots of `keys` are kept between runs.
fn plot_cache(keys: &FarmerKeys) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("chia-bench-plots").join(format!(
        "farmer-{}",
        &hex::encode(keys.farmer_pk().to_bytes())[..16]
    ))
}

/// Makes the missing plots, [`PLOTTERS`] at a time.
fn make_plots(python: &Path, keys: &FarmerKeys, wanted: &[(PathBuf, String)]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harvester/make_keyed_plot.py");
    let farmer_pk = hex::encode(keys.farmer_pk().to_bytes());
    let pool_pk = hex::encode(keys.pool_pk().to_bytes());
    let missing: Vec<&(PathBuf, String)> = wanted
        .iter()
        .filter(|(dir, name)| !dir.join(format!("{name}.plot")).exists())
        .collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("making {} k18 plots (kept for later runs)", missing.len());
    let started = Instant::now();
    for batch in missing.chunks(PLOTTERS) {
        let children: Vec<(String, Child)> = batch
            .iter()
            .map(|(dir, name)| {
                let child = Command::new(python)
                    .arg(&script)
                    .arg(dir)
                    .args([name.as_str(), "og", &farmer_pk, &pool_pk])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
                (name.clone(), child)
            })
            .collect();
        for (name, child) in children {
            let out = child.wait_with_output().expect("plotter");
            assert!(
                out.status.success(),
                "plotting {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    eprintln!("plots made in {:.0} s", started.elapsed().as_secs_f64());
}
