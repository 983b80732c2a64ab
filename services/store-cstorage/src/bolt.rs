//! A read-only reader of podman's BoltDB (`libpod/bolt_state.db`): which containers are
//! podman's own (the others are external, SPEC §4) and the store podman recorded.
//!
//! The subset of the bbolt file format read here (go.etcd.io/bbolt, format version 2):
//! - every page starts with a 16-byte header: id `u64`, flags `u16` (0x01 branch, 0x02
//!   leaf, 0x04 meta, 0x10 freelist), count `u16`, overflow `u32` (the page spans
//!   `overflow + 1` pages); all integers little-endian (the machine's order, x86/arm64);
//! - pages 0 and 1 are meta pages: magic `0xED0CDAED`, version 2, page size, flags, the
//!   root bucket (root page `u64`, sequence `u64`), freelist page, high-water page, txid
//!   and an FNV-64a checksum of the 56 bytes before it; the valid meta with the highest
//!   txid is the current state;
//! - a branch page holds `count` 16-byte elements (key offset `u32` from the element, key
//!   size `u32`, child page `u64`); a leaf page `count` 16-byte elements (flags `u32`, 0x01
//!   = a sub-bucket, key offset `u32` from the element, key size `u32`, value size `u32`,
//!   the value following the key);
//! - a bucket's value is its header (root page `u64`, sequence `u64`); root page 0 means an
//!   inline bucket whose single leaf page follows the header inside the value.
//!
//! The file is read under a shared `flock`, as bbolt's read-only open takes it; podman's
//! writers take it exclusively (and retry while it is held), so what is read is one
//! committed state.

use foldhash::HashSet;
use std::io::{Error, ErrorKind, Read as _};
use std::path::Path;
use std::time::{Duration, Instant};

/// What imaged needs from podman's database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PodmanDb {
    /// IDs of podman's containers (bucket `all-ctrs`).
    pub(crate) containers: HashSet<String>,
    /// `runtime-config` `graph-driver-name`, when recorded.
    pub(crate) graph_driver: Option<String>,
    /// `runtime-config` `graph-root`, when recorded.
    pub(crate) graph_root: Option<String>,
    /// `runtime-config` `run-root`, when recorded.
    pub(crate) run_root: Option<String>,
}

/// How long a shared lock is waited for (podman holds the exclusive one for one operation).
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the lock is tried again meanwhile (bbolt's own retry interval).
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// Reads `path`; a missing file is an empty database.
pub(crate) fn read(path: &Path) -> std::io::Result<PodmanDb> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(PodmanDb::default()),
        Err(e) => return Err(e),
    };
    let start = Instant::now();
    let lock = loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
            Ok(l) => break l,
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if start.elapsed() < LOCK_TIMEOUT => {
                file = f;
                std::thread::sleep(LOCK_RETRY);
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "{} stayed locked by podman for {}s",
                        path.display(),
                        LOCK_TIMEOUT.as_secs()
                    ),
                ));
            }
            Err((_, e)) => return Err(Error::from(e)),
        }
    };
    let mut bytes = Vec::new();
    (&*lock).read_to_end(&mut bytes)?;
    drop(lock);
    parse(&bytes)
        .map_err(|m| Error::new(ErrorKind::InvalidData, format!("{}: {m}", path.display())))
}

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
/// Deeper than any B+tree of a file this size; guards against a corrupt cycle.
const MAX_DEPTH: usize = 64;

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A valid meta page's page size, root bucket page and txid.
struct Meta {
    page_size: usize,
    root: u64,
    txid: u64,
}

/// The meta at byte `at` (a page header, then the meta), if valid.
fn meta_at(file: &[u8], at: usize) -> Option<Meta> {
    let flags = u16_at(file, at + 8).ok()?;
    let m = at + PAGE_HEADER;
    let body = file.get(m..m + 64)?;
    if flags != META || u32_at(body, 0).ok()? != MAGIC || u32_at(body, 4).ok()? != VERSION {
        return None;
    }
    if fnv64a(&body[..56]) != u64_at(body, 56).ok()? {
        return None;
    }
    Some(Meta {
        page_size: usize::try_from(u32_at(body, 8).ok()?).ok()?,
        root: u64_at(body, 16).ok()?,
        txid: u64_at(body, 48).ok()?,
    })
}

/// The current meta: the valid one with the highest txid.
fn current_meta(file: &[u8]) -> Result<Meta, String> {
    let m0 = meta_at(file, 0);
    // Page 1 is one page further; when meta 0 is damaged its page size is unknown, so the
    // usual sizes are tried.
    let sizes: Vec<usize> = match &m0 {
        Some(m) => vec![m.page_size],
        None => vec![4096, 8192, 16384, 32768, 65536],
    };
    let m1 = sizes.into_iter().find_map(|s| meta_at(file, s));
    match (m0, m1) {
        (Some(a), Some(b)) => Ok(if b.txid > a.txid { b } else { a }),
        (Some(a), None) => Ok(a),
        (None, Some(b)) => Ok(b),
        (None, None) => Err("not a bbolt database (no valid meta page)".to_owned()),
    }
}

/// A page: its bytes from the header on (with its overflow pages).
fn page(file: &[u8], page_size: usize, id: u64) -> Result<&[u8], String> {
    let start = usize::try_from(id)
        .ok()
        .and_then(|i| i.checked_mul(page_size))
        .ok_or_else(|| format!("page {id} out of range"))?;
    let overflow = usize::try_from(u32_at(file, start + 12)?)
        .map_err(|_| format!("page {id}: bad overflow"))?;
    let len = overflow
        .checked_add(1)
        .and_then(|n| n.checked_mul(page_size))
        .ok_or_else(|| format!("page {id}: bad overflow"))?;
    let end = start.saturating_add(len).min(file.len());
    file.get(start..end)
        .ok_or_else(|| format!("page {id} beyond the end of the file"))
}

/// Where a bucket's B+tree starts: a page of the file or an inline page.
enum Root<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

impl<'a> Root<'a> {
    /// A bucket value (header, then the inline page when root is 0).
    fn of(value: &'a [u8]) -> Result<Self, String> {
        let root = u64_at(value, 0)?;
        if root == 0 {
            Ok(Self::Inline(
                value.get(16..).ok_or("truncated inline bucket")?,
            ))
        } else {
            Ok(Self::Page(root))
        }
    }
}

/// Every key/value of a bucket, in key order (`bucket` = the leaf's bucket flag).
struct Walker<'a> {
    file: &'a [u8],
    page_size: usize,
}

impl<'a> Walker<'a> {
    fn each(
        &self,
        root: &Root<'a>,
        f: &mut dyn FnMut(&'a [u8], &'a [u8], bool) -> Result<(), String>,
    ) -> Result<(), String> {
        match root {
            Root::Inline(p) => self.walk_page(p, f, 0),
            Root::Page(id) => self.walk(*id, f, 0),
        }
    }

    fn walk(
        &self,
        id: u64,
        f: &mut dyn FnMut(&'a [u8], &'a [u8], bool) -> Result<(), String>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("B+tree too deep (corrupt?)".to_owned());
        }
        let p = page(self.file, self.page_size, id)?;
        self.walk_page(p, f, depth)
    }

    fn walk_page(
        &self,
        p: &'a [u8],
        f: &mut dyn FnMut(&'a [u8], &'a [u8], bool) -> Result<(), String>,
        depth: usize,
    ) -> Result<(), String> {
        let flags = u16_at(p, 8)?;
        let count = usize::from(u16_at(p, 10)?);
        for i in 0..count {
            let e = PAGE_HEADER + i * 16;
            if flags & BRANCH != 0 {
                let child = u64_at(p, e + 8)?;
                self.walk(child, f, depth + 1)?;
            } else if flags & LEAF != 0 {
                let eflags = u32_at(p, e)?;
                let pos = usize::try_from(u32_at(p, e + 4)?).map_err(|e| e.to_string())?;
                let ksize = usize::try_from(u32_at(p, e + 8)?).map_err(|e| e.to_string())?;
                let vsize = usize::try_from(u32_at(p, e + 12)?).map_err(|e| e.to_string())?;
                let k = e.saturating_add(pos);
                let v = k.saturating_add(ksize);
                let key = p.get(k..v).ok_or("leaf key out of its page")?;
                let value = p
                    .get(v..v.saturating_add(vsize))
                    .ok_or("leaf value out of its page")?;
                f(key, value, eflags & BUCKET_LEAF != 0)?;
            } else {
                return Err(format!("unexpected page flags {flags:#x} in a B+tree"));
            }
        }
        Ok(())
    }

    /// The sub-bucket `name` of `root`, if any.
    fn bucket(&self, root: &Root<'a>, name: &[u8]) -> Result<Option<Root<'a>>, String> {
        let mut found = None;
        self.each(root, &mut |k, v, is_bucket| {
            if is_bucket && k == name && found.is_none() {
                found = Some(v);
            }
            Ok(())
        })?;
        found.map(Root::of).transpose()
    }
}

/// Parses a whole database file.
fn parse(file: &[u8]) -> Result<PodmanDb, String> {
    if file.is_empty() {
        return Ok(PodmanDb::default());
    }
    let meta = current_meta(file)?;
    if meta.page_size < 1024 {
        return Err(format!("implausible page size {}", meta.page_size));
    }
    let w = Walker {
        file,
        page_size: meta.page_size,
    };
    let top = Root::Page(meta.root);
    let mut db = PodmanDb::default();
    if let Some(ctrs) = w.bucket(&top, b"all-ctrs")? {
        w.each(&ctrs, &mut |k, _, is_bucket| {
            if !is_bucket {
                db.containers
                    .insert(String::from_utf8_lossy(k).into_owned());
            }
            Ok(())
        })?;
    }
    if let Some(rc) = w.bucket(&top, b"runtime-config")? {
        w.each(&rc, &mut |k, v, is_bucket| {
            let value = || Some(String::from_utf8_lossy(v).into_owned());
            match k {
                _ if is_bucket => {}
                b"graph-driver-name" => db.graph_driver = value(),
                b"graph-root" => db.graph_root = value(),
                b"run-root" => db.run_root = value(),
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(db)
}

#[cfg(test)]
mod tests;
