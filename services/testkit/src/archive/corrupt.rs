//! Breaking archives on purpose, for tests of the loader's verification. Every helper
//! accepts a plain or gzip archive and returns one compressed the same way. They panic
//! on input that is not a tar (they are test tools).

use std::io::Read;

use super::TarOut;
use super::tarw::{gunzip, gzip, is_gzip};

fn with_plain(archive: &[u8], f: impl FnOnce(Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    if is_gzip(archive) {
        gzip(&f(gunzip(archive)))
    } else {
        f(archive.to_vec())
    }
}

/// A regular entry: path, data offset in the tar, data.
fn regular_entries(tar_bytes: &[u8]) -> Vec<(String, usize, Vec<u8>)> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap_or_else(|e| panic!("not a tar: {e}")) {
        let mut e = e.unwrap_or_else(|e| panic!("not a tar: {e}"));
        if !e.header().entry_type().is_file() {
            continue;
        }
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let pos = usize::try_from(e.raw_file_position()).unwrap_or(usize::MAX);
        let mut data = Vec::new();
        e.read_to_end(&mut data)
            .unwrap_or_else(|e| panic!("reading {path}: {e}"));
        out.push((path, pos, data));
    }
    out
}

fn looks_like_layer(data: &[u8]) -> bool {
    is_gzip(data) || data.get(257..262) == Some(b"ustar")
}

/// The first `keep` bytes (of the archive as given, compressed or not).
pub fn truncate(archive: &[u8], keep: usize) -> Vec<u8> {
    archive[..keep.min(archive.len())].to_vec()
}

/// Flips one byte in the middle of the first entry whose path satisfies `pick`.
/// Panics when there is no such non-empty entry.
pub fn flip_byte_where(archive: &[u8], pick: impl Fn(&str, &[u8]) -> bool) -> Vec<u8> {
    with_plain(archive, |mut plain| {
        let (path, pos, data) = regular_entries(&plain)
            .into_iter()
            .find(|(p, _, d)| !d.is_empty() && pick(p, d))
            .unwrap_or_else(|| panic!("no entry to corrupt"));
        let at = pos + data.len() / 2;
        assert!(at < plain.len(), "entry {path} out of range");
        plain[at] ^= 0xff;
        plain
    })
}

/// Flips one byte in the middle of the first layer (an entry holding a tar or gzip).
pub fn flip_layer_byte(archive: &[u8]) -> Vec<u8> {
    flip_byte_where(archive, |_, d| looks_like_layer(d))
}

/// Flips one byte in the entry at `path`.
pub fn flip_byte_in(archive: &[u8], path: &str) -> Vec<u8> {
    flip_byte_where(archive, |p, _| p == path)
}

/// Paths of the regular files of an archive, in order.
pub fn entry_paths(archive: &[u8]) -> Vec<String> {
    let plain = if is_gzip(archive) {
        gunzip(archive)
    } else {
        archive.to_vec()
    };
    regular_entries(&plain)
        .into_iter()
        .map(|(p, _, _)| p)
        .collect()
}

/// The data of the regular file at `path`.
pub fn entry_data(archive: &[u8], path: &str) -> Option<Vec<u8>> {
    let plain = if is_gzip(archive) {
        gunzip(archive)
    } else {
        archive.to_vec()
    };
    regular_entries(&plain)
        .into_iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, _, d)| d)
}

/// Rewrites an archive: `edit(path, data)` gives the new data of each regular file, or
/// `None` to drop it. Directories and links are kept.
pub fn rewrite(archive: &[u8], mut edit: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    with_plain(archive, |plain| {
        let mut a = tar::Archive::new(plain.as_slice());
        let mut t = TarOut::new();
        for e in a.entries().unwrap_or_else(|e| panic!("not a tar: {e}")) {
            let mut e = e.unwrap_or_else(|e| panic!("not a tar: {e}"));
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = e.header().entry_type();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            if kind.is_file() {
                let mut data = Vec::new();
                e.read_to_end(&mut data)
                    .unwrap_or_else(|e| panic!("reading {path}: {e}"));
                if let Some(d) = edit(&path, data) {
                    t.file(&path, &d);
                }
            } else if kind.is_dir() {
                t.dir(&path);
            } else if kind.is_symlink() {
                t.symlink(&path, link.as_deref().unwrap_or_default());
            } else if kind.is_hard_link() {
                t.hardlink(&path, link.as_deref().unwrap_or_default());
            }
        }
        t.finish()
    })
}

/// Drops the regular files whose path satisfies `drop`.
pub fn remove_entries(archive: &[u8], drop: impl Fn(&str) -> bool) -> Vec<u8> {
    rewrite(archive, |p, d| if drop(p) { None } else { Some(d) })
}

/// Replaces the data of the regular file at `path`.
pub fn replace_entry(archive: &[u8], path: &str, data: &[u8]) -> Vec<u8> {
    rewrite(archive, |p, d| {
        if p == path {
            Some(data.to_vec())
        } else {
            Some(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::{SynthImage, docker_archive};
    use super::*;

    #[test]
    fn helpers_keep_compression_and_change_what_they_say() {
        let img = SynthImage::new("x").named("x:1");
        for gz in [false, true] {
            let a = docker_archive(std::slice::from_ref(&img), gz);
            let flipped = flip_layer_byte(&a);
            assert_eq!(is_gzip(&flipped), gz);
            assert_ne!(flipped, a);
            assert_eq!(entry_paths(&flipped), entry_paths(&a));
            let removed = remove_entries(&a, |p| p == "manifest.json");
            assert!(!entry_paths(&removed).contains(&"manifest.json".to_owned()));
            let replaced = replace_entry(&a, "manifest.json", b"[]");
            assert_eq!(
                entry_data(&replaced, "manifest.json").as_deref(),
                Some(&b"[]"[..])
            );
            assert_eq!(
                rewrite(&a, |_, d| Some(d)),
                a,
                "an identity rewrite keeps the bytes"
            );
        }
        assert_eq!(truncate(b"abcdef", 2), b"ab");
    }
}
