//! A chia root's `config/config.yaml`, read for the few settings the link needs: the selected
//! network and the full node's peer and RPC ports (parsed as YAML, anchors and aliases resolved,
//! as chia's own loader reads it).

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::chia::farmer::blocks::ChainConstants;

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
    /// The file is not YAML.
    #[error("{path} is not YAML: {reason}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A setting is absent.
    #[error("{path} has no `{key}`")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
    },
    /// A constant does not parse.
    #[error("{path}: `{key}` is {value:?}, not a number")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// What it holds.
        value: String,
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
        let docs = YamlLoader::load_from_str(text).map_err(|e| ConfigError::Yaml {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let doc = docs.into_iter().next().unwrap_or(Yaml::Null);
        let get = |key: &str| {
            scalar(&doc, key).ok_or_else(|| ConfigError::Missing {
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

/// The chain's constants for `network` in the chia root at `root`: chia's defaults for the
/// network, with the `network_overrides.constants.<network>` of its `config.yaml`
/// (`DIFFICULTY_CONSTANT_FACTOR`, `NUM_SPS_SUB_SLOT`), as chia's services read them.
pub fn chain_constants(root: &Path, network: &str) -> Result<ChainConstants, ConfigError> {
    let path = root.join("config/config.yaml");
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    chain_constants_of(&text, &path, network)
}

/// [`chain_constants`] of the text of a `config.yaml`.
pub fn chain_constants_of(
    text: &str,
    path: &Path,
    network: &str,
) -> Result<ChainConstants, ConfigError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| ConfigError::Yaml {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let doc = docs.into_iter().next().unwrap_or(Yaml::Null);
    let mut constants = ChainConstants::for_network(network);
    if let Some(v) = over(&doc, path, network, "DIFFICULTY_CONSTANT_FACTOR")? {
        constants.difficulty_constant_factor = v;
    }
    if let Some(v) = over(&doc, path, network, "NUM_SPS_SUB_SLOT")? {
        constants.num_sps_sub_slot = v;
    }
    Ok(constants)
}

/// The number the root sets for `name` on this network, if it sets one.
fn over<T: std::str::FromStr>(
    doc: &Yaml,
    path: &Path,
    network: &str,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    let key = format!("network_overrides.constants.{network}.{name}");
    scalar(doc, &key)
        .map(|v| {
            v.parse().map_err(|_| ConfigError::BadValue {
                path: path.to_owned(),
                key: key.clone(),
                value: v.clone(),
            })
        })
        .transpose()
}

/// The scalar at the dotted `key` of `doc`'s maps, as text; `None` when absent or not a scalar.
fn scalar(doc: &Yaml, key: &str) -> Option<String> {
    let mut node = doc;
    for part in key.split('.') {
        node = match node {
            Yaml::Hash(map) => map.get(&Yaml::String(part.to_owned()))?,
            _ => return None,
        };
    }
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of chia 2.7.5's `config.yaml` around the settings read.
    const SAMPLE: &str = r#"min_mainnet_k_size: 32
self_hostname: &self_hostname localhost
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
        let doc = &YamlLoader::load_from_str(SAMPLE).unwrap()[0];
        assert_eq!(
            scalar(doc, "full_node.introducer_peer.port").as_deref(),
            Some("8444")
        );
        assert_eq!(
            scalar(doc, "network_overrides.config.mainnet.address_prefix").as_deref(),
            Some("xch")
        );
        assert_eq!(
            scalar(doc, "harvester.selected_network").as_deref(),
            Some("mainnet")
        );
    }

    #[test]
    fn chain_constants_with_the_roots_overrides() {
        let path = Path::new("config.yaml");
        assert_eq!(
            chain_constants_of(SAMPLE, path, "mainnet").unwrap(),
            ChainConstants::MAINNET
        );
        let private = SAMPLE.replace(
            "      GENESIS_CHALLENGE: ccd5",
            "      DIFFICULTY_CONSTANT_FACTOR: 33554432\n      NUM_SPS_SUB_SLOT: 16\n      GENESIS_CHALLENGE: ccd5",
        );
        let c = chain_constants_of(&private, path, "mainnet").unwrap();
        assert_eq!(c.difficulty_constant_factor, 1 << 25);
        assert_eq!(c.num_sps_sub_slot, 16);
        let huge = private.replace("33554432", "147573952589676412928");
        assert_eq!(
            chain_constants_of(&huge, path, "mainnet")
                .unwrap()
                .difficulty_constant_factor,
            1 << 67
        );
        let bad = private.replace("33554432", "lots");
        assert!(matches!(
            chain_constants_of(&bad, path, "mainnet"),
            Err(ConfigError::BadValue { .. })
        ));
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
