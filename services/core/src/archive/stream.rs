//! Phase 1 of a load: reads the archive's tar once, front to back.
//!
//! Metadata files (`manifest.json`, `index.json`, `oci-layout`, `repositories`) are kept
//! in memory; every other regular file is written through [`Staging::put`] while a tap
//! on the stream computes what verification needs later (gzip detection, the digest of
//! the decompressed content, and a copy of small JSON-looking entries). Symlinks and
//! hard links are recorded and resolved on lookup (`podman save` links
//! `<id>/layer.tar` to `../<hex>.tar`).
//!
//! Limits ([`Limits`]): the reader under `tar` counts the bytes received and the bytes
//! of the tar stream, failing a read past either cap. It also bounds what `tar` reads
//! while it looks for the next entry (header blocks, GNU long name/link, PAX extended
//! header, all of which `tar` buffers whole): every entry's data is read or drained here
//! before the next is asked for, so those reads are header bytes only. What the index of
//! entries keeps ([`Budget`]) counts every path and link target (plus [`NODE_COST`]),
//! metadata file and JSON copy, and every JSON document parsed in phase 2.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;

use super::tap::{JSON_KEEP_LIMIT, Tap};
use super::{Limits, invalid};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Staging, Store};

/// What an entry of the index costs beyond its path and link target (the map's slot, the
/// staged blob's record), charged to the metadata budget.
pub(crate) const NODE_COST: u64 = 256;
/// Top-level files kept in memory only.
const META_FILES: [&str; 4] = ["manifest.json", "index.json", "oci-layout", "repositories"];
/// Longest chain of links followed.
const MAX_LINK_HOPS: usize = 16;

/// A staged blob and what the tap learnt while it streamed by.
#[derive(Debug, Clone)]
pub(crate) struct StagedBlob {
    /// Digest of the stored bytes.
    pub digest: Digest,
    /// Number of stored bytes.
    pub size: u64,
    /// Starts with the gzip magic.
    pub gzip: bool,
    /// Starts with the zstd magic.
    pub zstd: bool,
    /// For gzip and zstd blobs: digest of the decompressed bytes, or why decompression failed.
    pub uncompressed: Option<std::result::Result<Digest, String>>,
    /// The bytes, when they look like JSON and are small.
    pub json: Option<Vec<u8>>,
}

/// One entry of the archive.
#[derive(Debug)]
enum Node {
    /// A metadata file.
    Meta(Vec<u8>),
    /// A staged regular file.
    Blob(StagedBlob),
    /// A link to another (normalised) path.
    Link(String),
}

/// The metadata a load may hold or parse in total (`max_load_metadata_total_bytes`).
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: Cell<u64>,
}

impl Budget {
    fn new(limit: u64) -> Self {
        Self {
            limit,
            used: Cell::new(0),
        }
    }

    /// Takes `n` bytes of the budget, or fails with `TooLarge` (nothing taken).
    fn charge(&self, n: u64) -> Result<()> {
        let used = self.used.get().saturating_add(n);
        if used > self.limit {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "archive metadata exceeds the limit of {} bytes (entry paths, \
                     metadata files and JSON documents, in total)",
                    self.limit
                ),
            )
            .with_meta("limit", self.limit.to_string()));
        }
        self.used.set(used);
        Ok(())
    }

    /// What is left.
    fn room(&self) -> u64 {
        self.limit.saturating_sub(self.used.get())
    }
}

/// Everything phase 1 found, by normalised path.
#[derive(Debug)]
pub(crate) struct Collected {
    files: HashMap<String, Node>,
    /// Largest metadata entry or JSON document.
    meta_limit: u64,
    budget: Budget,
}

impl Collected {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            files: HashMap::new(),
            meta_limit: limits.metadata,
            budget: Budget::new(limits.metadata_total),
        }
    }

    /// Records a metadata file (pulls build their `index.json` this way).
    pub(crate) fn insert_meta(&mut self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.insert(path.to_owned(), Node::Meta(bytes), false)
    }

    /// Records a staged blob under `blobs/sha256/<hex>`.
    pub(crate) fn insert_blob(&mut self, blob: StagedBlob) -> Result<()> {
        let path = format!("blobs/sha256/{}", blob.digest.hex());
        self.insert(path, Node::Blob(blob), false)
    }

    /// Records `node` at `path`, charging it to the budget unless `charged` already.
    fn insert(&mut self, path: String, node: Node, charged: bool) -> Result<()> {
        if !charged {
            let held = match &node {
                Node::Meta(b) => b.len(),
                Node::Blob(b) => b.json.as_ref().map_or(0, Vec::len),
                Node::Link(t) => t.len(),
            };
            self.budget.charge(node_cost(&path, held as u64))?;
        }
        self.files.insert(path, node);
        Ok(())
    }

    fn resolve(&self, path: &str) -> Option<&Node> {
        let mut p = normalize("", path)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.files.get(&p)? {
                Node::Link(target) => p.clone_from(target),
                node => return Some(node),
            }
        }
        None
    }

    /// A metadata file's bytes.
    pub(crate) fn meta(&self, path: &str) -> Option<&[u8]> {
        match self.resolve(path)? {
            Node::Meta(b) => Some(b),
            _ => None,
        }
    }

    /// The staged file at `path` (links followed).
    pub(crate) fn blob(&self, path: &str) -> Option<&StagedBlob> {
        match self.resolve(path)? {
            Node::Blob(b) => Some(b),
            _ => None,
        }
    }

    /// The blob `blobs/sha256/<hex>` (its name was checked against its content).
    pub(crate) fn blob_by_digest(&self, digest: &Digest) -> Option<&StagedBlob> {
        self.blob(&format!("blobs/sha256/{}", digest.hex()))
    }

    /// The bytes of a JSON blob: the in-memory copy, else read back from the store. Over
    /// the metadata limit → `InvalidArchive`; every document parsed is charged to the
    /// budget (a parsed config is kept; re-reading a document is not free either).
    pub(crate) fn json<'a>(
        &self,
        blob: &'a StagedBlob,
        store: &dyn Store,
        what: &str,
    ) -> Result<Cow<'a, [u8]>> {
        if blob.size > self.meta_limit {
            return Err(meta_too_large(what, blob.size, self.meta_limit));
        }
        self.budget.charge(blob.size)?;
        if let Some(j) = &blob.json {
            return Ok(Cow::Borrowed(j));
        }
        match store.read_blob(&blob.digest)? {
            Some(b) => Ok(Cow::Owned(b)),
            None => Err(Error::internal(format!(
                "staged blob {} vanished",
                blob.digest
            ))),
        }
    }
}

/// What an entry of the index at `path` holding `held` bytes costs the budget.
fn node_cost(path: &str, held: u64) -> u64 {
    NODE_COST
        .saturating_add(path.len() as u64)
        .saturating_add(held)
}

/// Lexically normalises `p` relative to directory `base` (`.` and `..` resolved, no
/// leading `/`). `None` when it leaves the archive's root.
pub(crate) fn normalize(base: &str, p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    if !p.starts_with('/') {
        parts.extend(base.split('/').filter(|s| !s.is_empty() && *s != "."));
    }
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// The error for exceeding `max_load_bytes`.
pub(crate) fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("archive exceeds the size limit of {limit} bytes"),
    )
    .with_meta("limit", limit.to_string())
}

/// The error for exceeding `max_load_unpacked_bytes`.
fn unpacked_too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("archive unpacks to more than the limit of {limit} bytes"),
    )
    .with_meta("limit", limit.to_string())
}

/// The error for a metadata entry or JSON document over `max_load_metadata_bytes`.
fn meta_too_large(what: &str, size: u64, limit: u64) -> Error {
    invalid(format!(
        "{what}: {size} bytes is over the limit of {limit} bytes for metadata"
    ))
    .with_meta("limit", limit.to_string())
}

/// Byte counts shared by the reader wrappers.
#[derive(Debug)]
struct Progress {
    limits: Limits,
    /// Bytes received.
    raw: Cell<u64>,
    exceeded: Cell<bool>,
    /// Bytes of the tar stream read.
    tar_pos: Cell<u64>,
    unpacked_exceeded: Cell<bool>,
    /// While `tar` looks for the next entry: where that entry's header starts.
    header_start: Cell<Option<u64>>,
    header_exceeded: Cell<bool>,
}

impl Progress {
    /// Maps a read error: over a limit, truncated, or `context: error`.
    fn fail(&self, e: &io::Error, context: &str) -> Error {
        if self.exceeded.get() {
            too_large(self.limits.received)
        } else if self.unpacked_exceeded.get() {
            unpacked_too_large(self.limits.unpacked)
        } else if self.header_exceeded.get() {
            let limit = self.limits.header;
            invalid(format!(
                "a tar entry's header (with its GNU long name or link and PAX extended \
                 header) exceeds the limit of {limit} bytes"
            ))
            .with_meta("limit", limit.to_string())
        } else if e.kind() == io::ErrorKind::UnexpectedEof
            // tar's errors for a header or a skipped entry cut short
            || ["failed to read entire block", "unexpected EOF"]
                .iter()
                .any(|m| e.to_string().contains(m))
        {
            invalid("archive truncated")
        } else {
            invalid(format!("{context}: {e}"))
        }
    }
}

/// Counts the bytes read from the caller's reader and enforces the limit.
struct Limited<'r> {
    inner: &'r mut dyn Read,
    p: Rc<Progress>,
}

impl Read for Limited<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let raw = self.p.raw.get() + n as u64;
        self.p.raw.set(raw);
        if raw > self.p.limits.received {
            self.p.exceeded.set(true);
            return Err(io::Error::other("archive too large"));
        }
        Ok(n)
    }
}

/// Counts the bytes of the (decompressed) tar stream and enforces the unpacked and the
/// header limits: a read never goes more than one byte past either.
struct TarPos<R> {
    inner: R,
    p: Rc<Progress>,
}

impl<R: Read> Read for TarPos<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let p = &self.p;
        let pos = p.tar_pos.get();
        let mut allowed = p.limits.unpacked.saturating_sub(pos);
        if let Some(start) = p.header_start.get() {
            let used = pos.saturating_sub(start);
            allowed = allowed.min(p.limits.header.saturating_sub(used));
        }
        let want = buf
            .len()
            .min(usize::try_from(allowed.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        let pos = pos + n as u64;
        p.tar_pos.set(pos);
        if pos > p.limits.unpacked {
            p.unpacked_exceeded.set(true);
            return Err(io::Error::other("archive unpacks too large"));
        }
        if let Some(start) = p.header_start.get()
            && pos.saturating_sub(start) > p.limits.header
        {
            p.header_exceeded.set(true);
            return Err(io::Error::other("tar header too large"));
        }
        Ok(n)
    }
}

/// Reads the whole archive from `reader` within `limits`, staging its files.
pub(crate) fn collect(
    reader: &mut dyn Read,
    limits: &Limits,
    staging: &mut dyn Staging,
) -> Result<Collected> {
    let p = Rc::new(Progress {
        limits: *limits,
        raw: Cell::new(0),
        exceeded: Cell::new(false),
        tar_pos: Cell::new(0),
        unpacked_exceeded: Cell::new(false),
        header_start: Cell::new(None),
        header_exceeded: Cell::new(false),
    });
    let mut limited = Limited {
        inner: reader,
        p: Rc::clone(&p),
    };
    let mut magic = [0u8; 6];
    let mut got = 0;
    while got < magic.len() {
        match limited.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(p.fail(&e, "reading the archive")),
        }
    }
    let magic = &magic[..got];
    if magic.is_empty() {
        return Err(invalid("the archive is empty"));
    }
    check_unsupported_compression(magic)?;
    let chained = io::Cursor::new(magic.to_vec()).chain(limited);
    let decoded: Box<dyn Read + '_> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(io::BufReader::new(chained)))
    } else {
        Box::new(chained)
    };
    let mut archive = tar::Archive::new(TarPos {
        inner: decoded,
        p: Rc::clone(&p),
    });
    let mut out = Collected::new(limits);
    let mut last_end = 0u64;
    let mut any = false;
    let mut entries = archive
        .entries()
        .map_err(|e| p.fail(&e, "reading the archive"))?;
    loop {
        // The previous entry's data was read or drained: what `tar` reads now, after
        // its padding, is the next entry's header (and the end of the archive).
        p.header_start.set(Some(p.tar_pos.get().max(last_end)));
        let next = entries.next();
        p.header_start.set(None);
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(|e| {
            if any || p.exceeded.get() || p.unpacked_exceeded.get() || p.header_exceeded.get() {
                p.fail(&e, "invalid tar archive")
            } else {
                invalid(format!("not a tar archive: {e}"))
            }
        })?;
        any = true;
        let size = entry.size();
        last_end = entry.raw_file_position() + size.div_ceil(512) * 512;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = normalize("", &raw_path)
            .ok_or_else(|| invalid(format!("tar entry {raw_path:?} escapes the archive")))?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_sparse() {
            // `tar` would expand its holes as it reads: never in an image archive.
            return Err(invalid(format!(
                "tar entry {raw_path:?}: sparse files are not supported"
            )));
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let base = if kind.is_symlink() { parent(&path) } else { "" };
            drain(&mut entry, &p, &path)?;
            if let Some(t) = target.as_deref().and_then(|t| normalize(base, t)) {
                out.insert(path, Node::Link(t), false)?;
            }
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) || path.is_empty() {
            drain(&mut entry, &p, &path)?;
            continue;
        }
        if META_FILES.contains(&path.as_str()) {
            if size > limits.metadata {
                return Err(meta_too_large(&path, size, limits.metadata));
            }
            out.budget.charge(node_cost(&path, size))?; // before reading it
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            entry
                .read_to_end(&mut buf)
                .map_err(|e| p.fail(&e, &format!("reading {path}")))?;
            if buf.len() as u64 != size {
                return Err(invalid("archive truncated"));
            }
            out.insert(path, Node::Meta(buf), true)?;
            continue;
        }
        if is_legacy_metadata(&path) {
            drain(&mut entry, &p, &path)?;
            continue;
        }
        let room = out.budget.room().saturating_sub(node_cost(&path, 0));
        let keep = if size <= JSON_KEEP_LIMIT.min(limits.metadata).min(room) {
            size
        } else {
            0
        };
        let blob = stage_entry(&mut entry, size, staging, &p, &path, keep)?;
        if let Some(name) = path.strip_prefix("blobs/") {
            check_blob_name(name, &blob)?;
        }
        out.insert(path, Node::Blob(blob), false)?;
    }
    if p.tar_pos.get() < last_end + 512 {
        return Err(invalid("archive truncated"));
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| p.fail(&e, "reading the archive"))?;
    Ok(out)
}

fn check_unsupported_compression(magic: &[u8]) -> Result<()> {
    let what = if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if magic.starts_with(b"BZh") {
        "bzip2"
    } else {
        return Ok(());
    };
    Err(invalid(format!(
        "{what}-compressed archives are not supported: use a plain or gzip tar"
    )))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// `<layer id>/json` and `<layer id>/VERSION` of the legacy docker-archive layout.
fn is_legacy_metadata(path: &str) -> bool {
    matches!(path.rsplit_once('/'), Some((dir, "json" | "VERSION")) if !dir.contains('/') && dir != "blobs")
}

/// `blobs/<alg>/<hex>` must hold content with that digest.
fn check_blob_name(name: &str, blob: &StagedBlob) -> Result<()> {
    let Some((alg, hex)) = name.split_once('/') else {
        return Ok(()); // a file directly under blobs/: not a content-addressed blob
    };
    if alg != "sha256" {
        return Err(invalid(format!(
            "blob {alg}:{hex}: unsupported digest algorithm {alg:?}"
        )));
    }
    let named = Digest::from_hex(hex)
        .map_err(|_| invalid(format!("blobs/{name}: not a valid sha256 blob name")))?;
    if named != blob.digest {
        return Err(invalid(format!(
            "blob {named} does not match its digest (its content is {})",
            blob.digest
        )));
    }
    Ok(())
}

/// Reads the rest of an entry that is not kept (counted as unpacked bytes).
fn drain(entry: &mut dyn Read, p: &Progress, path: &str) -> Result<()> {
    io::copy(entry, &mut io::sink()).map_err(|e| p.fail(&e, &format!("reading {path}")))?;
    Ok(())
}

/// Stages a blob of unknown size from `data` (a pull), keeping a copy of JSON-looking
/// content up to [`JSON_KEEP_LIMIT`]. Read errors are the store's (the caller knows
/// better what its reader failed on).
pub(crate) fn stage_blob(data: &mut dyn Read, staging: &mut dyn Staging) -> Result<StagedBlob> {
    let mut tap = Tap::new(data, JSON_KEEP_LIMIT);
    let (digest, size) = staging.put(&mut tap, None)?;
    let (gzip, uncompressed) = tap.finish();
    Ok(StagedBlob {
        digest,
        size,
        gzip,
        zstd: tap.zstd,
        uncompressed,
        json: tap.json.take(),
    })
}

/// Stages one entry, keeping a copy of JSON-looking content of up to `keep` bytes.
fn stage_entry(
    entry: &mut dyn Read,
    size: u64,
    staging: &mut dyn Staging,
    p: &Progress,
    path: &str,
    keep: u64,
) -> Result<StagedBlob> {
    let mut tap = Tap::new(entry, keep);
    let put = staging.put(&mut tap, None);
    if let Some(e) = tap.io_err.take() {
        return Err(p.fail(&e, &format!("reading {path}")));
    }
    let (digest, stored) = put?;
    if tap.total != size || stored != size {
        return Err(invalid("archive truncated"));
    }
    let (gzip, uncompressed) = tap.finish();
    Ok(StagedBlob {
        digest,
        size,
        gzip,
        zstd: tap.zstd,
        uncompressed,
        json: tap.json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("", "./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("x", "../y.tar").as_deref(), Some("y.tar"));
        assert_eq!(normalize("x/z", "/abs").as_deref(), Some("abs"));
        assert_eq!(normalize("", "../escape"), None);
        assert_eq!(normalize("x", "../../escape"), None);
    }

    /// One entry of a test tar.
    enum Entry<'a> {
        File(&'a [u8]),
        Hard(&'a str),
        Sym(&'a str),
    }

    /// A tar of these entries, written with the `tar` crate.
    fn tar_of(entries: &[(&str, Entry<'_>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, entry) in entries {
            let (kind, data, link): (_, &[u8], _) = match entry {
                Entry::File(d) => (tar::EntryType::Regular, d, None),
                Entry::Hard(t) => (tar::EntryType::Link, &[], Some(t)),
                Entry::Sym(t) => (tar::EntryType::Symlink, &[], Some(t)),
            };
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            if let Some(t) = link {
                h.set_link_name(t).unwrap();
            }
            b.append_data(&mut h, path, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn unlimited() -> Limits {
        Limits {
            received: u64::MAX,
            unpacked: u64::MAX,
            header: u64::MAX,
            metadata: u64::MAX,
            metadata_total: u64::MAX,
        }
    }

    fn collect_bytes(store: &crate::store::MemoryStore, bytes: &[u8]) -> Result<Collected> {
        let mut staging = store.stage()?;
        let mut r = bytes;
        collect(&mut r, &unlimited(), staging.as_mut())
    }

    #[test]
    fn links_resolve_to_their_targets() {
        let bytes = tar_of(&[
            ("a/real.tar", Entry::File(b"layer bytes")),
            ("b/hard.tar", Entry::Hard("a/real.tar")),
            ("c/layer.tar", Entry::Sym("../a/real.tar")),
            ("d/chain.tar", Entry::Sym("../c/layer.tar")),
            ("e/escape.tar", Entry::Sym("../../outside")),
            ("f/loop", Entry::Sym("../f/loop")),
            ("manifest.json", Entry::File(b"[]")),
            ("x/json", Entry::File(b"{}")),
        ]);
        let store = crate::store::MemoryStore::new();
        let files = collect_bytes(&store, &bytes).unwrap();
        let want = Digest::of(b"layer bytes");
        for p in [
            "a/real.tar",
            "b/hard.tar",
            "c/layer.tar",
            "./d/chain.tar",
            "d/../c/layer.tar",
        ] {
            assert_eq!(files.blob(p).map(|b| b.digest), Some(want), "{p}");
        }
        assert!(files.blob("e/escape.tar").is_none());
        assert!(files.blob("f/loop").is_none());
        assert!(
            files.blob("x/json").is_none(),
            "legacy metadata is not staged"
        );
        assert_eq!(files.meta("manifest.json"), Some(&b"[]"[..]));
        assert!(files.blob("manifest.json").is_none());
    }

    #[test]
    fn staged_blobs_go_away_with_the_staging() {
        let store = crate::store::MemoryStore::new();
        {
            let mut staging = store.stage().unwrap();
            let bytes = tar_of(&[("blob.tar", Entry::File(b"some bytes"))]);
            let mut r = bytes.as_slice();
            let files = collect(&mut r, &unlimited(), staging.as_mut()).unwrap();
            assert!(files.blob("blob.tar").is_some());
            assert_eq!(store.blob_count(), 1);
        }
        assert_eq!(store.blob_count(), 0);
    }

    #[test]
    fn legacy_metadata_names() {
        assert!(is_legacy_metadata("abc/json"));
        assert!(is_legacy_metadata("abc/VERSION"));
        assert!(!is_legacy_metadata("abc/layer.tar"));
        assert!(!is_legacy_metadata("json"));
        assert!(!is_legacy_metadata("a/b/json"));
    }
}
