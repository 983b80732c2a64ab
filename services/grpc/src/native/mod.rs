//! `imaged.v1` handlers: thin adapters from the generated service traits to the engine.
//!
//! Every handler: authorize (first), convert the request, run the engine operation on a
//! blocking thread, convert the result, count the call. The shared steps live in
//! [`Ctx::unary`].

pub mod containers;
pub mod encoded;
pub mod images;
pub mod list_route;

use std::sync::Arc;
use std::time::{Duration, Instant};

use imaged_core::{Engine, Error};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

use crate::auth::{Authorizer, Caller};
use crate::events::EventHub;
use crate::metrics::Metrics;
use crate::status;

/// What a handler knows about its call once authorized.
#[derive(Debug, Clone)]
pub struct Call {
    /// Who called.
    pub caller: Caller,
    /// When the client gives up (`grpc-timeout`), if it said.
    pub deadline: Option<Instant>,
}

/// State shared by every handler.
#[derive(Debug)]
pub struct Ctx {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Authorization.
    pub auth: Authorizer,
    /// Call counters.
    pub metrics: Arc<Metrics>,
    /// WatchEvents fan-out.
    pub events: EventHub,
}

impl Ctx {
    /// Authorizes a call of `method` (the first thing every handler does).
    pub fn authorize<T>(&self, method: &'static str, request: &Request<T>) -> Result<Call, Status> {
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
    pub fn finish<T>(&self, method: &'static str, r: Result<T, Status>) -> Result<T, Status> {
        self.metrics
            .record(method, r.as_ref().map_or_else(Status::code, |_| Code::Ok));
        r
    }

    /// Runs a unary call: authorize, then `op` on a blocking thread with the engine, the
    /// request message and the call; domain errors become statuses through the table.
    pub async fn unary<Req, Resp, F>(
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

/// The client's deadline from the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
pub fn deadline(md: &MetadataMap) -> Option<Instant> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Instant::now().checked_add(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_parses() {
        let at = |v: &str| {
            let mut md = MetadataMap::new();
            md.insert("grpc-timeout", v.parse().expect("ascii"));
            deadline(&md).map(|d| d.saturating_duration_since(Instant::now()))
        };
        let d = at("5S").expect("parsed");
        assert!(
            d > Duration::from_secs(4) && d <= Duration::from_secs(5),
            "{d:?}"
        );
        let d = at("250m").expect("parsed");
        assert!(
            d <= Duration::from_millis(250) && d > Duration::from_millis(100),
            "{d:?}"
        );
        assert!(at("2H").expect("parsed") > Duration::from_secs(7000));
        assert!(at("5x").is_none());
        assert!(at("S").is_none());
        assert!(at("1234567890S").is_none(), "more than 8 digits is invalid");
        assert!(deadline(&MetadataMap::new()).is_none());
    }
}

#[cfg(test)]
mod encoded_tests;
