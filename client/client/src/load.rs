//! The request stream of `LoadImages`: an archive read in fixed-size chunks.

use futures_util::Stream;
use futures_util::stream;
use imaged_proto::imaged::v1::{ArchiveFormat, LoadImagesRequest};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;

/// Bytes per `LoadImagesRequest` message (the last one may be shorter).
pub const CHUNK_SIZE: usize = 1024 * 1024;

struct State<R, P> {
    reader: R,
    /// Format and default names, sent with the first message only.
    first: Option<(ArchiveFormat, Vec<String>)>,
    progress: P,
    total: u64,
    read_error: Option<oneshot::Sender<std::io::Error>>,
    eof: bool,
}

/// The request stream for `reader`, and a receiver that yields the read error if reading
/// fails. On a read error the stream stays pending forever (it never half-closes), so the
/// caller cancels the call instead of sending a truncated archive that could be accepted.
///
/// The first message always carries `format` and `default_names`, even for an empty input.
pub(crate) fn chunks<R, P>(
    reader: R,
    format: ArchiveFormat,
    default_names: Vec<String>,
    progress: P,
) -> (
    impl Stream<Item = LoadImagesRequest> + Send + 'static,
    oneshot::Receiver<std::io::Error>,
)
where
    R: AsyncRead + Send + Unpin + 'static,
    P: FnMut(u64) + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let state = State {
        reader,
        first: Some((format, default_names)),
        progress,
        total: 0,
        read_error: Some(tx),
        eof: false,
    };
    let stream = stream::unfold(state, |mut st| async move {
        if st.eof {
            return None;
        }
        let chunk = match read_chunk(&mut st.reader).await {
            Ok(chunk) => chunk,
            Err(err) => {
                if let Some(tx) = st.read_error.take() {
                    // The receiver may be gone (call already finished): nothing to report to.
                    let _ = tx.send(err);
                }
                std::future::pending::<()>().await;
                return None;
            }
        };
        if chunk.len() < CHUNK_SIZE {
            st.eof = true;
        }
        let first = st.first.take();
        if chunk.is_empty() && first.is_none() {
            return None;
        }
        st.total += chunk.len() as u64;
        (st.progress)(st.total);
        let (format, default_names) = first.unwrap_or((ArchiveFormat::Unspecified, Vec::new()));
        let msg = LoadImagesRequest {
            chunk: chunk.into(),
            format: format as i32,
            default_names,
        };
        Some((msg, st))
    });
    (stream, rx)
}

/// Reads until `CHUNK_SIZE` bytes or end of input.
async fn read_chunk<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut filled = 0;
    while filled < CHUNK_SIZE {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::StreamExt;

    use super::*;

    async fn collect(data: Vec<u8>) -> (Vec<LoadImagesRequest>, Vec<u64>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        let (stream, _rx) = chunks(
            std::io::Cursor::new(data),
            ArchiveFormat::Oci,
            vec!["localhost/x:1".into()],
            move |n| seen2.lock().unwrap().push(n),
        );
        let msgs: Vec<_> = stream.collect().await;
        let progress = seen.lock().unwrap().clone();
        (msgs, progress)
    }

    #[tokio::test]
    async fn splits_into_chunks_and_reports_progress() {
        let data: Vec<u8> = (0..(2 * CHUNK_SIZE + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let (msgs, progress) = collect(data.clone()).await;
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].chunk.len(), CHUNK_SIZE);
        assert_eq!(msgs[2].chunk.len(), 10);
        assert_eq!(msgs[0].format, ArchiveFormat::Oci as i32);
        assert_eq!(msgs[0].default_names, vec!["localhost/x:1".to_owned()]);
        assert_eq!(msgs[1].format, 0);
        assert!(msgs[1].default_names.is_empty());
        let joined: Vec<u8> = msgs.iter().flat_map(|m| m.chunk.clone()).collect();
        assert_eq!(joined, data);
        assert_eq!(
            progress,
            vec![CHUNK_SIZE as u64, 2 * CHUNK_SIZE as u64, data.len() as u64]
        );
    }

    #[tokio::test]
    async fn exact_multiple_ends_without_an_empty_message() {
        let (msgs, _) = collect(vec![7u8; CHUNK_SIZE]).await;
        assert_eq!(msgs.len(), 1);
    }

    #[tokio::test]
    async fn empty_input_still_sends_the_format() {
        let (msgs, progress) = collect(Vec::new()).await;
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].chunk.is_empty());
        assert_eq!(msgs[0].format, ArchiveFormat::Oci as i32);
        assert_eq!(progress, vec![0]);
    }

    struct Failing;

    impl AsyncRead for Failing {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            _buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::other("disk on fire")))
        }
    }

    #[tokio::test]
    async fn read_error_is_reported_and_stream_never_ends() {
        let (stream, rx) = chunks(Failing, ArchiveFormat::Unspecified, Vec::new(), |_| {});
        let mut stream = Box::pin(stream);
        tokio::select! {
            _ = stream.next() => panic!("the stream must not yield or end after a read error"),
            err = rx => assert_eq!(err.unwrap().to_string(), "disk on fire"),
        }
    }
}
