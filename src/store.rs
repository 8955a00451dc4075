//! The persistent share store: every share the node holds, by hash, in a `redb` database in the
//! data directory.
//!
//! A write returns only after its transaction is durably committed (`redb`'s default
//! `Durability::Immediate`: fsync before `commit` returns), so a share acknowledged as stored
//! survives `kill -9` and power loss. Additions, removals (pruned or invalidated shares) and the
//! best head go in one transaction per batch, which keeps the store bounded by the tracker's
//! pruning and the fsync cost per batch rather than per share.
//!
//! Shares are stored in their wire encoding and re-checked on load: the store is a cache of what
//! peers could send again, never a source of trust.

use std::path::{Path, PathBuf};

use bitcoin::hashes::Hash;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use sharechain::ShareHash;
use thiserror::Error;

/// Share hash → share bytes (consensus encoding).
const SHARES: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("shares");
/// Small named values: `best` → the best share hash at the last write.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("share store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("share store: {0}")]
    Db(#[from] redb::Error),
}

/// One batch of changes, written in a single durable transaction.
#[derive(Debug, Default, Clone)]
pub struct StoreBatch {
    /// Shares to add: hash and wire bytes.
    pub put: Vec<(ShareHash, Vec<u8>)>,
    /// Shares to delete (pruned or found invalid).
    pub remove: Vec<ShareHash>,
    /// The best share after this batch, when it changed.
    pub best: Option<ShareHash>,
}

impl StoreBatch {
    /// True when the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.remove.is_empty() && self.best.is_none()
    }
}

/// The share store.
#[derive(Debug)]
pub struct ShareStore {
    db: Database,
    path: PathBuf,
}

fn key(hash: &ShareHash) -> [u8; 32] {
    hash.to_byte_array()
}

impl ShareStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open = || -> Result<Database, redb::Error> {
            let db = Database::create(path)?;
            // Create the tables so that readers never see "table does not exist".
            let tx = db.begin_write()?;
            tx.open_table(SHARES)?;
            tx.open_table(META)?;
            tx.commit()?;
            Ok(db)
        };
        let db = open().map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(ShareStore {
            db,
            path: path.to_owned(),
        })
    }

    /// Where the database file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies `batch` in one transaction; returns once it is durable.
    pub fn apply(&self, batch: &StoreBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let run = || -> Result<(), redb::Error> {
            let tx = self.db.begin_write()?;
            {
                let mut shares = tx.open_table(SHARES)?;
                for (hash, bytes) in &batch.put {
                    shares.insert(key(hash), bytes.as_slice())?;
                }
                for hash in &batch.remove {
                    shares.remove(key(hash))?;
                }
                if let Some(best) = &batch.best {
                    let mut meta = tx.open_table(META)?;
                    meta.insert("best", best.to_byte_array().as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        };
        Ok(run()?)
    }

    /// Stores shares durably (a batch of additions only).
    pub fn put(&self, shares: &[(ShareHash, Vec<u8>)]) -> Result<(), StoreError> {
        self.apply(&StoreBatch {
            put: shares.to_vec(),
            ..StoreBatch::default()
        })
    }

    /// True when the store holds `hash`.
    pub fn contains(&self, hash: &ShareHash) -> Result<bool, StoreError> {
        let run = || -> Result<bool, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(SHARES)?;
            Ok(table.get(key(hash))?.is_some())
        };
        Ok(run()?)
    }

    /// Number of shares held.
    pub fn len(&self) -> Result<u64, StoreError> {
        let run = || -> Result<u64, redb::Error> {
            let tx = self.db.begin_read()?;
            Ok(tx.open_table(SHARES)?.len()?)
        };
        Ok(run()?)
    }

    /// True when no share is held.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// The best share recorded by the last write that changed it.
    pub fn best(&self) -> Result<Option<ShareHash>, StoreError> {
        let run = || -> Result<Option<ShareHash>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(META)?;
            let best = table.get("best")?.and_then(|v| {
                let bytes: [u8; 32] = v.value().try_into().ok()?;
                Some(ShareHash::from_byte_array(bytes))
            });
            Ok(best)
        };
        Ok(run()?)
    }

    /// Every stored share: hash and wire bytes, in hash order.
    pub fn load(&self) -> Result<Vec<(ShareHash, Vec<u8>)>, StoreError> {
        let run = || -> Result<Vec<(ShareHash, Vec<u8>)>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(SHARES)?;
            let mut out = Vec::with_capacity(table.len()? as usize);
            for row in table.iter()? {
                let (k, v) = row?;
                out.push((ShareHash::from_byte_array(k.value()), v.value().to_vec()));
            }
            Ok(out)
        };
        Ok(run()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> ShareHash {
        ShareHash::from_byte_array([n; 32])
    }

    #[test]
    fn writes_survive_reopen_and_removals_stick() {
        let dir = std::env::temp_dir().join(format!("p2pool-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shares.redb");
        let _ = std::fs::remove_file(&path);
        {
            let store = ShareStore::open(&path).unwrap();
            store
                .apply(&StoreBatch {
                    put: vec![(h(1), vec![1, 2, 3]), (h(2), vec![4])],
                    remove: vec![],
                    best: Some(h(2)),
                })
                .unwrap();
            store
                .apply(&StoreBatch {
                    put: vec![(h(3), vec![5])],
                    remove: vec![h(1)],
                    best: None,
                })
                .unwrap();
        }
        let store = ShareStore::open(&path).unwrap();
        assert_eq!(store.len().unwrap(), 2);
        assert!(!store.contains(&h(1)).unwrap());
        assert!(store.contains(&h(3)).unwrap());
        assert_eq!(store.best().unwrap(), Some(h(2)));
        let loaded = store.load().unwrap();
        assert_eq!(loaded, vec![(h(2), vec![4]), (h(3), vec![5])]);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
