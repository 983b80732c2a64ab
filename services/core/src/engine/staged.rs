//! Images that arrive blob by blob (a registry pull, issue 13) rather than as an archive:
//! the caller streams each blob into a [`PullStaging`] (digest verified on the way,
//! layers decompressed and hashed for their diff ID as LoadImages does), then commits the
//! top manifest. The commit parses and verifies exactly as an `oci-archive` load does
//! (manifest lists, configs, diff IDs, sizes) and goes through LoadImages' planner, so
//! names, moved names and re-pulls behave as LoadImages. Until the commit nothing is
//! visible; dropping the staging (a failed or cancelled pull) deletes what it wrote.

use std::collections::BTreeMap;
use std::io::Read;

use crate::archive::{self, Collected, StagedBlob, oci};
use crate::digest::Digest;
use crate::engine::Engine;
use crate::engine::ops::LoadReport;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Staging;

/// Blobs of one pull, staged but not committed.
pub struct PullStaging<'e> {
    engine: &'e Engine,
    staging: Box<dyn Staging + 'e>,
    files: Collected,
    staged: BTreeMap<Digest, u64>,
}

impl std::fmt::Debug for PullStaging<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullStaging")
            .field("staged", &self.staged)
            .finish_non_exhaustive()
    }
}

/// The top-level manifest (or manifest list) a pull commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledManifest {
    /// The manifest's digest (it must have been staged).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// The name the image gets (a normalised reference), if any.
    pub name: Option<String>,
    /// Further manifest digests the image is known by (the manifest list an instance was
    /// chosen from).
    pub extra_digests: Vec<Digest>,
}

impl Engine {
    /// Starts a pull: blobs go into a staging of the engine's store.
    pub fn begin_pull(&self) -> Result<PullStaging<'_>> {
        let staging = self.store.stage()?;
        let limits = archive::Limits::of(&self.config);
        Ok(PullStaging {
            engine: self,
            staging,
            files: Collected::new(&limits),
            staged: BTreeMap::new(),
        })
    }
}

impl PullStaging<'_> {
    /// Whether this pull already has `digest` (staged or held).
    pub fn has(&self, digest: &Digest) -> bool {
        self.staged.contains_key(digest)
    }

    /// Streams a blob from `data` into the store. Content whose digest is not `expected`
    /// → `DigestMismatch` (what was written goes away with the staging). A read error of
    /// `data` comes back as the store reports it.
    pub fn put_blob(&mut self, data: &mut dyn Read, expected: &Digest) -> Result<u64> {
        let blob = archive::stage_blob(data, self.staging.as_mut())?;
        if blob.digest != *expected {
            return Err(Error::new(
                ErrorKind::DigestMismatch,
                format!(
                    "blob {expected}: the content received has digest {}",
                    blob.digest
                ),
            )
            .with_meta("digest", expected.to_string())
            .with_meta("actual", blob.digest.to_string()));
        }
        let size = blob.size;
        self.staged.insert(blob.digest, size);
        self.files.insert_blob(blob)?;
        Ok(size)
    }

    /// Uses a blob the store already has (not fetched again); `false` when it has not.
    /// `size` is the size the manifest gives it. What verification needs is taken from
    /// the image records (a layer's diff ID; the size is the manifest's, since a store
    /// may record a layer's unpacked size) or, for a blob no record describes, read back
    /// from the store.
    pub fn hold_blob(&mut self, digest: &Digest, size: u64) -> Result<bool> {
        if self.has(digest) {
            return Ok(true);
        }
        if !self.staging.hold(digest)? {
            return Ok(false);
        }
        let view = self.engine.view();
        let known = view
            .images()
            .flat_map(|i| i.layers.iter())
            .find(|l| l.blob.digest == *digest)
            .map(|l| {
                let mt = &l.blob.media_type;
                let gzip = mt.ends_with("gzip");
                let zstd = mt.ends_with("zstd");
                StagedBlob {
                    digest: *digest,
                    size,
                    gzip,
                    zstd,
                    uncompressed: (gzip || zstd).then_some(Ok(l.diff_id)),
                    json: None,
                }
            });
        let blob = match known {
            Some(b) => b,
            None => {
                let Some(bytes) = self.engine.store.read_blob(digest)? else {
                    return Ok(false);
                };
                let mut reader: &[u8] = &bytes;
                // Re-staging stored bytes writes nothing new: the tap only learns them.
                let b = archive::stage_blob(&mut reader, self.staging.as_mut())?;
                if b.digest != *digest {
                    return Err(Error::internal(format!(
                        "stored blob {digest} has digest {}",
                        b.digest
                    )));
                }
                b
            }
        };
        self.staged.insert(*digest, blob.size);
        self.files.insert_blob(blob)?;
        Ok(true)
    }

    /// Verifies and commits the image `top` describes (a manifest or a manifest list and
    /// the instances staged), all or nothing, as LoadImages commits an `oci-archive`.
    pub fn commit(mut self, top: &PulledManifest) -> Result<LoadReport> {
        let mut desc = serde_json::json!({
            "mediaType": top.media_type,
            "digest": top.digest.to_string(),
            "size": top.size,
        });
        if let Some(n) = &top.name {
            desc["annotations"] = serde_json::json!({ oci::ANNOTATION_CONTAINERD_NAME: n });
        }
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": [desc] });
        let index = serde_json::to_vec(&index)
            .map_err(|e| Error::internal(format!("writing an index: {e}")))?;
        self.files.insert_meta("index.json", index)?;
        self.files
            .insert_meta("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec())?;
        let mut found = oci::parse(&self.files, self.engine.store.as_ref())?;
        if let Some(f) = found.iter_mut().find(|f| f.top_level) {
            for d in &top.extra_digests {
                if !f.image.digests.contains(d) {
                    f.image.digests.push(*d);
                }
            }
        }
        let report = self.engine.commit_found(found)?;
        drop(self.staging);
        Ok(report)
    }
}
