//! The call context shared by the native and the CRI handlers: [`Ctx`] (engine,
//! authorization, metrics, events) and the steps every call takes (authorize first, run
//! the engine on a blocking thread, map domain errors through [`crate::status`], count
//! the call), plus the client's deadline ([`deadline`]).

pub mod auth;
mod deadline;

pub(crate) use deadline::{deadline, timeout};

use std::sync::Arc;
use std::time::Instant;

use imaged_core::{Engine, Error};
use tonic::{Code, Request, Response, Status};

use self::auth::{Authorizer, Caller};
use crate::metrics::Metrics;
use crate::native::events::EventHub;
use crate::status;

/// What a handler knows about its call once authorized.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// Who called.
    pub caller: Caller,
    /// When the client gives up (`grpc-timeout`), if it said.
    pub deadline: Option<Instant>,
}

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Authorization.
    pub auth: Authorizer,
    /// Call counters.
    pub metrics: Arc<Metrics>,
    /// WatchEvents fan-out.
    pub events: EventHub,
    /// How long a LoadImages stream may stay silent.
    pub load_idle_timeout: std::time::Duration,
    /// The registry client of PullImage / PushImage / CRI PullImage (none: UNIMPLEMENTED).
    pub registry: crate::native::transfer::RegistrySlot,
}

impl Ctx {
    /// Authorizes a call of `method` (the first thing every handler does).
    pub(crate) fn authorize<T>(
        &self,
        method: &'static str,
        request: &Request<T>,
    ) -> Result<Call, Status> {
        match self.auth.authorize(method, request) {
            Ok(caller) => Ok(Call {
                caller,
                deadline: deadline(request.metadata()),
            }),
            Err(e) => {
                let st = status::to_status(&e);
                self.metrics.record(method, st.code());
                Err(st)
            }
        }
    }

    /// Counts a finished call and passes its result through.
    pub(crate) fn finish<T>(
        &self,
        method: &'static str,
        r: Result<T, Status>,
    ) -> Result<T, Status> {
        self.metrics
            .record(method, r.as_ref().map_or_else(Status::code, |_| Code::Ok));
        r
    }

    /// Runs a unary call: authorize, then `op` on a blocking thread with the engine, the
    /// request message and the call; domain errors become statuses through the table.
    pub(crate) async fn unary<Req, Resp, F>(
        &self,
        method: &'static str,
        request: Request<Req>,
        op: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        F: FnOnce(&Engine, Req, &Call) -> Result<Resp, Error> + Send + 'static,
    {
        let call = self.authorize(method, &request)?;
        let engine = Arc::clone(&self.engine);
        let msg = request.into_inner();
        let r = tokio::task::spawn_blocking(move || op(&engine, msg, &call))
            .await
            .unwrap_or_else(|e| Err(Error::internal(format!("{method}: task failed: {e}"))))
            .map_err(|e| status::to_status(&e));
        self.finish(method, r).map(Response::new)
    }
}
