//! The metadata database (`meta.redb`): tables, record encoding, loading and writing.
//!
//! Tables (the on-disk format; see `migrate.rs` for its versions):
//! * `images`: key = the 32 raw bytes of the image ID, value = the `Image` record;
//! * `containers`: key = the container ID, value = the `Container` record;
//! * `meta`: `schema_version` and `created_at` (Unix nanoseconds), both `u64`.
//!
//! Records are in the binary encoding of `codec.rs` (JSON up to schema v2).

use std::path::Path;

use imaged_core::{ChangeSet, Error, ErrorKind, Result};
use redb::{Database, DatabaseError, ReadableDatabase, TableDefinition};

use crate::codec;
use crate::fsutil::{db_err, is_no_space};

/// Image records.
pub(crate) const IMAGES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("images");
/// Container records.
pub(crate) const CONTAINERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("containers");
/// Store facts (`schema_version`, `created_at`).
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// Page cache of the database: the catalog lives in memory, the database is read once, in
/// key order, at open, and a commit touches a few pages per changed record. Measured at 100k
/// images (start-up / dangling prune / RSS after start-up): 4 MiB 538 ms / 626 ms / 187 MiB,
/// 12 MiB 488 ms / 522 ms / 197 MiB, 32 MiB 453 ms / 540 ms / 218 MiB (the cache stays full
/// after the open for the daemon's lifetime).
const CACHE_BYTES: usize = 12 << 20;

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
            other => db_fault("opening", path, other).0,
        })
}

/// Compacts the database file (after a migration); a failure only leaves the file larger.
pub(crate) fn compact(db: &mut Database, path: &Path) {
    let started = std::time::Instant::now();
    match db.compact() {
        Ok(_) => tracing::info!(
            path = %path.display(),
            ms = started.elapsed().as_millis(),
            "database compacted"
        ),
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot compact the database"),
    }
}

/// Why a write failed.
#[derive(Debug)]
pub(crate) struct WriteError {
    /// The error (`NoSpace` for a full disk or quota).
    pub(crate) error: Error,
    /// The commit itself failed: whether it reached the disk is unknown. (Otherwise the
    /// transaction was aborted and nothing was written.)
    pub(crate) ambiguous: bool,
    /// redb saw an I/O error: the `Database` answers every later call with "Previous I/O
    /// error" and must be closed and re-opened.
    pub(crate) broken: bool,
}

/// Classifies a redb error of `op`: the error to return and whether the database must be
/// re-opened (an I/O error, or one that an earlier I/O error left behind).
pub(crate) fn db_fault(op: &str, path: &Path, err: impl Into<redb::Error>) -> (Error, bool) {
    let err: redb::Error = err.into();
    match &err {
        redb::Error::Io(io) if is_no_space(io) => (
            Error::new(
                ErrorKind::NoSpace,
                format!("{op} {}: {err}", path.display()),
            ),
            true,
        ),
        redb::Error::Io(_) | redb::Error::PreviousIo => (db_err(op, path, err), true),
        _ => (db_err(op, path, err), false),
    }
}

/// Writes every record `change` touches in one write transaction and commits it (durably).
/// Order as `Catalog::apply`: image deletions, image puts, container deletions, container
/// puts. Before the commit, any error aborts the transaction (nothing is written).
pub(crate) fn write(db: &Database, path: &Path, change: &ChangeSet) -> Result<(), WriteError> {
    commit(prepare(db, path, change)?, path)
}

/// The first half of [`write`]: every record `change` touches, written in a transaction
/// not committed yet (dropping it, or any error, writes nothing).
pub(crate) fn prepare(
    db: &Database,
    path: &Path,
    change: &ChangeSet,
) -> Result<redb::WriteTransaction, WriteError> {
    write_records(db, path, change).map_err(|(error, broken)| WriteError {
        error,
        ambiguous: false,
        broken,
    })
}

/// The second half of [`write`]: commits a prepared transaction (durably).
pub(crate) fn commit(txn: redb::WriteTransaction, path: &Path) -> Result<(), WriteError> {
    txn.commit().map_err(|e| {
        let (error, broken) = db_fault("committing to", path, e);
        WriteError {
            error,
            ambiguous: true,
            broken,
        }
    })
}

/// Whether the database holds the outcome of `change` (every record it puts, none it
/// deletes): after a commit failed ambiguously and the database was re-opened.
pub(crate) fn holds(db: &Database, path: &Path, change: &ChangeSet) -> Result<bool> {
    let read = db.begin_read().map_err(|e| db_err("reading", path, e))?;
    let images = read
        .open_table(IMAGES)
        .map_err(|e| db_err("reading", path, e))?;
    for img in &change.put_images {
        let found = images
            .get(img.id.as_bytes().as_slice())
            .map_err(|e| db_err("reading", path, e))?;
        if found.is_none_or(|v| v.value() != codec::encode_image(img).as_slice()) {
            return Ok(false);
        }
    }
    for id in &change.delete_images {
        let put = change.put_images.iter().any(|i| i.id == *id);
        let found = images
            .get(id.as_bytes().as_slice())
            .map_err(|e| db_err("reading", path, e))?;
        if !put && found.is_some() {
            return Ok(false);
        }
    }
    if change.put_containers.is_empty() && change.delete_containers.is_empty() {
        return Ok(true);
    }
    let containers = read
        .open_table(CONTAINERS)
        .map_err(|e| db_err("reading", path, e))?;
    for c in &change.put_containers {
        let found = containers
            .get(c.id.as_str())
            .map_err(|e| db_err("reading", path, e))?;
        if found.is_none_or(|v| v.value() != codec::encode_container(c).as_slice()) {
            return Ok(false);
        }
    }
    for id in &change.delete_containers {
        let put = change.put_containers.iter().any(|c| c.id == *id);
        let found = containers
            .get(id.as_str())
            .map_err(|e| db_err("reading", path, e))?;
        if !put && found.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn write_records(
    db: &Database,
    path: &Path,
    change: &ChangeSet,
) -> Result<redb::WriteTransaction, (Error, bool)> {
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
    let fault = |e: redb::Error| db_fault("writing", path, e);

    let txn = db.begin_write().map_err(|e| fault(e.into()))?;
    {
        let mut t = txn.open_table(IMAGES).map_err(|e| fault(e.into()))?;
        // In key order: a prune deletes tens of thousands of rows, and in the order given
        // each one read and rewrote a random leaf of a table larger than the page cache.
        let mut deleted: Vec<&[u8]> = change
            .delete_images
            .iter()
            .map(|id| id.as_bytes().as_slice())
            .collect();
        deleted.sort_unstable();
        for id in deleted {
            t.remove(id).map_err(|e| fault(e.into()))?;
        }
        for (k, v) in &images {
            t.insert(*k, v.as_slice()).map_err(|e| fault(e.into()))?;
        }
        // Most removals touch no container: leave that table's root alone.
        if !(change.delete_containers.is_empty() && containers.is_empty()) {
            let mut t = txn.open_table(CONTAINERS).map_err(|e| fault(e.into()))?;
            for id in &change.delete_containers {
                t.remove(id.as_str()).map_err(|e| fault(e.into()))?;
            }
            for (k, v) in &containers {
                t.insert(*k, v.as_slice()).map_err(|e| fault(e.into()))?;
            }
        }
    }
    Ok(txn)
}
