//! I/O failures: errors with context, never a panic, and the store stays consistent.
//!
//! Tests run as root here, where `chmod 0555` does not stop writes, so failures are
//! injected differently:
//! * an unwritable directory: `ingest/` or `blobs/sha256/` replaced by a regular file
//!   (every create/rename in it fails with `ENOTDIR`);
//! * a full disk: a child process (this test binary re-executed) runs with
//!   `RLIMIT_FSIZE` set by `prlimit` and `SIGXFSZ` ignored, so any write that would grow a
//!   file past the limit fails with `EFBIG`, blob files and `meta.redb` alike.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{blob_files, files, invariants, layer_bytes, load, stage_image};
use imaged_core::model::ImageConfig;
use imaged_core::store::Store;
use imaged_core::{ChangeSet, ErrorKind};

/// Replaces directory `dir` by a regular file, returning a guard that restores it.
fn break_dir(dir: &Path) -> impl Drop + use<> {
    struct Restore(std::path::PathBuf);
    impl Drop for Restore {
        fn drop(&mut self) {
            std::fs::remove_file(&self.0).unwrap();
            std::fs::create_dir(&self.0).unwrap();
        }
    }
    std::fs::remove_dir(dir).unwrap();
    std::fs::write(dir, b"not a directory").unwrap();
    Restore(dir.to_path_buf())
}

#[test]
fn open_fails_cleanly_when_a_directory_is_unusable() {
    let dir = tempfile::tempdir().unwrap();
    drop(imaged_store_local::open(dir.path()).unwrap());
    let guard = break_dir(&dir.path().join("ingest"));
    let err = imaged_store_local::open(dir.path()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("ingest"), "{err}");
    drop(guard);
    imaged_store_local::open(dir.path()).unwrap();
}

#[test]
fn unwritable_ingest_fails_the_put_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let a = load(&store, "a", &[1], &["example.com/a:1"]);
    let view = store.view();
    let guard = break_dir(&dir.path().join("ingest"));
    {
        let mut st = store.stage().unwrap();
        let err = st.put(&mut &layer_bytes(5)[..], None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(
            err.message.contains("creating") && err.message.contains("ingest"),
            "{err}"
        );
    }
    assert_eq!(store.view().generation(), view.generation());
    // Metadata writes do not need ingest/: removal still works.
    store
        .apply(&ChangeSet {
            delete_images: vec![a.id],
            ..ChangeSet::default()
        })
        .unwrap();
    drop(guard);
    load(&store, "b", &[2], &[]);
    drop(store);
    assert!(
        invariants::all(dir.path()).is_empty(),
        "{:?}",
        invariants::all(dir.path())
    );
}

#[test]
fn unwritable_blob_directory_fails_the_put_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let guard = break_dir(&dir.path().join("blobs/sha256"));
    {
        let mut st = store.stage().unwrap();
        let err = st.put(&mut &layer_bytes(5)[..], None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("storing"), "{err}");
        // fs_usage comes from the catalog and still answers (CRI ImageFsInfo always
        // does); read_blob reports the failure, without panicking.
        let usage = store.fs_usage().unwrap();
        assert_eq!((usage.used_bytes, usage.inodes_used), (0, 1));
        assert_eq!(
            store
                .read_blob(&imaged_core::Digest::of(b"x"))
                .unwrap_err()
                .kind,
            ErrorKind::Internal
        );
    }
    assert!(files(&dir.path().join("ingest")).is_empty());
    drop(guard);
    assert_eq!(store.view().len(), 0);
}

const FSIZE_ENV: &str = "IMAGED_STORE_LOCAL_FSIZE_ROOT";
const FSIZE_LIMIT_ENV: &str = "IMAGED_STORE_LOCAL_FSIZE_LIMIT";

#[test]
fn a_full_disk_fails_writes_and_leaves_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let a;
    {
        let store = imaged_store_local::open(dir.path()).unwrap();
        a = load(&store, "a", &[1, 2], &["example.com/a:1"]);
    }
    let db_size = std::fs::metadata(dir.path().join("meta.redb"))
        .unwrap()
        .len();
    let limit = db_size + (64 << 10);
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"trap "" XFSZ; exec prlimit --fsize="$LIMIT" -- "$@""#)
        .arg("sh")
        .arg(&exe)
        .args([
            "full_disk_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LIMIT", limit.to_string())
        .env(FSIZE_ENV, dir.path())
        .env(FSIZE_LIMIT_ENV, limit.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("full-disk worker done"),
        "worker failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Whatever the worker's failed commit left, the reopened store is consistent and `a`
    // is intact; the big image is either fully there or fully gone.
    let problems = invariants::committed_state(dir.path());
    assert!(problems.is_empty(), "{problems:?}");
    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(store.view().image(&a.id).map(|i| &**i), Some(&*a));
    assert!(store.check(false).unwrap().problems.is_empty());
    drop(store);
    assert!(
        invariants::all(dir.path()).is_empty(),
        "{:?}",
        invariants::all(dir.path())
    );
}

/// Runs under `RLIMIT_FSIZE` (see the test above); a no-op when run directly.
#[test]
#[ignore = "worker of a_full_disk_fails_writes_and_leaves_the_store_consistent"]
fn full_disk_worker() {
    let Some(root) = std::env::var_os(FSIZE_ENV) else {
        return;
    };
    let limit: usize = std::env::var(FSIZE_LIMIT_ENV).unwrap().parse().unwrap();
    let root = Path::new(&root);
    let store = imaged_store_local::open(root).unwrap();
    let view = store.view();
    let blobs_before = blob_files(root);

    // A blob larger than the disk has room for.
    let mut st = store.stage().unwrap();
    let big = vec![7u8; 2 * limit];
    let err = st.put(&mut &big[..], None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("File too large"), "{err}");
    assert!(
        files(&root.join("ingest")).is_empty(),
        "partial blob left in ingest/"
    );

    // A record larger than the database can grow: the commit fails, nothing changes.
    let mut img = stage_image(&mut *st, "huge", &[3], &["example.com/huge:1"]);
    let mut config = ImageConfig::default();
    Arc::make_mut(&mut config.labels).insert("padding".into(), "x".repeat(2 * limit));
    img.config = Arc::new(config);
    let err = store
        .apply(&ChangeSet {
            put_images: vec![Arc::new(img)],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    println!("apply error: {err}");
    assert_eq!(store.view().generation(), view.generation());
    assert_eq!(store.view().len(), 1);
    drop(st);
    assert_eq!(
        blob_files(root),
        blobs_before,
        "the failed load's blobs are removed"
    );
    println!("full-disk worker done");
}
