//! Image archives: reading `docker-archive` and `oci-archive` tars (plain or gzip) for
//! LoadImages (SPEC §6), and the deterministic manifest and index JSON a load writes
//! ([`manifest_json`], [`index_json`]; test archives are made with the same functions).
//!
//! Reading happens in two phases:
//! 1. [`stream`] reads the tar once. Blob-like entries (layers, configs, manifests) go
//!    through [`crate::store::Staging::put`] as they stream by, hashed on the way (gzip
//!    layers are also decompressed and hashed for their diff ID); small JSON entries are
//!    also kept in memory. Nothing is parsed yet: the entry order of a tar is arbitrary.
//! 2. [`docker`] or [`oci`] parses the metadata and checks every reference against what
//!    was staged ([`verify`]): blob digests and sizes against their descriptors, layer
//!    diff IDs against the config, giving the [`Found`] images `Engine::load` commits.
//!
//! Any problem is an [`ErrorKind::InvalidArchive`] error (or `TooLarge`); the staging is
//! then dropped, which deletes the blobs written for nothing.
//!
//! Every resource a hostile archive could inflate is bounded ([`Limits`], SPEC §6): the
//! bytes received and the bytes unpacked (`TooLarge`, the load stops there), the header
//! of each tar entry with its GNU long name/link and PAX extended header, read before
//! `tar` buffers them, and each metadata entry or JSON document (`InvalidArchive`), and
//! the metadata a load holds or parses in total (`TooLarge`).

mod docker;
pub(crate) mod oci;
mod stream;
mod tap;
mod verify;

use crate::engine::EngineConfig;
use crate::engine::ops::ArchiveFormat;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Image;
use crate::store::{Staging, Store};

pub(crate) use stream::{Collected, StagedBlob, collect, stage_blob};
pub use verify::{
    IndexEntry, MT_DOCKER_CONFIG, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_CONFIG, MT_OCI_INDEX,
    MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD, MT_OCI_MANIFEST, index_json, manifest_json,
};

/// The limits of one load, from [`EngineConfig`]'s `max_load_*` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes read from the caller (compressed, as received).
    pub received: u64,
    /// Bytes of the tar stream (after gzip decompression of the archive).
    pub unpacked: u64,
    /// Bytes of one entry's header blocks, GNU long name/link and PAX extended header.
    pub header: u64,
    /// Bytes of one metadata entry or JSON document.
    pub metadata: u64,
    /// Bytes of metadata held or parsed, in total.
    pub metadata_total: u64,
}

impl Limits {
    /// The limits `config` sets.
    pub(crate) fn of(config: &EngineConfig) -> Self {
        Self {
            received: config.max_load_bytes,
            unpacked: config.max_load_unpacked_bytes,
            header: config.max_load_header_bytes,
            metadata: config.max_load_metadata_bytes,
            metadata_total: config.max_load_metadata_total_bytes,
        }
    }
}

/// An image (or manifest list) read from an archive, not yet committed.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The record; `names` empty, `added` 0: the commit fills them.
    pub image: Image,
    /// Normalised names the archive gives it, in archive order.
    pub names: Vec<String>,
    /// Named directly by the archive's top level (`manifest.json` or `index.json` entry),
    /// as opposed to an instance of a manifest list.
    pub top_level: bool,
}

/// An `InvalidArchive` error.
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArchive, message)
}

/// Parses a collected archive into images, in archive order (duplicates merged).
pub(crate) fn parse(
    files: &stream::Collected,
    format: ArchiveFormat,
    store: &dyn Store,
    staging: &mut dyn Staging,
) -> Result<Vec<Found>> {
    let is_oci = files.meta("index.json").is_some() && files.meta("oci-layout").is_some();
    let is_docker = files.meta("manifest.json").is_some();
    let found = match format {
        ArchiveFormat::Oci => oci::parse(files, store)?,
        ArchiveFormat::Docker => docker::parse(files, store, staging)?,
        ArchiveFormat::Auto if is_oci => oci::parse(files, store)?,
        ArchiveFormat::Auto if is_docker => docker::parse(files, store, staging)?,
        ArchiveFormat::Auto => {
            return Err(invalid(
                "not an image archive: neither manifest.json (docker-archive) nor \
                 oci-layout and index.json (oci-archive) found",
            ));
        }
    };
    if found.is_empty() {
        return Err(invalid("the archive holds no image"));
    }
    Ok(found)
}

/// Adds `found` to `list`, merging it into an earlier entry with the same ID (its names
/// appended, its manifest digest added).
pub(crate) fn push_found(list: &mut Vec<Found>, found: Found) {
    if let Some(prev) = list.iter_mut().find(|f| f.image.id == found.image.id) {
        for n in found.names {
            if !prev.names.contains(&n) {
                prev.names.push(n);
            }
        }
        for d in found.image.digests {
            if !prev.image.digests.contains(&d) {
                prev.image.digests.push(d);
            }
        }
        prev.top_level |= found.top_level;
    } else {
        list.push(found);
    }
}
