//! Schema versions: creation, migration of an older layout, refusal of a newer one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

mod common;

use common::raw;
use imaged_core::ErrorKind;
use imaged_core::store::Store;
use imaged_store_local::SCHEMA_VERSION;

#[test]
fn a_new_store_records_the_current_version_and_its_creation_time() {
    let dir = tempfile::tempdir().unwrap();
    let before = u64::try_from(imaged_core::time::now()).unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(store.schema_version(), SCHEMA_VERSION);
    let created = store.created_at().expect("created_at");
    assert!(created >= before);
    drop(store);
    assert_eq!(
        raw::get_meta(dir.path(), "schema_version"),
        Some(SCHEMA_VERSION)
    );
    assert_eq!(raw::get_meta(dir.path(), "created_at"), Some(created));
    // Reopening keeps the creation time.
    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(store.created_at(), Some(created));
}

/// A v1 store, written by hand from the v1 format: tables `images`, `containers`, `meta`
/// with `schema_version` = 1 and no `created_at`.
fn write_v1_store(root: &std::path::Path) -> imaged_core::model::Image {
    // Blobs of a real image, through a throw-away store, then moved into the v1 layout.
    let donor = tempfile::tempdir().unwrap();
    let img = {
        let store = imaged_store_local::open(donor.path()).unwrap();
        let mut st = store.stage().unwrap();
        let img = common::stage_image(&mut *st, "v1", &[1, 2], &["example.com/old:1"]);
        std::mem::forget(st); // keep the blobs: no drop, no cleanup
        img
    };
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    std::fs::rename(donor.path().join("blobs/sha256"), root.join("blobs/sha256")).unwrap();
    let db = raw::db(root);
    let w = db.begin_write().unwrap();
    {
        let mut images = w.open_table(raw::IMAGES).unwrap();
        let v = serde_json::to_vec(&img).unwrap();
        images
            .insert(img.id.as_bytes().as_slice(), v.as_slice())
            .unwrap();
        w.open_table(raw::CONTAINERS).unwrap();
        w.open_table(raw::META)
            .unwrap()
            .insert("schema_version", 1)
            .unwrap();
    }
    w.commit().unwrap();
    img
}

#[test]
fn a_v1_store_is_migrated_to_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let img = write_v1_store(dir.path());
    assert_eq!(raw::get_meta(dir.path(), "created_at"), None);

    let before = u64::try_from(imaged_core::time::now()).unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(store.schema_version(), SCHEMA_VERSION);
    assert!(
        store.created_at().is_some_and(|t| t >= before),
        "migration adds created_at"
    );
    assert_eq!(
        store.view().image(&img.id).map(|i| &**i),
        Some(&img),
        "records kept"
    );
    assert_eq!(
        store.sweep_report().orphan_blobs,
        0,
        "blobs of the v1 image kept"
    );
    assert!(store.check(false).unwrap().problems.is_empty());
    drop(store);
    assert_eq!(
        raw::get_meta(dir.path(), "schema_version"),
        Some(SCHEMA_VERSION)
    );
    assert!(raw::get_meta(dir.path(), "created_at").is_some());
}

/// The raw bytes of every image record.
fn stored_images(root: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    use redb::{ReadableDatabase, ReadableTable};
    let db = raw::db(root);
    let r = db.begin_read().unwrap();
    let t = r.open_table(raw::IMAGES).unwrap();
    t.iter()
        .unwrap()
        .map(|row| {
            let (k, v) = row.unwrap();
            (k.value().to_vec(), v.value().to_vec())
        })
        .collect()
}

#[test]
fn a_v3_store_is_re_encoded_in_format_2() {
    use imaged_store_local::codec;
    let dir = tempfile::tempdir().unwrap();
    // A store of this version, its records then rewritten as schema v3 wrote them.
    let (a, b) = {
        let store = imaged_store_local::open(dir.path()).unwrap();
        let mut st = store.stage().unwrap();
        let a = common::stage_image(&mut *st, "a", &[1, 2], &["example.com/a:1"]);
        let b = common::stage_image(&mut *st, "b", &[1, 3], &[]);
        let change = imaged_core::ChangeSet {
            put_images: vec![a.clone().into(), b.clone().into()],
            ..Default::default()
        };
        store.apply(&change).unwrap();
        drop(st);
        (a, b)
    };
    common::make_v3(dir.path(), &[&a, &b]);
    assert!(stored_images(dir.path()).iter().all(|(_, v)| v[0] == 1));

    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(store.schema_version(), SCHEMA_VERSION);
    let view = store.view();
    assert_eq!(view.image(&a.id).map(|i| &**i), Some(&a));
    assert_eq!(view.image(&b.id).map(|i| &**i), Some(&b));
    assert!(store.check(false).unwrap().problems.is_empty());
    drop(store);
    let stored = stored_images(dir.path());
    assert_eq!(stored.len(), 2);
    for (_, v) in &stored {
        assert_eq!(v[0], codec::FORMAT, "re-encoded");
        let img = codec::decode_image(v).unwrap();
        let before = if img.id == a.id { &a } else { &b };
        assert_eq!(&img, before);
        assert!(v.len() < codec::encode_image_format_1(before).len());
    }
}

#[test]
fn a_store_from_a_newer_imaged_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let a;
    {
        let store = imaged_store_local::open(dir.path()).unwrap();
        a = common::load(&store, "a", &[1], &[]);
    }
    raw::set_meta(dir.path(), "schema_version", SCHEMA_VERSION + 1);
    // A blob file the newer version may use in ways this one does not know: not swept.
    let planted = dir
        .path()
        .join("blobs/sha256")
        .join(imaged_core::Digest::of(b"new").hex());
    std::fs::write(&planted, b"new").unwrap();

    let err = imaged_store_local::open(dir.path()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert_eq!(
        err.message,
        format!(
            "store schema version {} is newer than this imaged ({SCHEMA_VERSION}); upgrade imaged",
            SCHEMA_VERSION + 1
        )
    );
    assert!(planted.is_file(), "a refused store is not swept");
    assert_eq!(
        raw::get_meta(dir.path(), "schema_version"),
        Some(SCHEMA_VERSION + 1)
    );
    assert_eq!(raw::records(dir.path()).0.len(), 1);
    assert_eq!(raw::records(dir.path()).0[0].1.id, a.id);
}

#[test]
fn a_database_without_a_version_but_with_tables_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw::db(dir.path());
        let w = db.begin_write().unwrap();
        w.open_table(raw::IMAGES).unwrap();
        w.commit().unwrap();
    }
    let err = imaged_store_local::open(dir.path()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("no schema version"), "{err}");
}

#[test]
fn an_undecodable_record_is_an_error_with_context() {
    let dir = tempfile::tempdir().unwrap();
    drop(imaged_store_local::open(dir.path()).unwrap());
    {
        let db = raw::db(dir.path());
        let w = db.begin_write().unwrap();
        w.open_table(raw::IMAGES)
            .unwrap()
            .insert([7u8; 32].as_slice(), b"{not json".as_slice())
            .unwrap();
        w.commit().unwrap();
    }
    let err = imaged_store_local::open(dir.path()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(
        err.message.contains("decoding image record sha256:0707"),
        "{err}"
    );
}
