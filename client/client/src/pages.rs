//! ListImages over every page, pipelined: each page comes back undecoded, its
//! `next_page_token` is read first (one pass over the message's top-level fields) and the
//! next page requested, then the page is decoded on a blocking thread while the daemon
//! answers the next request. A listing of many pages then costs about what decoding them
//! costs, instead of decoding plus one round trip and one daemon turn per page, taken in
//! turn.

use bytes::{Buf as _, Bytes};
use imaged_proto::imaged::v1 as pb;
use prost::Message as _;
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

/// Decodes a page on a blocking thread.
pub(crate) async fn decode(raw: Bytes) -> Result<pb::ListImagesResponse, ClientError> {
    tokio::task::spawn_blocking(move || pb::ListImagesResponse::decode(raw))
        .await
        .map_err(malformed)?
        .map_err(malformed)
}
