//! A chia root's `config/config.yaml`, read for the few settings the link needs: the selected
//! network and the full node's peer and RPC ports. The file is the block YAML chia itself writes
//! (`chia init`, `chia configure`); this reader takes that subset — nested `key: value` maps by
//! indentation, `&anchor` definitions and `*alias` uses of scalars, quotes, trailing comments —
//! and skips list items and everything else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why the chia root's configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A setting is absent.
    #[error("{path} has no `{key}`")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
    },
    /// A setting does not parse.
    #[error("{path}: `{key}` is {value:?}, not a port")]
    BadPort {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// What it holds.
        value: String,
    },
}

/// The settings of a chia root the link uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChiaRootConfig {
    /// `selected_network` (`mainnet`, `testnet11`, …).
    pub selected_network: String,
    /// `full_node.port`: the full node's peer port.
    pub full_node_port: u16,
    /// `full_node.rpc_port`.
    pub full_node_rpc_port: u16,
}

impl ChiaRootConfig {
    /// Reads `ROOT/config/config.yaml`.
    pub fn load(root: &Path) -> Result<ChiaRootConfig, ConfigError> {
        let path = root.join("config/config.yaml");
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        ChiaRootConfig::parse(&text, &path)
    }

    /// Parses the text of a `config.yaml` (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<ChiaRootConfig, ConfigError> {
        let values = scalars(text);
        let get = |key: &str| {
            values
                .get(key)
                .cloned()
                .ok_or_else(|| ConfigError::Missing {
                    path: path.to_owned(),
                    key: key.to_owned(),
                })
        };
        let port = |key: &str| {
            let value = get(key)?;
            value.parse::<u16>().map_err(|_| ConfigError::BadPort {
                path: path.to_owned(),
                key: key.to_owned(),
                value,
            })
        };
        Ok(ChiaRootConfig {
            selected_network: get("full_node.selected_network")
                .or_else(|_| get("selected_network"))?,
            full_node_port: port("full_node.port")?,
            full_node_rpc_port: port("full_node.rpc_port")?,
        })
    }
}

/// Every scalar of the maps in `text`, by dotted key, with aliases resolved.
fn scalars(text: &str) -> HashMap<String, String> {
    let mut anchors: HashMap<String, String> = HashMap::new();
    let mut values = HashMap::new();
    // (indentation, key) of the maps enclosing the current line.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let content = line.trim_start();
        let indent = line.len() - content.len();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        if content.starts_with('-') {
            continue;
        }
        let Some((key, rest)) = content.split_once(':') else {
            continue;
        };
        let key = unquote(key.trim());
        let mut value = strip_comment(rest).trim().to_owned();
        let mut anchor = None;
        if let Some(after) = value.strip_prefix('&') {
            let (name, v) = after.split_once(' ').unwrap_or((after, ""));
            anchor = Some(name.to_owned());
            value = v.trim().to_owned();
        }
        if value.is_empty() {
            stack.push((indent, key));
            continue;
        }
        let value = match value.strip_prefix('*') {
            Some(alias) => match anchors.get(alias) {
                Some(v) => v.clone(),
                None => continue,
            },
            None => unquote(&value),
        };
        if let Some(name) = anchor {
            anchors.insert(name, value.clone());
        }
        let mut dotted: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        dotted.push(&key);
        values.insert(dotted.join("."), value);
    }
    values
}

fn strip_comment(value: &str) -> &str {
    let mut quote = None;
    for (i, c) in value.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || value[..i].ends_with(' ') => return &value[..i],
            _ => {}
        }
    }
    value
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    v.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of chia 2.7.5's `config.yaml` around the settings read.
    const SAMPLE: &str = r#"min_mainnet_k_size: 32
network_overrides: &network_overrides
  constants:
    mainnet:
      GENESIS_CHALLENGE: ccd5bb71183532bff220ba46c268991a3ff07eb358e8255a65c30a2dce0e5fbb
  config:
    mainnet:
      address_prefix: "xch"
      default_full_node_port: 8444
selected_network: &selected_network "mainnet"
seeder:
  port: 8444
harvester:
  farmer_peers:
    - host: *self_hostname
      port: 8447
  selected_network: *selected_network
full_node:
  port: 18444 # the peer port
  full_node_peers: []
  rpc_port: 18555
  introducer_peer:
    host: introducer.chia.net # Chia AWS introducer IPv4/IPv6
    port: 8444
  selected_network: *selected_network
"#;

    #[test]
    fn reads_the_ports_and_network() {
        let c = ChiaRootConfig::parse(SAMPLE, Path::new("config.yaml")).unwrap();
        assert_eq!(
            c,
            ChiaRootConfig {
                selected_network: "mainnet".into(),
                full_node_port: 18444,
                full_node_rpc_port: 18555,
            }
        );
        let values = scalars(SAMPLE);
        assert_eq!(values["full_node.introducer_peer.port"], "8444");
        assert_eq!(
            values["network_overrides.config.mainnet.address_prefix"],
            "xch"
        );
        assert_eq!(values["harvester.selected_network"], "mainnet");
    }

    #[test]
    fn a_missing_or_bad_setting_is_an_error() {
        let no_rpc = SAMPLE.replace("  rpc_port: 18555\n", "");
        assert!(matches!(
            ChiaRootConfig::parse(&no_rpc, Path::new("c")),
            Err(ConfigError::Missing { .. })
        ));
        let bad = SAMPLE.replace("18555", "port");
        assert!(matches!(
            ChiaRootConfig::parse(&bad, Path::new("c")),
            Err(ConfigError::BadPort { .. })
        ));
        // Whatever the text, no panic.
        for cut in 0..SAMPLE.len() {
            if SAMPLE.is_char_boundary(cut) {
                let _ = ChiaRootConfig::parse(&SAMPLE[..cut], Path::new("c"));
            }
        }
    }
}
