//! An unwritable store directory through the daemon (issue 4: "permission denied / read-only
//! directory returns an error and leaves the store consistent").
//!
//! The tests run as root, where `chmod 0555` stops nothing, so the directory is made
//! unusable the way `imaged-store-local`'s own `tests/failures.rs` does it: `ingest/` is
//! replaced by a regular file, so creating a blob in it fails (`ENOTDIR`). That file
//! covers the store-level cases (also `blobs/sha256/` and a full disk through
//! `RLIMIT_FSIZE`); this one checks what a client of the daemon sees.

use std::io::Cursor;

use imaged_client::{Client, Code, ErrorKind, ErrorReason, proto};
use imaged_store_local::test_support::invariants;

use crate::support::{Daemon, ImageSpec, archive};

async fn load(client: &Client, img: &ImageSpec) -> Result<(), imaged_client::ClientError> {
    let bytes = archive::docker_archive(std::slice::from_ref(img));
    let format = proto::ArchiveFormat::Docker;
    client
        .load(Cursor::new(bytes), format, Vec::new(), |_| {})
        .await
        .map(|_| ())
}

#[test]
fn a_load_into_an_unwritable_store_fails_and_leaves_it_consistent() {
    let mut d = Daemon::start("local");
    let ingest = d.root().join("ingest");
    let a = ImageSpec::new("unwritable-a").named("localhost/e2e/unwritable:a");
    let b = ImageSpec::new("unwritable-b").named("localhost/e2e/unwritable:b");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::connect(d.url()).await.unwrap();
        load(&client, &a).await.unwrap();

        std::fs::remove_dir(&ingest).unwrap();
        std::fs::write(&ingest, b"not a directory").unwrap();
        let err = load(&client, &b).await.unwrap_err();
        assert_eq!(
            (err.code, err.kind),
            (Code::Internal, ErrorKind::Reason(ErrorReason::Internal)),
            "{err}"
        );
        // Nothing of the failed load is visible; the daemon still serves reads and
        // metadata-only writes.
        let ids: Vec<String> = client
            .list_all(proto::ListImagesRequest::default())
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, [a.id()]);
        client
            .tag_image(&a.id(), vec!["localhost/e2e/unwritable:tag".into()])
            .await
            .unwrap();

        std::fs::remove_file(&ingest).unwrap();
        std::fs::create_dir(&ingest).unwrap();
        load(&client, &b).await.unwrap();
    });
    drop(rt); // closes the connection: the graceful stop has nothing to wait for
    assert!(
        d.log().contains("ingest"),
        "the cause is logged:\n{}",
        d.log()
    );
    let status = d.stop().expect("imaged stops after SIGTERM");
    assert!(status.success(), "{status:?}");
    let problems = invariants::all(&d.root());
    assert!(problems.is_empty(), "{problems:?}");
}
