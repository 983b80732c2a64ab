//! `imaged.v1.GcService` over the engine: the GC policy and runs (SPEC §4.1), with the
//! conversions between the wire and [`imaged_core::gc`].

use std::sync::Arc;
use std::time::Duration;

use imaged_core::engine::gc::{GcCause, GcReport};
use imaged_core::gc::{self, GcPolicy, Threshold};
use imaged_core::{Error, ErrorKind};
use imaged_proto::imaged::v1 as pb;
use imaged_proto::imaged::v1::gc_service_methods as m;
use imaged_proto::imaged::v1::gc_service_server::GcService;
use tonic::{Request, Response, Status};

use super::convert;
use crate::call::Ctx;

/// The `imaged.v1.GcService` handler.
#[derive(Debug, Clone)]
pub(crate) struct GcApi {
    ctx: Arc<Ctx>,
}

impl GcApi {
    /// A handler over the shared state.
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl GcService for GcApi {
    async fn get_gc_policy(
        &self,
        request: Request<pb::GetGcPolicyRequest>,
    ) -> Result<Response<pb::GcPolicy>, Status> {
        self.ctx
            .unary(m::GET_GC_POLICY, request, |engine, _, _| {
                Ok(policy_out(&engine.gc_policy()))
            })
            .await
    }

    async fn set_gc_policy(
        &self,
        request: Request<pb::SetGcPolicyRequest>,
    ) -> Result<Response<pb::GcPolicy>, Status> {
        self.ctx
            .unary(m::SET_GC_POLICY, request, |engine, req, call| {
                let policy = policy_in(req.policy.unwrap_or_default())?;
                engine.set_gc_policy(policy.clone())?;
                tracing::info!(caller = %call.caller, policy = ?policy, "GC policy set");
                Ok(policy_out(&policy))
            })
            .await
    }

    async fn run_gc(
        &self,
        request: Request<pb::RunGcRequest>,
    ) -> Result<Response<pb::RunGcResponse>, Status> {
        self.ctx
            .unary(m::RUN_GC, request, |engine, req, call| {
                let report = engine.run_gc(req.dry_run, GcCause::Request, call.deadline)?;
                tracing::info!(
                    caller = %call.caller,
                    dry_run = req.dry_run,
                    chosen = report.plan.chosen.len(),
                    deleted = report.prune.deleted_images.len(),
                    reclaimed_bytes = report.prune.reclaimed_bytes,
                    "GC run"
                );
                Ok(report_out(report))
            })
            .await
    }
}

fn duration_in(field: &str, d: Option<prost_types::Duration>) -> Result<Option<Duration>, Error> {
    let Some(d) = d else {
        return Ok(None);
    };
    Duration::try_from(d).map(Some).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid GC policy: {field}: {e}"),
        )
        .with_field(field, "not a non-negative duration")
    })
}

fn duration_out(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 0,
    })
}

fn threshold_in(field: &str, t: Option<pb::GcThreshold>) -> Result<Option<Threshold>, Error> {
    use pb::gc_threshold::Value;
    match t.and_then(|t| t.value) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(Threshold::Bytes(b))),
        Some(Value::Percent(p)) => u8::try_from(p)
            .ok()
            .filter(|p| *p <= 100)
            .map(|p| Some(Threshold::Percent(p)))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("invalid GC policy: {field}: {p}% is more than 100%"),
                )
                .with_field(field, "a percentage is at most 100")
            }),
    }
}

fn threshold_out(t: Option<Threshold>) -> Option<pb::GcThreshold> {
    use pb::gc_threshold::Value;
    t.map(|t| pb::GcThreshold {
        value: Some(match t {
            Threshold::Percent(p) => Value::Percent(u32::from(p)),
            Threshold::Bytes(b) => Value::Bytes(b),
        }),
    })
}

/// The wire policy → the engine's (checked by the engine).
pub(crate) fn policy_in(p: pb::GcPolicy) -> Result<GcPolicy, Error> {
    Ok(GcPolicy {
        high: threshold_in("high", p.high)?,
        low: threshold_in("low", p.low)?,
        budget_bytes: p.budget_bytes,
        max_unused: duration_in("max_unused", p.max_unused)?,
        keep_tags: p.keep_tags,
        min_age: duration_in("min_age", p.min_age)?.unwrap_or(GcPolicy::default().min_age),
        interval: duration_in("interval", p.interval)?,
    })
}

/// The engine's policy → the wire.
pub(crate) fn policy_out(p: &GcPolicy) -> pb::GcPolicy {
    pb::GcPolicy {
        high: threshold_out(p.high),
        low: threshold_out(p.low),
        budget_bytes: p.budget_bytes,
        max_unused: p.max_unused.map(duration_out),
        keep_tags: p.keep_tags,
        min_age: Some(duration_out(p.min_age)),
        interval: p.interval.map(duration_out),
    }
}

fn blocker_out(b: gc::Blocker) -> pb::GcBlocker {
    match b {
        gc::Blocker::InUse => pb::GcBlocker::InUse,
        gc::Blocker::Pinned => pb::GcBlocker::Pinned,
        gc::Blocker::ReadOnly => pb::GcBlocker::ReadOnly,
        gc::Blocker::Kept => pb::GcBlocker::Kept,
        gc::Blocker::TooYoung => pb::GcBlocker::TooYoung,
        gc::Blocker::Parent => pb::GcBlocker::Parent,
    }
}

/// A run's report → the wire.
pub(crate) fn report_out(r: GcReport) -> pb::RunGcResponse {
    let plan = r.plan;
    let fs = r.measure.fs.unwrap_or_default();
    pb::RunGcResponse {
        chosen: plan
            .chosen
            .iter()
            .map(|c| {
                let (reason, unused_for) = match c.why {
                    gc::Why::Unused(d) => (pb::GcReason::Unused, Some(duration_out(d))),
                    gc::Why::Space => (pb::GcReason::Space, None),
                };
                pb::GcChoice {
                    image_id: c.id.to_string(),
                    names: c.names.clone(),
                    reason: reason as i32,
                    bytes_freed: c.bytes,
                    last_used: Some(convert::timestamp(c.last_used)),
                    unused_for,
                }
            })
            .collect(),
        triggers: plan
            .triggers
            .iter()
            .map(|t| pb::GcTrigger {
                limit: Some(match *t {
                    gc::Trigger::Disk { used, high, low } => {
                        pb::gc_trigger::Limit::Disk(pb::GcDiskTrigger {
                            used_bytes: used,
                            high_bytes: high,
                            low_bytes: low,
                        })
                    }
                    gc::Trigger::Budget {
                        store_bytes,
                        budget,
                    } => pb::gc_trigger::Limit::Budget(pb::GcBudgetTrigger {
                        store_bytes,
                        budget_bytes: budget,
                    }),
                }),
            })
            .collect(),
        need_bytes: plan.need_bytes,
        planned_bytes: plan.freed_bytes,
        reached: plan.reaches_target(),
        blocked: plan
            .blocked
            .iter()
            .map(|b| pb::GcBlocked {
                reason: blocker_out(b.reason) as i32,
                images: b.images,
                bytes: b.bytes,
            })
            .collect(),
        result: Some(convert::prune_report(r.prune)),
        fs_capacity_bytes: fs.capacity,
        fs_available_bytes: fs.available,
        store_bytes: r.measure.store_bytes,
    }
}
