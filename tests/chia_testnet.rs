//! The private Chia test network (`tests/chia_testnet/chia_testnet.py`, through the shared helper
//! `tests/chia_net`): chia-blockchain 2.7.5's full node and Timelord, unmodified, with VDF clients
//! from the stand-in, offline on loopback. `init` and `start` give a root and ports; `check` runs
//! chia's own farmer and harvester with three k18 plots until blocks from those plots are in the
//! chain (the peak grows, signage points arrive); `stop` ends every process, and so does the death
//! of the process that ran `start`. Figures go to a `RESULT` line. Needs chia-blockchain in
//! `~/.cache/p2pool-rs/venv-chia` (`P2POOL_TEST_DEPS=1 scripts/setup.sh`), else "skipped: …".

#![allow(clippy::print_stdout)] // reason: RESULT lines and "skipped"

mod chia_net;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chia_net::ChiaTestnet;

/// A process that is gone or a zombie (nobody may reap an orphaned group leader in a container).
fn gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z"),
    }
}

/// The caller of the second `start`; killed when the test ends, however it ends.
struct Killed(Option<std::process::Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pids(started: &serde_json::Value) -> Vec<u64> {
    let mut all: Vec<u64> = started["pids"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    all.extend(started["supervisor_pid"].as_u64());
    all
}

fn wait_gone(pids: &[u64], timeout: Duration) -> Vec<u64> {
    let start = Instant::now();
    loop {
        let left: Vec<u64> = pids.iter().copied().filter(|&p| !gone(p)).collect();
        if left.is_empty() || start.elapsed() > timeout {
            return left;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The VDF client's arithmetic against chiavdf: outputs equal to `chiavdf.prove`'s, forms that
/// round-trip through chiavdf's strict deserializer, proofs that chiavdf's verifier accepts.
#[test]
fn vdf_client_agrees_with_chiavdf() {
    let Some(venv) = chia_net::venv() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chia_testnet/vdf_client.py");
    let dir = tempfile::tempdir().unwrap();
    let ran = chia_net::run_command(
        Command::new(venv.join("bin/python")).args(["-B", script.to_str().unwrap(), "--selftest"]),
        dir.path(),
        "selftest",
        Duration::from_secs(120),
    );
    assert!(ran.success, "{}{}", ran.stdout, ran.stderr);
    let got = ran.json();
    assert_eq!(got["selftest"], "ok", "{got}");
    println!(
        "RESULT vdf_client_squarings_per_second={}",
        got["squarings_per_second"]
    );
}

#[test]
fn chia_testnet_farms_blocks_with_chia_farmer() {
    let Some(venv) = chia_net::venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut net = ChiaTestnet::start(&venv, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(net.network, "p2poolsim");
    assert!(net.root.join("config/config.yaml").is_file());
    assert!(net
        .root
        .join("config/ssl/full_node/private_full_node.crt")
        .is_file());
    let ports = [
        net.full_node_peer_port,
        net.full_node_rpc_port,
        net.farmer_port,
        net.farmer_rpc_port,
    ];
    assert!(ports.iter().all(|&p| p != 0));
    let started = net.started.clone();
    let running = pids(&started);
    assert_eq!(
        running.len(),
        6,
        "full node, timelord, 3 VDF clients, supervisor: {started}"
    );
    assert!(running.iter().all(|&p| !gone(p)), "{started}");
    let state = net.blockchain_state();
    assert!(state.is_object(), "the full node's RPC answers: {state}");

    let check = net.check_blocks(2, 300);
    let got = check.json();
    assert!(got["blocks_by_plots"].as_u64().unwrap_or(0) >= 2, "{got}");
    let peak = got["peak_height"].as_i64().unwrap_or(-1);
    assert!(
        peak > got["start_height"].as_i64().unwrap_or(i64::MAX),
        "{got}"
    );
    assert!(got["signage_points"].as_u64().unwrap_or(0) >= 3, "{got}");
    let state = net.blockchain_state();
    assert!(
        state["peak"]["height"].as_i64().unwrap_or(-1) >= peak,
        "{state}"
    );
    assert_eq!(state["sync"]["sync_mode"], false, "{state}");
    println!(
        "RESULT chia_testnet_sps_per_second={} first_block_s={} last_block_s={} blocks={} peak_height={} network_cpu_share={} wall_s={}",
        got["sps_per_second"],
        got["first_block_s"],
        got["last_block_s"],
        got["blocks_by_plots"],
        peak,
        got["network_cpu_share"],
        got["wall_s"],
    );

    net.stop().unwrap_or_else(|e| panic!("{e}"));
    let left = wait_gone(&running, Duration::from_secs(30));
    assert!(left.is_empty(), "still running after stop: {left:?}");

    // Started again from a shell that then dies: the network ends with it, and the chain it
    // farmed is still there.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chia_testnet/chia_testnet.py");
    let out = dir.path().join("restart.json");
    let shell = Command::new("sh")
        .args([
            "-c",
            &format!(
                "{} {} start {} > {}; exec sleep 600",
                venv.join("bin/python").display(),
                script.display(),
                net.root.display(),
                out.display()
            ),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let shell = Killed(Some(shell));
    let start = Instant::now();
    let restarted = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) {
            break v;
        }
        if start.elapsed() > chia_net::START_TIMEOUT {
            panic!(
                "no restart within {:?}: {}",
                chia_net::START_TIMEOUT,
                net.log_tail(40)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let rpc_port = restarted["full_node_rpc_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("{restarted}"));
    let state = net.blockchain_state_on(rpc_port);
    assert!(
        state["peak"]["height"].as_i64().unwrap_or(-1) >= peak,
        "the chain survives a restart: {state}"
    );
    let running = pids(&restarted);
    assert_eq!(running.len(), 6, "{restarted}");
    drop(shell); // the caller of `start` dies
    let left = wait_gone(&running, Duration::from_secs(30));
    assert!(
        left.is_empty(),
        "still running after the caller died: {left:?}"
    );
    // Nothing left for `stop`, which is still fine to call.
    net.stop().unwrap_or_else(|e| panic!("{e}"));
}
