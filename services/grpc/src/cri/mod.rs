//! The Kubernetes CRI face: `runtime.v1.ImageService` over the same engine (SPEC §8).
//!
//! kubelet (`imageServiceEndpoint`) and crictl (`--image-endpoint`) use it for listing,
//! status, removal and image-filesystem stats. CRI semantics differ from the native API
//! on purpose: RemoveImage removes the whole image whatever name is given and is OK when
//! the image is absent; ImageStatus is OK with no image when absent; ImageFsInfo always
//! answers. PullImage pulls through the daemon's registry client like containerd and
//! CRI-O (always asking the registry, answering the image ID as `image_ref`), and is
//! UNIMPLEMENTED on a daemon without one.
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
use crate::native::transfer;
use base64::Engine as _;
use imaged_core::transfer::{Cancel, Credentials, PullPolicy, PullRequest, TlsVerify};

/// Images per StreamImages batch (a batch of 500 images stays far below the 16 MiB that
/// cri-client accepts per message).
pub const STREAM_BATCH: usize = 500;

/// What PullImage answers on a daemon without a registry client (UNIMPLEMENTED).
pub const PULL_UNIMPLEMENTED: &str = crate::native::transfer::TRANSFER_UNIMPLEMENTED;

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

/// The domain pull of a CRI PullImage (policy always, as containerd and CRI-O: kubelet
/// has applied its own pull policy already), with the raw `auth` string to redact.
/// `image.annotations`, the runtime handler and the sandbox config are ignored.
fn pull_request(req: cri::PullImageRequest) -> Result<(PullRequest, String), Error> {
    let reference = spec_reference(req.image);
    if reference.trim().is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidReference,
            "image name cannot be blank",
        ));
    }
    let raw_auth = req
        .auth
        .as_ref()
        .map(|a| a.auth.clone())
        .unwrap_or_default();
    let credentials = req.auth.map(auth_credentials).transpose()?.flatten();
    Ok((
        PullRequest {
            reference,
            platform: None,
            policy: PullPolicy::Always,
            credentials,
            tls_verify: TlsVerify::Default,
        },
        raw_auth,
    ))
}

/// Credentials from a CRI `AuthConfig`, as containerd's `ParseAuth`: `auth` (base64 of
/// `user:password`) wins over `username`/`password`; the identity and registry tokens are
/// passed on. `None` when every field is empty. `server_address` is ignored (kubelet
/// sends the credentials that match the image's registry).
fn auth_credentials(auth: cri::AuthConfig) -> Result<Option<Credentials>, Error> {
    let (mut username, mut password) = (auth.username, auth.password);
    if !auth.auth.is_empty() {
        let bad = || {
            Error::new(
                ErrorKind::InvalidArgument,
                "auth: not the base64 encoding of user:password",
            )
            .with_field("auth.auth", "not the base64 encoding of user:password")
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (u, p) = text.split_once(':').ok_or_else(bad)?;
        username = u.to_owned();
        password = p.trim_end_matches('\0').to_owned();
    }
    let creds = Credentials {
        username,
        password,
        identity_token: auth.identity_token,
        registry_token: auth.registry_token,
    };
    Ok((creds != Credentials::default()).then_some(creds))
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
                let image = convert::image(&details.summary, &details.config.run.user);
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
        let call = self.ctx.authorize(m::PULL_IMAGE, &request)?;
        let prepared = self
            .ctx
            .registry
            .get()
            .and_then(|r| Ok((r, pull_request(request.into_inner())?)));
        let (registry, req, raw_auth) = match prepared {
            Ok((r, (req, raw_auth))) => (r, req, raw_auth),
            Err(e) => {
                tracing::info!(caller = %call.caller, reason = e.kind.reason(),
                    "CRI pull refused: {e}");
                return self
                    .ctx
                    .finish(m::PULL_IMAGE, Err(crate::status::to_status(&e)));
            }
        };
        let engine = Arc::clone(&self.ctx.engine);
        let reference = req.reference.clone();
        // kubelet cancels a pull by its deadline (`--image-pull-progress-deadline`,
        // `runtimeRequestTimeout`): the server then drops this future, and with it the
        // guard, which cancels the pull.
        let cancel = Cancel::new();
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let r = tokio::task::spawn_blocking(move || {
            // kubelet shows no progress: the events are dropped.
            let r = registry.pull(&engine, &req, &mut |_| {}, &cancel);
            r.map_err(|e| transfer::redact(e, req.credentials.as_ref(), &[raw_auth.as_str()]))
        })
        .await
        .unwrap_or_else(|e| Err(Error::internal(format!("CRI pull task failed: {e}"))));
        match &r {
            Ok(o) => tracing::info!(caller = %call.caller, reference = %reference,
                resolved = %o.reference, image = %o.image_id, digest = %o.digest,
                up_to_date = o.up_to_date, "image pulled (CRI)"),
            Err(e) => tracing::info!(caller = %call.caller, reference = %reference,
                reason = e.kind.reason(), "CRI pull failed: {e}"),
        }
        let r = r
            .map(|o| cri::PullImageResponse {
                image_ref: o.image_id.to_string(),
            })
            .map_err(|e| crate::status::to_status(&e));
        self.ctx.finish(m::PULL_IMAGE, r).map(Response::new)
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

/// Cancels a transfer when dropped (a handler future dropped by the server when its
/// client goes away; after a finished transfer it changes nothing).
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
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
    fn auth_config_becomes_credentials_like_containerd() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            auth_credentials(cri::AuthConfig::default()).expect("ok"),
            None
        );
        let c = auth_credentials(cri::AuthConfig {
            username: "u".into(),
            password: "p:w".into(),
            ..Default::default()
        })
        .expect("ok")
        .expect("some");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:w"));
        // `auth` wins over username/password; the password may hold ':'.
        let c = auth_credentials(cri::AuthConfig {
            username: "ignored".into(),
            auth: b64("alice:s3cr:et"),
            server_address: "registry.example".into(),
            ..Default::default()
        })
        .expect("ok")
        .expect("some");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cr:et")
        );
        let c = auth_credentials(cri::AuthConfig {
            identity_token: "idt".into(),
            registry_token: "rt".into(),
            ..Default::default()
        })
        .expect("ok")
        .expect("some");
        assert_eq!(
            (c.identity_token.as_str(), c.registry_token.as_str()),
            ("idt", "rt")
        );
        for bad in ["%%%".to_owned(), b64("no-colon")] {
            let e = auth_credentials(cri::AuthConfig {
                auth: bad.clone(),
                ..Default::default()
            })
            .expect_err("bad auth");
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
            assert!(!e.message.contains(&bad), "the secret is not echoed");
        }
    }

    #[test]
    fn cri_pulls_always_ask_the_registry() {
        let (req, raw) = pull_request(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            auth: Some(cri::AuthConfig {
                auth: "dTpw".into(),
                ..Default::default()
            }),
            sandbox_config: None,
        })
        .expect("ok");
        assert_eq!(req.policy, PullPolicy::Always);
        assert_eq!(req.reference, "busybox");
        assert_eq!(raw, "dTpw");
        let c = req.credentials.expect("creds");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let e = pull_request(cri::PullImageRequest::default()).expect_err("blank");
        assert_eq!(e.kind, ErrorKind::InvalidReference);
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
