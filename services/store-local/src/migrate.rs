//! Schema versions of `meta.redb` and the ordered migrations between them.
//!
//! * v1: tables `images`, `containers`, `meta` with `schema_version`.
//! * v2: `meta` also records `created_at` (when the store was created; for a store migrated
//!   from v1, when it was migrated).
//! * v3: image and container records in the binary encoding of `codec.rs` instead of JSON
//!   (start-up with 100k images went from seconds to a fraction of one).
//! * v4: image records in format 2 of `codec.rs` (media type codes, only the run settings
//!   and history fields that are set): a quarter fewer bytes to read at start-up.
//!
//! A new store is created at [`SCHEMA_VERSION`]. Opening an older store runs the missing
//! migrations in one write transaction (all or nothing); opening a newer one fails.

use std::path::Path;

use imaged_core::{Error, Result};
use redb::{Database, ReadableTable, TableHandle, WriteTransaction};

use imaged_core::model::{Container, Image};

use crate::codec;
use crate::fsutil::db_err;
use crate::meta::{CONTAINERS, IMAGES, META};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u64 = 4;

/// `meta` key of the schema version.
pub(crate) const KEY_VERSION: &str = "schema_version";
/// `meta` key of the creation time.
pub(crate) const KEY_CREATED: &str = "created_at";

/// One migration: upgrades a store at version `from` to `from + 1`.
struct Migration {
    from: u64,
    what: &'static str,
    run: fn(&WriteTransaction) -> Result<(), redb::Error>,
}

/// Every migration, in order: `MIGRATIONS[i].from == i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 1,
        what: "record created_at",
        run: v1_to_v2,
    },
    Migration {
        from: 2,
        what: "re-encode records from JSON to binary",
        run: v2_to_v3,
    },
    Migration {
        from: 3,
        what: "re-encode image records in format 2",
        run: v3_to_v4,
    },
];

fn v1_to_v2(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    if meta.get(KEY_CREATED)?.is_none() {
        meta.insert(KEY_CREATED, now())?;
    }
    Ok(())
}

fn v2_to_v3(txn: &WriteTransaction) -> Result<(), redb::Error> {
    fn corrupt(what: &str, key: &str, e: &serde_json::Error) -> redb::Error {
        redb::Error::Corrupted(format!("decoding JSON {what} record {key}: {e}"))
    }
    let mut images = txn.open_table(IMAGES)?;
    let mut recoded: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for row in images.iter()? {
        let (k, v) = row?;
        let img: Image = serde_json::from_slice(v.value())
            .map_err(|e| corrupt("image", &format!("{:?}", k.value()), &e))?;
        recoded.push((k.value().to_vec(), codec::encode_image(&img)));
    }
    for (k, v) in &recoded {
        images.insert(k.as_slice(), v.as_slice())?;
    }
    let mut containers = txn.open_table(CONTAINERS)?;
    let mut recoded: Vec<(String, Vec<u8>)> = Vec::new();
    for row in containers.iter()? {
        let (k, v) = row?;
        let c: Container =
            serde_json::from_slice(v.value()).map_err(|e| corrupt("container", k.value(), &e))?;
        recoded.push((k.value().to_owned(), codec::encode_container(&c)));
    }
    for (k, v) in &recoded {
        containers.insert(k.as_str(), v.as_slice())?;
    }
    Ok(())
}

/// Image records re-encoded per batch (bounds the memory of a migration of a big store).
const RECODE_BATCH: usize = 4096;

fn v3_to_v4(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut images = txn.open_table(IMAGES)?;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(RECODE_BATCH);
        {
            let lower = match &after {
                Some(k) => std::ops::Bound::Excluded(k.as_slice()),
                None => std::ops::Bound::Unbounded,
            };
            for row in images.range::<&[u8]>((lower, std::ops::Bound::Unbounded))? {
                let (k, v) = row?;
                let img = codec::decode_image(v.value()).map_err(|e| {
                    redb::Error::Corrupted(format!("decoding image record {:?}: {e}", k.value()))
                })?;
                batch.push((k.value().to_vec(), codec::encode_image(&img)));
                if batch.len() == RECODE_BATCH {
                    break;
                }
            }
        }
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (k, v) in &batch {
            images.insert(k.as_slice(), v.as_slice())?;
        }
    }
}

fn now() -> u64 {
    u64::try_from(imaged_core::time::now()).unwrap_or(0)
}

/// Creates the schema of a new database, or migrates an older one; fails on a newer one.
/// Returns the version found before any migration (`None` for a new store). With
/// `read_only`, a store that would need either is an error and nothing is written.
pub(crate) fn prepare(db: &Database, path: &Path, read_only: bool) -> Result<Option<u64>> {
    let err = |e: redb::Error| db_err("preparing", path, e);
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    let found = {
        let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        meta.get(KEY_VERSION)
            .map_err(|e| err(e.into()))?
            .map(|v| v.value())
    };
    match found {
        None => {
            let tables: Vec<String> = txn
                .list_tables()
                .map_err(|e| err(e.into()))?
                .map(|t| t.name().to_owned())
                .filter(|n| n != META.name())
                .collect();
            if !tables.is_empty() {
                return Err(Error::internal(format!(
                    "{}: database has tables {tables:?} but no schema version",
                    path.display()
                )));
            }
            create(&txn).map_err(err)?;
        }
        Some(v) if v > SCHEMA_VERSION => {
            return Err(Error::internal(format!(
                "store schema version {v} is newer than this imaged ({SCHEMA_VERSION}); upgrade imaged"
            )));
        }
        Some(v) if v == SCHEMA_VERSION => {
            txn.abort().map_err(|e| err(e.into()))?;
            return Ok(found);
        }
        _ if read_only => {
            txn.abort().map_err(|e| err(e.into()))?;
            return Err(Error::internal(match found {
                None => format!("{}: not an imaged store (no schema)", path.display()),
                Some(v) => format!(
                    "{}: schema version {v} needs a migration to {SCHEMA_VERSION}; start \
                     imaged or run `imaged fsck --repair` first",
                    path.display()
                ),
            }));
        }
        Some(v) => migrate(&txn, v, path)?,
    }
    txn.commit().map_err(|e| err(e.into()))?;
    Ok(found)
}

fn create(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(IMAGES)?;
    txn.open_table(CONTAINERS)?;
    let mut meta = txn.open_table(META)?;
    meta.insert(KEY_VERSION, SCHEMA_VERSION)?;
    meta.insert(KEY_CREATED, now())?;
    Ok(())
}

fn migrate(txn: &WriteTransaction, from: u64, path: &Path) -> Result<()> {
    let start = usize::try_from(from).unwrap_or(usize::MAX).wrapping_sub(1);
    let steps = MIGRATIONS
        .get(start..)
        .filter(|_| from >= 1)
        .ok_or_else(|| {
            Error::internal(format!(
                "{}: unknown store schema version {from}",
                path.display()
            ))
        })?;
    for m in steps {
        tracing::info!(
            from = m.from,
            to = m.from + 1,
            what = m.what,
            "migrating store schema"
        );
        (m.run)(txn).map_err(|e| {
            db_err(
                &format!("migrating (v{} to v{})", m.from, m.from + 1),
                path,
                e,
            )
        })?;
    }
    let mut meta = txn
        .open_table(META)
        .map_err(|e| db_err("migrating", path, e))?;
    meta.insert(KEY_VERSION, SCHEMA_VERSION)
        .map_err(|e| db_err("migrating", path, e))?;
    Ok(())
}

/// The stored schema version and creation time.
pub(crate) fn facts(db: &Database, path: &Path) -> Result<(u64, Option<u64>)> {
    use redb::ReadableDatabase;
    let err = |e: redb::Error| db_err("reading", path, e);
    let read = db.begin_read().map_err(|e| err(e.into()))?;
    let meta = read.open_table(META).map_err(|e| err(e.into()))?;
    let version = meta
        .get(KEY_VERSION)
        .map_err(|e| err(e.into()))?
        .map_or(0, |v| v.value());
    let created = meta
        .get(KEY_CREATED)
        .map_err(|e| err(e.into()))?
        .map(|v| v.value());
    Ok((version, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_contiguous_and_reach_the_current_version() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.from, i as u64 + 1);
        }
        assert_eq!(MIGRATIONS.len() as u64 + 1, SCHEMA_VERSION);
    }
}
