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

use crate::schema;
use serde::Serialize;
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

/// The current records by key ([`hash`]) → record index (their bytes are `raw[at[index]]`).
/// Built only when the file changes again.
type Spans = HashMap<u64, usize>;

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
    /// `(start, end)` of each record in `raw`, in record order.
    at: Vec<(usize, usize)>,
}

/// A file's new contents, serialized by [`Tracked::encode`] for [`Tracked::set`].
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    /// The bytes to write.
    pub(crate) bytes: Vec<u8>,
    /// `(start, end)` of each record in `bytes`.
    at: Vec<(usize, usize)>,
}

/// A record's key for matching: its length and a hash of its first bytes (a record starts
/// with its ID). Records with the same key are told apart by comparing their bytes.
fn hash(bytes: &[u8]) -> u64 {
    let head = bytes.get(..128).unwrap_or(bytes);
    foldhash::fast::FixedState::with_seed(0x1ea9_ed5e_ed00_0001).hash_one((bytes.len(), head))
}

/// `(start, end)` of each record of a file's bytes (empty or blank: none). A scan for the
/// top-level array's elements that does not check the records' own grammar: every record
/// whose bytes are new is parsed anyway, and the others are bytes parsed before. Anything
/// unexpected around them falls back to serde_json, which says what is wrong.
fn record_spans(data: &[u8]) -> serde_json::Result<Vec<(usize, usize)>> {
    if let Some(spans) = scan(data) {
        return Ok(spans);
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let raws: Vec<&RawValue> = serde_json::from_slice(data)?;
    Ok(raws
        .iter()
        .map(|r| {
            let start = (r.get().as_ptr() as usize).saturating_sub(data.as_ptr() as usize);
            (start, start + r.get().len())
        })
        .collect())
}

fn skip_ws(data: &[u8], mut i: usize) -> usize {
    while data.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index after the closing quote of the string whose contents start at `i`.
fn string_end(data: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let k = i + memchr::memchr2(b'"', b'\\', data.get(i..)?)?;
        if data.get(k) == Some(&b'"') {
            return Some(k + 1);
        }
        i = k + 2;
    }
}

/// The elements of a JSON array `[a,b,…]` (`None`: not that shape, or not only that).
fn scan(data: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut i = skip_ws(data, 0);
    if data.get(i) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::new();
    i = skip_ws(data, i + 1);
    if data.get(i) == Some(&b']') {
        return (skip_ws(data, i + 1) == data.len()).then_some(out);
    }
    loop {
        let start = i;
        let mut depth = 0usize;
        loop {
            match *data.get(i)? {
                b'"' => {
                    i = string_end(data, i + 1)?;
                    if depth == 0 {
                        break;
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => break,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b',' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        let mut end = i;
        while end > start && data[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        if end == start {
            return None;
        }
        out.push((start, end));
        i = skip_ws(data, i);
        match *data.get(i)? {
            b',' => i = skip_ws(data, i + 1),
            b']' => return (skip_ws(data, i + 1) == data.len()).then_some(out),
            _ => return None,
        }
    }
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
            at: Vec::new(),
        }
    }

    /// Records what this process just wrote to the file (under its write lock), with the
    /// bytes written: the next [`Tracked::refresh`] takes them without reading the file.
    pub(crate) fn set(&mut self, records: Vec<Arc<T>>, written: Encoded) {
        debug_assert_eq!(records.len(), written.at.len());
        self.records = Arc::new(records);
        self.raw = written.bytes;
        self.at = written.at;
        self.stamp = stamp(&self.json);
        self.loaded = true;
        self.pending = true;
    }

    /// Whether the file's stamp moved since it was read (or written).
    pub(crate) fn moved(&self) -> bool {
        !self.loaded || stamp(&self.json) != self.stamp
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
        let spans = record_spans(&data).map_err(&bad)?;
        let old = self.old_spans();
        let mut records = Vec::with_capacity(spans.len());
        let mut at = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            let bytes = &data[start..end];
            let h = hash(bytes);
            let reused = old
                .as_ref()
                .and_then(|o| o.get(&h))
                .filter(|i| self.bytes_of(**i) == Some(bytes))
                .and_then(|i| self.records.get(*i).cloned());
            let rec = match reused {
                Some(r) => r,
                None => Arc::new(serde_json::from_slice::<T>(bytes).map_err(&bad)?),
            };
            at.push((start, end));
            records.push(rec);
        }
        self.records = Arc::new(records);
        self.raw = data;
        self.at = at;
        self.stamp = st;
        self.loaded = true;
        Ok(true)
    }

    /// The current records by the key of their bytes in `raw`; `None` when they cannot
    /// be matched up.
    fn old_spans(&self) -> Option<Spans> {
        if self.at.len() != self.records.len() {
            return None;
        }
        let mut spans = Spans::with_capacity(self.at.len());
        for i in 0..self.at.len() {
            spans.insert(hash(self.bytes_of(i)?), i);
        }
        Some(spans)
    }
}

impl<T> Tracked<T> {
    /// The bytes record `i` was read (or written) as.
    fn bytes_of(&self, i: usize) -> Option<&[u8]> {
        let &(s, e) = self.at.get(i)?;
        self.raw.get(s..e)
    }
}

impl<T: Serialize> Tracked<T> {
    /// `records` as c/storage writes them (Go's `json.Marshal` of the slice): a record
    /// that is one of the current records (the same allocation, so unchanged: they are
    /// shared, never mutated) is copied as the bytes it was read or written as, the
    /// others are serialized. Writing a thousand records costs a copy, not a serializer.
    pub(crate) fn encode(&self, records: &[Arc<T>]) -> Result<Encoded> {
        let bad = |e: serde_json::Error| Error::internal(format!("serializing a record: {e}"));
        if records.is_empty() {
            let bytes = schema::to_go_json(records).map_err(bad)?;
            return Ok(Encoded {
                bytes,
                at: Vec::new(),
            });
        }
        let known: HashMap<*const T, usize> = if self.at.len() == self.records.len() {
            self.records
                .iter()
                .enumerate()
                .map(|(i, r)| (Arc::as_ptr(r), i))
                .collect()
        } else {
            HashMap::new()
        };
        let mut bytes = Vec::with_capacity(self.raw.len() + 1024);
        let mut at = Vec::with_capacity(records.len());
        bytes.push(b'[');
        for (k, r) in records.iter().enumerate() {
            if k > 0 {
                bytes.push(b',');
            }
            let start = bytes.len();
            let same = known.get(&Arc::as_ptr(r)).and_then(|i| self.bytes_of(*i));
            match same {
                Some(b) => bytes.extend_from_slice(b),
                None => bytes.extend(schema::to_go_json(r.as_ref()).map_err(bad)?),
            }
            at.push((start, bytes.len()));
        }
        bytes.push(b']');
        Ok(Encoded { bytes, at })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        let mut t: Tracked<R> = Tracked::new(p.clone());
        let a = Arc::new(R {
            id: "a".into(),
            names: vec![],
        });
        let b = Arc::new(R {
            id: "b".into(),
            names: vec![],
        });
        let recs = vec![Arc::clone(&a), Arc::clone(&b)];
        let enc = t.encode(&recs).unwrap();
        assert_eq!(
            enc.bytes,
            br#"[{"id":"a","names":[]},{"id":"b","names":[]}]"#
        );
        write(&p, std::str::from_utf8(&enc.bytes).unwrap());
        t.set(recs, enc);
        assert!(t.refresh().unwrap(), "set records are taken once");
        assert!(!t.refresh().unwrap());

        write(&p, r#"[{"id":"b","names":[]},{"id":"e"}]"#);
        assert!(t.refresh().unwrap());
        assert!(Arc::ptr_eq(&t.records[0], &b));
        assert_eq!(t.records[1].id, "e");
    }

    #[test]
    fn unchanged_records_are_written_as_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("images.json");
        // Another writer's spelling (field order, escapes) of two records.
        let a = r#"{"names":["x\u003cy"],"id":"a"}"#;
        let b = r#"{"id":"b"}"#;
        write(&p, &format!("[{a}, {b}]"));
        let mut t: Tracked<R> = Tracked::new(p.clone());
        t.refresh().unwrap();
        let mut recs: Vec<Arc<R>> = t.records.iter().cloned().collect();
        // b changed (a new allocation, as a plan makes it), c added.
        let mut nb = R::clone(&recs[1]);
        nb.names.push("n".into());
        recs[1] = Arc::new(nb);
        recs.push(Arc::new(R {
            id: "c".into(),
            names: vec!["<".into()],
        }));
        let enc = t.encode(&recs).unwrap();
        assert_eq!(
            std::str::from_utf8(&enc.bytes).unwrap(),
            format!(r#"[{a},{{"id":"b","names":["n"]}},{{"id":"c","names":["\u003c"]}}]"#)
        );
        assert_eq!(t.encode(&[]).unwrap().bytes, b"[]");
    }

    #[test]
    fn the_scan_finds_what_serde_json_finds() {
        let serde = |d: &str| -> Option<Vec<String>> {
            let raws: Vec<&RawValue> = serde_json::from_str(d).ok()?;
            Some(raws.iter().map(|r| r.get().to_owned()).collect())
        };
        let scanned = |d: &str| -> Option<Vec<String>> {
            Some(
                scan(d.as_bytes())?
                    .into_iter()
                    .map(|(s, e)| d[s..e].to_owned())
                    .collect(),
            )
        };
        for d in [
            "[]",
            " [ ] \n",
            r#"[{"id":"a"}]"#,
            r#"[{"id":"a\"]}"},{"x":[1,{"y":"}"}]} , {"z":"\\"}]"#,
            "\n[ {\"a\":1}\t,\n{\"b\":[]} ]\n",
            r#"[1, "two", null, [3]]"#,
        ] {
            assert_eq!(scanned(d), serde(d), "{d}");
        }
        for broken in [
            "",
            "  ",
            "{}",
            "[",
            r#"[{"id":"a"}"#,
            r#"[{"id":"a"} {"id":"b"}]"#,
            r#"[{"id":"a"},]"#,
            r#"[{"id":"a"}] x"#,
            r#"[{"id":"a\"}]"#,
        ] {
            assert_eq!(scan(broken.as_bytes()), None, "{broken}");
        }
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
