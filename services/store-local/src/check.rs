//! `fsck`: verify every referenced blob (size and sha256), optionally repair.
//!
//! Hashing every blob can take minutes, so the scan runs on a snapshot without the writer
//! lock; only the blobs found bad are verified again under the lock (a concurrent removal
//! may have released them meanwhile) before anything is reported or repaired.

use imaged_core::Digest;
use imaged_core::Result;
use imaged_core::catalog::Catalog;
use imaged_core::store::{CheckReport, Store};

use crate::blobs::{BlobState, verify};
use crate::fsutil::remove_file;
use crate::inner::lock;
use crate::store::LocalStore;

/// Checks the store; with `repair`, drops broken images (and their containers) and removes
/// unreferenced blob files.
pub(crate) fn check(store: &LocalStore, repair: bool) -> Result<CheckReport> {
    let snapshot = store.view();
    let mut suspects: Vec<Digest> = Vec::new();
    let mut blobs_checked = 0;
    for (d, e) in snapshot.blobs() {
        blobs_checked += 1;
        if verify(&store.inner().layout.blob(d), d, e.size)? != BlobState::Good {
            suspects.push(*d);
        }
    }

    let _writing = store.inner().writing();
    let mut w = store.inner().write_lock();
    let view = store.view();
    let mut report = CheckReport {
        images_checked: snapshot.len(),
        blobs_checked,
        ..CheckReport::default()
    };
    suspects.sort_unstable();
    for d in suspects {
        let Some(e) = view.blob(&d) else { continue };
        match verify(&store.inner().layout.blob(&d), &d, e.size)? {
            BlobState::Good => continue,
            BlobState::Missing => report.problems.push(format!("blob {d} missing")),
            BlobState::Corrupt(size, found) => report.problems.push(format!(
                "blob {d} corrupt ({size} bytes with digest {found}, expected {} bytes)",
                e.size
            )),
        }
        mark_broken(&view, &d, &mut report.broken_images);
    }
    if !repair {
        // Released blobs the deleter has not reached yet are not leftovers.
        store.wait_for_deletions();
        report_leftovers(store, &view, &mut report)?;
    }
    if repair {
        let change = imaged_core::repair::drop_broken(&view, &report.broken_images);
        let applied = store.apply_locked(&mut w, &change, None)?;
        // The blobs this released are the deleter's, not orphans to count.
        store.wait_for_deletions();
        report.repaired_images = change.delete_images.clone();
        report.orphans_removed = remove_orphans(store, &applied.catalog)?;
    }
    Ok(report)
}

/// Reports, without touching them, the files a start-up sweep or `repair` would remove:
/// blob files `view` does not refer to and no staging holds, and (for a store opened for
/// inspection, where no staging runs) the files of `ingest/`.
fn report_leftovers(store: &LocalStore, view: &Catalog, report: &mut CheckReport) -> Result<()> {
    let inner = store.inner();
    let mut orphans: Vec<String> = Vec::new();
    {
        let _b = lock(&inner.blob_lock);
        for (digest, path, kind) in inner.layout.blob_files()? {
            if !kind.is_file() {
                continue;
            }
            let keep = digest.is_some_and(|d| view.blob(&d).is_some() || inner.leases.is_held(&d));
            if !keep {
                orphans.push(path.display().to_string());
            }
        }
    }
    orphans.sort();
    for p in orphans {
        report.problems.push(format!(
            "unreferenced blob file {p} (removed by --repair or the next start)"
        ));
    }
    if inner.options.inspect {
        let mut partial = inner.layout.ingest_files()?;
        partial.sort();
        for p in partial {
            report.problems.push(format!(
                "leftover temporary file {} (removed by --repair or the next start)",
                p.display()
            ));
        }
    }
    Ok(())
}

/// Adds every image of `view` referring to `blob` to `broken`, once.
fn mark_broken(view: &Catalog, blob: &Digest, broken: &mut Vec<Digest>) {
    for img in view.images() {
        if img.blobs().any(|b| b.digest == *blob) && !broken.contains(&img.id) {
            broken.push(img.id);
        }
    }
}

/// Removes blob files `view` does not refer to and no staging holds (not `ingest/`: files
/// there belong to running stagings).
fn remove_orphans(store: &LocalStore, view: &Catalog) -> Result<usize> {
    if store
        .inner()
        .uncertain
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Ok(0);
    }
    let _b = lock(&store.inner().blob_lock);
    let mut removed = 0;
    for (digest, path, kind) in store.inner().layout.blob_files()? {
        if !kind.is_file() {
            continue;
        }
        let keep =
            digest.is_some_and(|d| view.blob(&d).is_some() || store.inner().leases.is_held(&d));
        if !keep && remove_file(&path)? {
            removed += 1;
        }
    }
    Ok(removed)
}
