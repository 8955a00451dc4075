//! The parent side of the `kill -9` tests: re-runs the test binary as a child that takes shares
//! and prints `loaded N` at start, `ack <hash>` once each share is durably stored and
//! `best <hash>` at the end; kills it with SIGKILL after a set number of acks, round after round.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// What the child rounds acknowledged, and the best share the last (unkilled) round ended on.
pub struct Rounds {
    pub acked: HashSet<String>,
    pub last_best: Option<String>,
}

/// Runs the test `child_test` of this binary once per entry of `kills` (killed after that many
/// acks) and once more to the end, with `env_var` naming the data directory `dir`. Asserts that
/// every restart loads at least the shares acked before it.
pub fn kill_and_restart(child_test: &str, env_var: &str, dir: &Path, kills: &[usize]) -> Rounds {
    let mut acked: HashSet<String> = HashSet::new();
    let mut last_best = None;
    for round in 0..=kills.len() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
            .env(env_var, dir)
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = kills.get(round).copied();
        let mut acks = 0;
        let mut killed = false;
        for line in lines {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("loaded ") {
                let n: usize = n.parse().unwrap();
                assert!(
                    n >= acked.len(),
                    "round {round}: the restart loaded {n} shares, {} were acked",
                    acked.len()
                );
            } else if let Some(h) = line.strip_prefix("ack ") {
                acked.insert(h.to_owned());
                acks += 1;
            } else if let Some(h) = line.strip_prefix("best ") {
                last_best = Some(h.to_owned());
            }
            if kill_after.is_some_and(|k| acks >= k) && !killed {
                child.kill().unwrap(); // SIGKILL
                killed = true;
            }
        }
        child.wait().unwrap();
        if kill_after.is_none() {
            assert!(!killed);
        }
    }
    Rounds { acked, last_best }
}
