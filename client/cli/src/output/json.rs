//! JSON renderings with podman's field names (`podman images --format json`,
//! `podman image inspect`) plus imaged's extra fields. Sizes are exact byte counts.

use imaged_client::proto;
use serde_json::{Map, Value, json};

use super::human::{bare_id, rfc3339, rfc3339_seconds};

fn opt_id(id: &str) -> Value {
    Value::String(bare_id(id).to_owned())
}

fn labels(labels: &std::collections::HashMap<String, String>) -> Value {
    if labels.is_empty() {
        return Value::Null;
    }
    let sorted: std::collections::BTreeMap<_, _> = labels.iter().collect();
    json!(sorted)
}

/// One entry of `imagectl ls --format json` (podman's `images --format json` shape).
pub(crate) fn image(img: &proto::Image) -> Value {
    let created = img.created.as_ref();
    json!({
        "Id": opt_id(&img.id),
        "ParentId": opt_id(&img.parent_id),
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Names": img.names,
        "Digest": img.digest,
        "Digests": img.digests,
        "Created": created.map_or(0, |t| t.seconds),
        // podman prints the Unix seconds as RFC 3339 (no fraction).
        "CreatedAt": rfc3339_seconds(created),
        "Size": img.size,
        "SharedSize": img.shared_size,
        "UniqueSize": img.unique_size,
        "VirtualSize": img.size,
        "Labels": labels(&img.labels),
        "Containers": img.containers,
        "ReadOnly": img.read_only,
        "Dangling": img.dangling,
        "Intermediate": img.intermediate,
        "IsManifestList": img.is_manifest_list,
        "Os": img.os,
        "Arch": img.architecture,
        "Variant": img.variant,
        "Pinned": img.pinned,
        "LastUsed": rfc3339(img.last_used.as_ref()),
    })
}

fn set_of(items: &[String]) -> Value {
    if items.is_empty() {
        return Value::Null;
    }
    let map: Map<String, Value> = items
        .iter()
        .map(|k| (k.clone(), Value::Object(Map::new())))
        .collect();
    Value::Object(map)
}

/// One entry of `imagectl inspect` (podman's `image inspect` shape plus imaged fields).
pub(crate) fn inspect(resp: &proto::InspectImageResponse) -> Value {
    let default_image = proto::Image::default();
    let img = resp.image.as_ref().unwrap_or(&default_image);
    let default_config = proto::ImageConfig::default();
    let cfg = resp.config.as_ref().unwrap_or(&default_config);
    let raw: Value = serde_json::from_str(&cfg.raw_json).unwrap_or(Value::Null);
    let raw_str = |key: &str| {
        raw.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let history: Vec<Value> = resp
        .history
        .iter()
        .map(|h| {
            let mut m = Map::new();
            let created = rfc3339(h.created.as_ref());
            if !created.is_empty() {
                m.insert("created".into(), json!(created));
            }
            for (k, v) in [
                ("created_by", &h.created_by),
                ("author", &h.author),
                ("comment", &h.comment),
            ] {
                if !v.is_empty() {
                    m.insert(k.into(), json!(v));
                }
            }
            if h.empty_layer {
                m.insert("empty_layer".into(), json!(true));
            }
            Value::Object(m)
        })
        .collect();
    let layers: Vec<Value> = resp
        .layers
        .iter()
        .map(|l| {
            json!({"Digest": l.digest, "DiffID": l.diff_id, "Size": l.size, "MediaType": l.media_type})
        })
        .collect();
    let instances: Vec<Value> = img
        .instances
        .iter()
        .map(|i| {
            json!({"Digest": i.digest, "Os": i.os, "Architecture": i.architecture,
                   "Variant": i.variant, "ImageId": opt_id(&i.image_id)})
        })
        .collect();
    json!({
        "Id": opt_id(&img.id),
        "Digest": img.digest,
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Names": img.names,
        "Parent": opt_id(&img.parent_id),
        "Comment": raw_str("comment"),
        "Created": rfc3339(img.created.as_ref()),
        "Config": {
            "User": cfg.user,
            "Env": cfg.env,
            "Entrypoint": cfg.entrypoint,
            "Cmd": cfg.cmd,
            "WorkingDir": cfg.working_dir,
            "Labels": labels(&img.labels),
            "ExposedPorts": set_of(&cfg.exposed_ports),
            "Volumes": set_of(&cfg.volumes),
            "StopSignal": cfg.stop_signal,
        },
        "Version": raw_str("docker_version"),
        "Author": raw_str("author"),
        "Architecture": img.architecture,
        "Os": img.os,
        "Variant": img.variant,
        "Size": img.size,
        "VirtualSize": img.size,
        "SharedSize": img.shared_size,
        "UniqueSize": img.unique_size,
        "RootFS": {
            "Type": "layers",
            "Layers": resp.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "Labels": labels(&img.labels),
        "User": cfg.user,
        "History": history,
        "Layers": layers,
        "Digests": img.digests,
        "Containers": resp.container_ids,
        "Children": resp.child_ids.iter().map(|c| bare_id(c).to_owned()).collect::<Vec<_>>(),
        "ReadOnly": img.read_only,
        "Dangling": img.dangling,
        "Intermediate": img.intermediate,
        "IsManifestList": img.is_manifest_list,
        "Instances": instances,
        "Pinned": img.pinned,
        "LastUsed": rfc3339(img.last_used.as_ref()),
    })
}

/// A container record.
pub(crate) fn container(c: &proto::Container) -> Value {
    json!({
        "Id": c.id,
        "ImageId": opt_id(&c.image_id),
        "State": super::state_name(c.state),
        "External": c.external,
        "Name": c.name,
        "Created": rfc3339(c.created.as_ref()),
    })
}

/// `imagectl df --format json`.
pub(crate) fn disk_usage(du: &proto::ImageDiskUsageResponse) -> Value {
    let per_image: Vec<Value> = du
        .per_image
        .iter()
        .map(|u| {
            json!({"Id": opt_id(&u.id), "Names": u.names, "Size": u.size,
                   "SharedSize": u.shared_size, "UniqueSize": u.unique_size,
                   "Containers": u.containers})
        })
        .collect();
    json!({
        "Images": du.images,
        "ActiveImages": du.active_images,
        "TotalBytes": du.total_bytes,
        "ReclaimableBytes": du.reclaimable_bytes,
        "Containers": du.containers,
        "PerImage": per_image,
    })
}

/// One event of `imagectl events --format json`.
pub(crate) fn event(e: &proto::Event) -> Value {
    json!({
        "Type": super::event_name(e.r#type),
        "ImageId": opt_id(&e.image_id),
        "Name": e.name,
        "Time": rfc3339(e.time.as_ref()),
        "ReclaimedBytes": e.reclaimed_bytes,
        "Dropped": e.dropped,
    })
}

/// Nanoseconds of a protobuf duration (Docker prints durations in nanoseconds); `null`
/// when unset.
fn nanos(d: Option<&imaged_client::Duration>) -> Value {
    d.map_or(Value::Null, |d| {
        json!(i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos))
    })
}

/// `imagectl gc --format json`: the RunGc response, field for field (bare IDs, exact
/// bytes, RFC 3339 times, durations in nanoseconds, enums as lower-case names).
pub(crate) fn gc_run(r: &proto::RunGcResponse, dry_run: bool) -> Value {
    use proto::gc_trigger::Limit;
    let chosen: Vec<Value> = r
        .chosen
        .iter()
        .map(|c| {
            let reason = match proto::GcReason::try_from(c.reason) {
                Ok(proto::GcReason::Unused) => "unused",
                Ok(proto::GcReason::Space) => "space",
                _ => "unspecified",
            };
            json!({
                "ImageId": opt_id(&c.image_id),
                "Names": c.names,
                "Reason": reason,
                "BytesFreed": c.bytes_freed,
                "LastUsed": rfc3339(c.last_used.as_ref()),
                "UnusedFor": nanos(c.unused_for.as_ref()),
            })
        })
        .collect();
    let triggers: Vec<Value> = r
        .triggers
        .iter()
        .filter_map(|t| t.limit.as_ref())
        .map(|t| match t {
            Limit::Disk(d) => json!({"Disk": {"UsedBytes": d.used_bytes,
                "HighBytes": d.high_bytes, "LowBytes": d.low_bytes}}),
            Limit::Budget(b) => json!({"Budget": {"StoreBytes": b.store_bytes,
                "BudgetBytes": b.budget_bytes}}),
        })
        .collect();
    let blocked: Vec<Value> = r
        .blocked
        .iter()
        .map(|b| {
            let reason = match proto::GcBlocker::try_from(b.reason) {
                Ok(proto::GcBlocker::InUse) => "in_use",
                Ok(proto::GcBlocker::Pinned) => "pinned",
                Ok(proto::GcBlocker::ReadOnly) => "read_only",
                Ok(proto::GcBlocker::Kept) => "kept",
                Ok(proto::GcBlocker::TooYoung) => "too_young",
                Ok(proto::GcBlocker::Parent) => "parent",
                _ => "unspecified",
            };
            json!({"Reason": reason, "Images": b.images, "Bytes": b.bytes})
        })
        .collect();
    let default_result = proto::PruneImagesResponse::default();
    json!({
        "DryRun": dry_run,
        "Chosen": chosen,
        "Triggers": triggers,
        "NeedBytes": r.need_bytes,
        "PlannedBytes": r.planned_bytes,
        "Reached": r.reached,
        "Blocked": blocked,
        "Result": prune(r.result.as_ref().unwrap_or(&default_result)),
        "FsCapacityBytes": r.fs_capacity_bytes,
        "FsAvailableBytes": r.fs_available_bytes,
        "StoreBytes": r.store_bytes,
    })
}

/// A PruneImages response (the `Result` of a GC run).
pub(crate) fn prune(p: &proto::PruneImagesResponse) -> Value {
    use proto::removal_record::Record;
    let records: Vec<Value> = p
        .records
        .iter()
        .filter_map(|r| r.record.as_ref())
        .map(|r| match r {
            Record::Untagged(name) => json!({"Untagged": name}),
            Record::Deleted(id) => json!({"Deleted": opt_id(id)}),
            Record::DeletedLayer(id) => json!({"DeletedLayer": id}),
        })
        .collect();
    let errors: Vec<Value> = p
        .errors
        .iter()
        .map(|e| {
            json!({"ImageId": opt_id(&e.image_id), "Code": e.code, "Reason": e.reason,
                   "Message": e.message})
        })
        .collect();
    let deleted: Vec<Value> = p
        .deleted
        .iter()
        .map(|d| json!({"Id": opt_id(&d.id), "Size": d.size}))
        .collect();
    json!({
        "Records": records,
        "DeletedImages": p.deleted_images.iter().map(|id| opt_id(id)).collect::<Vec<_>>(),
        "Deleted": deleted,
        "Untagged": p.untagged,
        "Errors": errors,
        "ReclaimedBytes": p.reclaimed_bytes,
        "RemovedContainers": p.removed_containers,
    })
}

/// Pretty-printed JSON followed by a newline (podman indents with 4 spaces; serde_json's
/// pretty printer uses 2, which every JSON reader accepts).
pub(crate) fn pretty(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_json_has_exact_sizes_and_bare_ids() {
        let img = proto::Image {
            id: format!("sha256:{}", "a".repeat(64)),
            names: vec!["localhost/x:1".into()],
            repo_tags: vec!["localhost/x:1".into()],
            size: 5_574_123,
            shared_size: 100,
            unique_size: 5_574_023,
            labels: [("k".to_owned(), "v".to_owned())].into(),
            created: Some(imaged_client::Timestamp {
                seconds: 86400,
                nanos: 0,
            }),
            ..Default::default()
        };
        let v = image(&img);
        assert_eq!(v["Id"], json!("a".repeat(64)));
        assert_eq!(v["Size"], json!(5_574_123));
        assert_eq!(v["UniqueSize"], json!(5_574_023));
        assert_eq!(v["Created"], json!(86400));
        assert_eq!(v["CreatedAt"], json!("1970-01-02T00:00:00Z"));
        assert_eq!(v["Labels"]["k"], json!("v"));
        assert_eq!(v["ParentId"], json!(""));
        assert_eq!(image(&proto::Image::default())["Labels"], Value::Null);
    }

    #[test]
    fn inspect_json_reads_raw_config_and_layers() {
        let resp = proto::InspectImageResponse {
            image: Some(proto::Image {
                id: "sha256:abc".into(),
                ..Default::default()
            }),
            config: Some(proto::ImageConfig {
                exposed_ports: vec!["80/tcp".into()],
                raw_json: r#"{"author":"me","architecture":"amd64"}"#.into(),
                ..Default::default()
            }),
            layers: vec![proto::Layer {
                digest: "sha256:l1".into(),
                diff_id: "sha256:d1".into(),
                size: 7,
                media_type: "m".into(),
            }],
            history: vec![proto::HistoryEntry {
                created_by: "RUN x".into(),
                empty_layer: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = inspect(&resp);
        assert_eq!(v["Id"], json!("abc"));
        assert_eq!(v["Author"], json!("me"));
        assert_eq!(v["Config"]["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(v["RootFS"]["Layers"], json!(["sha256:d1"]));
        assert_eq!(v["Layers"][0]["Size"], json!(7));
        assert_eq!(
            v["History"][0],
            json!({"created_by": "RUN x", "empty_layer": true})
        );
    }
}
