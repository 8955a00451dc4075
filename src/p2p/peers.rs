//! Where peers come from and how misbehaving ones are kept out: the bootstrap list
//! (`bootstrap_addrs.txt`, one multiaddr a line in `[network]` sections), the persisted address
//! book, temporary bans and per-peer message rate limits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

/// The bootstrap addresses of `network` in a `bootstrap_addrs.txt` text. Unparsable lines are
/// returned as errors beside the good addresses so the caller can log them.
pub fn parse_bootstrap(text: &str, network: &str) -> (Vec<Multiaddr>, Vec<String>) {
    let mut section: Option<&str> = None;
    let (mut addrs, mut bad) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim());
            continue;
        }
        if section != Some(network) {
            continue;
        }
        match line.parse::<Multiaddr>() {
            Ok(a) => addrs.push(a),
            Err(e) => bad.push(format!("{line}: {e}")),
        }
    }
    (addrs, bad)
}

/// The peer id at the end of a multiaddr (`…/p2p/<id>`), if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Addresses of peers seen recently, saved in the data directory (one multiaddr with its
/// `/p2p/<id>` a line) so a restarted node finds the network without bootstrap peers.
#[derive(Debug)]
pub struct AddressBook {
    path: Option<PathBuf>,
    addrs: VecDeque<Multiaddr>,
    dirty: bool,
}

/// Most addresses kept.
const BOOK_SIZE: usize = 256;

impl AddressBook {
    /// Loads the book at `path` (missing or unreadable files give an empty book).
    pub fn load(path: Option<&Path>) -> Self {
        let addrs = path
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse::<Multiaddr>().ok())
                    .filter(|a| peer_of(a).is_some())
                    .take(BOOK_SIZE)
                    .collect()
            })
            .unwrap_or_default();
        AddressBook {
            path: path.map(Path::to_owned),
            addrs,
            dirty: false,
        }
    }

    /// The addresses, most recent first.
    pub fn addrs(&self) -> impl Iterator<Item = &Multiaddr> {
        self.addrs.iter()
    }

    /// Records a working address of `peer` (moved to the front).
    pub fn add(&mut self, peer: PeerId, addr: &Multiaddr) {
        let mut addr = addr.clone();
        if peer_of(&addr).is_none() {
            addr.push(libp2p::multiaddr::Protocol::P2p(peer));
        }
        if self.addrs.front() == Some(&addr) {
            return;
        }
        self.addrs.retain(|a| a != &addr);
        self.addrs.push_front(addr);
        self.addrs.truncate(BOOK_SIZE);
        self.dirty = true;
    }

    /// Forgets every address of `peer` (e.g. when it is banned).
    pub fn remove_peer(&mut self, peer: &PeerId) {
        let before = self.addrs.len();
        self.addrs.retain(|a| peer_of(a) != Some(*peer));
        self.dirty |= before != self.addrs.len();
    }

    /// Writes the book if it changed, here and now (at shutdown).
    pub fn save(&mut self) -> std::io::Result<()> {
        match self.changes() {
            Some(write) => write.write().inspect_err(|_| self.dirty = true),
            None => Ok(()),
        }
    }

    /// The write that brings the file up to date, when the book changed since the last one;
    /// the book counts as saved from here (a failed write is logged by whoever runs it, and
    /// the next change writes the whole book again).
    pub fn changes(&mut self) -> Option<BookWrite> {
        let (Some(path), true) = (&self.path, self.dirty) else {
            return None;
        };
        self.dirty = false;
        Some(BookWrite {
            path: path.clone(),
            text: self.addrs.iter().map(|a| format!("{a}\n")).collect(),
        })
    }
}

/// The address book's file contents, to be written off the event loop.
#[derive(Debug)]
pub struct BookWrite {
    path: PathBuf,
    text: String,
}

impl BookWrite {
    /// Writes a temporary file, then renames it: never torn.
    pub fn write(&self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, &self.text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// Why a peer is penalised.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offence {
    /// It sent a share that failed verification.
    InvalidShare(String),
    /// It sent bytes that do not decode.
    Undecodable(String),
    /// It sent more messages than the rate limit allows.
    Flood,
}

impl std::fmt::Display for Offence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Offence::InvalidShare(e) => write!(f, "invalid share: {e}"),
            Offence::Undecodable(e) => write!(f, "undecodable message: {e}"),
            Offence::Flood => write!(f, "message flood"),
        }
    }
}

/// Temporary bans.
#[derive(Debug, Default)]
pub struct Bans {
    until: HashMap<PeerId, Instant>,
}

impl Bans {
    /// Bans `peer` for `duration` from now.
    pub fn ban(&mut self, peer: PeerId, duration: Duration) {
        self.until.insert(peer, Instant::now() + duration);
    }

    /// True while `peer` is banned.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.until.get(peer).is_some_and(|t| *t > Instant::now())
    }

    /// Removes and returns the bans that ran out.
    pub fn expire(&mut self) -> Vec<PeerId> {
        let now = Instant::now();
        let done: Vec<PeerId> = self
            .until
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| *p)
            .collect();
        done.iter().for_each(|p| {
            self.until.remove(p);
        });
        done
    }

    /// The peers banned now.
    pub fn banned(&self) -> HashSet<PeerId> {
        let now = Instant::now();
        self.until
            .iter()
            .filter(|(_, t)| **t > now)
            .map(|(p, _)| *p)
            .collect()
    }
}

/// A token bucket per peer: `burst` messages at once, refilled at `per_sec`.
#[derive(Debug)]
pub struct RateLimits {
    per_sec: f64,
    burst: f64,
    buckets: HashMap<PeerId, (f64, Instant)>,
}

impl RateLimits {
    /// Buckets of `burst` messages, refilled at `per_sec` messages per second.
    pub fn new(per_sec: f64, burst: f64) -> Self {
        RateLimits {
            per_sec,
            burst,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for a message of `peer`; false when the peer is over its limit.
    pub fn allow(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        let (tokens, last) = self.buckets.entry(peer).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_sec).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops the state of a disconnected peer.
    pub fn forget(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_sections_select_the_network() {
        let text = "# c\n[mainnet]\n/ip4/1.2.3.4/tcp/9333\n\n[regtest]\n/ip4/127.0.0.1/tcp/29333\nnot an addr\n";
        let (a, bad) = parse_bootstrap(text, "mainnet");
        assert_eq!(
            a,
            vec!["/ip4/1.2.3.4/tcp/9333".parse::<Multiaddr>().unwrap()]
        );
        assert!(bad.is_empty());
        let (a, bad) = parse_bootstrap(text, "regtest");
        assert_eq!(a.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(parse_bootstrap(text, "signet").0.is_empty());
    }

    #[test]
    fn the_checked_in_bootstrap_file_parses() {
        let text = include_str!("../../bootstrap_addrs.txt");
        for net in ["mainnet", "testnet4", "signet", "regtest"] {
            assert!(parse_bootstrap(text, net).1.is_empty());
        }
    }

    #[test]
    fn rate_limit_allows_a_burst_then_refuses() {
        let mut r = RateLimits::new(1.0, 3.0);
        let p = PeerId::random();
        assert!((0..3).all(|_| r.allow(p)));
        assert!(!r.allow(p));
    }

    #[test]
    fn address_book_round_trips() {
        let path = std::env::temp_dir().join(format!("p2pool-book-{}", std::process::id()));
        let p = PeerId::random();
        let mut book = AddressBook::load(Some(&path));
        book.add(p, &"/ip4/127.0.0.1/tcp/1".parse().unwrap());
        book.save().unwrap();
        let book = AddressBook::load(Some(&path));
        assert_eq!(book.addrs().count(), 1);
        assert_eq!(peer_of(book.addrs().next().unwrap()), Some(p));
        std::fs::remove_file(&path).unwrap();
        // Unchanged: nothing to write; changed: one write, taken off the book.
        let mut book = book;
        assert!(book.changes().is_none());
        book.add(PeerId::random(), &"/ip4/127.0.0.1/tcp/2".parse().unwrap());
        let write = book.changes().expect("changed");
        assert!(book.changes().is_none());
        write.write().unwrap();
        assert_eq!(AddressBook::load(Some(&path)).addrs().count(), 2);
        std::fs::remove_file(&path).unwrap();
    }
}
