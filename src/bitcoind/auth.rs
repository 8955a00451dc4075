//! Where the RPC URL and credentials come from, as a bitcoind user expects.
//!
//! Explicit options win: `--bitcoind-rpc-user`/`--bitcoind-rpc-password`, then
//! `--bitcoind-rpc-cookie`. With neither, the default data directory (`~/.bitcoin`, or
//! `--bitcoind-datadir`) is searched like `bitcoin-cli` does: its `bitcoin.conf` (top level and the
//! network's `[section]`, `datadir=` honoured) gives `rpcuser`/`rpcpassword`, `rpcport`,
//! `rpcconnect` and `rpccookiefile`; without a password the cookie in the network's subdirectory
//! (`regtest/.cookie`, …) is used. The cookie is read at every request, so a restarted bitcoind's
//! new cookie is picked up.

use std::fmt;
use std::path::{Path, PathBuf};

use bitcoin::Network;

use super::{default_rpc_port, network_subdir};

/// Why credentials could not be found or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The cookie file could not be read (transient: bitcoind may not have written it yet).
    #[error("cannot read the cookie file {path}: {source}")]
    CookieRead {
        /// The cookie file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The cookie file is not `user:password`; holds its path.
    #[error("the cookie file {0} is not `user:password`")]
    CookieMalformed(PathBuf),
    /// `bitcoin.conf` exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Conf {
        /// The configuration file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// Only one of an RPC user and password was given.
    #[error("an rpc user needs a password and a password needs a user")]
    Incomplete,
    /// No home directory, so no default data directory to search.
    #[error("no home directory to find the bitcoin data directory in; pass --bitcoind-rpc-cookie or a user and password")]
    NoHome,
}

/// How the client authenticates to bitcoind.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    None,
    /// HTTP basic authentication with a fixed user and password (`--bitcoind-rpc-user`/`-password` or `rpcuser`/`rpcpassword`).
    UserPassword {
        /// The RPC user.
        user: String,
        /// The RPC password (kept out of `Debug` output).
        password: String,
    },
    /// A `.cookie` file (`user:password`), read at every request.
    Cookie(PathBuf),
}

impl fmt::Debug for Credentials {
    // Passwords stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::UserPassword { user, .. } => write!(f, "UserPassword({user:?}, ***)"),
            Self::Cookie(path) => write!(f, "Cookie({})", path.display()),
        }
    }
}

impl Credentials {
    /// The user and password to send now.
    pub async fn user_password(&self) -> Result<Option<(String, String)>, AuthError> {
        match self {
            Self::None => Ok(None),
            Self::UserPassword { user, password } => Ok(Some((user.clone(), password.clone()))),
            Self::Cookie(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|source| {
                    AuthError::CookieRead {
                        path: path.clone(),
                        source,
                    }
                })?;
                let (user, password) = text
                    .trim_end_matches(['\r', '\n'])
                    .split_once(':')
                    .ok_or_else(|| AuthError::CookieMalformed(path.clone()))?;
                Ok(Some((user.to_owned(), password.to_owned())))
            }
        }
    }
}

/// The `--bitcoind-*` options, before discovery fills the gaps.
#[derive(Debug, Clone, Default)]
pub struct RpcOptions {
    /// `--bitcoind-rpc URL`.
    pub url: Option<String>,
    /// `--bitcoind-rpc-user`.
    pub user: Option<String>,
    /// `--bitcoind-rpc-password`.
    pub password: Option<String>,
    /// `--bitcoind-rpc-cookie`: a `.cookie` file used instead of the one in the data directory.
    pub cookie: Option<PathBuf>,
    /// The bitcoin data directory to search (default: [`default_datadir`]).
    pub datadir: Option<PathBuf>,
}

impl RpcOptions {
    /// The RPC URL and credentials for `network`.
    pub fn resolve(&self, network: Network) -> Result<(String, Credentials), AuthError> {
        let explicit = match (&self.user, &self.password) {
            (Some(user), Some(password)) => Some(Credentials::UserPassword {
                user: user.clone(),
                password: password.clone(),
            }),
            (None, None) => self.cookie.clone().map(Credentials::Cookie),
            _ => return Err(AuthError::Incomplete),
        };
        if let (Some(url), Some(credentials)) = (&self.url, &explicit) {
            return Ok((url.clone(), credentials.clone()));
        }
        let base = match &self.datadir {
            Some(dir) => dir.clone(),
            None => default_datadir().ok_or(AuthError::NoHome)?,
        };
        let conf = ConfFile::read(&bitcoin_conf(&base))?;
        let datadir = conf
            .get(network, "datadir")
            .map(PathBuf::from)
            .unwrap_or(base);
        let url = self.url.clone().unwrap_or_else(|| {
            let host = conf.get(network, "rpcconnect").unwrap_or("127.0.0.1");
            let port = conf
                .get(network, "rpcport")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| default_rpc_port(network));
            format!("http://{host}:{port}/")
        });
        if let Some(credentials) = explicit {
            return Ok((url, credentials));
        }
        if let Some(password) = conf.get(network, "rpcpassword").filter(|p| !p.is_empty()) {
            let user = conf.get(network, "rpcuser").unwrap_or_default();
            tracing::debug!(%url, "rpc credentials from bitcoin.conf");
            return Ok((
                url,
                Credentials::UserPassword {
                    user: user.to_owned(),
                    password: password.to_owned(),
                },
            ));
        }
        let net_dir = datadir.join(network_subdir(network));
        let cookie = match conf.get(network, "rpccookiefile") {
            Some(file) => net_dir.join(file),
            None => net_dir.join(".cookie"),
        };
        tracing::debug!(%url, cookie = %cookie.display(), "rpc credentials from the cookie");
        Ok((url, Credentials::Cookie(cookie)))
    }
}

/// bitcoind's default data directory: `~/.bitcoin` (macOS: `~/Library/Application
/// Support/Bitcoin`, Windows: `%APPDATA%\Bitcoin`).
pub fn default_datadir() -> Option<PathBuf> {
    if cfg!(windows) {
        return std::env::var_os("APPDATA").map(|d| PathBuf::from(d).join("Bitcoin"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    let home = PathBuf::from(home);
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Application Support/Bitcoin")
    } else {
        home.join(".bitcoin")
    })
}

/// `DATADIR/bitcoin.conf`.
pub fn bitcoin_conf(datadir: &Path) -> PathBuf {
    datadir.join("bitcoin.conf")
}

/// Options that Core applies from the top level of `bitcoin.conf` on mainnet only; other networks
/// need them in their section.
const NETWORK_ONLY: &[&str] = &["rpcport", "rpcbind", "port", "bind", "addnode", "connect"];

/// A parsed `bitcoin.conf`: `key=value` lines, `#` comments, `[section]` headers and
/// `section.key=value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfFile {
    /// (section, key, value), in file order; section `None` is the top level.
    entries: Vec<(Option<String>, String, String)>,
}

impl ConfFile {
    /// Read `path`; a missing file is an empty configuration.
    pub fn read(path: &Path) -> Result<Self, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(AuthError::Conf {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses `bitcoin.conf` text; lines that are not `key=value` or `[section]` are ignored.
    pub fn parse(text: &str) -> Self {
        let mut section: Option<String> = None;
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.trim().to_owned());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let (sec, key) = match key.split_once('.') {
                Some((sec, key)) => (Some(sec.to_owned()), key),
                None => (section.clone(), key),
            };
            entries.push((sec, key.to_owned(), value.to_owned()));
        }
        Self { entries }
    }

    /// The value of `key` for `network`: its section first, then the top level (for the keys Core
    /// applies there). The first occurrence wins, as in Core's config files.
    pub fn get(&self, network: Network, key: &str) -> Option<&str> {
        let section = network.to_core_arg();
        let find = |wanted: Option<&str>| {
            self.entries
                .iter()
                .find(|(s, k, _)| s.as_deref() == wanted && k == key)
                .map(|(_, _, v)| v.as_str())
        };
        find(Some(section)).or_else(|| {
            (network == Network::Bitcoin || !NETWORK_ONLY.contains(&key))
                .then(|| find(None))
                .flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_precedence() {
        let conf = ConfFile::parse(
            "# comment\nrpcuser=top\nrpcpassword=toppw # trailing\nrpcport=1111\n\
             regtest.rpcport=2222\n[regtest]\nrpcpassword=regpw\nrpcpassword=later\n\
             [signet]\nrpcuser=sig\n",
        );
        assert_eq!(conf.get(Network::Regtest, "rpcpassword"), Some("regpw"));
        assert_eq!(conf.get(Network::Regtest, "rpcuser"), Some("top"));
        assert_eq!(conf.get(Network::Regtest, "rpcport"), Some("2222"));
        assert_eq!(conf.get(Network::Bitcoin, "rpcport"), Some("1111"));
        // Top-level rpcport is mainnet's only.
        assert_eq!(conf.get(Network::Signet, "rpcport"), None);
        assert_eq!(conf.get(Network::Signet, "rpcuser"), Some("sig"));
        assert_eq!(conf.get(Network::Signet, "rpcpassword"), Some("toppw"));
    }

    #[test]
    fn incomplete_credentials() {
        let options = RpcOptions {
            user: Some("u".into()),
            ..Default::default()
        };
        assert!(matches!(
            options.resolve(Network::Regtest),
            Err(AuthError::Incomplete)
        ));
    }

    proptest::proptest! {
        /// Any text is a configuration (unknown lines are skipped), never a panic.
        #[test]
        fn any_conf_parses(text in "[a-z.=\\[\\]#\n ]{0,200}") {
            let conf = ConfFile::parse(&text);
            let _ = conf.get(Network::Regtest, "rpcport");
            let _ = conf.get(Network::Bitcoin, "rpcpassword");
        }
    }
}
