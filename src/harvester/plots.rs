//! The harvester's plots: opening them, the keys in their memos (chia's `parse_plot_info`,
//! `master_sk_to_local_sk`, `generate_plot_public_key`), answering a signage point (plot filter,
//! qualities, required iterations, full proofs) and signing for the farmer.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bitcoin::hashes::{sha256, Hash};
use chia_bls::{PublicKey, SecretKey, Signature};
use chia_protocol::{Bytes32, ProofOfSpace};
use plotfile::{FileStorage, Prover};
use sharechain::pospace;

use super::protocol::{NewSignagePointHarvester2, Plot2};

/// Why a plot cannot be farmed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotLoadError {
    /// The file does not open as a v1 plot.
    #[error("cannot open plot: {0}")]
    Open(#[from] plotfile::PlotError),
    /// The memo is not `pool key or contract ‖ farmer key ‖ local master key`.
    #[error("memo of {0} bytes is neither 128 (pool key) nor 112 (pool contract)")]
    MemoLength(usize),
    /// A key in the memo is not a valid BLS key.
    #[error("memo holds an invalid {0}")]
    MemoKey(&'static str),
    /// The plot id is not the one the memo's keys give.
    #[error("plot id does not match the keys in its memo")]
    IdMismatch,
}

/// Chia network constants the harvester's math depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consensus {
    /// `DIFFICULTY_CONSTANT_FACTOR` (2^67 on mainnet).
    pub difficulty_constant_factor: u128,
    /// Plot filter bits; `None` follows mainnet's schedule by peak height.
    pub filter_bits: Option<u8>,
}

impl Default for Consensus {
    fn default() -> Self {
        Consensus {
            difficulty_constant_factor: pospace::DIFFICULTY_CONSTANT_FACTOR,
            filter_bits: None,
        }
    }
}

/// A farmable plot.
#[derive(Debug)]
pub struct Plot {
    /// Absolute path, as chia names plots in `plot_identifier`.
    pub path: PathBuf,
    /// The open plot file: its header (id, k, memo) and the table reads for qualities and proofs.
    pub prover: Prover<FileStorage>,
    /// The OG pool public key from the plot's memo; `None` for a plot-NFT plot.
    pub pool_public_key: Option<PublicKey>,
    /// The plot NFT's pool contract puzzle hash from the memo; `None` for an OG plot.
    pub pool_contract_puzzle_hash: Option<Bytes32>,
    /// The farmer public key the plot was made for, from the memo.
    pub farmer_public_key: PublicKey,
    /// The plot's local secret key, derived from the memo's local master key (`m/12381/8444/3/0`);
    /// it signs `request_signatures`.
    pub local_sk: SecretKey,
    /// The plot public key (local key + farmer key, plus the taproot key for plot-NFT plots); the
    /// plot id was checked against it.
    pub plot_public_key: PublicKey,
    /// The file's size in bytes.
    pub file_size: u64,
    /// The file's modification time, Unix seconds (0 if unknown).
    pub time_modified: u64,
}

/// `m/12381/8444/3/0`, hardened (chia's `master_sk_to_local_sk`).
pub fn master_sk_to_local_sk(master: &SecretKey) -> SecretKey {
    [12381, 8444, 3, 0]
        .iter()
        .fold(master.clone(), |sk, &i| sk.derive_hardened(i))
}

/// `local_pk + farmer_pk`, plus the taproot key for pool-contract plots (chia's
/// `generate_plot_public_key`).
pub fn plot_public_key(local_pk: &PublicKey, farmer_pk: &PublicKey, taproot: bool) -> PublicKey {
    let sum = local_pk + farmer_pk;
    if !taproot {
        return sum;
    }
    let mut message = sum.to_bytes().to_vec();
    message.extend(local_pk.to_bytes());
    message.extend(farmer_pk.to_bytes());
    let taproot_sk = SecretKey::from_seed(&sha256::Hash::hash(&message).to_byte_array());
    &sum + &taproot_sk.public_key()
}

impl Plot {
    /// Opens a plot and reads its keys.
    pub fn open(path: &Path) -> Result<Plot, PlotLoadError> {
        let prover = Prover::open_path(path, plotfile::Options::default().keep_c1(true))?;
        let memo = prover.header().memo.clone();
        let (head, rest) = match memo.len() {
            128 => memo.split_at(48),
            112 => memo.split_at(32),
            n => return Err(PlotLoadError::MemoLength(n)),
        };
        let farmer_public_key = PublicKey::from_bytes(rest[..48].try_into().expect("48 bytes"))
            .map_err(|_| PlotLoadError::MemoKey("farmer public key"))?;
        let master = SecretKey::from_bytes(rest[48..80].try_into().expect("32 bytes"))
            .map_err(|_| PlotLoadError::MemoKey("local master secret key"))?;
        let local_sk = master_sk_to_local_sk(&master);
        let (pool_public_key, pool_contract_puzzle_hash) = if head.len() == 48 {
            let pk = PublicKey::from_bytes(head.try_into().expect("48 bytes"))
                .map_err(|_| PlotLoadError::MemoKey("pool public key"))?;
            (Some(pk), None)
        } else {
            (None, Some(Bytes32::new(head.try_into().expect("32 bytes"))))
        };
        let plot_public_key = plot_public_key(
            &local_sk.public_key(),
            &farmer_public_key,
            pool_contract_puzzle_hash.is_some(),
        );
        let plot_pk = plot_public_key.to_bytes();
        let expected_id = match (&pool_public_key, &pool_contract_puzzle_hash) {
            (Some(pool), _) => pospace::plot_id_og(&pool.to_bytes(), &plot_pk),
            (None, Some(ph)) => pospace::plot_id_pool(&ph.to_bytes(), &plot_pk),
            (None, None) => unreachable!("one of the two is set above"),
        };
        if &expected_id != prover.id() {
            return Err(PlotLoadError::IdMismatch);
        }
        let meta = std::fs::metadata(path)
            .map_err(|e| plotfile::PlotError::from(plotfile::StorageError::from(e)))?;
        let time_modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Ok(Plot {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
            prover,
            pool_public_key,
            pool_contract_puzzle_hash,
            farmer_public_key,
            local_sk,
            plot_public_key,
            file_size: meta.len(),
            time_modified,
        })
    }

    /// The plot's path as a string (chia's `filename`).
    pub fn filename(&self) -> String {
        self.path.display().to_string()
    }

    /// The farmer's view of the plot.
    pub fn info(&self) -> Plot2 {
        Plot2 {
            filename: self.filename(),
            size: self.prover.k(),
            plot_id: Bytes32::new(*self.prover.id()),
            pool_public_key: self.pool_public_key,
            pool_contract_puzzle_hash: self.pool_contract_puzzle_hash,
            plot_public_key: self.plot_public_key,
            file_size: self.file_size,
            time_modified: self.time_modified,
            compression_level: Some(0),
            plot_index: 0,
            meta_group: 0,
        }
    }

    /// Whether the farmer's keys cover this plot (chia does not load plots whose farmer key, or
    /// whose OG pool key, the farmer lacks).
    pub fn has_keys(&self, farmer_keys: &[PublicKey], pool_keys: &[PublicKey]) -> bool {
        farmer_keys.contains(&self.farmer_public_key)
            && self
                .pool_public_key
                .as_ref()
                .is_none_or(|pk| pool_keys.contains(pk))
    }

    /// Whether the plot passes the plot filter for this signage point.
    pub fn passes_filter(&self, sp: &NewSignagePointHarvester2, consensus: &Consensus) -> bool {
        let bits = consensus
            .filter_bits
            .unwrap_or_else(|| pospace::plot_filter_prefix_bits(sp.peak_height));
        pospace::passes_plot_filter(
            bits,
            self.prover.id(),
            &sp.challenge_hash.to_bytes(),
            &sp.sp_hash.to_bytes(),
        )
    }

    /// The proofs good enough for the signage point: `(quality, proof)` for every quality whose
    /// required iterations are below the signage point interval (pool difficulty for pool plots).
    pub fn lookup(
        &self,
        sp: &NewSignagePointHarvester2,
        consensus: &Consensus,
    ) -> Result<Vec<([u8; 32], ProofOfSpace)>, plotfile::PlotError> {
        let challenge = pospace::pos_challenge(
            self.prover.id(),
            &sp.challenge_hash.to_bytes(),
            &sp.sp_hash.to_bytes(),
        );
        let mut lookup = self.prover.lookup(&challenge)?;
        let (mut difficulty, mut sub_slot_iters) = (sp.difficulty, sp.sub_slot_iters);
        if let Some(ph) = &self.pool_contract_puzzle_hash {
            if let Some(pool) = sp
                .pool_difficulties
                .iter()
                .find(|p| &p.pool_contract_puzzle_hash == ph)
            {
                (difficulty, sub_slot_iters) = (pool.difficulty, pool.sub_slot_iters);
            }
        }
        let interval = sub_slot_iters / 64;
        let qualities = lookup.qualities().to_vec();
        let mut found = Vec::new();
        for (index, quality) in qualities.iter().enumerate() {
            let iters = match pospace::calculate_iterations_quality(
                consensus.difficulty_constant_factor,
                quality,
                self.prover.k(),
                difficulty,
                &sp.sp_hash.to_bytes(),
            ) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(plot = %self.path.display(), error = %e, "required iterations");
                    continue;
                }
            };
            if iters >= interval {
                continue;
            }
            let proof = lookup.full_proof(index)?;
            found.push((
                *quality,
                ProofOfSpace {
                    challenge: Bytes32::new(challenge),
                    pool_public_key: self.pool_public_key,
                    pool_contract_puzzle_hash: self.pool_contract_puzzle_hash,
                    plot_public_key: self.plot_public_key,
                    version: 0,
                    plot_index: 0,
                    meta_group: 0,
                    strength: 0,
                    size: self.prover.k(),
                    proof: proof.proof.into(),
                },
            ));
        }
        Ok(found)
    }

    /// `AugSchemeMPL.sign(local_sk, message, plot_public_key)`: the harvester's half of the
    /// plot key's signature.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut augmented = self.plot_public_key.to_bytes().to_vec();
        augmented.extend_from_slice(message);
        chia_bls::sign_raw(&self.local_sk, augmented)
    }
}

/// Plot files named by `--plots`: files as given, directories' `*.plot` files (not recursive,
/// as chia's default), sorted and without duplicates.
pub fn plot_paths(args: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for arg in args {
        match std::fs::read_dir(arg) {
            Ok(dir) => out.extend(
                dir.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "plot") && p.is_file()),
            ),
            Err(_) => out.push(arg.clone()),
        }
    }
    out.sort();
    out.dedup();
    out
}
