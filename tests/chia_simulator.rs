//! The node linked to chia's simulator full node (chia-blockchain 2.7.5's
//! `chia_full_node_simulator`, what `chia dev sim` runs, offline on 127.0.0.1): the root made as
//! `chia dev sim create` makes it (`tests/chia_sim/chia_sim.py`: keyring from a mnemonic in a
//! temporary `CHIA_KEYS_ROOT`, plots kept in
//! `~/.cache/p2pool-rs/chia-sim/simulator/plots`), chia's daemon
//! for the simulator's keys, blocks farmed on demand (`chia dev sim farm`).
//!
//! - the link handshakes on network `simulator0` and `/chia/full_node` reports the simulator's
//!   peak height and difficulty, which the log says too;
//! - a simulator sends no signage point: after `--chia-full-node-quiet-secs` the log says once
//!   that the link is up but none has come ("a simulator sends none"), and `/chia/full_node`
//!   `quiet` says it.
//!
//! Needs `~/.cache/p2pool-rs/venv-chia` with `chia_full_node_simulator`, else "skipped: …".

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

mod chia_net;

use chia_net::{free_port, wait_status};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use p2pool::chia::node::{ChiaNode, ChiaNodeOptions, ChiaRunArgs};

const TXCH: &str = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";
const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
/// Bound on each wait of the test.
const PATIENCE: Duration = Duration::from_secs(120);
/// Seconds without a signage point before the link says so.
const QUIET_SECS: u64 = 3;

/// The log lines of this test process.
fn log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        log().lock().unwrap().extend_from_slice(buf);
        std::io::stdout().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| LogWriter)
        .with_ansi(false)
        .with_env_filter("info")
        .try_init();
}

fn log_text() -> String {
    String::from_utf8_lossy(&log().lock().unwrap()).into_owned()
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Proc {
    fn spawn(cmd: &mut Command, out: &Path) -> Proc {
        let log = std::fs::File::create(out).unwrap();
        Proc(
            cmd.stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The simulator's environment: its own HOME (chia writes under `~/.chia`), keyring and root.
fn sim_env<'a>(cmd: &'a mut Command, dir: &Path, root: &Path) -> &'a mut Command {
    cmd.env("HOME", dir.join("home"))
        .env("CHIA_KEYS_ROOT", dir.join("keys"))
        .env("CHIA_ROOT", root)
        .current_dir(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_to_chias_simulator_reports_its_peak_and_says_it_sends_no_signage_points() {
    let Some(venv) = chia_net::venv_with("chia.simulator.start_simulator, chia.cmds.sim_funcs")
    else {
        return;
    };
    if !venv.join("bin/chia_full_node_simulator").exists() || !venv.join("bin/chia_daemon").exists()
    {
        println!(
            "skipped: no chia_full_node_simulator/chia_daemon in {}",
            venv.display()
        );
        return;
    }
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root = dir.join("sim/main");
    // The plots depend only on the key: kept between runs (chia's plot manager finds them by
    // a path ending in `simulator/plots`, after links are resolved).
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let plots = home.join(".cache/p2pool-rs/chia-sim/simulator/plots");
    std::fs::create_dir_all(&plots).unwrap();
    std::fs::create_dir_all(dir.join("sim/simulator")).unwrap();
    std::os::unix::fs::symlink(&plots, dir.join("sim/simulator/plots")).unwrap();
    let mnemonic = dir.join("mnemonic.txt");
    std::fs::write(&mnemonic, MNEMONIC).unwrap();
    let (port, rpc_port, daemon_port) = (free_port(), free_port(), free_port());

    let started = Instant::now();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chia_sim/chia_sim.py");
    let init = tokio::task::block_in_place(|| {
        chia_net::run_command(
            sim_env(&mut Command::new(venv.join("bin/python")), dir, &root)
                .arg("-B")
                .arg(&script)
                .arg("init")
                .arg(&root)
                .arg(&mnemonic)
                .args([port, rpc_port, daemon_port].map(|p| p.to_string())),
            &dir.join("logs"),
            "init",
            Duration::from_secs(900),
        )
    });
    assert!(
        init.success,
        "init failed:\n{}\n{}",
        init.stdout, init.stderr
    );
    println!("RESULT chia_sim_init_ms={}", started.elapsed().as_millis());

    let _daemon = Proc::spawn(
        sim_env(&mut Command::new(venv.join("bin/chia_daemon")), dir, &root),
        &dir.join("daemon.out"),
    );
    let _sim = Proc::spawn(
        sim_env(
            &mut Command::new(venv.join("bin/chia_full_node_simulator")),
            dir,
            &root,
        ),
        &dir.join("simulator.out"),
    );

    let mut p2p = p2pool::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let opts = ChiaNodeOptions {
        network: "regtest".into(),
        datadir: Some(dir.join("node")),
        address: Some(TXCH.to_owned()),
        worker_addr: ("127.0.0.1".parse().unwrap(), Some(0)),
        worker: p2pool::worker::WorkerConfig::default(),
        chia: ChiaRunArgs {
            chia_root: Some(root.clone()),
            chia_full_node: Some(format!("127.0.0.1:{port}")),
            chia_full_node_quiet_secs: Some(QUIET_SECS),
            chia_mnemonic_file: Some(mnemonic),
            ..ChiaRunArgs::default()
        },
        p2p,
    };
    let node = ChiaNode::start(opts).await.unwrap();
    let status = wait_status(PATIENCE, node.worker_addr, "link up", |s| {
        s["link"] == "connected"
    })
    .await;
    assert_eq!(status["network"], "simulator0", "{status}");
    println!(
        "RESULT chia_sim_link_up_ms={}",
        started.elapsed().as_millis()
    );

    // Blocks on demand.
    let farm = tokio::task::block_in_place(|| {
        chia_net::run_command(
            sim_env(&mut Command::new(venv.join("bin/chia")), dir, &root)
                .args(["dev", "sim", "--root-path"])
                .arg(dir.join("sim"))
                .args(["farm", "-b", "2"]),
            &dir.join("logs"),
            "farm",
            Duration::from_secs(120),
        )
    });
    assert!(
        farm.success,
        "farm failed:\n{}\n{}",
        farm.stdout, farm.stderr
    );
    wait_status(PATIENCE, node.worker_addr, "peak reported", |s| {
        s["peak_height"].as_u64().is_some_and(|h| h >= 2) && s["difficulty"].as_u64().is_some()
    })
    .await;
    let status = wait_status(PATIENCE, node.worker_addr, "quiet reported", |s| {
        s["quiet"]
            .as_str()
            .is_some_and(|q| q.contains("a simulator sends none"))
    })
    .await;
    assert_eq!(status["signage_points"], 0, "{status}");
    let quiet = status["quiet"].as_str().unwrap();
    assert!(quiet.contains("difficulty"), "{quiet}");

    let text = log_text();
    assert!(
        text.contains("chia full node: peak"),
        "the log reports the peak:\n{text}"
    );
    assert_eq!(
        text.matches("a simulator sends none").count(),
        1,
        "said once:\n{text}"
    );
    node.shutdown().await;
}
