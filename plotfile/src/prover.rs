//! Answering a challenge from a plot: the checkpoint search (C2 in memory, C1, C3, table 7),
//! the walk down tables 6..1, qualities and full proofs.
//!
//! Read plan, one batch per step, so a lookup costs a fixed number of round trips whatever the
//! storage latency:
//! 1. the C1 entries the C2 entry points at (one range);
//! 2. the C3 park(s) and every table-7 park the C1 interval can reach (one range each; the
//!    table-7 parks are taken whole rather than waiting for C3 to say which one: a round trip
//!    costs more than the extra kilobytes);
//! 3. to 8. one level of tables 6..1 each, every park of the level in one batch, each park in a
//!    single range sized to the park (chiapos reads the head and the deltas separately).
//!
//! A quality lookup follows one path (8 rounds); [`Prover::prove`] walks the whole tree in the
//! same 8 rounds; [`Lookup::full_proof`] after a lookup reuses its reads and needs 5 more.
//! With [`Options::keep_c1`] step 1 is answered from memory: 7 rounds.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use sharechain::pospace::{proof_order, validate_proof, PROOF_X_VALUES};

use crate::checkpoint;
use crate::format::{PlotHeader, Sizes, ENTRIES_PER_PARK, HEADER_PROBE};
use crate::park::{self, top_bits};
use crate::reader::Reader;
use crate::storage::{ReadRequest, Storage};
use crate::PlotError;

/// Most C2 entries accepted (k = 50 has about 2^50 / 10^8 ≈ 1.1·10^7).
const MAX_C2_ENTRIES: u64 = 1 << 25;
/// Largest C1 table kept in memory (k = 32 needs about 1.7 MB, k = 35 about 15 MB).
const MAX_KEPT_C1: u64 = 64 << 20;

/// How to open a plot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Keep the C1 table in memory (⌈k/8⌉·2^k/10^4 bytes, 1.7 MB at k = 32): every lookup saves one
    /// round trip (7 instead of 8), at no extra round when opening.
    pub keep_c1: bool,
}

impl Options {
    /// Sets [`Options::keep_c1`].
    pub fn keep_c1(mut self, keep: bool) -> Options {
        self.keep_c1 = keep;
        self
    }
}

/// An open plot.
#[derive(Debug)]
pub struct Prover<S> {
    storage: S,
    header: PlotHeader,
    sizes: Sizes,
    c2: Vec<u64>,
    /// C1 and C2 as stored (C1's last scan may run into C2), when kept.
    c1_table: Option<Vec<u8>>,
    file_len: u64,
}

/// A quality and its full proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The quality string.
    pub quality: [u8; 32],
    /// 64 x-values of k bits, proof order (8k bytes), as chiapos's `GetFullProof` returns.
    pub proof: Vec<u8>,
}

/// Every proof for a challenge, with the round trips it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proved {
    /// Proofs in chiapos's order.
    pub proofs: Vec<Proof>,
    /// Sequential read batches.
    pub rounds: u32,
    /// Ranges read.
    pub reads: u32,
}

/// The qualities for one challenge, holding the reads made for them.
pub struct Lookup<'p, S> {
    prover: &'p Prover<S>,
    challenge: [u8; 32],
    roots: Vec<u64>,
    qualities: Vec<[u8; 32]>,
    reader: Reader<'p, S>,
}

impl<S: Storage> std::fmt::Debug for Lookup<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("qualities", &self.qualities.len())
            .field("rounds", &self.reader.rounds())
            .finish()
    }
}

impl<'p, S: Storage> Lookup<'p, S> {
    /// The qualities, in chiapos's order (empty when the plot has no proof). A quality alone
    /// cannot be checked: a damaged park may give a wrong one, which [`Lookup::full_proof`]
    /// then reports as an error.
    pub fn qualities(&self) -> &[[u8; 32]] {
        &self.qualities
    }

    /// Sequential read batches so far (the lookup's, plus any full proof's).
    pub fn rounds(&self) -> u32 {
        self.reader.rounds()
    }

    /// Ranges read so far.
    pub fn reads(&self) -> u32 {
        self.reader.reads()
    }

    /// The full proof of quality `index`, reusing the parks the lookup read.
    pub fn full_proof(&mut self, index: usize) -> Result<Proof, PlotError> {
        let count = self.roots.len();
        let root = *self
            .roots
            .get(index)
            .ok_or(PlotError::NoProof { index, count })?;
        let xs = self
            .prover
            .leaves(&mut self.reader, &[root])?
            .pop()
            .unwrap_or([0; PROOF_X_VALUES]);
        let proof = self.prover.finish(&self.challenge, &xs)?;
        if proof.quality != self.qualities[index] {
            return Err(PlotError::QualityMismatch);
        }
        Ok(proof)
    }
}

impl Prover<crate::storage::FileStorage> {
    /// Opens a local plot file; a `.plot2` file (proof of space v2) is refused by its name, as
    /// chia's harvester tells the formats apart.
    pub fn open_path(
        path: impl AsRef<std::path::Path>,
        options: Options,
    ) -> Result<Self, PlotError> {
        let path = path.as_ref();
        if path.extension().is_some_and(|e| e == "plot2") {
            return Err(PlotError::PlotV2);
        }
        Prover::open_with(crate::storage::FileStorage::open(path)?, options)
    }
}

impl<S: Storage> Prover<S> {
    /// Opens a plot: reads and checks the header (one batch, two for a very long memo) and
    /// keeps the C2 table in memory (one batch).
    pub fn open(storage: S) -> Result<Prover<S>, PlotError> {
        Prover::open_with(storage, Options::default())
    }

    /// [`Prover::open`] with options.
    pub fn open_with(storage: S, options: Options) -> Result<Prover<S>, PlotError> {
        let file_len = storage.len()?;
        let mut reader = Reader::new(&storage, file_len);
        let mut want = HEADER_PROBE as u64;
        let header = loop {
            let req = ReadRequest {
                offset: 0,
                len: want.min(file_len) as usize,
            };
            let bytes = storage.read_many(&[req])?.pop().unwrap_or_default();
            if bytes.len() < req.len {
                // Storage that answers short would otherwise be asked the same forever.
                return Err(PlotError::Truncated {
                    offset: 0,
                    needed: req.len as u64,
                    len: bytes.len() as u64,
                });
            }
            match PlotHeader::parse(&bytes)? {
                Ok(h) => break h,
                Err(need) if (need as u64) > file_len => {
                    return Err(PlotError::Truncated {
                        offset: 0,
                        needed: need as u64,
                        len: file_len,
                    })
                }
                Err(need) => want = need as u64,
            }
        };
        header.check_pointers(file_len)?;
        let sizes = Sizes::new(header.k);
        let p = &header.pointers;
        let entries = (p[10] - p[9]) / sizes.checkpoint_entry;
        if entries > MAX_C2_ENTRIES {
            return Err(PlotError::BadPointers("C2 table too large"));
        }
        // The last C2 entry is not used, as in chiapos.
        let len = (entries - 1) * sizes.checkpoint_entry;
        let (c2_bytes, c1_table) = if options.keep_c1 {
            if p[10] - p[8] > MAX_KEPT_C1 {
                return Err(PlotError::BadPointers("C1 table too large to keep"));
            }
            // C1 and C2 are adjacent: one range holds both.
            let req = reader.exact(p[8], p[10] - p[8])?;
            reader.fetch(&[req])?;
            let both = reader.get(p[8]);
            let from = (p[9] - p[8]) as usize;
            (
                both[from..from + len as usize].to_vec(),
                Some(both.to_vec()),
            )
        } else {
            let req = reader.exact(p[9], len)?;
            reader.fetch(&[req])?;
            (reader.get(p[9]).to_vec(), None)
        };
        let c2 = c2_bytes
            .chunks_exact(sizes.checkpoint_entry as usize)
            .map(|e| top_bits(e, header.k))
            .collect();
        Ok(Prover {
            storage,
            header,
            sizes,
            c2,
            c1_table,
            file_len,
        })
    }

    /// The header.
    pub fn header(&self) -> &PlotHeader {
        &self.header
    }

    /// The plot id.
    pub fn id(&self) -> &[u8; 32] {
        &self.header.id
    }

    /// k.
    pub fn k(&self) -> u8 {
        self.header.k
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Looks up the qualities for `challenge` (chiapos's `GetQualitiesForChallenge`).
    pub fn lookup(&self, challenge: &[u8; 32]) -> Result<Lookup<'_, S>, PlotError> {
        let mut reader = Reader::new(&self.storage, self.file_len);
        let roots = checkpoint::p7_entries(
            &self.header,
            &self.sizes,
            &self.c2,
            self.c1_table.as_deref(),
            &mut reader,
            challenge,
        )?;
        let qualities = self.quality_paths(&mut reader, challenge, &roots)?;
        Ok(Lookup {
            prover: self,
            challenge: *challenge,
            roots,
            qualities,
            reader,
        })
    }

    /// The qualities for `challenge`.
    pub fn qualities(&self, challenge: &[u8; 32]) -> Result<Vec<[u8; 32]>, PlotError> {
        Ok(self.lookup(challenge)?.qualities)
    }

    /// Every quality with its full proof for `challenge`, walking all trees level by level.
    pub fn prove(&self, challenge: &[u8; 32]) -> Result<Proved, PlotError> {
        let mut reader = Reader::new(&self.storage, self.file_len);
        let roots = checkpoint::p7_entries(
            &self.header,
            &self.sizes,
            &self.c2,
            self.c1_table.as_deref(),
            &mut reader,
            challenge,
        )?;
        let trees = self.leaves(&mut reader, &roots)?;
        let proofs = trees
            .iter()
            .map(|xs| self.finish(challenge, xs))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Proved {
            proofs,
            rounds: reader.rounds(),
            reads: reader.reads(),
        })
    }

    /// The range of the park holding `position` of `table`.
    fn park_request(
        &self,
        rd: &Reader<'_, S>,
        table: u8,
        position: u64,
    ) -> Result<ReadRequest, PlotError> {
        let size = self.sizes.park(table);
        let index = position / ENTRIES_PER_PARK;
        let offset = index
            .checked_mul(size)
            .and_then(|o| o.checked_add(self.header.pointers[usize::from(table)]))
            .ok_or(PlotError::CorruptCheckpoint("position beyond any table"))?;
        rd.exact(offset, size)
    }

    /// Reads one level: the line points at `positions` of `table`, as position pairs (larger
    /// first), all parks in one batch.
    fn level(
        &self,
        rd: &mut Reader<'_, S>,
        table: u8,
        positions: &[u64],
    ) -> Result<Vec<(u64, u64)>, PlotError> {
        let requests = positions
            .iter()
            .map(|&pos| self.park_request(rd, table, pos))
            .collect::<Result<Vec<_>, _>>()?;
        rd.fetch(&requests)?;
        requests
            .iter()
            .zip(positions)
            .map(|(req, &pos)| {
                let bytes = rd.get(req.offset);
                let lp = park::line_point(&self.sizes, table, &bytes, pos)
                    .map_err(|source| PlotError::CorruptPark { table, source })?;
                Ok(park::line_point_to_square(lp))
            })
            .collect()
    }

    /// The quality of each root, following the path the challenge's last 5 bits choose.
    fn quality_paths(
        &self,
        rd: &mut Reader<'_, S>,
        challenge: &[u8; 32],
        roots: &[u64],
    ) -> Result<Vec<[u8; 32]>, PlotError> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        let last5 = challenge[31] & 0x1f;
        let mut positions = roots.to_vec();
        for table in (2..=6u8).rev() {
            let pairs = self.level(rd, table, &positions)?;
            let right = (last5 >> (table - 2)) & 1 == 1;
            positions = pairs
                .iter()
                .map(|&(x, y)| if right { x } else { y })
                .collect();
        }
        Ok(self
            .level(rd, 1, &positions)?
            .iter()
            .map(|&(x, y)| quality(self.header.k, challenge, y, x))
            .collect())
    }

    /// The 64 x-values (plot order) under each root, one batch per level for all roots.
    fn leaves(
        &self,
        rd: &mut Reader<'_, S>,
        roots: &[u64],
    ) -> Result<Vec<[u64; PROOF_X_VALUES]>, PlotError> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        // All roots' nodes of a level side by side; a node's children replace it in place,
        // smaller position first, as chiapos's `GetInputs` orders them.
        let mut nodes = roots.to_vec();
        for table in (1..=6u8).rev() {
            let pairs = self.level(rd, table, &nodes)?;
            nodes = pairs.iter().flat_map(|&(x, y)| [y, x]).collect();
        }
        Ok(nodes
            .chunks_exact(PROOF_X_VALUES)
            .map(|c| {
                let mut xs = [0u64; PROOF_X_VALUES];
                xs.copy_from_slice(c);
                xs
            })
            .collect())
    }

    /// Plot-order x-values → a checked proof with its quality.
    fn finish(&self, challenge: &[u8; 32], xs: &[u64; PROOF_X_VALUES]) -> Result<Proof, PlotError> {
        let k = self.header.k;
        let ordered = proof_order(&self.header.id, k, xs).map_err(PlotError::BadProof)?;
        let proof = pack(k, &ordered);
        let checked =
            validate_proof(&self.header.id, k, challenge, &proof).map_err(PlotError::BadProof)?;
        // The quality the lookup path would give: x-values 2i and 2i+1 of plot order.
        let i = 2 * usize::from(challenge[31] & 0x1f);
        let expected = quality(k, challenge, xs[i], xs[i + 1]);
        if checked != expected {
            return Err(PlotError::QualityMismatch);
        }
        Ok(Proof {
            quality: checked,
            proof,
        })
    }
}

/// sha256(challenge ‖ a ‖ b), a and b packed in k bits each and zero-padded to whole bytes.
fn quality(k: u8, challenge: &[u8; 32], a: u64, b: u64) -> [u8; 32] {
    let bits = 2 * u32::from(k);
    let v = ((u128::from(a) << k) | u128::from(b)) << (128 - bits);
    let bytes = v.to_be_bytes();
    let mut engine = sha256::Hash::engine();
    engine.input(challenge);
    engine.input(&bytes[..bits.div_ceil(8) as usize]);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// 64 x-values of k bits, MSB-first.
fn pack(k: u8, xs: &[u64; PROOF_X_VALUES]) -> Vec<u8> {
    let k = u32::from(k);
    let mut out = Vec::with_capacity(8 * k as usize);
    let mut acc: u128 = 0;
    let mut n = 0u32;
    for &x in xs {
        acc = (acc << k) | u128::from(x & ((1u64 << k) - 1));
        n += k;
        while n >= 8 {
            out.push((acc >> (n - 8)) as u8);
            n -= 8;
        }
    }
    out
}
