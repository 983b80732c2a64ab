//! One of c/storage's JSON files, re-read incrementally.
//!
//! A podman command rewrites the whole `images.json` (megabytes at a thousand images) to
//! change one record. Re-parsing every record, comparing each with the previous one and
//! freeing the old ones cost more than everything else a pick-up does, so the file is
//! first split into its records' raw JSON (a scan, no allocation per field), and only the
//! records whose bytes are new are parsed; the others are the previous `Arc`s, which lets
//! the catalog builder recognise them by pointer. Records this process wrote are taken
//! as they are ([`Tracked::set`]), with the bytes written, so the next change by another
//! process is incremental too.

use std::hash::BuildHasher;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use imaged_core::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// `(dev, ino, size, mtime s, mtime ns)` of a file, `None` when missing.
pub(crate) type Stamp = Option<(u64, u64, u64, i64, i64)>;

/// The stamp of `path`.
pub(crate) fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Shared records of one file.
pub(crate) type Records<T> = Arc<Vec<Arc<T>>>;

/// Where each record's bytes are in the file they were read from: hash → (start, end,
/// record index). Built lazily, only when the file changes again.
type Spans = HashMap<u64, (usize, usize, usize)>;

/// One JSON file.
#[derive(Debug)]
pub(crate) struct Tracked<T> {
    pub(crate) json: PathBuf,
    pub(crate) stamp: Stamp,
    pub(crate) loaded: bool,
    pub(crate) records: Records<T>,
    /// Records were [`Tracked::set`] and not yet taken into the catalog.
    pending: bool,
    /// The bytes `records` were read from (or written as).
    raw: Vec<u8>,
    /// Spans of `raw`, once computed.
    spans: Option<Spans>,
}

fn hash(bytes: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x1ea9_ed5e_ed00_0001).hash_one(bytes)
}

/// The raw records of a file's bytes (empty or blank: none).
fn split(data: &[u8]) -> serde_json::Result<Vec<&RawValue>> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice(data)
}

/// `raw`'s offset in `data` (it borrows from it).
fn offset(data: &[u8], raw: &RawValue) -> usize {
    (raw.get().as_ptr() as usize).saturating_sub(data.as_ptr() as usize)
}

impl<T: DeserializeOwned> Tracked<T> {
    pub(crate) fn new(json: PathBuf) -> Self {
        Self {
            json,
            stamp: None,
            loaded: false,
            records: Arc::new(Vec::new()),
            pending: false,
            raw: Vec::new(),
            spans: None,
        }
    }

    /// Records what this process just wrote to the file (under its write lock), with the
    /// bytes written: the next [`Tracked::refresh`] takes them without reading the file.
    pub(crate) fn set(&mut self, records: Vec<Arc<T>>, raw: Vec<u8>) {
        self.records = Arc::new(records);
        self.raw = raw;
        self.spans = None;
        self.stamp = stamp(&self.json);
        self.loaded = true;
        self.pending = true;
    }

    /// Re-reads the file if its stamp moved; whether the records changed.
    pub(crate) fn refresh(&mut self) -> Result<bool> {
        let st = stamp(&self.json);
        if self.loaded && st == self.stamp {
            return Ok(std::mem::take(&mut self.pending));
        }
        self.pending = false;
        let data = match std::fs::read(&self.json) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&format!("reading {}", self.json.display()), &e)),
        };
        let what = self.json.display().to_string();
        let bad = |e: serde_json::Error| Error::internal(format!("parsing {what}: {e}"));
        let raws = split(&data).map_err(&bad)?;
        let old = self.old_spans();
        let mut records = Vec::with_capacity(raws.len());
        let mut spans = Spans::with_capacity(raws.len());
        for raw in raws {
            let bytes = raw.get().as_bytes();
            let h = hash(bytes);
            let start = offset(&data, raw);
            let reused = old
                .as_ref()
                .and_then(|o| o.get(&h))
                .filter(|(s, e, _)| self.raw.get(*s..*e) == Some(bytes))
                .and_then(|(_, _, i)| self.records.get(*i).cloned());
            let rec = match reused {
                Some(r) => r,
                None => Arc::new(serde_json::from_str::<T>(raw.get()).map_err(&bad)?),
            };
            spans.insert(h, (start, start + bytes.len(), records.len()));
            records.push(rec);
        }
        self.records = Arc::new(records);
        self.raw = data;
        self.spans = Some(spans);
        self.stamp = st;
        self.loaded = true;
        Ok(true)
    }

    /// The spans of the current records in `raw` (computed from it when they were set
    /// by [`Tracked::set`]); `None` when they cannot be matched up.
    fn old_spans(&mut self) -> Option<Spans> {
        if let Some(s) = self.spans.take() {
            return Some(s);
        }
        let raws = split(&self.raw).ok()?;
        if raws.len() != self.records.len() {
            return None;
        }
        let mut spans = Spans::with_capacity(raws.len());
        for (i, raw) in raws.iter().enumerate() {
            let start = offset(&self.raw, raw);
            let end = start + raw.get().len();
            spans.insert(hash(raw.get().as_bytes()), (start, end, i));
        }
        Some(spans)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    struct R {
        id: String,
        #[serde(default)]
        names: Vec<String>,
    }

    fn write(p: &Path, s: &str) {
        // A new inode each time, as an atomic replacement makes.
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, s).unwrap();
        std::fs::rename(&tmp, p).unwrap();
    }

    #[test]
    fn unchanged_records_are_the_same_allocation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("images.json");
        write(&p, r#"[{"id":"a"},{"id":"b","names":["x"]},{"id":"c"}]"#);
        let mut t: Tracked<R> = Tracked::new(p.clone());
        assert!(t.refresh().unwrap());
        let before = Arc::clone(&t.records);
        assert!(!t.refresh().unwrap(), "nothing moved");

        // b renamed, c removed, d added, a untouched (but at another offset).
        write(&p, r#"[ {"id":"d"}, {"id":"a"},{"id":"b","names":["y"]}]"#);
        assert!(t.refresh().unwrap());
        let ids: Vec<&str> = t.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["d", "a", "b"]);
        assert!(Arc::ptr_eq(&t.records[1], &before[0]), "a reused");
        assert_eq!(t.records[2].names, ["y"]);
        assert!(!Arc::ptr_eq(&t.records[2], &before[1]));
    }

    #[test]
    fn records_set_after_a_write_are_matched_on_the_next_change() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("layers.json");
        let written = r#"[{"id":"a"},{"id":"b"}]"#;
        write(&p, written);
        let mut t: Tracked<R> = Tracked::new(p.clone());
        let a = Arc::new(R {
            id: "a".into(),
            names: vec![],
        });
        let b = Arc::new(R {
            id: "b".into(),
            names: vec![],
        });
        t.set(
            vec![Arc::clone(&a), Arc::clone(&b)],
            written.as_bytes().to_vec(),
        );
        assert!(t.refresh().unwrap(), "set records are taken once");
        assert!(!t.refresh().unwrap());

        write(&p, r#"[{"id":"b"},{"id":"e"}]"#);
        assert!(t.refresh().unwrap());
        assert!(Arc::ptr_eq(&t.records[0], &b));
        assert_eq!(t.records[1].id, "e");
    }

    #[test]
    fn blank_and_broken_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("containers.json");
        let mut t: Tracked<R> = Tracked::new(p.clone());
        assert!(t.refresh().unwrap(), "missing: no records");
        assert!(t.records.is_empty());
        write(&p, "  \n");
        assert!(t.refresh().unwrap());
        assert!(t.records.is_empty());
        write(&p, r#"[{"id":"a"}"#);
        assert!(t.refresh().is_err());
        write(&p, r#"[{"id":1}]"#);
        assert!(t.refresh().is_err());
    }
}
