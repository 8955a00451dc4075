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
//!
//! Each share kind has its own table in the one database ([`ShareStore::table`]): the Bitcoin
//! kind `shares` (the original table, so existing stores load), the PoSpace kind
//! `pospace_shares`. Handles to different tables share the database and may be used from
//! different threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcoin::hashes::Hash;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use sharechain::ShareHash;
use thiserror::Error;

/// The table a store handle opens with: the Bitcoin kind's.
pub const DEFAULT_TABLE: &str = "shares";
/// Small named values: `best` → the best share hash of the `shares` table at the last write,
/// `<table>.best` for other tables.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// Share hash → share bytes (wire encoding), for one kind's table.
fn shares_table(name: &str) -> TableDefinition<'_, [u8; 32], &[u8]> {
    TableDefinition::new(name)
}

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("share store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The database error.
        #[source]
        source: redb::Error,
    },
    /// A read or write transaction failed.
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

/// The share store: a handle to one kind's table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShareStore {
    db: Arc<Database>,
    path: PathBuf,
    table: &'static str,
}

fn key(hash: &ShareHash) -> [u8; 32] {
    hash.to_byte_array()
}

impl ShareStore {
    /// Opens (or creates) the store at `path`, on the [`DEFAULT_TABLE`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open = || -> Result<Database, redb::Error> {
            let db = Database::create(path)?;
            let tx = db.begin_write()?;
            tx.open_table(META)?;
            tx.commit()?;
            Ok(db)
        };
        let db = open().map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        let store = ShareStore {
            db: Arc::new(db),
            path: path.to_owned(),
            table: DEFAULT_TABLE,
        };
        store.create_table()?;
        Ok(store)
    }

    /// A handle to the table `name` of the same database (created if missing).
    pub fn table(&self, name: &'static str) -> Result<Self, StoreError> {
        let store = ShareStore {
            db: Arc::clone(&self.db),
            path: self.path.clone(),
            table: name,
        };
        store.create_table()?;
        Ok(store)
    }

    /// The table this handle reads and writes.
    pub fn table_name(&self) -> &'static str {
        self.table
    }

    /// Creates the table so that readers never see "table does not exist".
    fn create_table(&self) -> Result<(), StoreError> {
        let run = || -> Result<(), redb::Error> {
            let tx = self.db.begin_write()?;
            tx.open_table(shares_table(self.table))?;
            tx.commit()?;
            Ok(())
        };
        Ok(run()?)
    }

    fn best_key(&self) -> String {
        if self.table == DEFAULT_TABLE {
            "best".to_owned()
        } else {
            format!("{}.best", self.table)
        }
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
                let mut shares = tx.open_table(shares_table(self.table))?;
                for (hash, bytes) in &batch.put {
                    shares.insert(key(hash), bytes.as_slice())?;
                }
                for hash in &batch.remove {
                    shares.remove(key(hash))?;
                }
                if let Some(best) = &batch.best {
                    let mut meta = tx.open_table(META)?;
                    meta.insert(self.best_key().as_str(), best.to_byte_array().as_slice())?;
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
            let table = tx.open_table(shares_table(self.table))?;
            Ok(table.get(key(hash))?.is_some())
        };
        Ok(run()?)
    }

    /// Number of shares held.
    pub fn len(&self) -> Result<u64, StoreError> {
        let run = || -> Result<u64, redb::Error> {
            let tx = self.db.begin_read()?;
            Ok(tx.open_table(shares_table(self.table))?.len()?)
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
            let best = table.get(self.best_key().as_str())?.and_then(|v| {
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
            let table = tx.open_table(shares_table(self.table))?;
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

    #[test]
    fn tables_of_one_database_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shares.redb");
        {
            let bitcoin = ShareStore::open(&path).unwrap();
            let other = bitcoin.table("pospace_shares").unwrap();
            bitcoin
                .apply(&StoreBatch {
                    put: vec![(h(1), vec![1])],
                    remove: vec![],
                    best: Some(h(1)),
                })
                .unwrap();
            other
                .apply(&StoreBatch {
                    put: vec![(h(2), vec![2]), (h(3), vec![3])],
                    remove: vec![],
                    best: Some(h(3)),
                })
                .unwrap();
        }
        let bitcoin = ShareStore::open(&path).unwrap();
        let other = bitcoin.table("pospace_shares").unwrap();
        assert_eq!(bitcoin.load().unwrap(), vec![(h(1), vec![1])]);
        assert_eq!(other.len().unwrap(), 2);
        assert_eq!(bitcoin.best().unwrap(), Some(h(1)));
        assert_eq!(other.best().unwrap(), Some(h(3)));
    }
}
