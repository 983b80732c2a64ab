//! `imaged.v1.ImageService` over the engine.

use std::sync::Arc;

use imaged_core::Error;
use imaged_proto::imaged::v1 as pb;
use imaged_proto::imaged::v1::image_service_server::ImageService;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::call::Ctx;
use imaged_proto::imaged::v1::image_service_methods as m;

use super::{convert, load, pull, push};
use crate::status;

/// The `imaged.v1.ImageService` handler.
#[derive(Debug, Clone)]
pub(crate) struct ImageApi {
    ctx: Arc<Ctx>,
}

impl ImageApi {
    /// A handler over the shared state.
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl ImageService for ImageApi {
    async fn list_images(
        &self,
        request: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        // Never reached: `list_route::ImageRoutes` answers ListImages from encoded pages
        // before this server sees the call. Kept an explicit internal error so that a
        // routing mistake shows instead of answering from a second implementation.
        self.ctx
            .unary(m::LIST_IMAGES, request, |_, _, _| {
                Err(Error::internal(
                    "ListImages reached the generated server instead of the encoded route",
                ))
            })
            .await
    }

    async fn inspect_image(
        &self,
        request: Request<pb::InspectImageRequest>,
    ) -> Result<Response<pb::InspectImageResponse>, Status> {
        self.ctx
            .unary(m::INSPECT_IMAGE, request, |engine, req, _| {
                let lookup = imaged_core::reference::resolve::Lookup {
                    platform: super::transfer::platform(req.platform),
                    manifest: req.lookup_manifest,
                };
                let details = engine.inspect_with(&req.reference, &lookup)?;
                // The config JSON stays in its blob (the image ID is its digest).
                let raw = if details.summary.is_manifest_list {
                    None
                } else {
                    engine.store().read_blob(&details.summary.id)?
                };
                let raw_json = raw.map(|b| String::from_utf8_lossy(&b).into_owned());
                Ok(convert::inspect(&details, raw_json.unwrap_or_default()))
            })
            .await
    }

    async fn remove_image(
        &self,
        request: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        self.ctx
            .unary(m::REMOVE_IMAGE, request, |engine, req, call| {
                let opts = convert::remove_options(req)?;
                let report = engine.remove(&opts).inspect_err(|e| {
                    tracing::info!(caller = %call.caller, reference = %opts.reference,
                        reason = e.kind.reason(), "remove refused: {e}");
                })?;
                tracing::info!(
                    caller = %call.caller,
                    reference = %opts.reference,
                    policy = ?opts.policy,
                    force = opts.force,
                    dry_run = opts.dry_run,
                    records = ?report.records,
                    removed_containers = ?report.removed_containers,
                    reclaimed_bytes = report.reclaimed_bytes,
                    "image removed"
                );
                Ok(convert::remove_report(report))
            })
            .await
    }

    async fn remove_images(
        &self,
        request: Request<pb::RemoveImagesRequest>,
    ) -> Result<Response<pb::RemoveImagesResponse>, Status> {
        self.ctx
            .unary(m::REMOVE_IMAGES, request, |engine, req, call| {
                let opts = convert::remove_images_options(req)?;
                let report = engine.remove_images(&opts)?;
                for o in &report.outcomes {
                    match &o.result {
                        Ok(r) => tracing::info!(caller = %call.caller, reference = %o.reference,
                            policy = ?opts.each.policy, force = opts.each.force, dry_run = opts.each.dry_run,
                            records = ?r.records, removed_containers = ?r.removed_containers,
                            reclaimed_bytes = r.reclaimed_bytes, "image removed"),
                        Err(e) => tracing::info!(caller = %call.caller, reference = %o.reference,
                            reason = e.kind.reason(), "remove refused: {e}"),
                    }
                }
                Ok(convert::remove_images_report(report))
            })
            .await
    }

    async fn prune_images(
        &self,
        request: Request<pb::PruneImagesRequest>,
    ) -> Result<Response<pb::PruneImagesResponse>, Status> {
        self.ctx
            .unary(m::PRUNE_IMAGES, request, |engine, req, call| {
                let opts = convert::prune_options(req);
                let report = engine.prune(&opts, call.deadline)?;
                tracing::info!(
                    caller = %call.caller,
                    all = opts.all,
                    filters = ?opts.filters,
                    external = opts.external,
                    dry_run = opts.dry_run,
                    deleted = ?report.deleted_images,
                    untagged = ?report.untagged,
                    errors = report.errors.len(),
                    reclaimed_bytes = report.reclaimed_bytes,
                    "images pruned"
                );
                Ok(convert::prune_report(report))
            })
            .await
    }

    async fn load_images(
        &self,
        request: Request<Streaming<pb::LoadImagesRequest>>,
    ) -> Result<Response<pb::LoadImagesResponse>, Status> {
        let call = self.ctx.authorize(m::LOAD_IMAGES, &request)?;
        let r = load::load(
            Arc::clone(&self.ctx.engine),
            request.into_inner(),
            self.ctx.load_idle_timeout,
        )
        .await;
        if let Ok(resp) = &r {
            let ids: Vec<&str> = resp.images.iter().map(|i| i.id.as_str()).collect();
            tracing::info!(caller = %call.caller, images = ?ids, bytes = resp.bytes_received,
                moved_names = ?resp.moved_names, "images loaded");
        }
        self.ctx.finish(m::LOAD_IMAGES, r).map(Response::new)
    }

    async fn pull_image(
        &self,
        request: Request<pb::PullImageRequest>,
    ) -> Result<Response<BoxStream<pb::PullImageResponse>>, Status> {
        pull::pull(&self.ctx, request).map(Response::new)
    }

    async fn push_image(
        &self,
        request: Request<pb::PushImageRequest>,
    ) -> Result<Response<BoxStream<pb::PushImageResponse>>, Status> {
        push::push(&self.ctx, request).map(Response::new)
    }

    async fn tag_image(
        &self,
        request: Request<pb::TagImageRequest>,
    ) -> Result<Response<pb::TagImageResponse>, Status> {
        self.ctx
            .unary(m::TAG_IMAGE, request, |engine, req, call| {
                let lookup = imaged_core::reference::resolve::Lookup {
                    platform: super::transfer::platform(req.platform),
                    manifest: req.lookup_manifest,
                };
                let report = engine.tag_with(&req.source, &req.names, &lookup)?;
                tracing::info!(caller = %call.caller, image = %report.image_id,
                    names = ?report.names, "image tagged");
                Ok(convert::tag_report(report))
            })
            .await
    }

    async fn untag_image(
        &self,
        request: Request<pb::UntagImageRequest>,
    ) -> Result<Response<pb::UntagImageResponse>, Status> {
        self.ctx
            .unary(m::UNTAG_IMAGE, request, |engine, req, call| {
                let lookup = imaged_core::reference::resolve::Lookup {
                    platform: super::transfer::platform(req.platform),
                    manifest: req.lookup_manifest,
                };
                let report = engine.untag_with(&req.reference, &req.names, &lookup)?;
                tracing::info!(caller = %call.caller, image = %report.image_id,
                    untagged = ?report.untagged, "image untagged");
                Ok(convert::untag_report(report))
            })
            .await
    }

    async fn image_disk_usage(
        &self,
        request: Request<pb::ImageDiskUsageRequest>,
    ) -> Result<Response<pb::ImageDiskUsageResponse>, Status> {
        self.ctx
            .unary(m::IMAGE_DISK_USAGE, request, |engine, req, _| {
                Ok(convert::disk_usage(engine.disk_usage(req.verbose)?))
            })
            .await
    }

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<BoxStream<pb::Event>>, Status> {
        self.ctx.authorize(m::WATCH_EVENTS, &request)?;
        let r = convert::event_types(&request.get_ref().types)
            .map_err(|e| status::to_status(&e))
            .map(|types| {
                let stream: BoxStream<pb::Event> = Box::pin(self.ctx.events.subscribe(types));
                Response::new(stream)
            });
        self.ctx.finish(m::WATCH_EVENTS, r)
    }
}
