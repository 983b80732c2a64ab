//! `imaged fsck` on a local store (issue 11 item 7): without `--repair` it reports what it
//! finds and changes nothing; `--repair` fixes it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use imaged_core::Digest;

fn fsck(root: &Path, extra: &[&str]) -> (i32, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_imaged"))
        .args(["--store", "local", "--root"])
        .arg(root)
        .arg("fsck")
        .args(extra)
        .env_remove("IMAGED_STORE")
        .env_remove("IMAGED_ROOT")
        .env_remove("IMAGED_MIN_FREE_BYTES")
        .output()
        .expect("running imaged fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn fsck_without_repair_reports_leftovers_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    drop(imaged_store_local::open(&root).unwrap());

    // What a crash leaves behind: a blob no image refers to and a partial write.
    let bytes = b"an orphan blob";
    let orphan = root.join("blobs/sha256").join(Digest::of(bytes).hex());
    std::fs::write(&orphan, bytes).unwrap();
    let partial = root.join("ingest/0123456789abcdef.partial");
    std::fs::write(&partial, b"half a blob").unwrap();
    let marker = root.join("clean-shutdown");
    std::fs::remove_file(&marker).ok();

    let (code, out) = fsck(&root, &[]);
    assert_ne!(code, 0, "problems found must fail the check:\n{out}");
    assert!(out.contains(&Digest::of(bytes).hex()), "{out}");
    assert!(out.contains("0123456789abcdef.partial"), "{out}");
    assert!(!out.lines().any(|l| l == "clean"), "{out}");
    assert!(orphan.is_file(), "a check must not delete the orphan blob");
    assert!(partial.is_file(), "a check must not delete ingest files");
    assert!(
        !marker.exists(),
        "a check must not mark the store cleanly closed (the next start must sweep)"
    );

    let (code, out) = fsck(&root, &["--repair"]);
    assert_eq!(code, 0, "everything found was repaired:\n{out}");
    assert!(!orphan.exists() && !partial.exists(), "{out}");

    let (code, out) = fsck(&root, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l == "clean"), "{out}");
}
