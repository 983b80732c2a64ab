//! LoadImages into containers-storage: blobs are staged into a private OCI layout, then
//! skopeo (the containers project's copier) copies each new image into the store.

use std::path::PathBuf;
use std::sync::Arc;

use imaged_core::Result;
use imaged_core::error::{Error, ErrorKind};
use imaged_core::model::Image;
use imaged_core::store::Staging;

use crate::config::StoreOptions;

/// The blobs of running loads, shared by the store and its stagings.
#[derive(Debug)]
pub(crate) struct Loads {
    /// Where stagings keep their blobs (`<graph_root>/imaged-staging`).
    root: PathBuf,
}

impl Loads {
    /// Loads staging under `root` (created on first use).
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Starts a staging.
    pub(crate) fn stage(self: &Arc<Self>) -> Result<Box<dyn Staging>> {
        Err(Error::new(
            ErrorKind::Internal,
            format!(
                "loading into containers-storage is not implemented yet ({})",
                self.root.display()
            ),
        ))
    }

    /// Copies `img`, whose blobs a live staging holds, into the store with skopeo under the
    /// name `name` (a fully-qualified reference). Called without any store lock held.
    pub(crate) fn import(&self, opts: &StoreOptions, img: &Image, name: &str) -> Result<()> {
        let _ = (opts, img, name);
        Err(Error::new(
            ErrorKind::Internal,
            "loading into containers-storage is not implemented yet",
        ))
    }

    /// The bytes of a staged blob.
    pub(crate) fn read_blob(&self, digest: &imaged_core::digest::Digest) -> Option<Vec<u8>> {
        let _ = digest;
        None
    }
}
