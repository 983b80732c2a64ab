//! The Kubernetes CRI face: `runtime.v1.ImageService` over the same engine (SPEC §8).
//!
//! kubelet (`imageServiceEndpoint`) and crictl (`--image-endpoint`) use it for listing,
//! status, removal and image-filesystem stats. CRI semantics differ from the native API
//! on purpose: RemoveImage removes the whole image whatever name is given and is OK when
//! the image is absent; ImageStatus is OK with no image when absent.

use std::sync::Arc;

use imaged_core::model::Image as StoredImage;
use imaged_core::ops::{ImageDetails, ImageSummary};
use imaged_core::{Digest, Engine, Error, ErrorKind};
use imaged_proto::runtime::v1 as cri;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::status::to_status;

/// Images per StreamImages batch.
const STREAM_BATCH: usize = 500;

/// The CRI `runtime.v1.ImageService` handler.
#[derive(Debug, Clone)]
pub struct CriImageService {
    engine: Arc<Engine>,
}

impl CriImageService {
    /// A handler over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// The tonic server for this handler.
    pub fn server(self) -> cri::image_service_server::ImageServiceServer<Self> {
        cri::image_service_server::ImageServiceServer::new(self)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> imaged_core::Result<T> + Send + 'static,
    {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| to_status(&Error::internal(format!("CRI task failed: {e}"))))?
            .map_err(|e| to_status(&e))
    }

    async fn list(&self, filter: Option<cri::ImageFilter>) -> Result<Vec<cri::Image>, Status> {
        let reference = filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .unwrap_or_default();
        self.blocking(move |engine| {
            let images = engine.cri_list(&reference)?;
            let view = engine.view();
            Ok(images
                .iter()
                .map(|s| to_cri_image(s, view.image(&s.id).map(|i| &**i)))
                .collect())
        })
        .await
    }
}

/// The image reference of a CRI request; blank is INVALID_ARGUMENT.
fn spec_image(spec: Option<cri::ImageSpec>) -> Result<String, Status> {
    let image = spec.map(|s| s.image).unwrap_or_default();
    if image.trim().is_empty() {
        return Err(to_status(&Error::new(
            ErrorKind::InvalidReference,
            "image name cannot be blank",
        )));
    }
    Ok(image)
}

/// containerd's rule for the default user: the part before `:`; numeric → uid, else name.
fn user_of(user: &str) -> (Option<cri::Int64Value>, String) {
    let first = user.split(':').next().unwrap_or_default();
    if first.is_empty() {
        return (None, String::new());
    }
    match first.parse::<i64>() {
        Ok(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
        Err(_) => (None, first.to_owned()),
    }
}

fn to_cri_image(s: &ImageSummary, stored: Option<&StoredImage>) -> cri::Image {
    let (uid, username) = stored.map(|i| user_of(&i.config.user)).unwrap_or_default();
    cri::Image {
        id: s.id.to_string(),
        repo_tags: s.repo_tags.clone(),
        repo_digests: s.repo_digests.clone(),
        // CRI requires size > 0; every stored image has at least a manifest blob.
        size: s.size.max(1),
        uid,
        username,
        spec: None,
        pinned: s.pinned,
    }
}

/// The OCI chain ID of a layer stack.
fn chain_id(diff_ids: impl Iterator<Item = Digest>) -> Option<Digest> {
    diff_ids.fold(None, |acc, d| match acc {
        None => Some(d),
        Some(prev) => Some(Digest::of(format!("{prev} {d}").as_bytes())),
    })
}

/// The verbose `info` map of ImageStatus: `{"info": {"chainID": …, "imageSpec": <config>}}`
/// like containerd.
fn verbose_info(engine: &Engine, details: &ImageDetails) -> imaged_core::Result<String> {
    let config = match engine
        .view()
        .image(&details.summary.id)
        .and_then(|i| i.config_blob.as_ref().map(|b| b.digest))
    {
        Some(d) => engine.store().read_blob(&d)?,
        None => None,
    };
    let image_spec = config
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
        .unwrap_or(serde_json::Value::Null);
    let chain = chain_id(details.layers.iter().map(|l| l.diff_id));
    let info = serde_json::json!({
        "chainID": chain.map(|c| c.to_string()).unwrap_or_default(),
        "imageSpec": image_spec,
    });
    Ok(info.to_string())
}

#[tonic::async_trait]
impl cri::image_service_server::ImageService for CriImageService {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let images = self.list(request.into_inner().filter).await?;
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn stream_images(
        &self,
        request: Request<cri::StreamImagesRequest>,
    ) -> Result<Response<BoxStream<cri::StreamImagesResponse>>, Status> {
        let images = self.list(request.into_inner().filter).await?;
        let batches: Vec<Result<cri::StreamImagesResponse, Status>> = images
            .chunks(STREAM_BATCH)
            .map(|c| Ok(cri::StreamImagesResponse { images: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(batches))))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let req = request.into_inner();
        let reference = spec_image(req.image)?;
        let verbose = req.verbose;
        let (image, info) = self
            .blocking(move |engine| {
                let Some(details) = engine.cri_status(&reference)? else {
                    return Ok((None, None));
                };
                let view = engine.view();
                let image = to_cri_image(
                    &details.summary,
                    view.image(&details.summary.id).map(|i| &**i),
                );
                let info = if verbose {
                    Some(verbose_info(engine, &details)?)
                } else {
                    None
                };
                Ok((Some(image), info))
            })
            .await?;
        let info = info
            .map(|i| [("info".to_owned(), i)].into_iter().collect())
            .unwrap_or_default();
        Ok(Response::new(cri::ImageStatusResponse { image, info }))
    }

    async fn pull_image(
        &self,
        _request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        Err(to_status(&Error::new(
            ErrorKind::Unimplemented,
            "imaged does not pull images: load them with imaged.v1.ImageService/LoadImages \
             (`imagectl load -i ARCHIVE`)",
        )))
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let reference = spec_image(request.into_inner().image)?;
        let report = self
            .blocking(move |engine| engine.cri_remove(&reference))
            .await?;
        tracing::info!(
            records = report.records.len(),
            reclaimed = report.reclaimed_bytes,
            "CRI RemoveImage"
        );
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let (usage, root) = self
            .blocking(|engine| Ok((engine.store().fs_usage()?, engine.store().info().root)))
            .await?;
        let fs = cri::FilesystemUsage {
            timestamp: imaged_core::time::now().max(1),
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: root.display().to_string(),
            }),
            used_bytes: Some(cri::UInt64Value {
                value: usage.used_bytes,
            }),
            inodes_used: Some(cri::UInt64Value {
                value: usage.inodes_used,
            }),
        };
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![fs],
            container_filesystems: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_rules_follow_containerd() {
        assert_eq!(user_of("root"), (None, "root".to_owned()));
        assert_eq!(
            user_of("1234:1234"),
            (Some(cri::Int64Value { value: 1234 }), String::new())
        );
        assert_eq!(user_of("nobody:nogroup"), (None, "nobody".to_owned()));
        assert_eq!(user_of(""), (None, String::new()));
        assert_eq!(
            user_of("0"),
            (Some(cri::Int64Value { value: 0 }), String::new())
        );
    }

    #[test]
    fn chain_id_follows_the_oci_rule() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(chain_id([a].into_iter()), Some(a));
        assert_eq!(
            chain_id([a, b].into_iter()),
            Some(Digest::of(format!("{a} {b}").as_bytes()))
        );
        assert_eq!(chain_id(std::iter::empty()), None);
    }
}
