//! Every conversion between `imaged.v1` messages and the domain types of
//! [`imaged_core::ops`] / [`imaged_core::model`].
//!
//! Timestamps are `google.protobuf.Timestamp`; absent optional times stay unset. Enums:
//! `*_UNSPECIFIED` means the default documented in the `.proto` file; a value the enum
//! does not define fails with `INVALID_ARGUMENT` and a `BadRequest` naming the field.

use imaged_core::model::{self, ContainerState};
use imaged_core::ops::{self, ArchiveFormat, Order, Policy};
use imaged_core::time::UnixNanos;
use imaged_core::{Error, ErrorKind};
use imaged_proto::imaged::v1 as pb;
use prost_types::Timestamp;

use crate::status;

/// A `Timestamp` for Unix nanoseconds.
pub(crate) fn timestamp(t: UnixNanos) -> Timestamp {
    const NANOS: i64 = 1_000_000_000;
    // rem_euclid is in 0..1e9, so it always fits an i32.
    let nanos = i32::try_from(t.rem_euclid(NANOS)).unwrap_or(0);
    Timestamp {
        seconds: t.div_euclid(NANOS),
        nanos,
    }
}

/// An optional `Timestamp`.
pub(crate) fn opt_timestamp(t: Option<UnixNanos>) -> Option<Timestamp> {
    t.map(timestamp)
}

fn bad_enum(field: &str, value: i32) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("{field}: unknown enum value {value}"),
    )
    .with_meta("field", field)
    .with_field(field, format!("unknown enum value {value}"))
}

/// `ImageOrder` → [`Order`] (UNSPECIFIED → `Created`).
pub(crate) fn order(value: i32) -> Result<Order, Error> {
    match pb::ImageOrder::try_from(value) {
        Ok(pb::ImageOrder::Unspecified | pb::ImageOrder::Created) => Ok(Order::Created),
        Ok(pb::ImageOrder::Id) => Ok(Order::Id),
        Ok(pb::ImageOrder::Size) => Ok(Order::Size),
        Ok(pb::ImageOrder::Name) => Ok(Order::Name),
        Err(_) => Err(bad_enum("order", value)),
    }
}

/// `RemovalPolicy` → [`Policy`] (UNSPECIFIED → `Podman`).
pub(crate) fn policy(value: i32) -> Result<Policy, Error> {
    match pb::RemovalPolicy::try_from(value) {
        Ok(pb::RemovalPolicy::Unspecified | pb::RemovalPolicy::Podman) => Ok(Policy::Podman),
        Ok(pb::RemovalPolicy::Docker) => Ok(Policy::Docker),
        Err(_) => Err(bad_enum("policy", value)),
    }
}

/// `ArchiveFormat` → [`ArchiveFormat`] (UNSPECIFIED → detect).
pub(crate) fn archive_format(value: i32) -> Result<ArchiveFormat, Error> {
    match pb::ArchiveFormat::try_from(value) {
        Ok(pb::ArchiveFormat::Unspecified) => Ok(ArchiveFormat::Auto),
        Ok(pb::ArchiveFormat::Docker) => Ok(ArchiveFormat::Docker),
        Ok(pb::ArchiveFormat::Oci) => Ok(ArchiveFormat::Oci),
        Err(_) => Err(bad_enum("format", value)),
    }
}

/// `ContainerState` → [`ContainerState`]; UNSPECIFIED gives `unspecified` (the field's
/// documented default) or, when `None`, an `INVALID_ARGUMENT`.
pub(crate) fn container_state_in(
    field: &str,
    value: i32,
    unspecified: Option<ContainerState>,
) -> Result<ContainerState, Error> {
    match pb::ContainerState::try_from(value) {
        Ok(pb::ContainerState::Unspecified) => unspecified.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{field}: a state is required"),
            )
            .with_meta("field", field)
            .with_field(field, "CONTAINER_STATE_UNSPECIFIED is not a state")
        }),
        Ok(pb::ContainerState::Created) => Ok(ContainerState::Created),
        Ok(pb::ContainerState::Running) => Ok(ContainerState::Running),
        Ok(pb::ContainerState::Stopped) => Ok(ContainerState::Stopped),
        Err(_) => Err(bad_enum(field, value)),
    }
}

/// [`ContainerState`] → `ContainerState`.
pub(crate) fn container_state_out(state: ContainerState) -> pb::ContainerState {
    match state {
        ContainerState::Created => pb::ContainerState::Created,
        ContainerState::Running => pb::ContainerState::Running,
        ContainerState::Stopped => pb::ContainerState::Stopped,
    }
}

/// ListImages request → [`ops::ListOptions`].
pub(crate) fn list_options(req: pb::ListImagesRequest) -> Result<ops::ListOptions, Error> {
    Ok(ops::ListOptions {
        order: order(req.order)?,
        filters: req.filters,
        all: req.all,
        page_size: req.page_size,
        page_token: req.page_token,
    })
}

/// [`ops::ImageSummary`] → `Image`.
pub(crate) fn image(s: &ops::ImageSummary) -> pb::Image {
    image_owned(s.clone())
}

/// [`ops::ImageSummary`] → `Image`, moving the strings instead of copying them (the
/// ListImages hot path).
pub(crate) fn image_owned(s: ops::ImageSummary) -> pb::Image {
    pb::Image {
        id: s.id.to_string(),
        names: s.names,
        repo_tags: s.repo_tags,
        repo_digests: s.repo_digests,
        created: opt_timestamp(s.created),
        size: s.size,
        shared_size: s.shared_size,
        unique_size: s.unique_size,
        containers: s.containers,
        labels: s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        parent_id: s.parent_id.map(|p| p.to_string()).unwrap_or_default(),
        dangling: s.dangling,
        intermediate: s.intermediate,
        read_only: s.read_only,
        is_manifest_list: s.is_manifest_list,
        digest: s.digest.to_string(),
        os: s.platform.os,
        architecture: s.platform.architecture,
        variant: s.platform.variant,
        pinned: s.pinned,
        last_used: opt_timestamp(s.last_used),
        digests: s.digests.iter().map(ToString::to_string).collect(),
        instances: s
            .instances
            .into_iter()
            .map(|i| pb::ManifestInstance {
                digest: i.digest.to_string(),
                os: i.platform.os,
                architecture: i.platform.architecture,
                variant: i.platform.variant,
                image_id: i.image_id.map(|d| d.to_string()).unwrap_or_default(),
            })
            .collect(),
    }
}

/// [`ops::ImageDetails`] (+ the config JSON as stored) → InspectImage response.
pub(crate) fn inspect(d: &ops::ImageDetails, raw_json: String) -> pb::InspectImageResponse {
    let c = &d.config;
    let r = &c.run;
    pb::InspectImageResponse {
        image: Some(image(&d.summary)),
        config: Some(pb::ImageConfig {
            user: r.user.clone(),
            env: r.env.clone(),
            entrypoint: r.entrypoint.clone(),
            cmd: r.cmd.clone(),
            working_dir: r.working_dir.clone(),
            exposed_ports: r.exposed_ports.clone(),
            volumes: r.volumes.clone(),
            stop_signal: r.stop_signal.clone(),
            raw_json,
        }),
        history: c
            .history
            .iter()
            .map(|h| pb::HistoryEntry {
                created: opt_timestamp(h.created),
                created_by: h.created_by.clone(),
                author: h.author.clone(),
                comment: h.comment.clone(),
                empty_layer: h.empty_layer,
            })
            .collect(),
        layers: d
            .layers
            .iter()
            .map(|l| pb::Layer {
                digest: l.blob.digest.to_string(),
                diff_id: l.diff_id.to_string(),
                size: l.blob.size,
                media_type: l.blob.media_type.to_string(),
            })
            .collect(),
        container_ids: d.container_ids.clone(),
        child_ids: d.child_ids.iter().map(ToString::to_string).collect(),
    }
}

/// RemoveImage request → [`ops::RemoveOptions`].
pub(crate) fn remove_options(req: pb::RemoveImageRequest) -> Result<ops::RemoveOptions, Error> {
    Ok(ops::RemoveOptions {
        policy: policy(req.policy)?,
        reference: req.reference,
        force: req.force,
        no_prune: req.no_prune,
        ignore_missing: req.ignore_missing,
        dry_run: req.dry_run,
        platform: super::transfer::platform(req.platform),
        lookup_manifest: req.lookup_manifest,
        external: req.external,
    })
}

/// Removal records → `RemovalRecord`s.
pub(crate) fn records(records: &[ops::Record]) -> Vec<pb::RemovalRecord> {
    use pb::removal_record::Record;
    records
        .iter()
        .map(|r| pb::RemovalRecord {
            record: Some(match r {
                ops::Record::Untagged(name) => Record::Untagged(name.clone()),
                ops::Record::Deleted(id) => Record::Deleted(id.to_string()),
                ops::Record::DeletedLayer(chain) => Record::DeletedLayer(chain.to_string()),
            }),
        })
        .collect()
}

/// [`ops::RemoveReport`] → RemoveImage response.
pub(crate) fn remove_report(r: ops::RemoveReport) -> pb::RemoveImageResponse {
    pb::RemoveImageResponse {
        records: records(&r.records),
        removed_containers: r.removed_containers,
        reclaimed_bytes: r.reclaimed_bytes,
    }
}

/// RemoveImages request → [`ops::RemoveImagesOptions`] (each removal's options as
/// RemoveImage's).
pub(crate) fn remove_images_options(
    req: pb::RemoveImagesRequest,
) -> Result<ops::RemoveImagesOptions, Error> {
    let each = remove_options(pb::RemoveImageRequest {
        reference: String::new(),
        force: req.force,
        no_prune: req.no_prune,
        ignore_missing: req.ignore_missing,
        policy: req.policy,
        dry_run: req.dry_run,
        platform: req.platform,
        lookup_manifest: req.lookup_manifest,
        external: req.external,
    })?;
    Ok(ops::RemoveImagesOptions {
        references: req.references,
        filters: req.filters,
        all: req.all,
        each,
    })
}

/// A failed step as `PruneError` (the code from the status table; an internal error's
/// message is logged, not sent).
fn failure(image_id: String, e: &Error) -> pb::PruneError {
    let code = status::code(e.kind);
    if code == tonic::Code::Internal {
        tracing::error!(image = %image_id, "internal error: {e}");
    }
    pb::PruneError {
        image_id,
        code: code as i32,
        reason: e.kind.reason().to_owned(),
        message: status::public_message(e).to_owned(),
    }
}

/// [`ops::RemoveImagesReport`] → RemoveImages response.
pub(crate) fn remove_images_report(r: ops::RemoveImagesReport) -> pb::RemoveImagesResponse {
    let reclaimed_bytes = r.reclaimed_bytes();
    let exit_code = r.exit_code();
    let results = r
        .outcomes
        .into_iter()
        .map(|o| {
            let deleted = o
                .deleted_sizes
                .iter()
                .map(|(id, size)| pb::DeletedImage {
                    id: id.to_string(),
                    size: *size,
                })
                .collect();
            match o.result {
                Ok(rep) => pb::RemoveImagesResult {
                    reference: o.reference,
                    records: records(&rep.records),
                    removed_containers: rep.removed_containers,
                    reclaimed_bytes: rep.reclaimed_bytes,
                    deleted,
                    error: None,
                },
                Err(e) => pb::RemoveImagesResult {
                    error: Some(failure(
                        e.metadata.get("image_id").cloned().unwrap_or_default(),
                        &e,
                    )),
                    reference: o.reference,
                    ..pb::RemoveImagesResult::default()
                },
            }
        })
        .collect();
    pb::RemoveImagesResponse {
        results,
        reclaimed_bytes,
        exit_code,
    }
}

/// PruneImages request → [`ops::PruneOptions`].
pub(crate) fn prune_options(req: pb::PruneImagesRequest) -> ops::PruneOptions {
    ops::PruneOptions {
        all: req.all,
        filters: req.filters,
        external: req.external,
        dry_run: req.dry_run,
    }
}

/// [`ops::PruneReport`] → PruneImages response. Per-image errors get their code from the
/// status table; an internal error's message is logged, not sent.
pub(crate) fn prune_report(r: ops::PruneReport) -> pb::PruneImagesResponse {
    pb::PruneImagesResponse {
        records: records(&r.records),
        deleted_images: r.deleted_images.iter().map(ToString::to_string).collect(),
        deleted: r
            .deleted_images
            .iter()
            .zip(&r.deleted_sizes)
            .map(|(id, size)| pb::DeletedImage {
                id: id.to_string(),
                size: *size,
            })
            .collect(),
        untagged: r.untagged,
        errors: r
            .errors
            .iter()
            .map(|f| failure(f.image_id.to_string(), &f.error))
            .collect(),
        reclaimed_bytes: r.reclaimed_bytes,
        removed_containers: r.removed_containers,
    }
}

/// The first LoadImages message's options → [`ops::LoadOptions`].
pub(crate) fn load_options(first: &pb::LoadImagesRequest) -> Result<ops::LoadOptions, Error> {
    Ok(ops::LoadOptions {
        format: archive_format(first.format)?,
        default_names: first.default_names.clone(),
    })
}

/// [`ops::LoadReport`] → LoadImages response.
pub(crate) fn load_report(r: ops::LoadReport, bytes_received: u64) -> pb::LoadImagesResponse {
    pb::LoadImagesResponse {
        images: r
            .images
            .into_iter()
            .map(|i| pb::LoadedImage {
                id: i.id.to_string(),
                names: i.names,
            })
            .collect(),
        bytes_received,
        moved_names: r.moved_names,
    }
}

/// [`ops::TagReport`] → TagImage response.
pub(crate) fn tag_report(r: ops::TagReport) -> pb::TagImageResponse {
    pb::TagImageResponse {
        image_id: r.image_id.to_string(),
        names: r.names,
    }
}

/// [`ops::UntagReport`] → UntagImage response.
pub(crate) fn untag_report(r: ops::UntagReport) -> pb::UntagImageResponse {
    pb::UntagImageResponse {
        image_id: r.image_id.to_string(),
        untagged: r.untagged,
    }
}

/// [`ops::DiskUsage`] → ImageDiskUsage response.
pub(crate) fn disk_usage(u: ops::DiskUsage) -> pb::ImageDiskUsageResponse {
    pb::ImageDiskUsageResponse {
        images: u.images,
        active_images: u.active_images,
        total_bytes: u.total_bytes,
        reclaimable_bytes: u.reclaimable_bytes,
        containers: u.containers,
        per_image: u
            .per_image
            .into_iter()
            .map(|i| pb::ImageUsage {
                id: i.id.to_string(),
                names: i.names,
                size: i.size,
                shared_size: i.shared_size,
                unique_size: i.unique_size,
                containers: i.containers,
            })
            .collect(),
    }
}

/// RegisterContainer request → [`ops::RegisterContainer`] (state UNSPECIFIED → CREATED,
/// empty ID → generated).
pub(crate) fn register_container(
    req: pb::RegisterContainerRequest,
) -> Result<ops::RegisterContainer, Error> {
    Ok(ops::RegisterContainer {
        state: container_state_in("state", req.state, Some(ContainerState::Created))?,
        id: (!req.id.is_empty()).then_some(req.id),
        image: req.image,
        external: req.external,
        name: req.name,
    })
}

/// [`model::Container`] → `Container`.
pub(crate) fn container(c: &model::Container) -> pb::Container {
    pb::Container {
        id: c.id.clone(),
        image_id: c.image_id.to_string(),
        state: container_state_out(c.state) as i32,
        external: c.external,
        name: c.name.clone(),
        created: Some(timestamp(c.created)),
    }
}

/// [`ops::EventKind`] → `EventType`.
pub(crate) fn event_type(kind: ops::EventKind) -> pb::EventType {
    match kind {
        ops::EventKind::Load => pb::EventType::Load,
        ops::EventKind::Tag => pb::EventType::Tag,
        ops::EventKind::Untag => pb::EventType::Untag,
        ops::EventKind::Delete => pb::EventType::Delete,
        ops::EventKind::Prune => pb::EventType::Prune,
        ops::EventKind::Gc => pb::EventType::Gc,
    }
}

/// The requested event types (WatchEvents `types`): empty → all; UNSPECIFIED or an
/// unknown value → `INVALID_ARGUMENT`. LAGGED is always delivered, asked for or not.
pub(crate) fn event_types(types: &[i32]) -> Result<Vec<pb::EventType>, Error> {
    types
        .iter()
        .enumerate()
        .map(|(i, &v)| match pb::EventType::try_from(v) {
            Ok(pb::EventType::Unspecified) | Err(_) => {
                let field = format!("types[{i}]");
                Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{field}: bad event type {v}"),
                )
                .with_meta("field", field.clone())
                .with_field(field, format!("not an event type: {v}")))
            }
            Ok(t) => Ok(t),
        })
        .collect()
}

/// [`ops::Event`] → `Event`.
pub(crate) fn event(e: &ops::Event) -> pb::Event {
    pb::Event {
        r#type: event_type(e.kind) as i32,
        image_id: e.image_id.map(|d| d.to_string()).unwrap_or_default(),
        name: e.name.clone(),
        time: Some(timestamp(e.time)),
        reclaimed_bytes: e.reclaimed_bytes,
        dropped: 0,
    }
}

/// The event telling a watcher that `dropped` events were lost.
pub(crate) fn lagged(dropped: u64) -> pb::Event {
    pb::Event {
        r#type: pb::EventType::Lagged as i32,
        time: Some(timestamp(imaged_core::time::now())),
        dropped,
        ..pb::Event::default()
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
