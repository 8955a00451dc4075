//! chia-blockchain 2.7.5's real harvester (`chia_harvester`, unmodified) for the tests that
//! farm against the node: the venv check, k18 plots made (once, cached) for the node's farmer
//! keys, and a chia root made by `chia init` and `chia init -c` with the node's CA, its
//! harvester pointed at a worker port on loopback with the regtest constants as
//! `network_overrides`. Needs chia-blockchain in `~/.cache/p2pool-rs/venv-chia`
//! (`P2POOL_TEST_DEPS=1 scripts/setup.sh`); without it [`venv`] says "skipped: …".

#![allow(dead_code)] // reason: each test binary uses a different subset of the helpers
#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use p2pool::chia::farmer::FarmerKeys;
use sharechain::pospace_share::ChiaNetwork;

/// The network the harvester is configured for.
pub const NETWORK: &ChiaNetwork = &ChiaNetwork::REGTEST;
/// A fixed mnemonic: the same farmer keys every run, so the plots made for them are kept.
pub const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` to its end; panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The chia-blockchain venv, or `None` after printing "skipped: …".
pub fn venv() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let venv = std::env::var_os("P2POOL_CHIA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/p2pool-rs/venv-chia"));
    let ok = Command::new(venv.join("bin/python"))
        .args(["-c", "import chia.harvester, chiapos, chia_rs"])
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

/// Makes (or reuses) a k18 plot for the farmer's keys: `og`, or a plot-NFT plot of the pool
/// contract `contract:LABEL`; returns its plot id.
pub fn make_plot(venv: &Path, dir: &Path, name: &str, kind: &str, keys: &FarmerKeys) -> [u8; 32] {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harvester/make_keyed_plot.py");
    let farmer_pk = hex::encode(keys.farmer_pk().to_bytes());
    let pool_pk = hex::encode(keys.pool_pk().to_bytes());
    let out = run(Command::new(venv.join("bin/python")).args([
        script.to_str().unwrap(),
        dir.to_str().unwrap(),
        name,
        kind,
        &farmer_pk,
        &pool_pk,
    ]));
    let made: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let plot_pk: [u8; 48] = hex::decode(made["plot_pk"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    match made["pool_contract_puzzle_hash"].as_str() {
        None => sharechain::pospace::plot_id_og(&keys.pool_pk().to_bytes(), &plot_pk),
        Some(contract) => sharechain::pospace::plot_id_pool(
            &hex::decode(contract).unwrap().try_into().unwrap(),
            &plot_pk,
        ),
    }
}

/// The plots `(name, kind)` for `keys` (kinds as [`make_plot`]'s), in a cache directory of
/// their own (kept between runs, named after the keys and the plots, so plots other tests make
/// for the same keys are not in it); the directory and the plot ids.
pub fn farmer_plots(
    venv: &Path,
    keys: &FarmerKeys,
    plots: &[(&str, &str)],
) -> (PathBuf, HashSet<[u8; 32]>) {
    let names: Vec<&str> = plots.iter().map(|(name, _)| *name).collect();
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let dir = home.join(format!(
        ".cache/p2pool-rs/plots/farmer-{}/{}",
        &hex::encode(keys.farmer_pk().to_bytes())[..16],
        names.join("-")
    ));
    let ids = plots
        .iter()
        .map(|(name, kind)| make_plot(venv, &dir, name, kind, keys))
        .collect();
    (dir, ids)
}

/// The real harvester, running.
pub struct ChiaHarvester {
    _process: Killed,
    log: PathBuf,
}

impl ChiaHarvester {
    /// A chia root in `dir/root` whose CA is `ca_dir`'s (`chia init -c`), farming the plots in
    /// `plots` for the farmer on `127.0.0.1:port` on the regtest network; its harvester started
    /// with its log in `dir/harvester.log`.
    pub fn start(venv: &Path, dir: &Path, ca_dir: &Path, port: u16, plots: &Path) -> Self {
        let bin = venv.join("bin");
        let root = dir.join("root");
        let keys_root = dir.join("keys");
        let chia = |args: &[&str]| {
            run(Command::new(bin.join("chia"))
                .args(args)
                .env("CHIA_ROOT", &root)
                .env("CHIA_KEYS_ROOT", &keys_root))
        };
        chia(&["init"]);
        chia(&["init", "-c", ca_dir.to_str().unwrap()]);
        let edit = format!(
            "import os, yaml\n\
             p = os.path.join(os.environ['CHIA_ROOT'], 'config', 'config.yaml')\n\
             c = yaml.safe_load(open(p))\n\
             c['selected_network'] = 'regtest'\n\
             c['network_overrides']['constants']['regtest'] = {{\n\
               'DIFFICULTY_CONSTANT_FACTOR': {dcf}, 'NUMBER_ZERO_BITS_PLOT_FILTER_V1': 0,\n\
               'MIN_PLOT_SIZE_V1': 18 }}\n\
             c['network_overrides']['config']['regtest'] = {{\n\
               'address_prefix': 'txch', 'default_full_node_port': 58444 }}\n\
             h = c['harvester']\n\
             h['selected_network'] = 'regtest'\n\
             h['farmer_peers'] = [{{'host': '127.0.0.1', 'port': {port}}}]\n\
             h['plot_directories'] = [{plots:?}]\n\
             h['rpc_port'] = {rpc}\n\
             h['logging']['log_stdout'] = True\n\
             h['logging']['log_level'] = 'INFO'\n\
             c['daemon_port'] = {daemon}\n\
             yaml.safe_dump(c, open(p, 'w'))\n",
            dcf = NETWORK.difficulty_constant_factor,
            plots = plots.to_str().unwrap(),
            rpc = free_port(),
            daemon = free_port(),
        );
        run(Command::new(bin.join("python"))
            .args(["-c", &edit])
            .env("CHIA_ROOT", &root));
        let log_path = dir.join("harvester.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let process = Killed(
            Command::new(bin.join("chia_harvester"))
                .env("CHIA_ROOT", &root)
                .env("CHIA_KEYS_ROOT", &keys_root)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        ChiaHarvester {
            _process: process,
            log: log_path,
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
