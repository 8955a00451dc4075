//! Plots made by chiapos itself and the answers its DiskProver gives, cached outside the tree.
//! Tests that need them print "skipped: ..." and return when chiapos cannot be run.

#![allow(dead_code)] // reason: each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;

use bitcoin::hashes::{sha256, Hash};

/// The Python with chiapos (`PLOTFILE_PYTHON`, else the project's cache venv).
pub fn python() -> Option<PathBuf> {
    let path = match std::env::var_os("PLOTFILE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => home()?.join(".cache/p2pool-rs/venv-plots/bin/python"),
    };
    let ok = Command::new(&path)
        .args(["-c", "import chiapos"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(path)
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// Where plots are cached (`PLOTFILE_PLOTS_DIR`, else `~/.cache/p2pool-rs/plots`).
pub fn plots_dir() -> Option<PathBuf> {
    match std::env::var_os("PLOTFILE_PLOTS_DIR") {
        Some(p) => Some(PathBuf::from(p)),
        None => Some(home()?.join(".cache/p2pool-rs/plots")),
    }
}

/// Makes (or finds cached) plots `specs` (`NAME:K:CHALLENGES`); their directory, or why not.
pub fn make_plots(specs: &[&str]) -> Result<PathBuf, String> {
    let py = python().ok_or("chiapos not installed (see plotfile/tests/make_plots.py)")?;
    let dir = plots_dir().ok_or("no HOME for the plot cache")?;
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/make_plots.py");
    let out = Command::new(py)
        .arg(script)
        .arg(&dir)
        .args(specs)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "make_plots.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir)
}

/// One challenge and chiapos's answers: (quality, proof) pairs in its order.
#[derive(Debug, Clone)]
pub struct Expected {
    pub challenge: [u8; 32],
    pub proofs: Vec<([u8; 32], Vec<u8>)>,
}

/// Reads `NAME.expected`.
pub fn expected(dir: &Path, name: &str) -> Vec<Expected> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.expected"))).unwrap();
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let mut parts = line.split_whitespace();
            let challenge: [u8; 32] = hex::decode(parts.next().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            // The script derives challenges; check the file is the one we think it is.
            let mut pre = name.as_bytes().to_vec();
            pre.extend((i as u32).to_be_bytes());
            assert_eq!(challenge, sha256::Hash::hash(&pre).to_byte_array());
            let rest: Vec<&str> = parts.collect();
            let proofs = if rest == ["-"] {
                Vec::new()
            } else {
                rest.chunks_exact(2)
                    .map(|p| {
                        (
                            hex::decode(p[0]).unwrap().try_into().unwrap(),
                            hex::decode(p[1]).unwrap(),
                        )
                    })
                    .collect()
            };
            Expected { challenge, proofs }
        })
        .collect()
}
