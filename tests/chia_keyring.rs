//! The node's farmer and pool keys from chia's keyring, made by chia-blockchain 2.7.5's own CLI
//! in temporary keys roots: one with the default passphrase (`chia keys generate`, then a second
//! key with `chia keys add`), one protected by a passphrase (`chia passphrase set`). A node
//! started on each (`--chia-keys-root`, `--chia-keyring-passphrase-file`) farms with the public
//! keys `chia keys show` prints for the keyring's first key; the wrong passphrase is refused;
//! nothing secret reaches the log or the API. Needs chia-blockchain in
//! `~/.cache/p2pool-rs/venv-chia` (`P2POOL_TEST_DEPS=1 scripts/setup.sh`), else "skipped: …".

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

mod chia_net;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2pool::chia::node::{ChiaNode, ChiaNodeOptions, ChiaRunArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TXCH: &str = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";
const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

fn venv() -> Option<PathBuf> {
    chia_net::venv_with("chia.cmds.keys")
}

/// Runs `chia ARGS` with the chia root and keys root given; its stdout.
/// A chia command taking longer than this fails the test.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

fn chia(venv: &Path, root: &Path, keys_root: &Path, args: &[&str]) -> String {
    let mut child = Command::new(venv.join("bin/chia"))
        .args(args)
        .env("CHIA_ROOT", root)
        .env("CHIA_KEYS_ROOT", keys_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > COMMAND_LIMIT {
            let _ = child.kill();
            panic!("chia {args:?} still running after {COMMAND_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chia {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The public keys `chia keys show` prints, per key in keychain order:
/// (fingerprint, farmer public key, pool public key).
fn shown_keys(show: &str) -> Vec<(String, String, String)> {
    let mut keys = Vec::new();
    let mut fingerprint = String::new();
    let mut farmer = String::new();
    for line in show.lines() {
        let value = line.rsplit(' ').next().unwrap_or_default().to_owned();
        if line.starts_with("Fingerprint:") {
            fingerprint = value;
        } else if line.starts_with("Farmer public key (m/12381/8444/0/0):") {
            farmer = value;
        } else if line.starts_with("Pool public key (m/12381/8444/1/0):") {
            keys.push((fingerprint.clone(), farmer.clone(), value));
        }
    }
    keys
}

/// Everything the node logs, kept to look for secrets in.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn options(dir: &Path, keys_root: &Path, passphrase: Option<PathBuf>) -> ChiaNodeOptions {
    let root = dir.join("root");
    if !root.join("config/ssl/ca/private_ca.crt").exists() {
        p2pool::chia::ssl::create_ca(&root.join("config/ssl/ca")).unwrap();
    }
    let mut p2p = p2pool::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    ChiaNodeOptions {
        network: "regtest".into(),
        datadir: Some(dir.join("node")),
        address: Some(TXCH.into()),
        worker_addr: ("127.0.0.1".parse().unwrap(), Some(0)),
        worker: p2pool::worker::WorkerConfig::default(),
        chia: ChiaRunArgs {
            chia_root: Some(root),
            chia_keys_root: Some(keys_root.to_owned()),
            chia_keyring_passphrase_file: passphrase,
            ..ChiaRunArgs::default()
        },
        p2p,
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    reply
}

/// Starts a node on the keyring; its (farmer, pool) public keys and what its API shows.
async fn node_keys(
    dir: &Path,
    keys_root: &Path,
    passphrase: Option<PathBuf>,
) -> anyhow::Result<(String, String, String)> {
    let node = ChiaNode::start(options(dir, keys_root, passphrase)).await?;
    let keys = &node.farmer.config().keys;
    let farmer = hex::encode(keys.farmer_pk().to_bytes());
    let pool = hex::encode(keys.pool_pk().to_bytes());
    let mut api = String::new();
    for path in [
        "/chia/harvesters",
        "/chia/signage_points",
        "/chia/shares",
        "/metrics",
    ] {
        api.push_str(&get(node.worker_addr, path).await);
    }
    node.shutdown().await;
    Ok((farmer, pool, api))
}

#[test]
fn node_keys_from_chia_keyring() {
    let Some(venv) = venv() else { return };
    let log = Log::default();
    let writer = log.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("p2pool=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("chia");
    let plain = dir.path().join("keys-plain");
    let locked = dir.path().join("keys-locked");
    chia(&venv, &root, &plain, &["init"]);

    // Default passphrase: a generated key first, then the mnemonic's.
    chia(
        &venv,
        &root,
        &plain,
        &["keys", "generate", "--label", "first"],
    );
    let mnemonic_file = dir.path().join("mnemonic.txt");
    std::fs::write(&mnemonic_file, MNEMONIC).unwrap();
    chia(
        &venv,
        &root,
        &plain,
        &[
            "keys",
            "add",
            "-f",
            mnemonic_file.to_str().unwrap(),
            "--label",
            "second",
        ],
    );
    let shown = shown_keys(&chia(&venv, &root, &plain, &["keys", "show"]));
    assert_eq!(shown.len(), 2, "{shown:?}");

    // A user passphrase.
    chia(
        &venv,
        &root,
        &locked,
        &[
            "keys",
            "add",
            "-f",
            mnemonic_file.to_str().unwrap(),
            "--label",
            "locked",
        ],
    );
    let passphrase = dir.path().join("passphrase.txt");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    chia(
        &venv,
        &root,
        &locked,
        &[
            "passphrase",
            "set",
            "--passphrase-file",
            passphrase.to_str().unwrap(),
        ],
    );
    let shown_locked = shown_keys(&chia(
        &venv,
        &root,
        &locked,
        &[
            "--passphrase-file",
            passphrase.to_str().unwrap(),
            "keys",
            "show",
        ],
    ));
    assert_eq!(shown_locked.len(), 1, "{shown_locked:?}");
    let wrong = dir.path().join("wrong.txt");
    std::fs::write(&wrong, "not it\n").unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (farmer, pool, api_plain) = runtime
        .block_on(node_keys(&dir.path().join("a"), &plain, None))
        .unwrap();
    assert_eq!(
        (&farmer, &pool),
        (&shown[0].1, &shown[0].2),
        "the first key"
    );
    let (farmer, pool, api_locked) = runtime
        .block_on(node_keys(&dir.path().join("b"), &locked, Some(passphrase)))
        .unwrap();
    assert_eq!((&farmer, &pool), (&shown_locked[0].1, &shown_locked[0].2));
    let refused = runtime.block_on(node_keys(&dir.path().join("c"), &locked, Some(wrong)));
    let error = format!("{:#}", refused.expect_err("a wrong passphrase"));
    assert!(error.contains("passphrase is wrong"), "{error}");
    let refused = runtime.block_on(node_keys(&dir.path().join("d"), &locked, None));
    assert!(
        refused.is_err(),
        "a passphrase-protected keyring opened without it"
    );
    // No generated key where a keyring gave the keys.
    assert!(!dir.path().join("a/node/farmer_master.key").exists());

    // The log names the key by fingerprint; no secret is logged or served.
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains(&format!("fingerprint={}", shown[0].0)),
        "{log}"
    );
    let keys = FarmerKeysSecrets::of(MNEMONIC);
    for text in [&log, &api_plain, &api_locked] {
        assert!(!text.contains("abandon"), "a mnemonic word leaked");
        for secret in &keys.0 {
            assert!(!text.contains(secret.as_str()), "a secret key leaked");
        }
    }
    println!(
        "node keys equal `chia keys show`'s first key (fingerprint {}) for both keyrings",
        shown[0].0
    );
}

/// The secret keys (hex) of a mnemonic's master, farmer and pool keys, to look for in output.
struct FarmerKeysSecrets(Vec<String>);

impl FarmerKeysSecrets {
    fn of(mnemonic: &str) -> FarmerKeysSecrets {
        let mnemonic = bip39::Mnemonic::parse_normalized(mnemonic).unwrap();
        let master = chia_bls::SecretKey::from_seed(&mnemonic.to_seed_normalized(""));
        let derive = |path: [u32; 4]| {
            path.iter()
                .fold(master.clone(), |sk, &i| sk.derive_hardened(i))
        };
        FarmerKeysSecrets(vec![
            hex::encode(master.to_bytes()),
            hex::encode(derive([12381, 8444, 0, 0]).to_bytes()),
            hex::encode(derive([12381, 8444, 1, 0]).to_bytes()),
        ])
    }
}
