//! chia's keyring (chia-blockchain 2.x `file_keyring.py`, `keychain.py`): `keyring.yaml` under
//! the keys root (`CHIA_KEYS_ROOT`, default `~/.chia_keys`). Its `data` is base64 of a
//! ChaCha20-Poly1305 ciphertext (key = PBKDF2-HMAC-SHA256 of the passphrase with the file's
//! `salt`, 100 000 rounds; the file's 12-byte `nonce`) of `CHECKBYTES ‖ YAML`; the YAML lists
//! keys under service `chia-user-chia-1.8`, users `wallet-user-chia-1.8-INDEX`, each the hex of
//! the master public key (48 bytes) followed by the mnemonic's entropy (absent for a key added
//! as a public key only). Without a passphrase of the user's, chia encrypts with a fixed default
//! one. The master secret key is chia's: the entropy's BIP-39 mnemonic, its seed (empty
//! passphrase), EIP-2333 key generation. Nothing read here is logged: errors name the file, and
//! keys are named by fingerprint.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chia_bls::{PublicKey, SecretKey};
use yaml_rust2::{Yaml, YamlLoader};

/// The passphrase chia encrypts with when the user set none
/// (`DEFAULT_PASSPHRASE_IF_NO_MASTER_PASSPHRASE`).
pub const DEFAULT_PASSPHRASE: &str = "$ chia passphrase set # all the cool kids are doing it!";
/// Prefix of every decrypted payload (`CHECKBYTES_VALUE`).
const CHECKBYTES: &[u8] = b"5f365b8292ee505b";
/// PBKDF2 rounds (`HASH_ITERS`).
const HASH_ITERS: u32 = 100_000;
/// Highest file format version chia 2.7 writes and reads.
const MAX_VERSION: i64 = 1;
/// The keychain's service and user names (chia's `CURRENT_KEY_VERSION` "1.8").
const SERVICE: &str = "chia-user-chia-1.8";
const USER_PREFIX: &str = "wallet-user-chia-1.8-";
/// Key indices chia looks at (`MAX_KEYS`).
const MAX_KEYS: usize = 101;
/// The keyring file in a keys root.
pub const KEYRING_FILE: &str = "keyring.yaml";

/// Why the keyring could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The file could not be read.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Not a keyring chia writes.
    #[error("{path}: not a chia keyring: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A newer format than this code reads.
    #[error("{path}: keyring format version {version} (this node reads up to {MAX_VERSION})")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: i64,
    },
    /// The passphrase does not open the keyring.
    #[error(
        "{path}: the keyring passphrase is wrong (set one with --chia-keyring-passphrase-file)"
    )]
    Passphrase {
        /// The file.
        path: PathBuf,
    },
    /// A stored key's entropy does not give its stored public key.
    #[error("{path}: key {index} does not match its public key")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Its index in the keychain.
        index: usize,
    },
}

/// A private key of the keyring.
#[derive(Clone)]
pub struct KeyringKey {
    /// Its index in the keychain (`wallet-user-chia-1.8-INDEX`).
    pub index: usize,
    /// chia's fingerprint of its master public key.
    pub fingerprint: u32,
    /// The master secret key.
    pub master: SecretKey,
}

impl std::fmt::Debug for KeyringKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringKey")
            .field("index", &self.index)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// chia's keys root: `CHIA_KEYS_ROOT`, else `~/.chia_keys`.
pub fn default_keys_root() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("CHIA_KEYS_ROOT") {
        return Some(PathBuf::from(root));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".chia_keys"))
}

/// The keyring file of a keys root.
pub fn keyring_path(keys_root: &Path) -> PathBuf {
    keys_root.join(KEYRING_FILE)
}

/// A passphrase file's passphrase: its text without the final line break.
pub fn read_passphrase_file(path: &Path) -> Result<String, KeyringError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyringError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
}

/// The private keys of the keyring at `path`, in keychain order (keys stored as public keys
/// only are skipped, as chia's farmer skips them).
pub fn private_keys(path: &Path, passphrase: &str) -> Result<Vec<KeyringKey>, KeyringError> {
    let format = |reason| KeyringError::Format {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| KeyringError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let outer = YamlLoader::load_from_str(&text).map_err(|_| format("not YAML"))?;
    let outer = outer.first().ok_or(format("empty file"))?;
    let version = outer["version"]
        .as_i64()
        .ok_or(format("no version number"))?;
    if version > MAX_VERSION {
        return Err(KeyringError::Version {
            path: path.to_owned(),
            version,
        });
    }
    let data = match &outer["data"] {
        Yaml::String(s) if !s.is_empty() => s,
        // A keyring chia created before any key was added.
        Yaml::Null | Yaml::BadValue | Yaml::String(_) => return Ok(Vec::new()),
        _ => return Err(format("data is not a string")),
    };
    let hex_field = |name: &str| -> Result<Vec<u8>, KeyringError> {
        let value = match &outer[name] {
            Yaml::String(s) => s.clone(),
            // An all-digit hex string written without quotes.
            Yaml::Integer(i) => i.to_string(),
            _ => return Err(format("salt or nonce missing")),
        };
        hex::decode(value).map_err(|_| format("salt or nonce not hex"))
    };
    let salt = hex_field("salt")?;
    let nonce = hex_field("nonce")?;
    if nonce.len() != 12 {
        return Err(format("nonce is not 12 bytes"));
    }
    use base64::Engine as _;
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(data.split_whitespace().collect::<String>())
        .map_err(|_| format("data is not base64"))?;

    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase.as_bytes(), &salt, HASH_ITERS, &mut key);
    let plain = ChaCha20Poly1305::new(&key.into())
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map_err(|_| KeyringError::Passphrase {
            path: path.to_owned(),
        })?;
    let yaml = plain
        .strip_prefix(CHECKBYTES)
        .ok_or(KeyringError::Passphrase {
            path: path.to_owned(),
        })?;
    let yaml = std::str::from_utf8(yaml).map_err(|_| format("decrypted data is not text"))?;
    let inner = YamlLoader::load_from_str(yaml).map_err(|_| format("decrypted data not YAML"))?;
    let Some(inner) = inner.first() else {
        return Ok(Vec::new());
    };
    let users = &inner["keys"][SERVICE];
    let mut keys = Vec::new();
    for index in 0..MAX_KEYS {
        let Some(secret) = users[format!("{USER_PREFIX}{index}").as_str()].as_str() else {
            continue;
        };
        let bytes = hex::decode(secret).map_err(|_| format("a key is not hex"))?;
        if bytes.len() <= 48 {
            continue; // a public key alone
        }
        let public: [u8; 48] = bytes[..48].try_into().expect("48 bytes");
        let public = PublicKey::from_bytes(&public).map_err(|_| format("a bad public key"))?;
        let entropy = &bytes[48..bytes.len().min(80)];
        let mnemonic = bip39::Mnemonic::from_entropy(entropy)
            .map_err(|_| format("a key's entropy has a bad length"))?;
        let master = SecretKey::from_seed(&mnemonic.to_seed_normalized(""));
        if master.public_key() != public {
            return Err(KeyringError::Mismatch {
                path: path.to_owned(),
                index,
            });
        }
        keys.push(KeyringKey {
            index,
            fingerprint: public.get_fingerprint(),
            master,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyring `chia keys generate` wrote (chia-blockchain 2.7.5, default passphrase), and
    /// what `chia keys show` printed for it.
    const KEYRING: &str = "data: WsGaaQNoxKGqCnbLCF1ixQK+aT8Q/grwdvsFjgZgTkMGHQ+C/4d5xjINUW7nk++rM9KDCADNiMOZc3i/2XiijbrNUppBswdEMmzLXLuTTuEpyceQKkb/j2isPP684YL40RsdLgsEH8CeABqJb1fOziOtBhUDbzbew18DeDohxZ7+UYtGsSETI8E1APYSPU74+WMNHlbAloaBE9uQxesz+19xJJQmoZ9u2iNZ0Tbkc/483+lfuRdIwfuoQPMHrBEyMgbC/HlKttycae0c7izMz2Fa3t7R/wNHfXGKA/c7CiE+YFfnFHaXn/HUYfzDOWOYGDEXtnnGA+mJsCvLxXqJcRTp1ypEj1nPD8PvmihS1Tf/Mc0T+qQlMJio11WPgMr6zw5mlYxiKPmZxgh9fC8yduLLfAxuTUk=
nonce: 160142646dcd42bf8e8aed81
passphrase_hint: null
salt: 741e0b26280556259a54682f9a668c18
version: 1
";
    const FINGERPRINT: u32 = 829_516_542;
    const MASTER_PK: &str = "b4ae3f6e618a891b7d9d0b66352e71a1eaa43a02b7ec917125b7ad01a8c91e45654116c4eecbbe159bc8f79c1ed55897";
    const FARMER_PK: &str = "abe28be90c20d0fd678ebf143f89ef5c747cf7f76606a178c6575a3a7b59d8f24a6b62ddc0d1c4e9860dff95062d7297";
    const POOL_PK: &str = "8106c4d905a934e66de6ed028741b446dbfffc1832a15614aa1db7a4de2458d93a3b9aace6c3b73ec21b99b1cea4d513";

    #[test]
    fn reads_a_keyring_chia_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = keyring_path(dir.path());
        std::fs::write(&path, KEYRING).unwrap();
        let keys = private_keys(&path, DEFAULT_PASSPHRASE).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].index, 0);
        assert_eq!(keys[0].fingerprint, FINGERPRINT);
        assert_eq!(
            hex::encode(keys[0].master.public_key().to_bytes()),
            MASTER_PK
        );
        let farmer = super::super::FarmerKeys::from_master(&keys[0].master);
        assert_eq!(hex::encode(farmer.farmer_pk().to_bytes()), FARMER_PK);
        assert_eq!(hex::encode(farmer.pool_pk().to_bytes()), POOL_PK);
        assert!(!format!("{:?}", keys[0]).contains(&hex::encode(keys[0].master.to_bytes())));

        assert!(matches!(
            private_keys(&path, "not the passphrase"),
            Err(KeyringError::Passphrase { .. })
        ));
        // A keyring chia created before any key was added.
        std::fs::write(
            &path,
            "data: null\nnonce: 160142646dcd42bf8e8aed81\npassphrase_hint: null\nsalt: 741e0b26280556259a54682f9a668c18\nversion: 1\n",
        )
        .unwrap();
        assert!(private_keys(&path, DEFAULT_PASSPHRASE).unwrap().is_empty());
        std::fs::write(&path, KEYRING.replace("version: 1", "version: 2")).unwrap();
        assert!(matches!(
            private_keys(&path, DEFAULT_PASSPHRASE),
            Err(KeyringError::Version { version: 2, .. })
        ));
        std::fs::write(&path, "- not a keyring").unwrap();
        assert!(matches!(
            private_keys(&path, DEFAULT_PASSPHRASE),
            Err(KeyringError::Format { .. })
        ));
    }

    #[test]
    fn passphrase_file_keeps_spaces_and_drops_the_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, " two words \n").unwrap();
        assert_eq!(read_passphrase_file(&path).unwrap(), " two words ");
    }
}
