//! A private, offline Chia network for tests: chia-blockchain 2.7.5's full node and Timelord
//! (with the VDF clients of `tests/chia_testnet/vdf_client.py`) on loopback, made and run by
//! `tests/chia_testnet/chia_testnet.py` with the python of `~/.cache/p2pool-rs/venv-chia`
//! (`P2POOL_CHIA_VENV` to change it). `ChiaTestnet::start` returns its chia root and ports; the
//! network ends when the value is dropped, or when the test process dies. Every call is bounded.

#![allow(dead_code)] // reason: each test binary uses a different subset of the helpers
#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `init` runs `chia init` (about 15 s on a loaded machine).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// `start` waits up to 120 s for the full node's RPC itself.
pub const START_TIMEOUT: Duration = Duration::from_secs(180);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// What a bounded run of the script printed.
#[derive(Debug)]
pub struct Ran {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The last stdout line as JSON.
    pub fn json(&self) -> serde_json::Value {
        let line = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or(serde_json::Value::Null)
    }
}

/// The venv with chia-blockchain, chiavdf and chiapos, or `None` after printing "skipped: …".
pub fn venv() -> Option<PathBuf> {
    venv_with("chia.timelord, chia.full_node, chiavdf, chiapos, chia_rs")
}

/// The chia-blockchain venv (`P2POOL_CHIA_VENV`, default `~/.cache/p2pool-rs/venv-chia`) when
/// its python imports `modules`, or `None` after printing "skipped: …".
pub fn venv_with(modules: &str) -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let venv = std::env::var_os("P2POOL_CHIA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/p2pool-rs/venv-chia"));
    let ok = Command::new(venv.join("bin/python"))
        .args(["-c", &format!("import {modules}")])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(venv)
    } else {
        println!(
            "skipped: no chia-blockchain in {} (P2POOL_TEST_DEPS=1 scripts/setup.sh)",
            venv.display()
        );
        None
    }
}

/// Runs `python chia_testnet.py ARGS…`, killed after `timeout`; its output goes through files in
/// `logs`, so a chatty child never blocks on a full pipe.
pub fn run_script(venv: &Path, logs: &Path, args: &[&str], timeout: Duration) -> Ran {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chia_testnet/chia_testnet.py");
    let name = args.first().copied().unwrap_or("run");
    run_command(
        Command::new(venv.join("bin/python"))
            .arg("-B") // no __pycache__ in the tree
            .arg(&script)
            .args(args),
        logs,
        name,
        timeout,
    )
}

/// Runs `cmd`, killed after `timeout`, with stdout and stderr in `logs/NAME.stdout|stderr`.
pub fn run_command(cmd: &mut Command, logs: &Path, name: &str, timeout: Duration) -> Ran {
    std::fs::create_dir_all(logs).expect("log directory");
    let out_path = logs.join(format!("{name}.stdout"));
    let err_path = logs.join(format!("{name}.stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("python starts");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\nkilled after {timeout:?}"));
    }
    Ran {
        success: status.is_some_and(|s| s.success()),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr,
    }
}

/// A running test network.
pub struct ChiaTestnet {
    pub venv: PathBuf,
    /// The chia root (`CHIA_ROOT`): `config/config.yaml`, certificates in `config/ssl`, logs.
    pub root: PathBuf,
    /// `CHIA_KEYS_ROOT` for chia's programs run on this root.
    pub keys_root: PathBuf,
    /// `selected_network` of the root (`p2poolsim`).
    pub network: String,
    pub full_node_peer_port: u16,
    pub full_node_rpc_port: u16,
    /// The ports the root's config gives chia's farmer, for a test that runs one.
    pub farmer_port: u16,
    pub farmer_rpc_port: u16,
    /// What `start` printed.
    pub started: serde_json::Value,
    logs: PathBuf,
    running: bool,
}

impl ChiaTestnet {
    /// `init` then `start` in `dir` (the chia root is `dir/root`).
    pub fn start(venv: &Path, dir: &Path) -> Result<Self, String> {
        let root = dir.join("root");
        let logs = dir.join("script");
        let root_s = root.to_str().ok_or("non-UTF-8 path")?;
        let ran = run_script(venv, &logs, &["init", root_s], INIT_TIMEOUT);
        if !ran.success {
            return Err(format!("init failed: {}{}", ran.stdout, ran.stderr));
        }
        let ran = run_script(venv, &logs, &["start", root_s], START_TIMEOUT);
        let started = ran.json();
        let port = |key: &str| {
            started[key]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("start printed no {key}: {}{}", ran.stdout, ran.stderr))
        };
        if !ran.success {
            let _ = run_script(venv, &logs, &["stop", root_s], STOP_TIMEOUT);
            return Err(format!("start failed: {}{}", ran.stdout, ran.stderr));
        }
        Ok(Self {
            venv: venv.to_path_buf(),
            full_node_peer_port: port("full_node_peer_port")?,
            full_node_rpc_port: port("full_node_rpc_port")?,
            farmer_port: port("farmer_port")?,
            farmer_rpc_port: port("farmer_rpc_port")?,
            network: started["network"].as_str().unwrap_or_default().to_owned(),
            keys_root: root.join("keys"),
            root,
            started,
            logs,
            running: true,
        })
    }

    /// [`Self::start`] from a test on the multi-threaded runtime, then a first block from chia's
    /// own farmer ([`Self::check_blocks`]): a chain with a peak. Panics with the logs on failure.
    pub fn start_with_peak(venv: &Path, dir: &Path, timeout_secs: u64) -> Self {
        tokio::task::block_in_place(|| {
            let net = Self::start(venv, dir).unwrap_or_else(|e| panic!("{e}"));
            net.check_blocks(1, timeout_secs);
            net
        })
    }

    /// The script's `check`: `blocks` blocks farmed by chia's own farmer within `timeout_secs`
    /// (the run bounded two minutes beyond). Panics with the output and the logs on failure.
    pub fn check_blocks(&self, blocks: u32, timeout_secs: u64) -> Ran {
        let (blocks, timeout) = (blocks.to_string(), timeout_secs.to_string());
        let check = self.run(
            "check",
            &["--timeout", &timeout, "--blocks", &blocks],
            Duration::from_secs(timeout_secs + 120),
        );
        assert!(
            check.success,
            "check failed:\n{}\n{}\n{}",
            check.stdout,
            check.stderr,
            self.log_tail(40)
        );
        check
    }

    /// Another mode of the script on this network (e.g. `check`), bounded by `timeout`.
    pub fn run(&self, mode: &str, extra: &[&str], timeout: Duration) -> Ran {
        let mut args = vec![mode, self.root.to_str().unwrap_or_default()];
        args.extend_from_slice(extra);
        run_script(&self.venv, &self.logs, &args, timeout)
    }

    /// Ends the network's full node and starts it again on the same root, database and ports
    /// (its timelord stays); returns once its RPC answers.
    pub fn restart_full_node(&self) -> Result<(), String> {
        let ran = self.run("restart-full-node", &[], START_TIMEOUT);
        if ran.success {
            Ok(())
        } else {
            Err(format!("restart failed: {}{}", ran.stdout, ran.stderr))
        }
    }

    /// The full node's `get_blockchain_state` through chia's own RPC client.
    pub fn blockchain_state(&self) -> serde_json::Value {
        self.blockchain_state_on(self.full_node_rpc_port)
    }

    /// The same from a full node of this root on `port` (after a restart, say).
    pub fn blockchain_state_on(&self, port: u16) -> serde_json::Value {
        let code = format!(
            "import asyncio, json, pathlib\n\
             from chia.full_node.full_node_rpc_client import FullNodeRpcClient\n\
             from chia.util.config import load_config\n\
             root = pathlib.Path({root:?})\n\
             async def main():\n\
             \x20   c = await FullNodeRpcClient.create('127.0.0.1', {port}, root, load_config(root, 'config.yaml'))\n\
             \x20   try:\n\
             \x20       r = await asyncio.wait_for(c.fetch('get_blockchain_state', {{}}), 10)\n\
             \x20   finally:\n\
             \x20       c.close(); await c.await_closed()\n\
             \x20   print(json.dumps(r['blockchain_state']))\n\
             asyncio.run(main())\n",
            root = self.root.to_str().unwrap_or_default(),
            port = port,
        );
        let out = Command::new(self.venv.join("bin/python"))
            .args(["-c", &code])
            .stdin(Stdio::null())
            .output();
        out.ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Ends every process of the network; `Ok` when `stop` reported success.
    pub fn stop(&mut self) -> Result<(), String> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let ran = self.run("stop", &[], STOP_TIMEOUT);
        if ran.success {
            Ok(())
        } else {
            Err(format!("stop failed: {}{}", ran.stdout, ran.stderr))
        }
    }

    /// The tail of chia's log of this root, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.root.join("log/debug.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// chia's harvester on this root (`venv`'s `chia_harvester`), its farmer the node's worker
    /// port `farmer_port` (chia's farmer is not started), its output in `log`.
    pub fn start_harvester(&self, venv: &Path, farmer_port: u16, log: &Path) -> Child {
        let edit = format!(
            "import os, yaml\n\
             p = os.path.join(os.environ['CHIA_ROOT'], 'config', 'config.yaml')\n\
             c = yaml.safe_load(open(p))\n\
             h = c['harvester']\n\
             h['farmer_peers'] = [{{'host': '127.0.0.1', 'port': {farmer_port}}}]\n\
             h['port'] = {hport}\n\
             yaml.safe_dump(c, open(p, 'w'))\n",
            hport = free_port(),
        );
        let edited = Command::new(venv.join("bin/python"))
            .args(["-c", &edit])
            .env("CHIA_ROOT", &self.root)
            .output()
            .unwrap();
        assert!(edited.status.success(), "{edited:?}");
        let log = std::fs::File::create(log).unwrap();
        Command::new(venv.join("bin/chia_harvester"))
            .env("CHIA_ROOT", &self.root)
            .env("CHIA_KEYS_ROOT", &self.keys_root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }
}

impl Drop for ChiaTestnet {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A free TCP port on 127.0.0.1 (for the chia services and nodes a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET path` from a node's HTTP port.
pub async fn http_get_text(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    let (_, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    body.to_owned()
}

/// `GET path` as JSON.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let body = http_get_text(addr, path).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Polls the node's `/chia/full_node` until `pred` holds; panics with `what` and the last status
/// after `patience`.
pub async fn wait_status(
    patience: Duration,
    addr: std::net::SocketAddr,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + patience;
    loop {
        let status = http_get(addr, "/chia/full_node").await;
        if pred(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
