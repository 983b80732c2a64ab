//! LoadImages resource limits (SPEC §6, issue 11): a hostile archive cannot make a load
//! hold unbounded memory (tar header extensions, metadata entries, JSON copies, entry
//! paths) nor write unbounded bytes to the store (a decompression bomb). Each case
//! asserts the explicit error and what the load cost: the peak of bytes allocated by the
//! loading thread (a counting allocator) or the bytes handed to the store's staging.
//!
//! Archives are built here from raw tar headers (the `tar` crate's `Header`) and gzip
//! (`flate2`), streaming large contents so the test itself holds little.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;
use imaged_core::ops::LoadOptions;
use imaged_core::{Digest, Engine, EngineConfig, Error, ErrorKind, Result};
use imaged_testkit::counting::CountingStore;

/// Per-thread live and peak heap bytes.
mod counting {
    // A global allocator cannot be written without `unsafe`; it only forwards to
    // `System` and counts. Counts are per thread (const thread-locals without
    // destructors, safe to touch from the allocator) so the other tests of this binary,
    // running on their own threads, do not disturb a measure.
    #![allow(unsafe_code)]

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub(crate) struct Counting;

    thread_local! {
        static LIVE: Cell<i64> = const { Cell::new(0) };
        static PEAK: Cell<i64> = const { Cell::new(0) };
    }

    fn add(delta: i64) {
        let _ = LIVE.try_with(|live| {
            let v = live.get() + delta;
            live.set(v);
            let _ = PEAK.try_with(|p| {
                if v > p.get() {
                    p.set(v);
                }
            });
        });
    }

    fn signed(n: usize) -> i64 {
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    // SAFETY: every call forwards to `System` with the caller's arguments unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded as is.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                add(signed(layout.size()));
            }
            p
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded as is.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                add(signed(layout.size()));
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded as is.
            unsafe { System.dealloc(ptr, layout) };
            add(-signed(layout.size()));
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded as is.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                add(signed(new_size) - signed(layout.size()));
            }
            p
        }
    }

    /// Runs `f` and returns its result with the peak of bytes this thread held above
    /// what it held when `f` started.
    pub(crate) fn peak_during<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let out = f();
        let peak = PEAK.with(Cell::get) - base;
        (out, u64::try_from(peak).unwrap_or(0))
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

const MIB: u64 = 1 << 20;

// --- tar building -----------------------------------------------------------------

/// Writes a tar stream (optionally gzip-compressed) entry by entry, contents streamed.
struct TarStream {
    out: Box<dyn Write>,
    sink: Arc<std::sync::Mutex<Vec<u8>>>,
}

/// A `Write` into a shared buffer (so the gzip encoder can be boxed and finished).
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TarStream {
    fn new(gzip: bool) -> Self {
        let sink = Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = Shared(Arc::clone(&sink));
        let out: Box<dyn Write> = if gzip {
            Box::new(GzEncoder::new(w, Compression::fast()))
        } else {
            Box::new(w)
        };
        Self { out, sink }
    }

    /// A raw header block: `name` (≤ 100 bytes), `kind`, `size`.
    fn header(&mut self, name: &[u8], kind: tar::EntryType, size: u64) {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).unwrap();
    }

    /// `size` bytes from `content`, then the padding to the next block.
    fn body(&mut self, content: &mut dyn Read, size: u64) {
        let n = io::copy(&mut content.take(size), &mut self.out).unwrap();
        assert_eq!(n, size);
        self.pad(size);
    }

    fn pad(&mut self, size: u64) {
        let pad = (512 - size % 512) % 512;
        self.out
            .write_all(&vec![0u8; usize::try_from(pad).unwrap()])
            .unwrap();
    }

    /// A regular file.
    fn file(&mut self, name: &str, content: &[u8]) {
        self.header(
            name.as_bytes(),
            tar::EntryType::Regular,
            content.len() as u64,
        );
        self.body(&mut &content[..], content.len() as u64);
    }

    /// A GNU long-name entry of `len` bytes of `a`, naming the regular file that follows.
    fn gnu_long_name(&mut self, len: u64) {
        self.header(b"././@LongLink", tar::EntryType::GNULongName, len);
        self.body(&mut io::repeat(b'a'), len);
    }

    /// A PAX extended header holding one `path` record of about `len` bytes.
    fn pax_path(&mut self, len: u64) {
        // "<n> path=<value>\n" where n counts the whole record, its own digits included.
        let value_len = len - 16;
        let rest = value_len + " path=\n".len() as u64;
        let mut n = rest + 1;
        while (n.to_string().len() as u64) + rest != n {
            n = rest + n.to_string().len() as u64;
        }
        let prefix = format!("{n} path=");
        self.header(b"PaxHeaders/x", tar::EntryType::XHeader, n);
        self.out.write_all(prefix.as_bytes()).unwrap();
        io::copy(&mut io::repeat(b'a').take(value_len), &mut self.out).unwrap();
        self.out.write_all(b"\n").unwrap();
        self.pad(n);
    }

    /// The end-of-archive blocks; the archive's bytes.
    fn finish(mut self) -> Vec<u8> {
        self.out.write_all(&[0u8; 1024]).unwrap();
        self.out.flush().unwrap();
        drop(self.out); // finishes the gzip stream
        std::mem::take(&mut *self.sink.lock().unwrap())
    }
}

/// An engine with `config` over a counting store; the counter of staged bytes.
fn engine(config: EngineConfig, discard: bool) -> (Engine, Arc<AtomicU64>) {
    let (store, staged) = CountingStore::new(discard);
    (Engine::new(Arc::new(store), config), staged)
}

/// Loads `bytes`; the result and the peak of bytes allocated meanwhile.
fn load_measured(engine: &Engine, bytes: &[u8]) -> (Result<imaged_core::ops::LoadReport>, u64) {
    counting::peak_during(|| {
        let mut r = bytes;
        engine.load(&mut r, &LoadOptions::default())
    })
}

fn assert_error(err: &Error, kind: ErrorKind, needle: &str, limit: u64) {
    assert_eq!(err.kind, kind, "{err}");
    assert!(err.message.contains(needle), "{needle:?} not in {err}");
    assert_eq!(
        err.metadata.get("limit").map(String::as_str),
        Some(limit.to_string().as_str()),
        "{err}: metadata {:?}",
        err.metadata
    );
}

// --- a valid docker-archive -------------------------------------------------------

/// A one-layer docker-archive named `limits:1`; its plain tar bytes.
fn valid_archive() -> Vec<u8> {
    let mut layer = TarStream::new(false);
    layer.file("hello.txt", b"hello, limits\n");
    let layer = layer.finish();
    let diff_id = Digest::of(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}},"history":[{{"created_by":"ADD hello.txt"}}]}}"#
    );
    let config_name = format!("{}.json", Digest::of(config.as_bytes()).hex());
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["limits:1"],"Layers":["{}/layer.tar"]}}]"#,
        diff_id.hex()
    );
    let mut t = TarStream::new(false);
    t.file(&config_name, config.as_bytes());
    t.file(&format!("{}/layer.tar", diff_id.hex()), &layer);
    t.file("manifest.json", manifest.as_bytes());
    t.finish()
}

// --- the cases ----------------------------------------------------------------------

#[test]
fn a_valid_archive_loads_within_tight_limits() {
    let bytes = valid_archive();
    let config = EngineConfig {
        max_load_bytes: bytes.len() as u64,
        max_load_unpacked_bytes: bytes.len() as u64,
        max_load_header_bytes: 1024,
        max_load_metadata_bytes: 1024,
        max_load_metadata_total_bytes: 16 << 10,
        ..EngineConfig::default()
    };
    let (e, _) = engine(config, false);
    let report = e.load(&mut bytes.as_slice(), &LoadOptions::default());
    let report = report.unwrap();
    assert_eq!(report.images.len(), 1);
    assert_eq!(report.images[0].names, ["localhost/limits:1"]);
}

#[test]
fn unpacked_bytes_are_capped_exactly() {
    // A plain tar unpacks to itself: the cap at its length passes, one byte less fails.
    let bytes = valid_archive();
    let n = bytes.len() as u64;
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&bytes).unwrap();
    let gz = gz.finish().unwrap();
    for (what, archive) in [("plain", &bytes), ("gzip", &gz)] {
        let config = |cap| EngineConfig {
            max_load_unpacked_bytes: cap,
            ..EngineConfig::default()
        };
        let (e, _) = engine(config(n), false);
        e.load(&mut archive.as_slice(), &LoadOptions::default())
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        let (e, _) = engine(config(n - 1), false);
        let err = e
            .load(&mut archive.as_slice(), &LoadOptions::default())
            .expect_err(what);
        assert_error(&err, ErrorKind::TooLarge, "unpacks to more than", n - 1);
    }
}

#[test]
fn a_decompression_bomb_stops_at_the_unpacked_cap() {
    // 64 MiB of zeros gzip to about 64 KiB: under max_load_bytes (5 MB), far over the
    // unpacked cap (8 MiB). The load stops there: at most the cap reaches the store.
    let mut t = TarStream::new(true);
    t.header(b"layer.tar", tar::EntryType::Regular, 64 * MIB);
    t.body(&mut io::repeat(0), 64 * MIB);
    let bytes = t.finish();
    assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
    let cap = 8 * MIB;
    let (e, staged) = engine(
        EngineConfig {
            max_load_bytes: 5_000_000,
            max_load_unpacked_bytes: cap,
            ..EngineConfig::default()
        },
        false,
    );
    let err = e
        .load(&mut bytes.as_slice(), &LoadOptions::default())
        .expect_err("a bomb");
    let staged = staged.load(Ordering::Relaxed);
    assert!(staged <= cap, "{staged} bytes staged, cap {cap}");
    assert_error(&err, ErrorKind::TooLarge, "unpacks to more than", cap);
    assert_eq!(e.store().fs_usage().unwrap().used_bytes, 0, "nothing kept");
}

/// A gzip archive whose first entry gets a 64 MiB header extension from `extend`: the
/// load is refused at the 1 MiB header limit while holding under 2 MiB.
fn assert_huge_header_refused(extend: impl FnOnce(&mut TarStream)) {
    let mut t = TarStream::new(true);
    extend(&mut t);
    t.file("ignored", b"x");
    let bytes = t.finish();
    let (e, _) = engine(EngineConfig::default(), true);
    let (res, peak) = load_measured(&e, &bytes);
    assert!(peak < 2 * MIB, "peak {peak} bytes while loading");
    let err = res.expect_err("a huge header");
    assert_error(&err, ErrorKind::InvalidArchive, "header", 1 << 20);
}

#[test]
fn a_huge_gnu_long_name_is_refused_without_being_buffered() {
    // 64 MiB of long name (64 KiB gzipped): today's `tar` reads it whole into memory.
    assert_huge_header_refused(|t| t.gnu_long_name(64 * MIB));
}

#[test]
fn a_huge_pax_header_is_refused_without_being_buffered() {
    assert_huge_header_refused(|t| t.pax_path(64 * MIB));
}

#[test]
fn long_names_within_the_header_limit_are_read() {
    // A 200-byte name needs a GNU long name: still fine.
    let name = format!("{}/layer.tar", "d".repeat(190));
    let mut t = TarStream::new(false);
    t.header(
        b"././@LongLink",
        tar::EntryType::GNULongName,
        name.len() as u64,
    );
    t.body(&mut name.as_bytes(), name.len() as u64);
    t.file("ignored", b"x");
    let bytes = t.finish();
    let (e, _) = engine(EngineConfig::default(), false);
    let err = e
        .load(&mut bytes.as_slice(), &LoadOptions::default())
        .expect_err("no manifest");
    assert_eq!(err.kind, ErrorKind::InvalidArchive, "{err}");
    assert!(err.message.contains("not an image archive"), "{err}");
}

#[test]
fn an_oversized_metadata_entry_is_refused() {
    // A manifest.json over max_load_metadata_bytes (4 MiB by default).
    let mut t = TarStream::new(true);
    let size = 5 * MIB;
    t.header(b"manifest.json", tar::EntryType::Regular, size);
    t.body(&mut io::repeat(b' '), size);
    let bytes = t.finish();
    let (e, _) = engine(EngineConfig::default(), true);
    let (res, peak) = load_measured(&e, &bytes);
    assert!(peak < 2 * MIB, "peak {peak} bytes while loading");
    let err = res.expect_err("too large a manifest.json");
    assert_error(&err, ErrorKind::InvalidArchive, "manifest.json", 4 * MIB);
}

#[test]
fn json_copies_are_kept_within_the_metadata_total() {
    // 64 JSON-looking entries of 512 KiB (32 MiB): copies are kept only while they fit
    // in max_load_metadata_total_bytes (8 MiB here).
    let mut t = TarStream::new(true);
    for i in 0..64 {
        let size = 512 << 10;
        t.header(
            format!("blob{i}.json").as_bytes(),
            tar::EntryType::Regular,
            size,
        );
        let mut content = io::Cursor::new(b"{".to_vec()).chain(io::repeat(b' '));
        t.body(&mut content, size);
    }
    let bytes = t.finish();
    let total = 8 * MIB;
    let (e, staged) = engine(
        EngineConfig {
            max_load_metadata_total_bytes: total,
            ..EngineConfig::default()
        },
        true,
    );
    let (res, peak) = load_measured(&e, &bytes);
    let err = res.expect_err("no manifest");
    assert_eq!(err.kind, ErrorKind::InvalidArchive, "{err}");
    assert_eq!(staged.load(Ordering::Relaxed), 64 * (512 << 10));
    assert!(peak < total + MIB, "peak {peak} bytes while loading");
}

#[test]
fn entry_paths_count_toward_the_metadata_total() {
    // 2000 entries with 4 KiB names (long names, each within the header limit): 8 MiB
    // of paths against a 1 MiB total.
    let mut t = TarStream::new(true);
    for i in 0..2000 {
        let name = format!("{i:04}/{}", "p".repeat(4091));
        t.header(
            b"././@LongLink",
            tar::EntryType::GNULongName,
            name.len() as u64,
        );
        t.body(&mut name.as_bytes(), name.len() as u64);
        t.file("ignored", b"");
    }
    let bytes = t.finish();
    let total = MIB;
    let (e, _) = engine(
        EngineConfig {
            max_load_metadata_total_bytes: total,
            ..EngineConfig::default()
        },
        true,
    );
    let (res, peak) = load_measured(&e, &bytes);
    assert!(peak < total + MIB, "peak {peak} bytes while loading");
    let err = res.expect_err("too many paths");
    assert_error(&err, ErrorKind::TooLarge, "metadata", total);
}

#[test]
fn sparse_entries_are_refused_not_expanded() {
    // A GNU sparse entry claiming 4 GiB of holes: reading it would produce 4 GiB of zeros.
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..4].copy_from_slice(b"hole");
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(0);
    h.set_mode(0o644);
    let gnu = h.as_gnu_mut().expect("a GNU header");
    let real = format!("{:011o}\0", 1u64 << 32); // 4 GiB: 11 octal digits
    gnu.realsize.copy_from_slice(real.as_bytes());
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 1024]);
    let (e, staged) = engine(EngineConfig::default(), false);
    let err = e
        .load(&mut bytes.as_slice(), &LoadOptions::default())
        .expect_err("sparse");
    assert_eq!(err.kind, ErrorKind::InvalidArchive, "{err}");
    assert!(err.message.contains("sparse"), "{err}");
    assert_eq!(staged.load(Ordering::Relaxed), 0);
}
