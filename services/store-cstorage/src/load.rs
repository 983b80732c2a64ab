//! LoadImages into containers-storage: blobs are staged into a private OCI image layout,
//! then skopeo (the containers project's copier) copies each new image into the store.
//!
//! # Why skopeo
//! Writing an image natively means applying each layer tar the way containers/storage
//! does: overlay whiteouts turned into character devices and `trusted.overlay.opaque`
//! xattrs, the `link`/`lower` files and `l/` short names, uid/gid sets, the tar-split
//! stream that `podman save` and `podman push` rebuild the original tar from, the
//! compressed/uncompressed digests and sizes of `layers.json`, and the big-data items of
//! the image record. That is a large part of containers/storage and containers/image,
//! and a copy of it would have to follow every change they make. skopeo (1.9.3 here, built
//! from the same containers/storage 1.43 as podman 4.3.1) does exactly what `podman load`
//! does, takes containers/storage's locks itself, and is what bootc and ostree drive for
//! the same job. Loads are rare next to listings and removals, so the cost of a process
//! per image is acceptable.
//!
//! # How
//! - [`Loads::stage`] gives each load a private directory `<root>/<pid>-<random>/` (the
//!   store passes `<graphroot>/imaged-staging`, on the store's filesystem): an OCI image
//!   layout (`oci-layout`, `blobs/sha256/<hex>`). Blobs are hashed as they are written and
//!   checked against their expected digest; a blob with the wrong digest is not kept.
//!   The directory is removed when the staging is dropped.
//! - A registry shared by the store and its stagings (digest → the stagings holding it)
//!   lets [`Loads::read_blob`] serve staged blobs while the load parses its archive, and
//!   lets [`Staging::hold`] share a blob another running load staged (hard link).
//! - [`Loads::import`] makes a one-image layout `<root>/import-<random>/` whose `blobs`
//!   is a symbolic link to the staging's blobs and whose `index.json` names only the
//!   image's manifest, then runs
//!   `skopeo copy --quiet --insecure-policy oci:. containers-storage:[D@ROOT+RUN]NAME@ID`
//!   in it. The explicit `@ID` (the config digest) makes the stored image's ID the one the
//!   engine planned; with an empty `NAME` the image is stored without any name (no
//!   temporary name needed). skopeo stores the manifest bytes unchanged
//!   (containers-storage keeps layers as they come: `PreserveOriginal`), so the image's
//!   digest in `images.json` is the manifest digest the engine computed. The signature
//!   policy is not consulted (`--insecure-policy`): the content was verified by the
//!   engine and an OCI layout carries no signatures.
//! - An image that already exists (same ID, same top layer) is reused by containers/image:
//!   it gets the name added and its `manifest` big-data item replaced by the new manifest
//!   (its primary digest becomes the new one). If a later step of that commit fails,
//!   containers/image deletes the image even though it existed before; the store should
//!   therefore import only images that are new to it and add names natively.
//! - No lock of imaged is held while skopeo runs; skopeo takes containers/storage's.
//! - A load abandoned by its caller is not interrupted: skopeo runs to its end (one image
//!   takes well under a second for ordinary sizes) and the store's next reload sees it.

// Until `store.rs` drives loads through this module (it is being written alongside).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use imaged_core::Result;
use imaged_core::catalog::Catalog;
use imaged_core::digest::{Digest, Hasher};
use imaged_core::error::{Error, ErrorKind};
use imaged_core::model::Image;
use imaged_core::store::Staging;

use crate::config::StoreOptions;

/// Bytes read at a time while staging a blob.
const CHUNK: usize = 256 << 10;

/// Most bytes of skopeo's stderr quoted in an error.
const MAX_STDERR: usize = 4096;

/// `oci-layout` of every layout written here.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The blobs of running loads, shared by the store and its stagings.
#[derive(Debug)]
pub(crate) struct Loads {
    /// Where stagings keep their blobs (`<graph_root>/imaged-staging`).
    root: PathBuf,
    /// Staged blobs of live stagings.
    registry: Mutex<Registry>,
    /// Next staging number.
    next: AtomicU64,
}

/// Which live staging holds which blob.
#[derive(Debug, Default)]
struct Registry {
    /// Digest → the stagings (by number) holding it.
    blobs: HashMap<Digest, Vec<u64>>,
    /// Staging number → its layout directory.
    dirs: HashMap<u64, PathBuf>,
    /// Staging number → blobs it uses from layers of the store itself (no file: skopeo's
    /// copy reuses such a layer without reading the blob, see [`CsStaging::hold`]).
    reused: HashMap<u64, Vec<Digest>>,
}

impl Registry {
    /// A path of `digest` in a live staging.
    fn path(&self, digest: &Digest) -> Option<PathBuf> {
        let id = self.blobs.get(digest)?.first()?;
        Some(blob_path(self.dirs.get(id)?, digest))
    }
}

fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.hex())
}

fn lock(m: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An I/O error on `path`: `NoSpace` for a full disk or quota, else `Internal`.
fn io_err(what: &str, path: &Path, e: &io::Error) -> Error {
    let kind = match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => ErrorKind::NoSpace,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("{what} {}: {e}", path.display()))
}

/// A fresh directory `<parent>/<prefix><random>`.
fn fresh_dir(parent: &Path, prefix: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, &e))?;
    loop {
        let dir = parent.join(format!("{prefix}{:016x}", fastrand::u64(..)));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("creating", &dir, &e)),
        }
    }
}

/// Removes `dir` and everything under it, logging a failure.
fn remove_tree(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "load staging left behind");
        }
    }
}

impl Loads {
    /// Loads staging under `root` (created on first use).
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            registry: Mutex::new(Registry::default()),
            next: AtomicU64::new(0),
        }
    }

    #[cfg(test)]
    /// Where stagings are made.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Removes what crashed processes left under the root: staging directories
    /// `<pid>-…` of processes that no longer exist and `import-…` directories when no
    /// staging of this process is live (call it at open, before any load). Returns the
    /// number of directories removed.
    pub(crate) fn sweep(&self) -> Result<usize> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("reading", &self.root, &e)),
        };
        let idle = lock(&self.registry).dirs.is_empty();
        let me = std::process::id();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = if name.starts_with("import-") {
                idle
            } else if let Some((pid, _)) = name.split_once('-')
                && let Ok(pid) = pid.parse::<u32>()
            {
                pid != me && !Path::new("/proc").join(pid.to_string()).exists()
            } else {
                false
            };
            if stale {
                remove_tree(&entry.path());
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Starts a staging; `stored` is the store's catalog now (whose layers a pull need
    /// not fetch again).
    pub(crate) fn stage(self: &Arc<Self>, stored: Arc<Catalog>) -> Result<Box<dyn Staging>> {
        let dir = fresh_dir(&self.root, &format!("{}-", std::process::id()))?;
        let made = (|| {
            std::fs::write(dir.join("oci-layout"), OCI_LAYOUT)
                .map_err(|e| io_err("writing", &dir.join("oci-layout"), &e))?;
            for sub in ["blobs/sha256", "ingest"] {
                let p = dir.join(sub);
                std::fs::create_dir_all(&p).map_err(|e| io_err("creating", &p, &e))?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            remove_tree(&dir);
            return Err(e);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.registry).dirs.insert(id, dir.clone());
        Ok(Box::new(CsStaging {
            loads: Arc::clone(self),
            id,
            dir,
            blobs: Vec::new(),
            stored,
        }))
    }

    /// Copies `img`, whose blobs a live staging holds, into the store with skopeo under the
    /// name `name` (a fully-qualified reference; empty: no name). Called without any store
    /// lock held.
    pub(crate) fn import(&self, opts: &StoreOptions, img: &Image, name: &str) -> Result<()> {
        let dest = destination(opts, img, name)?;
        let blobs = self.layout_of(img)?;
        let dir = fresh_dir(&self.root, "import-")?;
        let result = (|| {
            write_import_layout(&dir, &blobs, img)?;
            run_skopeo(opts, &dir, &dest, img)
        })();
        remove_tree(&dir);
        result
    }

    /// The bytes of a staged blob.
    pub(crate) fn read_blob(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = lock(&self.registry).path(digest)?;
        std::fs::read(path).ok()
    }

    /// The `blobs` directory of a live staging holding every blob of `img` (a manifest
    /// list: its index; skopeo finds the instances it needs in the same directory).
    fn layout_of(&self, img: &Image) -> Result<PathBuf> {
        let reg = lock(&self.registry);
        let wanted: Vec<Digest> = img.blobs().map(|b| b.digest).collect();
        let candidates = reg
            .blobs
            .get(&img.manifest.digest)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for id in candidates {
            let Some(dir) = reg.dirs.get(id) else {
                continue;
            };
            let reused = reg.reused.get(id).map(Vec::as_slice).unwrap_or_default();
            if wanted
                .iter()
                .all(|d| reg.blobs.get(d).is_some_and(|ids| ids.contains(id)) || reused.contains(d))
            {
                return Ok(dir.join("blobs"));
            }
        }
        Err(Error::internal(format!(
            "image {}: its blobs are not staged by a running load",
            img.id
        )))
    }
}

/// skopeo's destination `containers-storage:[D@ROOT+RUN]NAME@ID`.
fn destination(opts: &StoreOptions, img: &Image, name: &str) -> Result<String> {
    for (what, p) in [
        ("graph root", &opts.graph_root),
        ("run root", &opts.run_root),
    ] {
        let s = p.to_str().unwrap_or("");
        // containers/image splits the store specifier at these characters.
        if !p.is_absolute() || s.is_empty() || s.contains([']', '@', '+', ':']) {
            return Err(Error::internal(format!(
                "cannot load into the {what} {}: skopeo needs an absolute UTF-8 path \
                 without ']', '@', '+' or ':'",
                p.display()
            )));
        }
    }
    if name.contains('@') {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("cannot load under the name {name:?}: a digested name"),
        ));
    }
    let spec = format!(
        "containers-storage:[{}@{}+{}]{name}",
        opts.driver.name(),
        opts.graph_root.display(),
        opts.run_root.display()
    );
    if img.is_manifest_list() {
        // containers/image stores the instance for this platform, with an ID of its own.
        if name.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "manifest list {}: containers-storage stores it as its instance for \
                     this platform, which needs a name",
                    img.id
                ),
            ));
        }
        return Ok(spec);
    }
    Ok(format!("{spec}@{}", img.id.hex()))
}

/// Writes the one-image layout of `img` into `dir`, with `blobs` linking to `blobs`.
fn write_import_layout(dir: &Path, blobs: &Path, img: &Image) -> Result<()> {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": img.manifest.media_type,
            "digest": img.manifest.digest.to_string(),
            "size": img.manifest.size,
        }],
    });
    let index = serde_json::to_vec(&index)
        .map_err(|e| Error::internal(format!("writing index.json: {e}")))?;
    for (file, bytes) in [("oci-layout", OCI_LAYOUT), ("index.json", index.as_slice())] {
        let p = dir.join(file);
        std::fs::write(&p, bytes).map_err(|e| io_err("writing", &p, &e))?;
    }
    let link = dir.join("blobs");
    std::os::unix::fs::symlink(blobs, &link).map_err(|e| io_err("linking", &link, &e))
}

/// Runs skopeo in the layout `dir`; its failure as an imaged error.
fn run_skopeo(opts: &StoreOptions, dir: &Path, dest: &str, img: &Image) -> Result<()> {
    let out = Command::new(&opts.skopeo)
        .current_dir(dir)
        .args(["copy", "--quiet", "--insecure-policy", "oci:.", dest])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            Error::internal(format!(
                "loading into containers-storage needs skopeo: cannot run {}: {e}",
                opts.skopeo.display()
            ))
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(skopeo_error(img, &out.status.to_string(), &stderr))
}

/// An imaged error for a failed `skopeo copy` of `img` with `stderr`.
fn skopeo_error(img: &Image, status: &str, stderr: &str) -> Error {
    let text = stderr.trim();
    let mut end = text.len().min(MAX_STDERR);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let quoted = &text[..end];
    let lower = text.to_ascii_lowercase();
    let kind = if lower.contains("no space left on device") || lower.contains("quota exceeded") {
        ErrorKind::NoSpace
    } else if [
        "applying layer",
        "processing tar file",
        "archive/tar",
        "invalid tar header",
        "unexpected eof",
        "parsing manifest",
        "unsupported layer",
        "unsupported mime type",
        "invalid argument",
    ]
    .iter()
    .any(|s| lower.contains(s))
    {
        ErrorKind::InvalidArchive
    } else {
        ErrorKind::Internal
    };
    Error::new(
        kind,
        format!(
            "loading image {} into containers-storage: skopeo copy failed ({status}): {quoted}",
            img.id
        ),
    )
}

/// The blob writes of one load: a private OCI layout.
struct CsStaging {
    loads: Arc<Loads>,
    /// Number in the registry.
    id: u64,
    /// The layout directory.
    dir: PathBuf,
    /// Blobs registered for this staging.
    blobs: Vec<Digest>,
    /// The store's catalog when the staging began.
    stored: Arc<Catalog>,
}

impl CsStaging {
    /// Notes that this staging holds `digest` (stored at its place in the layout).
    fn register(&mut self, digest: Digest) {
        if self.blobs.contains(&digest) {
            return;
        }
        let mut reg = lock(&self.loads.registry);
        reg.blobs.entry(digest).or_default().push(self.id);
        self.blobs.push(digest);
    }

    fn has(&self, digest: &Digest) -> bool {
        self.blobs.contains(digest)
    }
}

/// A file of `ingest/`, removed on drop unless kept.
struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Staging for CsStaging {
    fn put(&mut self, data: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let ingest = self.dir.join("ingest");
        let mut tmp = loop {
            let path = ingest.join(format!("{:016x}.partial", fastrand::u64(..)));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    break TempFile {
                        path,
                        file,
                        keep: false,
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("creating", &path, &e)),
            }
        };
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::InvalidArchive,
                        format!("reading blob: {e}"),
                    ));
                }
            };
            hasher.update(&buf[..n]);
            tmp.file
                .write_all(&buf[..n])
                .map_err(|e| io_err("writing", &tmp.path, &e))?;
            size += n as u64;
        }
        // No fsync: a staging does not survive a crash anyway (the sweep removes it), and
        // skopeo reads the blobs through the page cache.
        let digest = hasher.finish();
        if let Some(want) = expected
            && *want != digest
        {
            return Err(Error::new(
                ErrorKind::InvalidArchive,
                format!("blob digest mismatch: expected {want}, got {digest}"),
            ));
        }
        if !self.has(&digest) {
            let dest = blob_path(&self.dir, &digest);
            std::fs::rename(&tmp.path, &dest).map_err(|e| io_err("storing", &dest, &e))?;
            tmp.keep = true;
            self.register(digest);
        }
        Ok((digest, size))
    }

    fn hold(&mut self, digest: &Digest) -> Result<bool> {
        if self.has(digest) {
            return Ok(true);
        }
        // containers-storage keeps no blobs of its own; another running load's can be
        // shared. Link it while the registry is locked, so its staging cannot remove it.
        let mut reg = lock(&self.loads.registry);
        let Some(src) = reg.path(digest) else {
            // A layer of the store made from this blob (its compressed or uncompressed
            // digest): skopeo's copy reuses it without reading the blob (containers/image
            // `TryReusingBlob` looks layers up by both digests), so nothing is fetched.
            // Should a removal take the layer before the import, the import fails for
            // want of the blob and stores nothing.
            let stored = self
                .stored
                .images()
                .any(|i| i.layers.iter().any(|l| l.blob.digest == *digest));
            if stored {
                reg.reused.entry(self.id).or_default().push(*digest);
            }
            return Ok(stored);
        };
        let dest = blob_path(&self.dir, digest);
        match std::fs::hard_link(&src, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("linking", &dest, &e)),
        }
        drop(reg);
        self.register(*digest);
        Ok(true)
    }
}

impl Drop for CsStaging {
    fn drop(&mut self) {
        {
            let mut reg = lock(&self.loads.registry);
            for d in &self.blobs {
                if let Some(ids) = reg.blobs.get_mut(d) {
                    ids.retain(|i| *i != self.id);
                    if ids.is_empty() {
                        reg.blobs.remove(d);
                    }
                }
            }
            reg.dirs.remove(&self.id);
            reg.reused.remove(&self.id);
        }
        remove_tree(&self.dir);
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
