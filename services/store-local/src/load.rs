//! Loading the catalog at open: every record is read and decoded, blobs are not touched.
//!
//! Images are decoded on every core, each thread over its own read transaction and slice
//! of the (uniformly distributed) image key space; the catalog is then built in one
//! `Catalog::from_records`. (Building it chunk by chunk as decoders deliver, to overlap the
//! two, was measured slower: each `apply` on a catalog still referenced copies the paths of
//! the persistent maps it touches.)

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use imaged_core::catalog::Catalog;
use imaged_core::intern::Interner;
use imaged_core::model::{Container, Image};
use imaged_core::{Digest, Error, Result};
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::codec;
use crate::fsutil::db_err;
use crate::meta::{CONTAINERS, IMAGES};

/// Threads the open's parallel phases use (decoding the records, the sweep's lookups):
/// one per core, at most 16.
pub(crate) fn open_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 16)
}

/// Reads every record and builds the catalog.
pub(crate) fn catalog(db: &Database, path: &Path) -> Result<Catalog> {
    let containers = load_containers(db, path)?;
    let threads = open_threads();
    // One interner for every decoder: equal labels, history entries and run settings are
    // held once however many threads decode them; it is dropped once the records are built.
    let shared = Interner::new();
    let images = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let (lo, hi) = key_range(i, threads);
                let shared = &shared;
                s.spawn(move || decode_images(db, path, lo, hi, shared))
            })
            .collect();
        let mut images = Vec::new();
        for w in workers {
            let part = w.join().map_err(|_| {
                Error::internal(format!(
                    "reading {}: a decoder thread panicked",
                    path.display()
                ))
            })?;
            images.extend(part?);
        }
        Ok::<_, Error>(images)
    })?;
    let decoded = std::time::Instant::now();
    let catalog = Catalog::from_records(images, containers).map_err(|e| inconsistent(path, &e));
    tracing::debug!(
        built_ms = decoded.elapsed().as_millis(),
        "catalog built from the decoded records"
    );
    catalog
}

fn inconsistent(path: &Path, e: &Error) -> Error {
    Error::internal(format!("{}: inconsistent records: {e}", path.display()))
}

/// Slice `i` of `n` of the image key space, by first byte.
fn key_range(i: usize, n: usize) -> (Bound<[u8; 1]>, Bound<[u8; 1]>) {
    let at = |k: usize| [u8::try_from(k * 256 / n).unwrap_or(u8::MAX)];
    let lo = if i == 0 {
        Bound::Unbounded
    } else {
        Bound::Included(at(i))
    };
    let hi = if i + 1 == n {
        Bound::Unbounded
    } else {
        Bound::Excluded(at(i + 1))
    };
    (lo, hi)
}

/// Decodes the images whose key is within (`lo`, `hi`).
fn decode_images(
    db: &Database,
    path: &Path,
    lo: Bound<[u8; 1]>,
    hi: Bound<[u8; 1]>,
    shared: &Interner,
) -> Result<Vec<Arc<Image>>> {
    let read = db.begin_read().map_err(|e| db_err("reading", path, e))?;
    let table = read
        .open_table(IMAGES)
        .map_err(|e| db_err("reading", path, e))?;
    let lo = lo.as_ref().map(|b| b.as_slice());
    let hi = hi.as_ref().map(|b| b.as_slice());
    let mut out = Vec::new();
    for row in table
        .range::<&[u8]>((lo, hi))
        .map_err(|e| db_err("reading", path, e))?
    {
        let (k, v) = row.map_err(|e| db_err("reading", path, e))?;
        let key = k.value();
        let img = codec::decode_image_with(v.value(), shared).map_err(|e| {
            Error::internal(format!("decoding image record {}: {e}", key_name(key)))
        })?;
        if img.id.as_bytes().as_slice() != key {
            return Err(Error::internal(format!(
                "image record {} holds image {}",
                key_name(key),
                img.id
            )));
        }
        // Shared right away: the catalog keeps it, no second copy of 100k records.
        out.push(Arc::new(img));
    }
    Ok(out)
}

fn load_containers(db: &Database, path: &Path) -> Result<Vec<Container>> {
    let read = db.begin_read().map_err(|e| db_err("reading", path, e))?;
    let table = read
        .open_table(CONTAINERS)
        .map_err(|e| db_err("reading", path, e))?;
    let mut containers = Vec::new();
    for row in table.iter().map_err(|e| db_err("reading", path, e))? {
        let (k, v) = row.map_err(|e| db_err("reading", path, e))?;
        let c = codec::decode_container(v.value()).map_err(|e| {
            Error::internal(format!("decoding container record {}: {e}", k.value()))
        })?;
        if c.id != k.value() {
            return Err(Error::internal(format!(
                "container record {} holds container {}",
                k.value(),
                c.id
            )));
        }
        containers.push(c);
    }
    Ok(containers)
}

/// An image key for messages: the digest when it is 32 bytes, else hex.
fn key_name(key: &[u8]) -> String {
    match <[u8; 32]>::try_from(key) {
        Ok(b) => Digest::from_bytes(b).to_string(),
        Err(_) => format!(
            "0x{}",
            key.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}
