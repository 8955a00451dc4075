//! `p2pool harvester --farmer` against chia-blockchain 2.7.5's own farmer service, unmodified, on
//! loopback: a fresh chia root (`chia init`, `chia keys generate`), `chia start farmer-only` on free
//! ports, a k18 plot made for that farmer's keys, and the harvester's certificate issued from the
//! root's private CA. The farmer's RPC `get_harvesters` must list the plot. Needs chia-blockchain in
//! `~/.cache/p2pool-rs/venv-chia` (`P2POOL_TEST_DEPS=1 scripts/setup.sh`), else "skipped: …".

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use p2pool::harvester::client::{CertSource, FarmConfig, Harvester};
use p2pool::harvester::plots::Consensus;

struct Chia {
    bin: PathBuf,
    root: PathBuf,
    keys: PathBuf,
    started: bool,
}

impl Chia {
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.bin.clone()];
        paths.extend(std::env::split_paths(&path));
        c.env("CHIA_ROOT", &self.root)
            .env("CHIA_KEYS_ROOT", &self.keys)
            // The daemon starts services by name.
            .env("PATH", std::env::join_paths(paths).unwrap())
            .stdin(Stdio::null());
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self.cmd(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Chia {
    fn drop(&mut self) {
        if self.started {
            let _ = self.cmd("chia").args(["stop", "-d", "all"]).output();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn key_line(text: &str, prefix: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in `chia keys show`: {text}"))
        .trim()
        .to_owned()
}

fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

#[test]
fn chia_farmer_lists_our_plots() {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let venv = std::env::var_os("P2POOL_CHIA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/p2pool-rs/venv-chia"));
    let bin = venv.join("bin");
    let ok = Command::new(bin.join("python"))
        .args(["-c", "import chia.farmer, chiapos, chia_rs"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!(
            "skipped: no chia-blockchain in {} (P2POOL_TEST_DEPS=1 scripts/setup.sh)",
            venv.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut chia = Chia {
        bin,
        root: dir.path().join("root"),
        keys: dir.path().join("keys"),
        started: false,
    };
    chia.run("chia", &["init"]);
    chia.run("chia", &["keys", "generate", "--label", "test"]);
    let shown = chia.run("chia", &["keys", "show"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    let farmer_pk = key_line(&shown, "Farmer public key (m/12381/8444/0/0):");
    let pool_pk = key_line(&shown, "Pool public key (m/12381/8444/1/0):");

    let (port, rpc_port, daemon_port) = (free_port(), free_port(), free_port());
    let edit = format!(
        "import os, yaml\n\
         p = os.path.join(os.environ['CHIA_ROOT'], 'config', 'config.yaml')\n\
         c = yaml.safe_load(open(p))\n\
         c['farmer']['port'] = {port}\n\
         c['farmer']['rpc_port'] = {rpc_port}\n\
         c['daemon_port'] = {daemon_port}\n\
         c['ui']['daemon_port'] = {daemon_port}\n\
         yaml.safe_dump(c, open(p, 'w'))\n"
    );
    chia.run("python", &["-c", &edit]);
    chia.started = true;
    chia.run("chia", &["start", "farmer-only"]);
    assert!(
        wait_for_port(port, Duration::from_secs(90)),
        "chia's farmer did not open its harvester port"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harvester/make_keyed_plot.py");
    let plots = dir.path().join("plots");
    let out = chia.run(
        "python",
        &[
            script.to_str().unwrap(),
            plots.to_str().unwrap(),
            "chia",
            "og",
            &farmer_pk,
            &pool_pk,
        ],
    );
    let made: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let plot_pk = made["plot_pk"].as_str().unwrap().to_owned();

    let harvester = |certs: CertSource| {
        Harvester::new(FarmConfig {
            farmer: format!("127.0.0.1:{port}"),
            plots: vec![plots.clone()],
            certs,
            network_id: "mainnet".into(),
            consensus: Consensus::default(),
        })
        .unwrap()
    };
    // The farmer's view of its harvesters, until `done` accepts one of them.
    let wait_listed = |done: &dyn Fn(&serde_json::Value) -> bool| -> serde_json::Value {
        let start = Instant::now();
        loop {
            let out = chia
                .cmd("chia")
                .args(["rpc", "farmer", "get_harvesters"])
                .output()
                .unwrap();
            let reply: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            if let Some(h) = reply["harvesters"]
                .as_array()
                .and_then(|hs| hs.iter().find(|h| done(h)))
            {
                return h.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "chia's farmer never listed our plot: {reply}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    };
    let has_plots = |h: &serde_json::Value| h["plots"].as_array().is_some_and(|p| !p.is_empty());
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // A certificate issued from the root's private CA (RSA), as `chia init -c` would.
    let first = harvester(CertSource::CaDir(chia.root.join("config/ssl/ca")));
    assert_eq!(first.plots().len(), 1);
    let plot_id = hex::encode(first.plots()[0].prover.id());
    let task = runtime.spawn(async move { first.run().await });
    let info = wait_listed(&has_plots);
    task.abort();
    let plots_listed = info["plots"].as_array().unwrap();
    assert_eq!(plots_listed.len(), 1, "{info}");
    let plot = &plots_listed[0];
    assert_eq!(plot["plot_id"], format!("0x{plot_id}"));
    assert_eq!(plot["plot_public_key"], format!("0x{plot_pk}"));
    assert_eq!(plot["pool_public_key"], format!("0x{pool_pk}"));
    assert_eq!(plot["size"], 18);
    assert_eq!(info["failed_to_open_filenames"], serde_json::json!([]));
    assert_eq!(info["no_key_filenames"], serde_json::json!([]));
    assert_eq!(info["harvesting_mode"], 1);

    // The root's own harvester certificate (what `chia init` wrote), a new connection.
    let first_node = info["connection"]["node_id"].clone();
    let second = harvester(CertSource::ChiaRoot(chia.root.clone()));
    let task = runtime.spawn(async move { second.run().await });
    let info = wait_listed(&|h| has_plots(h) && h["connection"]["node_id"] != first_node);
    task.abort();
    assert_eq!(info["plots"][0]["plot_id"], format!("0x{plot_id}"));
}
