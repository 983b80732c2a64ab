//! `imaged.v1.ImageService` routes with ListImages answered by [`EncodedImages`]: the
//! generated server handles every other method; ListImages goes through the same
//! `Ctx::unary` (authorization, blocking thread, metrics, error table) but its response
//! is an [`EncodedPage`], wire-identical to `ListImagesResponse`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use imaged_proto::imaged::v1 as pb;
use imaged_proto::imaged::v1::image_service_methods::LIST_IMAGES;
use imaged_proto::imaged::v1::image_service_server::ImageServiceServer;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::convert;
use super::encoded::{EncodedImages, EncodedPage};
use super::images::ImageApi;
use crate::call::Ctx;

/// The ListImages handler over encoded images.
#[derive(Debug, Clone)]
pub(crate) struct ListImages {
    ctx: Arc<Ctx>,
    cache: Arc<EncodedImages>,
}

impl tonic::server::UnaryService<pb::ListImagesRequest> for ListImages {
    type Response = EncodedPage;
    type Future = BoxFuture<Response<EncodedPage>, Status>;

    fn call(&mut self, request: Request<pb::ListImagesRequest>) -> Self::Future {
        let (ctx, cache) = (Arc::clone(&self.ctx), Arc::clone(&self.cache));
        Box::pin(async move {
            ctx.unary(LIST_IMAGES, request, move |engine, req, _| {
                let opts = convert::list_options(req)?;
                cache.page(engine, &opts)
            })
            .await
        })
    }
}

/// `imaged.v1.ImageService`: ListImages here, the rest in the generated server.
#[derive(Debug, Clone)]
pub(crate) struct ImageRoutes {
    inner: ImageServiceServer<ImageApi>,
    list: ListImages,
    max_recv: usize,
    max_send: usize,
}

impl ImageRoutes {
    /// The image service over `ctx`, with message size limits in bytes.
    pub(crate) fn new(ctx: Arc<Ctx>, max_recv: usize, max_send: usize) -> Self {
        let inner = ImageServiceServer::new(ImageApi::new(Arc::clone(&ctx)))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(max_send);
        Self {
            inner,
            list: ListImages {
                ctx,
                cache: Arc::default(),
            },
            max_recv,
            max_send,
        }
    }
}

impl NamedService for ImageRoutes {
    const NAME: &'static str = <ImageServiceServer<ImageApi> as NamedService>::NAME;
}

impl<B> Service<http::Request<B>> for ImageRoutes
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != LIST_IMAGES {
            return self.inner.call(req);
        }
        let list = self.list.clone();
        let (recv, send) = (self.max_recv, self.max_send);
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<EncodedPage, pb::ListImagesRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(recv), Some(send));
            Ok(grpc.unary(list, req).await)
        })
    }
}
