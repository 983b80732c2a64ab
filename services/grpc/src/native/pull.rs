//! PullImage: a registry pull streamed as `resolved`, `blob`s, `done` (SPEC §pull).

use std::sync::Arc;

use imaged_core::transfer::{PullOutcome, PullRequest, TransferEvent};
use imaged_core::{Error, ErrorKind};
use imaged_proto::imaged::v1 as pb;
use pb::pull_image_response::Event;
use tonic::codegen::BoxStream;
use tonic::{Request, Status};

use super::transfer;
use crate::call::Ctx;
use crate::status;
use imaged_proto::imaged::v1::image_service_methods as m;

/// The domain pull of a request.
pub(crate) fn to_domain(req: pb::PullImageRequest) -> Result<PullRequest, Error> {
    if req.reference.trim().is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidReference,
            "image name cannot be blank",
        ));
    }
    Ok(PullRequest {
        reference: req.reference,
        platform: transfer::platform(req.platform),
        policy: transfer::pull_policy(req.policy)?,
        credentials: transfer::credentials(req.credentials),
        tls_verify: transfer::tls_verify(req.tls_verify)?,
    })
}

fn event(ev: TransferEvent) -> pb::PullImageResponse {
    let event = match ev {
        TransferEvent::Resolved { reference } => {
            Event::Resolved(pb::TransferResolved { reference })
        }
        ref b @ TransferEvent::Blob { .. } => Event::Blob(transfer::blob(b).unwrap_or_default()),
    };
    pb::PullImageResponse { event: Some(event) }
}

fn done(o: &PullOutcome) -> pb::PullImageResponse {
    pb::PullImageResponse {
        event: Some(Event::Done(pb::PullDone {
            image_id: o.image_id.to_string(),
            reference: o.reference.clone(),
            digest: o.digest.to_string(),
            up_to_date: o.up_to_date,
        })),
    }
}

/// Runs a PullImage call: authorize, check the request, then stream the pull.
pub(crate) fn pull(
    ctx: &Arc<Ctx>,
    request: Request<pb::PullImageRequest>,
) -> Result<BoxStream<pb::PullImageResponse>, Status> {
    let call = ctx.authorize(m::PULL_IMAGE, &request)?;
    let prepared = ctx
        .registry
        .get()
        .and_then(|r| Ok((r, to_domain(request.into_inner())?)));
    let (registry, req) = match prepared {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(caller = %call.caller, reason = e.kind.reason(), "pull refused: {e}");
            return ctx.finish(m::PULL_IMAGE, Err(status::to_status(&e)));
        }
    };
    let creds = req.credentials.clone();
    let reference = req.reference.clone();
    Ok(transfer::stream(
        ctx,
        m::PULL_IMAGE,
        call,
        move |engine, progress, cancel| registry.pull(engine, &req, progress, cancel),
        transfer::Messages { event, done },
        move |e| transfer::redact(e, creds.as_ref(), &[]),
        move |call, r| match r {
            Ok(o) => tracing::info!(caller = %call.caller, reference = %reference,
                resolved = %o.reference, image = %o.image_id, digest = %o.digest,
                up_to_date = o.up_to_date, "image pulled"),
            Err(e) => tracing::info!(caller = %call.caller, reference = %reference,
                reason = e.kind.reason(), "pull failed: {e}"),
        },
    ))
}
