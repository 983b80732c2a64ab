//! Accepting the `:authority` that gRPC clients send over a unix socket.
//!
//! gRPC C-core (Python, C++, Ruby, …) sends the %-encoded socket path as the HTTP/2
//! `:authority` of a `unix://` channel (`tmp%2Frun%2Fimaged.sock`), grpc-java and grpcurl 1.8
//! the raw path (`/run/imaged/imaged.sock`). Neither is an RFC 3986 authority, and the
//! server's HTTP/2 layer (h2, `server::Peer::convert_poll_message`) parses `:authority` with
//! `http::uri::Authority` and answers anything it cannot parse with `RST_STREAM
//! PROTOCOL_ERROR` before a request reaches the service. No released h2 tolerates it and no
//! hyper/tonic hook runs before that check, so the fix sits below them: [`FixAuthority`]
//! wraps each accepted unix connection and rewrites, on the client→server side only, a
//! request's `:authority` that `http::uri::Authority` rejects to `localhost` (the name a
//! unix-socket peer has). Every other byte, and all server→client bytes, pass untouched.
//!
//! How ([`Rewriter`]): the client→server byte stream is split into HTTP/2 frames. Each
//! header block (HEADERS plus its CONTINUATIONs, padding and priority included) is buffered
//! and HPACK-decoded with a decoder that mirrors the client's encoder dynamic table
//! (`loona-hpack`, dynamic table capped at the 4096 bytes the server allows: it advertises
//! no SETTINGS_HEADER_TABLE_SIZE). While every authority is valid the block's original
//! bytes are forwarded (the server's decoder table then stays identical to the client's).
//! From the first block with an invalid authority on, each block is re-encoded as literals
//! without indexing and without dynamic table size updates, so the server's decoder table
//! is frozen and never referenced again, and split into frames of at most 16384 bytes (the
//! HTTP/2 minimum SETTINGS_MAX_FRAME_SIZE, which the server accepts whatever it
//! advertises). Priority information and END_STREAM are kept; padding is dropped.
//!
//! Bounds: a header block is buffered only up to the server's header list limit (plus room
//! for framing), and decoded only while the decoded list stays within it. A larger block, an
//! HPACK error or any framing the rewriter does not expect (no preface, CONTINUATION out of
//! place, a client PUSH_PROMISE, bad padding) ends rewriting on that connection: what was
//! buffered and everything after it is forwarded verbatim, and the server's HTTP/2 layer
//! answers it as it would without this module.
//!
//! Known loss: on a re-encoded block, the "never indexed" hint of a field is not kept (it
//! only matters to intermediaries that re-encode; the server is the last hop).

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use loona_hpack::Decoder;
use loona_hpack::encoder::encode_integer_into;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// The HTTP/2 client connection preface.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The size of an HTTP/2 frame header.
const FRAME_HEADER: usize = 9;
/// The largest frame payload emitted (the HTTP/2 minimum of SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME: usize = 16_384;
/// HPACK dynamic table size the server allows (the HTTP/2 default; it advertises no other).
const HEADER_TABLE_SIZE: usize = 4_096;
/// Room for frame headers, padding and priority fields on top of the header list limit.
const FRAMING_SLACK: usize = 4_096;
/// The header list limit of the server (hyper's default `max_header_list_size`).
pub(crate) const DEFAULT_MAX_HEADER_LIST: usize = 16 * 1024;
/// The authority that replaces an invalid one.
const REPLACEMENT: &[u8] = b"localhost";

const TYPE_HEADERS: u8 = 0x1;
const TYPE_PUSH_PROMISE: u8 = 0x5;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// What the rewriter does with header blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Decode each block (to mirror the client's table) and forward its original bytes.
    Mirror,
    /// Decode each block and forward it re-encoded without the dynamic table.
    Rewrite,
    /// Forward every byte as it comes.
    Verbatim,
}

/// Where the frame parser is.
#[derive(Debug, Clone, Copy)]
enum Parse {
    /// Inside the connection preface, after this many matching bytes.
    Preface(usize),
    /// Inside a frame header, after this many bytes (kept in `Rewriter::head`).
    Head(usize),
    /// Forwarding a frame payload: this many bytes left.
    Pass(usize),
    /// Buffering a header-block frame payload: this many bytes left.
    Block(usize),
}

/// A header block being buffered.
#[derive(Debug, Default)]
struct Block {
    /// The frames as received, headers included.
    raw: Vec<u8>,
    /// Where the payload of the frame being received starts in `raw`.
    payload_at: usize,
    /// The stream of the HEADERS frame.
    stream: u32,
    /// The flags of the HEADERS frame.
    flags: u8,
    /// The HEADERS frame's priority fields, if it had the PRIORITY flag.
    priority: Option<[u8; 5]>,
    /// The header block fragment, padding and priority removed.
    fragment: Vec<u8>,
}

/// The client→server half of the `:authority` fix: feed it bytes as read from the client,
/// it appends the bytes to give the server.
pub(crate) struct Rewriter {
    mode: Mode,
    parse: Parse,
    head: [u8; FRAME_HEADER],
    block: Option<Block>,
    decoder: Decoder<'static>,
    max_header_list: usize,
    /// Scratch for the re-encoded block.
    encoded: Vec<u8>,
    /// Header blocks whose `:authority` was replaced.
    replaced: u64,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter")
            .field("mode", &self.mode)
            .field("parse", &self.parse)
            .field("replaced", &self.replaced)
            .finish_non_exhaustive()
    }
}

impl Rewriter {
    /// A rewriter for a new connection whose server accepts header lists of at most
    /// `max_header_list` bytes (HTTP/2 accounting: name + value + 32 per field).
    pub(crate) fn new(max_header_list: usize) -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Self {
            mode: Mode::Mirror,
            parse: Parse::Preface(0),
            head: [0; FRAME_HEADER],
            block: None,
            decoder,
            max_header_list,
            encoded: Vec::new(),
            replaced: 0,
        }
    }

    /// Header blocks whose `:authority` was replaced so far.
    #[cfg(test)]
    fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Whether every further byte passes untouched.
    #[cfg(test)]
    fn is_verbatim(&self) -> bool {
        self.mode == Mode::Verbatim
    }

    /// How many of the next client bytes can go to the server unprocessed: the rest of a
    /// payload being forwarded, or everything once verbatim. `None` when the next bytes must
    /// go through [`Rewriter::feed`].
    fn pass_budget(&self) -> Option<usize> {
        match (self.mode, self.parse) {
            (Mode::Verbatim, _) => Some(usize::MAX),
            (_, Parse::Pass(n)) if n > 0 => Some(n),
            _ => None,
        }
    }

    /// Records that `n` bytes (within [`Rewriter::pass_budget`]) went to the server directly.
    fn passed(&mut self, n: usize) {
        if let Parse::Pass(left) = &mut self.parse {
            *left = left.saturating_sub(n);
            if *left == 0 {
                self.parse = Parse::Head(0);
            }
        }
    }

    /// Takes client bytes, appends what the server gets to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            if self.mode == Mode::Verbatim {
                out.extend_from_slice(input);
                return;
            }
            match self.parse {
                Parse::Preface(matched) => {
                    let n = (PREFACE.len() - matched).min(input.len());
                    if input[..n] != PREFACE[matched..matched + n] {
                        // Not HTTP/2 with prior knowledge: the server judges it.
                        self.mode = Mode::Verbatim;
                        continue;
                    }
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.parse = if matched + n == PREFACE.len() {
                        Parse::Head(0)
                    } else {
                        Parse::Preface(matched + n)
                    };
                }
                Parse::Head(have) => {
                    let n = (FRAME_HEADER - have).min(input.len());
                    self.head[have..have + n].copy_from_slice(&input[..n]);
                    input = &input[n..];
                    if have + n == FRAME_HEADER {
                        self.on_frame_head(out);
                    } else {
                        self.parse = Parse::Head(have + n);
                    }
                }
                Parse::Pass(left) => {
                    let n = left.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.passed(n);
                }
                Parse::Block(left) => {
                    let n = left.min(input.len());
                    if let Some(b) = &mut self.block {
                        b.raw.extend_from_slice(&input[..n]);
                    }
                    input = &input[n..];
                    if n == left {
                        self.on_block_frame(out);
                    } else {
                        self.parse = Parse::Block(left - n);
                    }
                }
            }
        }
    }

    /// The client closed its side: whatever is still buffered goes to the server as it came
    /// (an incomplete block; the server sees the same truncated stream).
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(b) = self.block.take() {
            out.extend_from_slice(&b.raw);
        }
        if let Parse::Head(have) = self.parse {
            out.extend_from_slice(&self.head[..have]);
        }
        self.mode = Mode::Verbatim;
    }

    /// Gives up on this connection: forwards what is buffered, then everything verbatim.
    fn abandon(&mut self, out: &mut Vec<u8>) {
        if let Some(b) = self.block.take() {
            out.extend_from_slice(&b.raw);
        }
        self.mode = Mode::Verbatim;
    }

    fn on_frame_head(&mut self, out: &mut Vec<u8>) {
        let h = self.head;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let max_raw = self.max_header_list + FRAMING_SLACK;
        self.parse = Parse::Pass(len);
        if let Some(b) = &mut self.block {
            if kind != TYPE_CONTINUATION
                || stream != b.stream
                || b.raw.len() + FRAME_HEADER + len > max_raw
            {
                // Interleaved frame (a connection error for the server) or too large.
                self.abandon(out);
                out.extend_from_slice(&h);
                return;
            }
            b.raw.extend_from_slice(&h);
            b.payload_at = b.raw.len();
        } else {
            match kind {
                TYPE_HEADERS if FRAME_HEADER + len <= max_raw => {
                    let mut raw = Vec::with_capacity(FRAME_HEADER + len);
                    raw.extend_from_slice(&h);
                    self.block = Some(Block {
                        raw,
                        payload_at: FRAME_HEADER,
                        stream,
                        flags,
                        ..Block::default()
                    });
                }
                TYPE_HEADERS | TYPE_CONTINUATION | TYPE_PUSH_PROMISE => {
                    // Too large, out of place, or not a client's frame: the server judges.
                    self.abandon(out);
                    out.extend_from_slice(&h);
                    return;
                }
                _ => {
                    out.extend_from_slice(&h);
                    if len == 0 {
                        self.parse = Parse::Head(0);
                    }
                    return;
                }
            }
        }
        self.parse = Parse::Block(len);
        if len == 0 {
            self.on_block_frame(out);
        }
    }

    /// A HEADERS or CONTINUATION frame of the block is complete.
    fn on_block_frame(&mut self, out: &mut Vec<u8>) {
        self.parse = Parse::Head(0);
        let Some(b) = &mut self.block else {
            return;
        };
        let frame_head = &b.raw[b.payload_at - FRAME_HEADER..b.payload_at];
        let (kind, flags) = (frame_head[3], frame_head[4]);
        let mut payload = &b.raw[b.payload_at..];
        if kind == TYPE_HEADERS {
            let mut pad = 0;
            if flags & FLAG_PADDED != 0 {
                let Some((&p, rest)) = payload.split_first() else {
                    return self.abandon(out);
                };
                pad = usize::from(p);
                payload = rest;
            }
            if flags & FLAG_PRIORITY != 0 {
                let Some((prio, rest)) = payload.split_first_chunk::<5>() else {
                    return self.abandon(out);
                };
                b.priority = Some(*prio);
                payload = rest;
            }
            let Some(end) = payload.len().checked_sub(pad) else {
                return self.abandon(out);
            };
            payload = &payload[..end];
        }
        b.fragment.extend_from_slice(payload);
        if flags & FLAG_END_HEADERS != 0 {
            self.finish_block(out);
        }
    }

    /// A whole header block is in: decode it, forward it as it came or re-encoded.
    fn finish_block(&mut self, out: &mut Vec<u8>) {
        let Some(block) = self.block.take() else {
            return;
        };
        self.encoded.clear();
        let encoded = &mut self.encoded;
        let limit = self.max_header_list;
        let mut list_size = 0usize;
        let mut invalid_authority = false;
        let decoded = self.decoder.decode_with_cb(&block.fragment, |name, value| {
            list_size = list_size.saturating_add(name.len() + value.len() + 32);
            if list_size > limit {
                return;
            }
            let mut value = value;
            if &*name == b":authority" && http::uri::Authority::try_from(&*value).is_err() {
                invalid_authority = true;
                value = Cow::Borrowed(REPLACEMENT);
            }
            // Literal header field without indexing, new name (RFC 7541 §6.2.2), no Huffman.
            encoded.push(0);
            encode_string(&name, encoded);
            encode_string(&value, encoded);
        });
        if decoded.is_err() || list_size > limit {
            // Let the server judge the original bytes (it resets or closes as it would).
            out.extend_from_slice(&block.raw);
            self.mode = Mode::Verbatim;
            return;
        }
        if invalid_authority {
            if self.replaced == 0 {
                tracing::debug!(
                    stream = block.stream,
                    "invalid :authority replaced by localhost"
                );
            }
            self.replaced += 1;
            self.mode = Mode::Rewrite;
        }
        if self.mode == Mode::Mirror {
            out.extend_from_slice(&block.raw);
        } else {
            emit_block(
                out,
                block.stream,
                block.flags,
                block.priority,
                &self.encoded,
            );
        }
    }
}

/// An HPACK string literal without Huffman coding (RFC 7541 §5.2).
fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = encode_integer_into(s.len(), 7, 0, out);
    out.extend_from_slice(s);
}

/// Writes a header block as a HEADERS frame and as many CONTINUATION frames as needed,
/// each payload at most [`MAX_FRAME`] bytes.
fn emit_block(out: &mut Vec<u8>, stream: u32, flags: u8, priority: Option<[u8; 5]>, block: &[u8]) {
    let mut rest = block;
    let mut first = true;
    loop {
        let prio: &[u8] = match (first, &priority) {
            (true, Some(p)) => p,
            _ => &[],
        };
        let n = rest.len().min(MAX_FRAME - prio.len());
        let last = n == rest.len();
        let (kind, mut f) = if first {
            (TYPE_HEADERS, flags & (FLAG_END_STREAM | FLAG_PRIORITY))
        } else {
            (TYPE_CONTINUATION, 0)
        };
        if last {
            f |= FLAG_END_HEADERS;
        }
        let len = prio.len() + n;
        // len <= MAX_FRAME < 2^24.
        out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, f]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(prio);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        first = false;
        if last {
            return;
        }
    }
}

/// Wraps every connection a unix listener accepts in [`FixAuthority`].
pub(crate) fn fix_each<IO, E>(
    accepted: impl tokio_stream::Stream<Item = Result<IO, E>>,
) -> impl tokio_stream::Stream<Item = Result<FixAuthority<IO>, E>> {
    tokio_stream::StreamExt::map(accepted, |conn| conn.map(FixAuthority::new))
}

/// A unix connection with the `:authority` fix on its read side (see the module docs).
#[derive(Debug)]
pub(crate) struct FixAuthority<IO> {
    inner: IO,
    rewriter: Rewriter,
    /// Bytes read from the client, before the rewriter.
    scratch: Box<[u8]>,
    /// Bytes for the server, after the rewriter; `out[out_at..]` not yet handed out.
    out: Vec<u8>,
    out_at: usize,
    eof: bool,
}

impl<IO> FixAuthority<IO> {
    /// Wraps an accepted connection.
    pub(crate) fn new(inner: IO) -> Self {
        Self {
            inner,
            rewriter: Rewriter::new(DEFAULT_MAX_HEADER_LIST),
            scratch: vec![0; MAX_FRAME].into_boxed_slice(),
            out: Vec::new(),
            out_at: 0,
            eof: false,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FixAuthority<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_at < this.out.len() {
                let n = (this.out.len() - this.out_at).min(buf.remaining());
                buf.put_slice(&this.out[this.out_at..this.out_at + n]);
                this.out_at += n;
                if this.out_at == this.out.len() {
                    this.out.clear();
                    this.out_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Some(budget) = this.rewriter.pass_budget() {
                // Payloads that pass untouched go straight into the caller's buffer.
                let dst = buf.initialize_unfilled_to(budget.min(buf.remaining()));
                let mut direct = ReadBuf::new(dst);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut direct))?;
                let n = direct.filled().len();
                buf.advance(n);
                this.rewriter.passed(n);
                if n == 0 {
                    this.eof = true;
                    this.rewriter.finish(&mut this.out);
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
                this.rewriter.finish(&mut this.out);
            } else {
                this.rewriter.feed(read.filled(), &mut this.out);
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FixAuthority<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for FixAuthority<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loona_hpack::Encoder;

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    /// A frame as the server reads it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Frame {
        kind: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    }

    /// Splits a client stream (preface first) into frames.
    fn frames(mut bytes: &[u8]) -> Vec<Frame> {
        assert!(bytes.starts_with(PREFACE), "no preface");
        bytes = &bytes[PREFACE.len()..];
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert!(bytes.len() >= FRAME_HEADER, "truncated frame header");
            let len =
                usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            out.push(Frame {
                kind: bytes[3],
                flags: bytes[4],
                stream,
                payload: bytes[FRAME_HEADER..FRAME_HEADER + len].to_vec(),
            });
            bytes = &bytes[FRAME_HEADER + len..];
        }
        out
    }

    fn raw_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// What the server's HPACK decoder makes of the header blocks, in order, as
    /// (stream, fields); also checks the frame size limit and that the server's decoder
    /// state is consistent across blocks.
    fn server_view(bytes: &[u8]) -> Vec<(u32, Fields)> {
        let mut decoder = Decoder::new();
        let mut blocks = Vec::new();
        let mut pending: Option<(u32, Vec<u8>)> = None;
        for f in frames(bytes) {
            assert!(f.payload.len() <= MAX_FRAME, "frame over 16384 bytes");
            match f.kind {
                TYPE_HEADERS => {
                    assert!(pending.is_none(), "HEADERS inside a block");
                    let mut p = &f.payload[..];
                    let mut pad = 0;
                    if f.flags & FLAG_PADDED != 0 {
                        pad = usize::from(p[0]);
                        p = &p[1..];
                    }
                    if f.flags & FLAG_PRIORITY != 0 {
                        p = &p[5..];
                    }
                    pending = Some((f.stream, p[..p.len() - pad].to_vec()));
                }
                TYPE_CONTINUATION => {
                    let (stream, frag) = pending.as_mut().expect("CONTINUATION outside a block");
                    assert_eq!(*stream, f.stream);
                    frag.extend_from_slice(&f.payload);
                }
                _ => {
                    assert!(pending.is_none(), "frame inside a block");
                    continue;
                }
            }
            if f.flags & FLAG_END_HEADERS != 0 {
                let (stream, frag) = pending.take().expect("block");
                blocks.push((
                    stream,
                    decoder.decode(&frag).expect("server decodes the block"),
                ));
            }
        }
        assert!(pending.is_none(), "unfinished block");
        blocks
    }

    fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
        fields
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| &v[..])
    }

    fn run(r: &mut Rewriter, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        r.feed(input, &mut out);
        out
    }

    /// Feeds `input` in pieces of `step` bytes.
    fn run_chunked(input: &[u8], step: usize) -> Vec<u8> {
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            r.feed(piece, &mut out);
        }
        out
    }

    fn request(authority: &str, path: &str) -> Fields {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
    }

    fn encode(encoder: &mut Encoder<'_>, fields: &Fields) -> Vec<u8> {
        encoder.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    fn with_authority(mut fields: Fields, authority: &str) -> Fields {
        for (n, v) in &mut fields {
            if n == b":authority" {
                *v = authority.as_bytes().to_vec();
            }
        }
        fields
    }

    fn client_stream(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut s = PREFACE.to_vec();
        s.extend(raw_frame(0x4, 0, 0, &[]));
        for (i, b) in blocks.iter().enumerate() {
            let stream = 1 + 2 * i as u32;
            s.extend(raw_frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, b));
            s.extend(raw_frame(0x0, FLAG_END_STREAM, stream, b"\0\0\0\0\0"));
        }
        s
    }

    const GRPCIO: &[u8] = include_bytes!("../testdata/grpcio-unix-client.bin");
    const GRPCURL: &[u8] = include_bytes!("../testdata/grpcurl-unix-client.bin");

    #[test]
    fn grpcio_percent_encoded_authority_becomes_localhost_across_requests() {
        let before = server_view(GRPCIO);
        assert_eq!(before.len(), 2, "two requests captured");
        for (_, fields) in &before {
            let a = field(fields, ":authority").expect(":authority");
            assert!(
                a.windows(3).any(|w| w == b"%2F"),
                "{}",
                String::from_utf8_lossy(a)
            );
            assert!(http::uri::Authority::try_from(a).is_err());
        }
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        let out = run(&mut r, GRPCIO);
        assert_eq!(r.replaced(), 2);
        let after = server_view(&out);
        assert_eq!(after.len(), 2);
        for ((s0, f0), (s1, f1)) in before.iter().zip(&after) {
            assert_eq!(s0, s1);
            assert_eq!(f1, &with_authority(f0.clone(), "localhost"));
        }
        // The second request's block indexes the dynamic table; it decoded to the same
        // fields as the first except grpc-timeout.
        assert_eq!(
            field(&after[1].1, ":path"),
            Some(&b"/imaged.v1.ImageService/ListImages"[..])
        );
        // Every frame that is not a header block is unchanged and in order.
        let others = |b: &[u8]| -> Vec<Frame> {
            frames(b)
                .into_iter()
                .filter(|f| f.kind != TYPE_HEADERS && f.kind != TYPE_CONTINUATION)
                .collect()
        };
        assert_eq!(others(GRPCIO), others(&out));
        // Any split of the input gives the same bytes.
        for step in [1, 2, 7, 9, 10, 64] {
            assert_eq!(run_chunked(GRPCIO, step), out, "step {step}");
        }
    }

    #[test]
    fn grpcurl_huffman_coded_raw_path_becomes_localhost() {
        let before = server_view(GRPCURL);
        let a = field(&before[0].1, ":authority").expect(":authority");
        assert!(a.starts_with(b"/"), "{}", String::from_utf8_lossy(a));
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        let out = run(&mut r, GRPCURL);
        assert_eq!(r.replaced(), 1);
        let after = server_view(&out);
        assert_eq!(after.len(), before.len());
        assert_eq!(after[0].1, with_authority(before[0].1.clone(), "localhost"));
        assert_eq!(
            field(&after[0].1, ":path"),
            Some(&b"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"[..])
        );
    }

    #[test]
    fn valid_authorities_pass_byte_for_byte() {
        let mut enc = Encoder::new();
        let blocks: Vec<Vec<u8>> = ["localhost", "localhost", "example.com:443", "[::1]:50051"]
            .iter()
            .map(|a| encode(&mut enc, &request(a, "/p")))
            .collect();
        let input = client_stream(&blocks);
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        assert_eq!(run(&mut r, &input), input);
        assert_eq!(r.replaced(), 0);
        assert!(!r.is_verbatim());
    }

    #[test]
    fn dynamic_table_across_mirrored_and_rewritten_blocks() {
        // The client's encoder indexes fields whose name is new (`te`): later blocks
        // reference entries added by blocks forwarded as they were and by re-encoded ones.
        let mut enc = Encoder::new();
        let wanted = [
            request("localhost", "/a"),
            request("%2Frun%2Fimaged.sock", "/b"),
            request("%2Frun%2Fimaged.sock", "/b"),
            request("localhost", "/a"),
            request("/run/imaged.sock", "/c"),
        ];
        let blocks: Vec<Vec<u8>> = wanted.iter().map(|f| encode(&mut enc, f)).collect();
        assert!(
            blocks[2].contains(&(0x80 | 62)),
            "the third block uses the dynamic table: {:?}",
            blocks[2]
        );
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        let out = run(&mut r, &client_stream(&blocks));
        assert_eq!(r.replaced(), 3);
        let view = server_view(&out);
        let got: Vec<&Fields> = view.iter().map(|(_, f)| f).collect();
        assert_eq!(got[0], &wanted[0]);
        assert_eq!(got[1], &with_authority(wanted[1].clone(), "localhost"));
        assert_eq!(got[2], &with_authority(wanted[2].clone(), "localhost"));
        assert_eq!(got[3], &wanted[3], "a valid authority is kept");
        assert_eq!(got[4], &with_authority(wanted[4].clone(), "localhost"));
        // The first block went through unchanged.
        let first = &frames(&out)[1];
        assert_eq!(first.payload, blocks[0]);
    }

    #[test]
    fn an_indexed_invalid_authority_is_replaced_where_it_is_referenced() {
        // As grpcio does: the authority is added to the dynamic table (literal with
        // incremental indexing, name :authority = static 1), then referenced by index 62.
        let sock = b"/run/imaged/imaged.sock";
        let mut first = vec![0x83, 0x86, 0x84, 0x41, sock.len() as u8];
        first.extend_from_slice(sock);
        let second = vec![0x83, 0x86, 0x84, 0x80 | 62];
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        let out = run(&mut r, &client_stream(&[first, second.clone(), second]));
        assert_eq!(r.replaced(), 3);
        let want: Fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "localhost"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        let view = server_view(&out);
        assert_eq!(view.len(), 3);
        for (_, fields) in view {
            assert_eq!(fields, want);
        }
    }

    #[test]
    fn continuation_padding_and_priority() {
        let mut enc = Encoder::new();
        let mut fields = request("%2Frun%2Fimaged.sock", "/svc/M");
        fields.push((b"x-big".to_vec(), vec![b'v'; 3000]));
        let block = encode(&mut enc, &fields);
        let (a, rest) = block.split_at(10);
        let (b, c) = rest.split_at(rest.len() / 2);
        let prio = [0x80, 0, 0, 3, 200]; // exclusive, depends on stream 3, weight 201
        let mut headers = vec![4]; // pad length
        headers.extend_from_slice(&prio);
        headers.extend_from_slice(a);
        headers.extend_from_slice(&[0; 4]);
        let mut input = PREFACE.to_vec();
        input.extend(raw_frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            5,
            &headers,
        ));
        input.extend(raw_frame(TYPE_CONTINUATION, 0, 5, b));
        input.extend(raw_frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 5, c));
        input.extend(raw_frame(0x8, 0, 0, &[0, 0, 1, 0])); // WINDOW_UPDATE after the block

        for step in [1, 3, 1000, input.len()] {
            let out = run_chunked(&input, step);
            let fs = frames(&out);
            let h = &fs[0];
            assert_eq!(h.kind, TYPE_HEADERS);
            assert_eq!(h.stream, 5);
            assert_eq!(
                h.flags,
                FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS,
                "padding dropped, priority and END_STREAM kept"
            );
            assert_eq!(&h.payload[..5], &prio);
            assert_eq!(
                fs[1],
                Frame {
                    kind: 0x8,
                    flags: 0,
                    stream: 0,
                    payload: vec![0, 0, 1, 0]
                }
            );
            let view = server_view(&out);
            assert_eq!(view, vec![(5, with_authority(fields.clone(), "localhost"))]);
        }
    }

    #[test]
    fn rewritten_blocks_are_split_at_16384() {
        let fields = {
            let mut f = request("/run/imaged.sock", "/svc/M");
            f.push((b"x-big".to_vec(), vec![b'v'; 40_000]));
            f
        };
        let block = encode(&mut Encoder::new(), &fields);
        let mut input = PREFACE.to_vec();
        let (a, b) = block.split_at(16_000);
        let (b, c) = b.split_at(16_000);
        input.extend(raw_frame(TYPE_HEADERS, 0, 1, a));
        input.extend(raw_frame(TYPE_CONTINUATION, 0, 1, b));
        input.extend(raw_frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, c));
        let mut r = Rewriter::new(64 * 1024);
        let out = run(&mut r, &input);
        let fs = frames(&out);
        assert!(fs.len() >= 3, "{} frames", fs.len());
        assert!(fs.iter().all(|f| f.payload.len() <= MAX_FRAME));
        assert_eq!(
            server_view(&out),
            vec![(1, with_authority(fields, "localhost"))]
        );
    }

    #[test]
    fn a_block_over_the_limit_passes_verbatim() {
        // Decoded over the limit (though small encoded): a 4000-byte value indexed 5 times.
        let mut fields = request("/run/imaged.sock", "/svc/M");
        for _ in 0..5 {
            fields.push((b"x-big".to_vec(), vec![b'v'; 4_000]));
        }
        let block = encode(&mut Encoder::new(), &fields);
        assert!(block.len() < 5_000);
        let input = client_stream(&[block]);
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        assert_eq!(run(&mut r, &input), input);
        assert!(r.is_verbatim());

        // Encoded over the limit: not even buffered.
        let mut fields = request("/run/imaged.sock", "/svc/M");
        fields.push((b"x-big".to_vec(), vec![b'v'; 30_000]));
        let block = encode(&mut Encoder::new(), &fields);
        let mut input = PREFACE.to_vec();
        input.extend(raw_frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block));
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        let mut out = Vec::new();
        r.feed(&input[..PREFACE.len() + FRAME_HEADER], &mut out);
        assert!(r.is_verbatim(), "decided on the frame header");
        r.feed(&input[PREFACE.len() + FRAME_HEADER..], &mut out);
        assert_eq!(out, input);

        // Endless empty CONTINUATIONs: buffering stops at the limit.
        let mut input = PREFACE.to_vec();
        input.extend(raw_frame(TYPE_HEADERS, 0, 1, &[]));
        for _ in 0..3_000 {
            input.extend(raw_frame(TYPE_CONTINUATION, 0, 1, &[]));
        }
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        assert_eq!(run(&mut r, &input), input);
        assert!(r.is_verbatim());
    }

    #[test]
    fn malformed_input_is_passed_through_for_the_server_to_judge() {
        let bad_hpack = {
            // Indexed field 70: nothing in the dynamic table.
            client_stream(&[vec![0x80 | 70]])
        };
        let table_too_big = {
            // Dynamic table size update to 8192: more than the server allows.
            let mut b = vec![0x3f, 0xe1, 0x3f];
            b.extend(encode(&mut Encoder::new(), &request("/s", "/p")));
            client_stream(&[b])
        };
        let interleaved = {
            let mut s = PREFACE.to_vec();
            s.extend(raw_frame(TYPE_HEADERS, 0, 1, &[0x82]));
            s.extend(raw_frame(0x0, 0, 1, b"data"));
            s.extend(raw_frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &[0x86]));
            s
        };
        let continuation_on_other_stream = {
            let mut s = PREFACE.to_vec();
            s.extend(raw_frame(TYPE_HEADERS, 0, 1, &[0x82]));
            s.extend(raw_frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[0x86]));
            s
        };
        let lone_continuation = {
            let mut s = PREFACE.to_vec();
            s.extend(raw_frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &[0x86]));
            s
        };
        let push_promise = {
            let mut s = PREFACE.to_vec();
            s.extend(raw_frame(
                TYPE_PUSH_PROMISE,
                FLAG_END_HEADERS,
                1,
                &[0, 0, 0, 2, 0x82],
            ));
            s
        };
        let bad_padding = {
            let mut s = PREFACE.to_vec();
            s.extend(raw_frame(
                TYPE_HEADERS,
                FLAG_PADDED | FLAG_END_HEADERS,
                1,
                &[9, 0x82],
            ));
            s
        };
        let short_priority = {
            let mut s = PREFACE.to_vec();
            s.extend(raw_frame(
                TYPE_HEADERS,
                FLAG_PRIORITY | FLAG_END_HEADERS,
                1,
                &[0, 0],
            ));
            s
        };
        let http1 = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        for (name, input) in [
            ("bad hpack", bad_hpack),
            ("table too big", table_too_big),
            ("interleaved", interleaved),
            (
                "continuation on another stream",
                continuation_on_other_stream,
            ),
            ("lone continuation", lone_continuation),
            ("push promise", push_promise),
            ("bad padding", bad_padding),
            ("short priority", short_priority),
            ("http/1.1", http1),
        ] {
            for step in [1, 5, input.len()] {
                let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
                let mut out = Vec::new();
                for piece in input.chunks(step) {
                    r.feed(piece, &mut out);
                }
                r.finish(&mut out);
                assert_eq!(out, input, "{name}, step {step}");
                assert!(r.is_verbatim(), "{name}");
                // And everything after goes through too.
                r.feed(b"more", &mut out);
                assert!(out.ends_with(b"more"), "{name}");
            }
        }
    }

    #[test]
    fn a_truncated_stream_is_flushed_at_eof() {
        let block = encode(&mut Encoder::new(), &request("/s", "/p"));
        let mut input = PREFACE.to_vec();
        input.extend(raw_frame(TYPE_HEADERS, 0, 1, &block));
        input.extend(&raw_frame(TYPE_CONTINUATION, 0, 1, &[])[..4]);
        let mut r = Rewriter::new(DEFAULT_MAX_HEADER_LIST);
        let mut out = run(&mut r, &input);
        assert!(out.len() < input.len(), "the open block is held");
        r.finish(&mut out);
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn the_connection_wrapper_rewrites_reads_and_passes_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A DATA frame big enough to take the direct path several times.
        let mut input = GRPCIO.to_vec();
        input.extend(raw_frame(0x0, FLAG_END_STREAM, 5, &vec![7; 100_000]));
        let expected = run(&mut Rewriter::new(DEFAULT_MAX_HEADER_LIST), &input);

        let (mut client, server) = tokio::io::duplex(4096);
        let mut conn = FixAuthority::new(server);
        let writer = {
            let input = input.clone();
            tokio::spawn(async move {
                for piece in input.chunks(1000) {
                    client.write_all(piece).await?;
                }
                client.shutdown().await?;
                let mut back = Vec::new();
                client.read_to_end(&mut back).await?;
                Ok::<_, io::Error>(back)
            })
        };
        let mut got = Vec::new();
        let mut buf = [0u8; 3000];
        loop {
            let n = conn.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, expected);
        conn.write_all(b"server to client").await.expect("write");
        conn.shutdown().await.expect("shutdown");
        drop(conn);
        let back = writer.await.expect("join").expect("client io");
        assert_eq!(back, b"server to client");
    }

    /// What a real tonic/h2 server answers on stream 1 to the first request of a captured
    /// client (up to its END_STREAM), over `conn`: the response HEADERS frame's type, or
    /// RST_STREAM and its error code.
    async fn first_answer<IO>(
        capture: &[u8],
        conn: IO,
        client: tokio::io::DuplexStream,
    ) -> (u8, u32)
    where
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (_reporter, health) = tonic_health::server::health_reporter();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(
                    tokio_stream::iter([Ok::<_, io::Error>(conn)]),
                    async {
                        let _ = stop_rx.await;
                    },
                ),
        );
        // The preface and every frame up to stream 1's END_STREAM.
        let mut end = PREFACE.len();
        for f in frames(capture) {
            end += FRAME_HEADER + f.payload.len();
            if f.stream == 1 && f.flags & FLAG_END_STREAM != 0 {
                break;
            }
        }
        let (mut rd, mut wr) = tokio::io::split(client);
        wr.write_all(&capture[..end]).await.expect("send");
        let mut got = Vec::new();
        let answer = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            let mut buf = [0u8; 4096];
            loop {
                // Server frames, no preface.
                let mut at = 0;
                while got.len() >= at + FRAME_HEADER {
                    let h = &got[at..at + FRAME_HEADER];
                    let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    if got.len() < at + FRAME_HEADER + len {
                        break;
                    }
                    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
                    let payload = &got[at + FRAME_HEADER..at + FRAME_HEADER + len];
                    match (h[3], stream) {
                        (TYPE_HEADERS, 1) => return (TYPE_HEADERS, 0),
                        (0x3, 1) => {
                            let code = u32::from_be_bytes([
                                payload[0], payload[1], payload[2], payload[3],
                            ]);
                            return (0x3, code);
                        }
                        _ => at += FRAME_HEADER + len,
                    }
                }
                let n = rd.read(&mut buf).await.expect("read");
                assert!(n > 0, "server closed without answering stream 1");
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("an answer within 20 s");
        let _ = stop_tx.send(());
        drop((rd, wr));
        server.await.expect("join").expect("server");
        answer
    }

    #[tokio::test]
    async fn a_real_server_answers_instead_of_resetting() {
        for (name, capture) in [("grpcio", GRPCIO), ("grpcurl", GRPCURL)] {
            // Without the fix: h2 resets the stream, PROTOCOL_ERROR (1).
            let (client, server) = tokio::io::duplex(64 * 1024);
            assert_eq!(
                first_answer(capture, server, client).await,
                (0x3, 1),
                "{name} unwrapped"
            );
            // With it: a response (Unimplemented for grpcio's ListImages; reflection is not
            // served here either), i.e. the request reached the service.
            let (client, server) = tokio::io::duplex(64 * 1024);
            let answer = first_answer(capture, FixAuthority::new(server), client).await;
            assert_eq!(answer, (TYPE_HEADERS, 0), "{name} wrapped");
        }
    }
}
