//! The Kubernetes CRI face: `runtime.v1.ImageService` over the same engine (SPEC §8).
//!
//! kubelet (`imageServiceEndpoint`) and crictl (`--image-endpoint`) use it for listing,
//! status, removal and image-filesystem stats. CRI semantics differ from the native API
//! on purpose: RemoveImage removes the whole image whatever name is given and is OK when
//! the image is absent; ImageStatus is OK with no image when absent; ImageFsInfo always
//! answers. PullImage is UNIMPLEMENTED (imaged loads archives, it does not pull).
//!
//! Every handler authorizes first through [`Ctx::authorize`] like the native ones
//! (ListImages, StreamImages, ImageStatus and ImageFsInfo are read-only, see
//! [`crate::call::auth::READ_ONLY_METHODS`]) and counts its call in the metrics.

pub(crate) mod convert;

use std::sync::Arc;

use imaged_core::{Engine, Error, ErrorKind};
use imaged_proto::runtime::v1 as cri;
use imaged_proto::runtime::v1::image_service_server::{ImageService, ImageServiceServer};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::call::Ctx;

/// Images per StreamImages batch (a batch of 500 images stays far below the 16 MiB that
/// cri-client accepts per message).
pub const STREAM_BATCH: usize = 500;

/// What PullImage answers (UNIMPLEMENTED).
pub const PULL_UNIMPLEMENTED: &str = "imaged does not pull images: load them instead with \
     imaged.v1.ImageService/LoadImages (`imagectl load -i ARCHIVE`, e.g. an archive written \
     by `docker save`, `podman save` or `skopeo copy … docker-archive:`)";

use imaged_proto::runtime::v1::image_service_methods as m;

/// The CRI `runtime.v1.ImageService` handler.
#[derive(Debug, Clone)]
pub(crate) struct CriImageService {
    ctx: Arc<Ctx>,
}

impl CriImageService {
    /// A handler over the shared state.
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }

    /// The tonic server for this handler.
    pub(crate) fn server(self) -> ImageServiceServer<Self> {
        ImageServiceServer::new(self)
    }
}

/// The reference of an optional `ImageFilter`; empty means every image.
fn filter_reference(filter: Option<cri::ImageFilter>) -> String {
    filter
        .and_then(|f| f.image)
        .map(|s| s.image)
        .unwrap_or_default()
}

/// The reference of an optional `ImageSpec` (blank is refused by the resolver with
/// INVALID_ARGUMENT "image name cannot be blank", SPEC §2).
fn spec_reference(spec: Option<cri::ImageSpec>) -> String {
    spec.map(|s| s.image).unwrap_or_default()
}

/// ListImages / StreamImages: every image (empty reference) or the one it names.
fn list(engine: &Engine, reference: &str) -> Result<Vec<cri::Image>, Error> {
    let summaries = engine.cri_list(reference)?;
    Ok(convert::images(&summaries, &engine.view()))
}

#[tonic::async_trait]
impl ImageService for CriImageService {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        self.ctx
            .unary(m::LIST_IMAGES, request, |engine, req, _| {
                let images = list(engine, &filter_reference(req.filter))?;
                Ok(cri::ListImagesResponse { images })
            })
            .await
    }

    async fn stream_images(
        &self,
        request: Request<cri::StreamImagesRequest>,
    ) -> Result<Response<BoxStream<cri::StreamImagesResponse>>, Status> {
        let images = self
            .ctx
            .unary(m::STREAM_IMAGES, request, |engine, req, _| {
                list(engine, &filter_reference(req.filter))
            })
            .await?
            .into_inner();
        // Batches of at least one image each; no image → no batch, just the end.
        let batches: Vec<Result<cri::StreamImagesResponse, Status>> = images
            .chunks(STREAM_BATCH)
            .map(|c| Ok(cri::StreamImagesResponse { images: c.to_vec() }))
            .collect();
        let stream: BoxStream<cri::StreamImagesResponse> = Box::pin(tokio_stream::iter(batches));
        Ok(Response::new(stream))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        self.ctx
            .unary(m::IMAGE_STATUS, request, |engine, req, _| {
                let reference = spec_reference(req.image);
                // A manifest list without a local instance is no CRI image (ListImages
                // leaves lists out too): absent.
                let Some(details) = engine
                    .cri_status(&reference)?
                    .filter(|d| !d.summary.is_manifest_list)
                else {
                    return Ok(cri::ImageStatusResponse::default());
                };
                let image = convert::image(&details.summary, &details.config.user);
                let mut info = std::collections::HashMap::new();
                if req.verbose {
                    let raw = engine.store().read_blob(&details.summary.id)?;
                    info.insert(
                        "info".to_owned(),
                        convert::verbose_info(&details, raw.as_deref()),
                    );
                }
                Ok(cri::ImageStatusResponse {
                    image: Some(image),
                    info,
                })
            })
            .await
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        self.ctx
            .unary(m::PULL_IMAGE, request, |_, _, _| {
                Err(Error::new(ErrorKind::Unimplemented, PULL_UNIMPLEMENTED))
            })
            .await
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        self.ctx
            .unary(m::REMOVE_IMAGE, request, |engine, req, call| {
                let reference = spec_reference(req.image);
                let report = engine.cri_remove(&reference).inspect_err(|e| {
                    tracing::info!(caller = %call.caller, reference = %reference,
                        reason = e.kind.reason(), "CRI remove refused: {e}");
                })?;
                tracing::info!(
                    caller = %call.caller,
                    reference = %reference,
                    records = ?report.records,
                    removed_containers = ?report.removed_containers,
                    reclaimed_bytes = report.reclaimed_bytes,
                    "image removed (CRI)"
                );
                Ok(cri::RemoveImageResponse {})
            })
            .await
    }

    async fn image_fs_info(
        &self,
        request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        self.ctx
            .unary(m::IMAGE_FS_INFO, request, |engine, _, _| {
                Ok(convert::fs_info(engine))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_methods_are_exactly_the_reading_ones() {
        use crate::call::auth::{Access, access};
        for p in [
            m::LIST_IMAGES,
            m::STREAM_IMAGES,
            m::IMAGE_STATUS,
            m::IMAGE_FS_INFO,
        ] {
            assert_eq!(access(p), Access::Read, "{p}");
        }
        for p in [m::PULL_IMAGE, m::REMOVE_IMAGE] {
            assert_eq!(access(p), Access::Admin, "{p}");
        }
    }

    #[test]
    fn filters_and_specs_default_to_empty() {
        assert_eq!(filter_reference(None), "");
        assert_eq!(filter_reference(Some(cri::ImageFilter { image: None })), "");
        let spec = cri::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        };
        assert_eq!(
            filter_reference(Some(cri::ImageFilter {
                image: Some(spec.clone())
            })),
            "busybox"
        );
        assert_eq!(spec_reference(Some(spec)), "busybox");
        assert_eq!(spec_reference(None), "");
    }
}
