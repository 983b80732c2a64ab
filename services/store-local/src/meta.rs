//! The metadata database (`meta.redb`): tables, record encoding, loading and writing.
//!
//! Tables (the on-disk format; see `migrate.rs` for its versions):
//! * `images`: key = the 32 raw bytes of the image ID, value = the `Image` record;
//! * `containers`: key = the container ID, value = the `Container` record;
//! * `meta`: `schema_version` and `created_at` (Unix nanoseconds), both `u64`.
//!
//! Records are in the binary encoding of `codec.rs` (JSON up to schema v2).

use std::path::Path;

use imaged_core::{ChangeSet, Error, Result};
use redb::{Database, DatabaseError, TableDefinition};

use crate::codec;
use crate::fsutil::db_err;

/// Image records.
pub(crate) const IMAGES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("images");
/// Container records.
pub(crate) const CONTAINERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("containers");
/// Store facts (`schema_version`, `created_at`).
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// Page cache of the database: the catalog lives in memory, the database is only read at
/// open, so a small cache is enough.
const CACHE_BYTES: usize = 32 << 20;

/// Opens (creating when missing) the database file.
pub(crate) fn open_db(path: &Path) -> Result<Database> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => Error::internal(format!(
                "opening {}: the store is already open (is another imaged running on it?)",
                path.display()
            )),
            other => db_err("opening", path, other),
        })
}

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Nothing was written: the transaction was aborted.
    Aborted(Error),
    /// The commit itself failed: whether it reached the disk is unknown.
    Ambiguous(Error),
}

/// Writes every record `change` touches in one write transaction and commits it (durably).
/// Order as `Catalog::apply`: image deletions, image puts, container deletions, container
/// puts. Before the commit, any error aborts the transaction (nothing is written).
pub(crate) fn write(db: &Database, path: &Path, change: &ChangeSet) -> Result<(), WriteError> {
    write_records(db, path, change)
        .map_err(WriteError::Aborted)?
        .commit()
        .map_err(|e| WriteError::Ambiguous(db_err("committing to", path, e)))
}

fn write_records(db: &Database, path: &Path, change: &ChangeSet) -> Result<redb::WriteTransaction> {
    let images: Vec<(&[u8], Vec<u8>)> = change
        .put_images
        .iter()
        .map(|img| (img.id.as_bytes().as_slice(), codec::encode_image(img)))
        .collect();
    let containers: Vec<(&str, Vec<u8>)> = change
        .put_containers
        .iter()
        .map(|c| (c.id.as_str(), codec::encode_container(c)))
        .collect();

    let txn = db.begin_write().map_err(|e| db_err("writing", path, e))?;
    {
        let mut t = txn
            .open_table(IMAGES)
            .map_err(|e| db_err("writing", path, e))?;
        for id in &change.delete_images {
            t.remove(id.as_bytes().as_slice())
                .map_err(|e| db_err("writing", path, e))?;
        }
        for (k, v) in &images {
            t.insert(*k, v.as_slice())
                .map_err(|e| db_err("writing", path, e))?;
        }
        // Most removals touch no container: leave that table's root alone.
        if !(change.delete_containers.is_empty() && containers.is_empty()) {
            let mut t = txn
                .open_table(CONTAINERS)
                .map_err(|e| db_err("writing", path, e))?;
            for id in &change.delete_containers {
                t.remove(id.as_str())
                    .map_err(|e| db_err("writing", path, e))?;
            }
            for (k, v) in &containers {
                t.insert(*k, v.as_slice())
                    .map_err(|e| db_err("writing", path, e))?;
            }
        }
    }
    Ok(txn)
}
