//! PushImage: a push to a registry streamed as `resolved`, `blob`s, `done`.

use std::sync::Arc;

use imaged_core::transfer::{PushOutcome, PushRequest, TransferEvent};
use imaged_core::{Error, ErrorKind};
use imaged_proto::imaged::v1 as pb;
use pb::push_image_response::Event;
use tonic::codegen::BoxStream;
use tonic::{Request, Status};

use super::transfer;
use crate::call::Ctx;
use crate::status;
use imaged_proto::imaged::v1::image_service_methods as m;

/// The domain push of a request.
pub(crate) fn to_domain(req: pb::PushImageRequest) -> Result<PushRequest, Error> {
    if req.source.trim().is_empty() {
        return Err(
            Error::new(ErrorKind::InvalidReference, "image name cannot be blank")
                .with_field("source", "blank"),
        );
    }
    Ok(PushRequest {
        source: req.source,
        destination: req.destination,
        credentials: transfer::credentials(req.credentials),
        tls_verify: transfer::tls_verify(req.tls_verify)?,
    })
}

fn event(ev: TransferEvent) -> pb::PushImageResponse {
    let event = match ev {
        TransferEvent::Resolved { reference } => {
            Event::Resolved(pb::TransferResolved { reference })
        }
        ref b @ TransferEvent::Blob { .. } => Event::Blob(transfer::blob(b).unwrap_or_default()),
    };
    pb::PushImageResponse { event: Some(event) }
}

fn done(o: &PushOutcome) -> pb::PushImageResponse {
    pb::PushImageResponse {
        event: Some(Event::Done(pb::PushDone {
            reference: o.reference.clone(),
            digest: o.digest.to_string(),
        })),
    }
}

/// Runs a PushImage call: authorize, check the request, then stream the push.
pub(crate) fn push(
    ctx: &Arc<Ctx>,
    request: Request<pb::PushImageRequest>,
) -> Result<BoxStream<pb::PushImageResponse>, Status> {
    let call = ctx.authorize(m::PUSH_IMAGE, &request)?;
    let prepared = ctx
        .registry
        .get()
        .and_then(|r| Ok((r, to_domain(request.into_inner())?)));
    let (registry, req) = match prepared {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(caller = %call.caller, reason = e.kind.reason(), "push refused: {e}");
            return ctx.finish(m::PUSH_IMAGE, Err(status::to_status(&e)));
        }
    };
    let creds = req.credentials.clone();
    let (source, destination) = (req.source.clone(), req.destination.clone());
    Ok(transfer::stream(
        ctx,
        m::PUSH_IMAGE,
        call,
        move |engine, progress, cancel| registry.push(engine, &req, progress, cancel),
        transfer::Messages { event, done },
        move |e| transfer::redact(e, creds.as_ref(), &[]),
        move |call, r| match r {
            Ok(o) => tracing::info!(caller = %call.caller, source = %source,
                reference = %o.reference, digest = %o.digest, "image pushed"),
            Err(e) => tracing::info!(caller = %call.caller, source = %source,
                destination = %destination, reason = e.kind.reason(), "push failed: {e}"),
        },
    ))
}
