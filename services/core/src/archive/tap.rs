//! The tap between a tar entry and [`crate::store::Staging::put`]: it sees every byte of
//! a blob once as it streams by, detects gzip or zstd content and hashes the decompressed bytes
//! (the layer's diff ID) without a second pass, and keeps a copy of small JSON.

use std::io::{self, Read, Write};

use flate2::write::MultiGzDecoder as GzWriteDecoder;
use zstd::stream::write::Decoder as ZstdWriteDecoder;

use crate::digest::{Digest, Hasher};

/// JSON-looking blobs up to this size may be kept in memory (configs, manifests); larger
/// ones are read back from the store when parsed.
pub(super) const JSON_KEEP_LIMIT: u64 = 1 << 20;
/// The magic number of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Hashes what is written to it.
#[derive(Default)]
struct HashSink(Hasher);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compressed bytes decompressed inline; past this, a thread of its own decompresses
/// and hashes the rest while the caller's thread goes on hashing and writing the
/// compressed stream (a large layer then costs about the longer of the two, not their
/// sum).
const INLINE_LIMIT: u64 = 1 << 20;
/// Chunks in flight to the decompressing thread (back-pressure beyond).
const CHUNKS_IN_FLIGHT: usize = 16;

/// The decompressor of a layer: its decoder, on this thread or on its own.
enum Unpack {
    Gzip(Box<GzWriteDecoder<HashSink>>),
    Zstd(ZstdWriteDecoder<'static, HashSink>),
    /// A thread owning the decoder, fed chunk by chunk; it answers the diff ID.
    Threaded {
        tx: std::sync::mpsc::SyncSender<Vec<u8>>,
        done: std::thread::JoinHandle<std::result::Result<Digest, String>>,
    },
    /// The decoder was lost (a thread could not start and took it along).
    Lost(String),
}

impl Unpack {
    fn write(&mut self, data: &[u8]) -> std::result::Result<(), String> {
        match self {
            Self::Gzip(gz) => gz.write_all(data).map_err(|e| e.to_string()),
            Self::Zstd(zs) => zs.write_all(data).map_err(|e| e.to_string()),
            // A send fails only when the thread stopped on an error: `finish` reports it.
            Self::Threaded { tx, .. } => {
                let _ = tx.send(data.to_vec());
                Ok(())
            }
            Self::Lost(e) => Err(e.clone()),
        }
    }

    /// The diff ID of everything written.
    fn finish(self) -> std::result::Result<Digest, String> {
        match self {
            Self::Gzip(gz) => gz.finish().map(|s| s.0.finish()).map_err(|e| e.to_string()),
            Self::Zstd(mut zs) => match zs.flush() {
                Ok(()) => Ok(zs.into_inner().0.finish()),
                Err(e) => Err(e.to_string()),
            },
            Self::Threaded { tx, done } => {
                drop(tx);
                done.join()
                    .unwrap_or_else(|_| Err("the decompressing thread panicked".to_owned()))
            }
            Self::Lost(e) => Err(e),
        }
    }

    /// Moves an inline decoder to a thread of its own.
    fn into_thread(self) -> Self {
        if matches!(self, Self::Threaded { .. } | Self::Lost(_)) {
            return self;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let spawned = std::thread::Builder::new()
            .name("imaged-unpack".into())
            .spawn(move || {
                let mut unpack = self;
                for chunk in rx {
                    unpack.write(&chunk)?;
                }
                unpack.finish()
            });
        match spawned {
            Ok(done) => Self::Threaded { tx, done },
            Err(e) => Self::Lost(format!("starting a decompressing thread: {e}")),
        }
    }
}

/// Sits between a tar entry and the staging: sees every byte once.
pub(super) struct Tap<'a> {
    inner: &'a mut dyn Read,
    pub(super) total: u64,
    head: Vec<u8>,
    decided: bool,
    unpack: Option<Unpack>,
    /// The content starts with the zstd frame magic.
    pub(super) zstd: bool,
    gz_err: Option<String>,
    pub(super) json: Option<Vec<u8>>,
    /// Largest copy kept in `json`.
    json_limit: usize,
    pub(super) io_err: Option<io::Error>,
}

impl<'a> Tap<'a> {
    /// A tap on `inner` keeping a copy of JSON-looking content up to `json_limit` bytes
    /// (allocated at once: pass the content's size when it fits, else 0).
    pub(super) fn new(inner: &'a mut dyn Read, json_limit: u64) -> Self {
        Self {
            inner,
            total: 0,
            head: Vec::new(),
            decided: false,
            unpack: None,
            zstd: false,
            gz_err: None,
            json: None,
            json_limit: usize::try_from(json_limit).unwrap_or(usize::MAX),
            io_err: None,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if self.total == 0 && self.json_limit > 0 && data.first() == Some(&b'{') {
            self.json = Some(Vec::with_capacity(self.json_limit));
        }
        self.total += data.len() as u64;
        if let Some(j) = &mut self.json {
            if j.len() + data.len() <= self.json_limit {
                j.extend_from_slice(data);
            } else {
                self.json = None;
            }
        }
        if self.decided {
            self.gz_write(data);
        } else {
            self.head.extend_from_slice(data);
            if self.head.len() >= ZSTD_MAGIC.len() {
                self.decide();
            }
        }
    }

    fn decide(&mut self) {
        self.decided = true;
        let head = std::mem::take(&mut self.head);
        if head.starts_with(&[0x1f, 0x8b]) {
            self.unpack = Some(Unpack::Gzip(Box::new(GzWriteDecoder::new(
                HashSink::default(),
            ))));
            self.gz_write(&head);
        } else if head.starts_with(&ZSTD_MAGIC) {
            self.zstd = true;
            match ZstdWriteDecoder::new(HashSink::default()) {
                Ok(d) => self.unpack = Some(Unpack::Zstd(d)),
                Err(e) => self.gz_err = Some(e.to_string()),
            }
            self.gz_write(&head);
        }
    }

    fn gz_write(&mut self, data: &[u8]) {
        if self.gz_err.is_some() {
            return;
        }
        if self.total > INLINE_LIMIT
            && let Some(u) = self.unpack.take()
        {
            self.unpack = Some(u.into_thread());
        }
        if let Some(u) = &mut self.unpack
            && let Err(e) = u.write(data)
        {
            self.gz_err = Some(e);
        }
    }

    /// Whether the content is gzip, and the digest of its decompressed bytes (for gzip
    /// and zstd content; [`Tap::zstd`] tells which).
    pub(super) fn finish(&mut self) -> (bool, Option<std::result::Result<Digest, String>>) {
        if !self.decided {
            self.decide();
        }
        let gzip = !self.zstd && (self.unpack.is_some() || self.gz_err.is_some());
        let result = match (self.unpack.take(), self.gz_err.take()) {
            (Some(u), err) => {
                // Always finished (a thread is joined), even after an error.
                let done = u.finish();
                Some(match err {
                    Some(e) => Err(e),
                    None => done,
                })
            }
            (None, err) => err.map(Err),
        };
        (gzip, result)
    }
}

impl Read for Tap<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.feed(&buf[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.io_err = Some(e);
                Err(copy)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_detects_gzip_and_hashes_decompressed_bytes() {
        let plain = b"hello layer".repeat(100);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        // One byte per read: the gzip decision must survive split reads.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.split_first() {
                    Some((b, rest)) if !buf.is_empty() => {
                        buf[0] = *b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let mut src = OneByte(&gz);
        let mut tap = Tap::new(&mut src, 0);
        let mut sink = Vec::new();
        tap.read_to_end(&mut sink).unwrap();
        assert_eq!(sink, gz);
        assert_eq!(tap.finish(), (true, Some(Ok(Digest::of(&plain)))));

        let mut src: &[u8] = b"{\"a\":1}";
        let mut tap = Tap::new(&mut src, 7);
        tap.read_to_end(&mut Vec::new()).unwrap();
        assert_eq!(tap.finish(), (false, None));
        assert_eq!(tap.json.as_deref(), Some(&b"{\"a\":1}"[..]));
    }

    #[test]
    fn tap_detects_zstd_and_hashes_decompressed_bytes() {
        let plain = b"hello zstd layer".repeat(1000);
        let z = zstd::stream::encode_all(&plain[..], 3).unwrap();
        let mut src: &[u8] = &z;
        let mut tap = Tap::new(&mut src, 0);
        let mut sink = Vec::new();
        tap.read_to_end(&mut sink).unwrap();
        assert_eq!(sink, z);
        assert_eq!(tap.finish(), (false, Some(Ok(Digest::of(&plain)))));
        assert!(tap.zstd);
    }

    #[test]
    fn large_layers_are_decompressed_on_a_thread_of_their_own() {
        let plain: Vec<u8> = (0..3 * INLINE_LIMIT as usize)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        let z = zstd::stream::encode_all(&plain[..], 1).unwrap();
        let z = [z.clone(), vec![0u8; 2 * INLINE_LIMIT as usize]].concat();
        for (content, want) in [
            (gz.clone(), (true, Some(Ok(Digest::of(&plain))))),
            (z, (false, None)),
        ] {
            let mut src: &[u8] = &content;
            let mut tap = Tap::new(&mut src, 0);
            let mut sink = Vec::new();
            tap.read_to_end(&mut sink).unwrap();
            assert_eq!(sink, content);
            let got = tap.finish();
            match want.1 {
                Some(_) => assert_eq!(got, want),
                // zstd followed by garbage: the thread reports the decoder's error.
                None => assert!(matches!(got, (false, Some(Err(_)))), "{got:?}"),
            }
        }
        // Corrupt past the inline part: the error comes back from the thread.
        let mut bad = gz;
        let at = bad.len() - 100;
        bad[at..].fill(0xff);
        let mut src: &[u8] = &bad;
        let mut tap = Tap::new(&mut src, 0);
        tap.read_to_end(&mut Vec::new()).unwrap();
        assert!(matches!(tap.finish(), (true, Some(Err(_)))));
    }

    #[test]
    fn tap_keeps_no_json_copy_over_its_limit() {
        for limit in [0, 6] {
            let mut src: &[u8] = b"{\"a\":1}";
            let mut tap = Tap::new(&mut src, limit);
            tap.read_to_end(&mut Vec::new()).unwrap();
            assert_eq!(tap.json, None, "limit {limit}");
        }
    }

    #[test]
    fn tap_reports_corrupt_gzip() {
        let mut data = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        data.extend_from_slice(b"not deflate at all");
        let mut src: &[u8] = &data;
        let mut tap = Tap::new(&mut src, 0);
        tap.read_to_end(&mut Vec::new()).unwrap();
        let (gzip, result) = tap.finish();
        assert!(gzip);
        assert!(matches!(result, Some(Err(_))), "{result:?}");
    }
}
