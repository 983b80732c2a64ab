//! LoadImages: bridges the client's stream of chunks to the blocking `Read` the engine's
//! `load` consumes.
//!
//! A bounded channel carries the chunks from the async handler to a [`ChunkReader`] in
//! `spawn_blocking`. The reader reports end-of-file only after an explicit
//! [`Msg::End`] (the client closed its stream cleanly); a stream error, a cancelled call
//! (the handler dropped) or a size-limit overrun makes it return an I/O error, so the
//! engine's load fails and stores nothing. So does a stream that stays silent for the
//! idle timeout: the call then fails with `DEADLINE_EXCEEDED` (SPEC §6).

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use imaged_core::{Engine, Error, ErrorKind, ops};
use imaged_proto::imaged::v1 as pb;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::convert;
use crate::status;

/// Chunks buffered between the stream and the engine.
const CHANNEL_CHUNKS: usize = 16;

/// What the async side sends to the reader.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The next bytes (a view of the received message, not a copy).
    Chunk(Bytes),
    /// The client closed its stream: end of file.
    End,
    /// The load must fail (stream error, size limit).
    Abort(String),
}

/// A blocking reader over the chunks of a channel.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<Msg>,
    buf: Bytes,
    pos: usize,
    done: bool,
}

impl ChunkReader {
    /// A reader of the messages of `rx`.
    pub(crate) fn new(rx: mpsc::Receiver<Msg>) -> Self {
        Self {
            rx,
            buf: Bytes::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Chunk(c)) => {
                    self.buf = c;
                    self.pos = 0;
                }
                Some(Msg::End) => self.done = true,
                Some(Msg::Abort(why)) => return Err(io::Error::other(why)),
                None => return Err(io::Error::other("the load was cancelled")),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs a whole LoadImages call: first message → options, then chunks → engine.
pub(crate) async fn load(
    engine: Arc<Engine>,
    mut stream: Streaming<pb::LoadImagesRequest>,
    idle: Duration,
) -> Result<pb::LoadImagesResponse, Status> {
    let limit = engine.config().max_load_bytes;
    let first = next_message(&mut stream, idle).await?;
    let opts = match &first {
        Some(m) => convert::load_options(m).map_err(|e| status::to_status(&e))?,
        None => ops::LoadOptions::default(),
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let job = tokio::task::spawn_blocking(move || {
        let mut reader = ChunkReader::new(rx);
        engine.load(&mut reader, &opts)
    });

    let mut received: u64 = 0;
    let mut failure: Option<Status> = None;
    let mut current = first;
    loop {
        let Some(m) = current else {
            let _ = tx.send(Msg::End).await;
            break;
        };
        received = received.saturating_add(m.chunk.len() as u64);
        if received > limit {
            let err = too_large(limit);
            failure = Some(status::to_status(&err));
            let _ = tx.send(Msg::Abort(err.message)).await;
            break;
        }
        if !m.chunk.is_empty() && tx.send(Msg::Chunk(m.chunk)).await.is_err() {
            // The engine stopped reading: it finished or failed; its result says which.
            break;
        }
        current = match next_message(&mut stream, idle).await {
            Ok(next) => next,
            Err(s) => {
                let _ = tx
                    .send(Msg::Abort(format!("stream error: {}", s.message())))
                    .await;
                failure = Some(s);
                break;
            }
        };
    }
    drop(tx);
    let result = job
        .await
        .map_err(|e| status::to_status(&Error::internal(format!("load task failed: {e}"))))?;
    match (result, failure) {
        (Ok(report), None) => Ok(convert::load_report(report, received)),
        (Ok(report), Some(st)) => {
            // The engine had read a complete archive before the stream failed or overran.
            tracing::warn!("load: archive complete before the stream ended ({st}); kept");
            Ok(convert::load_report(report, received))
        }
        (Err(_), Some(st)) => Err(st),
        (Err(e), None) => Err(status::to_status(&e)),
    }
}

/// The next message of the stream, or `DEADLINE_EXCEEDED` when none comes within `idle`.
async fn next_message(
    stream: &mut Streaming<pb::LoadImagesRequest>,
    idle: Duration,
) -> Result<Option<pb::LoadImagesRequest>, Status> {
    match tokio::time::timeout(idle, stream.message()).await {
        Ok(r) => r,
        Err(_) => {
            let err = Error::new(
                ErrorKind::DeadlineExceeded,
                format!("the load stream sent nothing for {idle:?}: abandoned, nothing was stored"),
            )
            .with_meta("idle_timeout_ms", idle.as_millis().to_string());
            Err(status::to_status(&err))
        }
    }
}

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("the archive exceeds the limit of {limit} bytes"),
    )
    .with_meta("limit", limit.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_of(msgs: Vec<Msg>, cap: usize) -> ChunkReader {
        let (tx, rx) = mpsc::channel(cap.max(1));
        for m in msgs {
            tx.try_send(m).expect("capacity");
        }
        ChunkReader::new(rx)
    }

    #[test]
    fn reads_chunks_then_eof_after_end() {
        let mut r = reader_of(
            vec![
                Msg::Chunk(Bytes::from_static(b"hel")),
                Msg::Chunk(Bytes::new()),
                Msg::Chunk(Bytes::from_static(b"lo")),
                Msg::End,
            ],
            8,
        );
        let mut s = String::new();
        r.read_to_string(&mut s).expect("clean end");
        assert_eq!(s, "hello");
        assert_eq!(r.read(&mut [0u8; 4]).expect("eof"), 0);
    }

    #[test]
    fn channel_closed_without_end_is_an_error() {
        let mut r = reader_of(vec![Msg::Chunk(Bytes::from_static(b"abc"))], 4);
        let mut v = Vec::new();
        let err = r.read_to_end(&mut v).expect_err("no End: cancelled");
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert_eq!(v, b"abc");
    }

    #[test]
    fn abort_is_an_error() {
        let mut r = reader_of(
            vec![
                Msg::Chunk(Bytes::from_static(b"a")),
                Msg::Abort("too big".into()),
            ],
            4,
        );
        let mut v = Vec::new();
        let err = r.read_to_end(&mut v).expect_err("aborted");
        assert_eq!(err.to_string(), "too big");
    }

    #[test]
    fn small_reads_split_chunks() {
        let mut r = reader_of(vec![Msg::Chunk(Bytes::from_static(b"abcdef")), Msg::End], 4);
        let mut b = [0u8; 4];
        assert_eq!(r.read(&mut b).expect("read"), 4);
        assert_eq!(&b, b"abcd");
        assert_eq!(r.read(&mut b).expect("read"), 2);
        assert_eq!(&b[..2], b"ef");
        assert_eq!(r.read(&mut b).expect("eof"), 0);
    }
}
