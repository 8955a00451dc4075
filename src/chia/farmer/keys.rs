//! The farmer's keys: the farmer secret key signs its half of every share, and the farmer and
//! pool public keys go to harvesters in `harvester_handshake` (a harvester farms only plots made
//! for them). From a mnemonic file as chia derives them (BIP-39 seed, then EIP-2333 paths
//! `m/12381/8444/0/0` and `m/12381/8444/1/0`), from the first private key of chia's keyring
//! ([`super::keyring`]), or a master key generated once and kept in the data directory (for
//! regtest); [`resolve`] picks one. Secret keys are never logged or shown: `Debug` shows public
//! keys only, and a keyring key is named by its fingerprint.

use std::path::{Path, PathBuf};

use chia_bls::{PublicKey, SecretKey, Signature};
use hmac::{Hmac, Mac};
use sha2::Sha512;

use super::keyring::{self, KeyringError};

/// EIP-2333 path of the farmer key (chia's `master_sk_to_farmer_sk`).
const FARMER_PATH: [u32; 4] = [12381, 8444, 0, 0];
/// EIP-2333 path of the pool key (chia's `master_sk_to_pool_sk`).
const POOL_PATH: [u32; 4] = [12381, 8444, 1, 0];
/// File holding a generated master key, in the node's chia directory.
pub const GENERATED_KEY_FILE: &str = "farmer_master.key";

/// Why the keys could not be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Not a mnemonic chia would take (its words are not shown).
    #[error("{path}: not a mnemonic: {reason}")]
    Mnemonic {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The generated key file does not hold a key.
    #[error("{0}: not a 32-byte secret key in hex")]
    BadKeyFile(PathBuf),
    /// chia's keyring could not be read.
    #[error("chia keyring: {0}")]
    Keyring(#[from] KeyringError),
    /// A keyring was asked for and holds no private key.
    #[error("{0}: no private key in chia's keyring (add one with `chia keys add`)")]
    NoKeyringKey(PathBuf),
}

/// Where the farmer's keys come from ([`resolve`]).
#[derive(Debug, Clone, Default)]
pub struct KeySources {
    /// A mnemonic file: used when given.
    pub mnemonic_file: Option<PathBuf>,
    /// chia's keys root (its `keyring.yaml` must then hold a private key); `None` looks at
    /// `CHIA_KEYS_ROOT`, else `~/.chia_keys`, and goes on without a keyring there.
    pub keys_root: Option<PathBuf>,
    /// The keyring's passphrase, when the user set one (else chia's default passphrase).
    pub passphrase_file: Option<PathBuf>,
}

/// The farmer's keys: the mnemonic file when given; else the first private key of chia's
/// keyring when there is one (as chia's farmer, which farms with all of them; logged by
/// fingerprint); else the key generated once in `datadir`.
pub fn resolve(sources: &KeySources, datadir: &Path) -> Result<FarmerKeys, KeyError> {
    if let Some(file) = &sources.mnemonic_file {
        let keys = FarmerKeys::from_mnemonic_file(file)?;
        tracing::info!(file = %file.display(), "farmer keys from a mnemonic file");
        return Ok(keys);
    }
    let explicit = sources.keys_root.is_some() || sources.passphrase_file.is_some();
    let root = sources
        .keys_root
        .clone()
        .or_else(keyring::default_keys_root);
    if let Some(root) = root {
        let path = keyring::keyring_path(&root);
        if explicit || path.exists() {
            let passphrase = match &sources.passphrase_file {
                Some(file) => keyring::read_passphrase_file(file)?,
                None => keyring::DEFAULT_PASSPHRASE.to_owned(),
            };
            let keys = keyring::private_keys(&path, &passphrase)?;
            match keys.first() {
                Some(first) => {
                    tracing::info!(
                        keyring = %path.display(),
                        fingerprint = first.fingerprint,
                        private_keys = keys.len(),
                        "farmer keys from chia's keyring (its first private key)"
                    );
                    return Ok(FarmerKeys::from_master(&first.master));
                }
                None if explicit => return Err(KeyError::NoKeyringKey(path)),
                None => tracing::info!(
                    keyring = %path.display(),
                    "chia's keyring holds no private key: using the node's own key"
                ),
            }
        }
    }
    FarmerKeys::load_or_generate(datadir)
}

/// The farmer secret key and the pool key (its secret signs the pool target of a block farmed
/// with a plot made for the pool public key).
#[derive(Clone)]
pub struct FarmerKeys {
    farmer_sk: SecretKey,
    farmer_pk: PublicKey,
    pool_sk: SecretKey,
    pool_pk: PublicKey,
}

impl std::fmt::Debug for FarmerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FarmerKeys")
            .field("farmer_pk", &hex::encode(self.farmer_pk.to_bytes()))
            .field("pool_pk", &hex::encode(self.pool_pk.to_bytes()))
            .finish_non_exhaustive()
    }
}

fn derive(master: &SecretKey, path: &[u32]) -> SecretKey {
    path.iter()
        .fold(master.clone(), |sk, &index| sk.derive_hardened(index))
}

/// BIP-39's seed: PBKDF2-HMAC-SHA512 of the mnemonic with salt "mnemonic", 2048 rounds, one
/// 64-byte block (chia's `mnemonic_to_seed` with an empty passphrase).
fn mnemonic_seed(mnemonic: &str) -> [u8; 64] {
    type HmacSha512 = Hmac<Sha512>;
    let mac = HmacSha512::new_from_slice(mnemonic.as_bytes()).expect("HMAC takes any key length");
    let mut u = {
        let mut m = mac.clone();
        m.update(b"mnemonic");
        m.update(&1u32.to_be_bytes());
        m.finalize().into_bytes()
    };
    let mut out: [u8; 64] = u.into();
    for _ in 1..2048 {
        let mut m = mac.clone();
        m.update(&u);
        u = m.finalize().into_bytes();
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

impl FarmerKeys {
    /// The keys of a master secret key.
    pub fn from_master(master: &SecretKey) -> FarmerKeys {
        let farmer_sk = derive(master, &FARMER_PATH);
        let pool_sk = derive(master, &POOL_PATH);
        FarmerKeys {
            farmer_pk: farmer_sk.public_key(),
            farmer_sk,
            pool_pk: pool_sk.public_key(),
            pool_sk,
        }
    }

    /// The keys of a 12- or 24-word mnemonic (ASCII words, as chia's English word list; the
    /// checksum is not checked).
    pub fn from_mnemonic(text: &str) -> Result<FarmerKeys, &'static str> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if !matches!(words.len(), 12 | 15 | 18 | 21 | 24) {
            return Err("expected 12, 15, 18, 21 or 24 words");
        }
        if !words
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return Err("words must be lowercase ASCII letters");
        }
        let seed = mnemonic_seed(&words.join(" "));
        Ok(Self::from_master(&SecretKey::from_seed(&seed)))
    }

    /// The keys of the mnemonic in `path`.
    pub fn from_mnemonic_file(path: &Path) -> Result<FarmerKeys, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_mnemonic(&text).map_err(|reason| KeyError::Mnemonic {
            path: path.to_owned(),
            reason,
        })
    }

    /// The keys of the master key kept in `dir` ([`GENERATED_KEY_FILE`]), generated and saved
    /// (owner-readable only) the first time.
    pub fn load_or_generate(dir: &Path) -> Result<FarmerKeys, KeyError> {
        let path = dir.join(GENERATED_KEY_FILE);
        let io = |e: std::io::Error| KeyError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let bytes: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| KeyError::BadKeyFile(path.clone()))?;
            let master =
                SecretKey::from_bytes(&bytes).map_err(|_| KeyError::BadKeyFile(path.clone()))?;
            return Ok(Self::from_master(&master));
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let seed: [u8; 32] = rand::random();
        let master = SecretKey::from_seed(&seed);
        crate::chia::ssl::write_private(&path, hex::encode(master.to_bytes()).as_bytes())
            .map_err(io)?;
        tracing::info!(file = %path.display(), "generated a farmer master key");
        Ok(Self::from_master(&master))
    }

    /// The farmer public key.
    pub fn farmer_pk(&self) -> PublicKey {
        self.farmer_pk
    }

    /// The pool public key.
    pub fn pool_pk(&self) -> PublicKey {
        self.pool_pk
    }

    /// The farmer's half of a plot-key signature: AugSchemeMPL with `plot_pk` prepended, as
    /// chia's farmer signs.
    pub fn sign(&self, message: &[u8], plot_pk: &PublicKey) -> Signature {
        sign_aug(&self.farmer_sk, message, plot_pk)
    }

    /// The pool key's signature of `message` (AugSchemeMPL, the pool public key prepended), as
    /// chia's farmer signs a block's pool target.
    pub fn sign_pool(&self, message: &[u8]) -> Signature {
        chia_bls::sign(&self.pool_sk, message)
    }
}

/// AugSchemeMPL signature of `message` with `prepend` prepended.
pub fn sign_aug(sk: &SecretKey, message: &[u8], prepend: &PublicKey) -> Signature {
    let mut aug = prepend.to_bytes().to_vec();
    aug.extend_from_slice(message);
    chia_bls::sign_raw(sk, &aug)
}

/// The taproot key of a plot-NFT plot (chia's `generate_taproot_sk`).
pub fn taproot_sk(local_pk: &PublicKey, farmer_pk: &PublicKey) -> SecretKey {
    use bitcoin::hashes::{sha256, Hash};
    let mut message = (*local_pk + farmer_pk).to_bytes().to_vec();
    message.extend_from_slice(&local_pk.to_bytes());
    message.extend_from_slice(&farmer_pk.to_bytes());
    SecretKey::from_seed(&sha256::Hash::hash(&message).to_byte_array())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnemonic_keys_as_chia_derives_them() {
        // `chia keys show` of this mnemonic (chia-blockchain 2.7.5).
        let keys = FarmerKeys::from_mnemonic(MNEMONIC).unwrap();
        assert_eq!(hex::encode(keys.farmer_pk().to_bytes()), FARMER_PK);
        assert_eq!(hex::encode(keys.pool_pk().to_bytes()), POOL_PK);
        assert!(!format!("{keys:?}").contains(&hex::encode(keys.farmer_sk.to_bytes())));
        assert!(FarmerKeys::from_mnemonic("abandon abandon").is_err());
    }

    #[test]
    fn generated_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = FarmerKeys::load_or_generate(dir.path()).unwrap();
        let b = FarmerKeys::load_or_generate(dir.path()).unwrap();
        assert_eq!(a.farmer_pk(), b.farmer_pk());
        assert_eq!(a.pool_pk(), b.pool_pk());
    }

    const MNEMONIC: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
    const FARMER_PK: &str = "a0b37f085a99bbc97484a9fc4239110b67a698ab8115c268ff51f14814d517b28cf5e0392ff2b6ed6d9b9592d11d15b5";
    const POOL_PK: &str = "89d8893e124168666352a247aa0af912a206356305654e40726c03849fe04b682ff54186904c6993914f9f424cf9868f";
}
