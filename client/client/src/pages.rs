//! ListImages over every page, pipelined: each page comes back undecoded, its
//! `next_page_token` is read first (one pass over the message's top-level fields) and the
//! next page requested, then the page is decoded on blocking threads (a large page in two
//! halves at once) while the daemon answers the next request. A listing of many pages
//! then costs about what decoding them costs, instead of decoding plus one round trip and
//! one daemon turn per page, taken in turn.

use std::ops::Range;

use bytes::{Buf as _, Bytes};
use imaged_proto::imaged::v1 as pb;
use prost::Message as _;
use prost::encoding::{self, DecodeContext, WireType};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, GrpcMethod, IntoRequest as _};

use crate::ClientError;

/// The ListImages method path.
const LIST_IMAGES: &str = "/imaged.v1.ImageService/ListImages";

/// Sends a ListImagesRequest with prost, returns the response's bytes undecoded.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Undecoded;

impl Codec for Undecoded {
    type Encode = pb::ListImagesRequest;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<pb::ListImagesRequest>;
    type Decoder = Raw;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        Raw
    }
}

/// The message bytes as they came.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Raw;

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// `ListImagesResponse` with only its `next_page_token` (prost skips the other fields
/// without decoding them).
#[derive(Clone, PartialEq, prost::Message)]
struct TokenOnly {
    #[prost(string, tag = "2")]
    next_page_token: String,
}

fn malformed(e: impl std::fmt::Display) -> ClientError {
    ClientError::local(
        crate::ErrorKind::Code(Code::Internal),
        Code::Internal,
        format!("malformed ListImages response: {e}"),
    )
}

/// One page, undecoded.
pub(crate) async fn fetch<T>(
    grpc: &mut tonic::client::Grpc<T>,
    req: pb::ListImagesRequest,
) -> Result<Bytes, ClientError>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    grpc.ready().await.map_err(|e| {
        ClientError::from(Status::unknown(format!("service not ready: {}", e.into())))
    })?;
    let mut request = req.into_request();
    request
        .extensions_mut()
        .insert(GrpcMethod::new("imaged.v1.ImageService", "ListImages"));
    let path = PathAndQuery::from_static(LIST_IMAGES);
    Ok(grpc.unary(request, path, Undecoded).await?.into_inner())
}

/// The `next_page_token` of an undecoded page.
pub(crate) fn next_token(raw: &Bytes) -> Result<String, ClientError> {
    TokenOnly::decode(raw.clone())
        .map(|t| t.next_page_token)
        .map_err(malformed)
}

/// Pages with fewer images than this are decoded on one thread.
const SPLIT_MIN: usize = 256;

/// Decodes a page on blocking threads: a page of [`SPLIT_MIN`] images or more in two
/// halves at once, on two threads (decoding is most of a listing's cost on this side).
/// The result is what prost's decoding of the whole message gives.
pub(crate) async fn decode(raw: Bytes) -> Result<pb::ListImagesResponse, ClientError> {
    let (mut spans, others) = split(&raw)?;
    if spans.len() < SPLIT_MIN {
        return blocking(move || pb::ListImagesResponse::decode(raw)).await;
    }
    let mut page = pb::ListImagesResponse::decode(others.as_slice()).map_err(malformed)?;
    let second = spans.split_off(spans.len() / 2);
    let other = raw.clone();
    let (head, tail) = tokio::try_join!(
        blocking(move || decode_images(&raw, &spans)),
        blocking(move || decode_images(&other, &second)),
    )?;
    page.images = head;
    page.images.extend(tail);
    Ok(page)
}

/// Runs a decoding on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, prost::DecodeError> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(malformed)?
        .map_err(malformed)
}

fn decode_images(raw: &[u8], spans: &[Range<usize>]) -> Result<Vec<pb::Image>, prost::DecodeError> {
    spans
        .iter()
        .map(|r| pb::Image::decode(raw.get(r.clone()).unwrap_or_default()))
        .collect()
}

/// Splits an encoded `ListImagesResponse`: where each image (field 1) is, in order, and
/// every other field, encoded as it came (a message with no images).
fn split(raw: &[u8]) -> Result<(Vec<Range<usize>>, Vec<u8>), ClientError> {
    let mut buf = raw;
    let mut spans = Vec::new();
    let mut others = Vec::new();
    while !buf.is_empty() {
        let field = raw.len() - buf.len();
        let (tag, wire) = encoding::decode_key(&mut buf).map_err(malformed)?;
        match (tag, wire) {
            (1, WireType::LengthDelimited) => {
                let len = encoding::decode_varint(&mut buf).map_err(malformed)?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= buf.len())
                    .ok_or_else(|| malformed("an image runs past the end of the message"))?;
                let start = raw.len() - buf.len();
                spans.push(start..start + len);
                buf.advance(len);
            }
            (1, _) => return Err(malformed("images (field 1) with a wrong wire type")),
            _ => {
                encoding::skip_field(wire, tag, &mut buf, DecodeContext::default())
                    .map_err(malformed)?;
                others.extend_from_slice(&raw[field..raw.len() - buf.len()]);
            }
        }
    }
    Ok((spans, others))
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
