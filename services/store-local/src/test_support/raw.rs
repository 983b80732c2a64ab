//! Raw access to `meta.redb`, from the documented format (README "Layout"), bypassing the
//! store: synthetic old layouts, planted corruption, independent checks. Records are
//! encoded with the crate's public `codec` (its own tests cover it).
//!
//! Test support: every function panics when the database cannot be opened or read (the
//! store must not be open in another process: redb's file lock refuses a second opener).
#![allow(clippy::expect_used)]

use std::path::Path;

use imaged_core::Digest;
use imaged_core::model::{Container, Image};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::codec;

/// The `images` table: raw 32-byte image ID → encoded `Image` record.
pub const IMAGES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("images");
/// The `containers` table: container ID → encoded `Container` record.
pub const CONTAINERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("containers");
/// The `meta` table: `schema_version`, `created_at`.
pub const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// Opens (or creates) `<root>/meta.redb` directly.
pub fn db(root: &Path) -> Database {
    Database::create(root.join("meta.redb")).expect("open meta.redb")
}

/// Every (key, image) and (key, container) record.
pub type Records = (Vec<(Vec<u8>, Image)>, Vec<(String, Container)>);

/// Reads every record.
pub fn records(root: &Path) -> Records {
    let db = db(root);
    let r = db.begin_read().expect("read");
    let mut images = Vec::new();
    for row in r.open_table(IMAGES).expect("images").iter().expect("iter") {
        let (k, v) = row.expect("row");
        images.push((
            k.value().to_vec(),
            codec::decode_image(v.value()).expect("image record"),
        ));
    }
    let mut containers = Vec::new();
    for row in r
        .open_table(CONTAINERS)
        .expect("containers")
        .iter()
        .expect("iter")
    {
        let (k, v) = row.expect("row");
        containers.push((
            k.value().to_owned(),
            codec::decode_container(v.value()).expect("container record"),
        ));
    }
    (images, containers)
}

/// Writes image records behind the store's back.
pub fn put_images(root: &Path, images: &[Image]) {
    let db = db(root);
    let w = db.begin_write().expect("write");
    {
        let mut t = w.open_table(IMAGES).expect("images");
        for img in images {
            let v = codec::encode_image(img);
            t.insert(img.id.as_bytes().as_slice(), v.as_slice())
                .expect("insert");
        }
    }
    w.commit().expect("commit");
}

/// Deletes an image record behind the store's back (its blobs stay); whether it existed.
pub fn delete_image(root: &Path, id: &Digest) -> bool {
    let db = db(root);
    let w = db.begin_write().expect("write");
    let existed = {
        let mut t = w.open_table(IMAGES).expect("images");
        t.remove(id.as_bytes().as_slice())
            .expect("remove")
            .is_some()
    };
    w.commit().expect("commit");
    existed
}

/// Writes a container record behind the store's back.
pub fn put_container(root: &Path, c: &Container) {
    let db = db(root);
    let w = db.begin_write().expect("write");
    {
        let mut t = w.open_table(CONTAINERS).expect("containers");
        let v = codec::encode_container(c);
        t.insert(c.id.as_str(), v.as_slice()).expect("insert");
    }
    w.commit().expect("commit");
}

/// Sets a `meta` key.
pub fn set_meta(root: &Path, key: &str, value: u64) {
    let db = db(root);
    let w = db.begin_write().expect("write");
    w.open_table(META)
        .expect("meta")
        .insert(key, value)
        .expect("insert");
    w.commit().expect("commit");
}

/// Reads a `meta` key.
pub fn get_meta(root: &Path, key: &str) -> Option<u64> {
    let db = db(root);
    let r = db.begin_read().expect("read");
    let t = r.open_table(META).expect("meta");
    t.get(key).expect("get").map(|v| v.value())
}
