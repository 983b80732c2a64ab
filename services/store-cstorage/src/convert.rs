//! c/storage records → the core model (design doc §10.2).
//!
//! Decisions:
//! - `Image.id` = `sha256:<id>`; `digests` = `digest` first, then the other `manifest*`
//!   big-data digests sorted (c/storage's own order is random);
//! - layers base → top from the `layer` → `parent` chain; `diff_id` = `diff-digest`;
//!   `blob.digest` = `compressed-diff-digest`, else `diff-digest`, else `sha256:<layer id>`;
//!   `blob.size` = `diff-size` (c/storage keeps layers uncompressed);
//! - **`config.created` and `added` are the images.json `created`**, not the config's:
//!   that is what `podman images` shows as CREATED and what its `until`/`since` filters
//!   use (libimage's `Created()` returns the storage record's time);
//! - `stored_size` = podman's `ImageSize` (§2.6);
//! - a record whose `manifest` is an OCI index / docker manifest list is a manifest list
//!   (`instances`, no config, no layers).

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;

use imaged_core::digest::Digest;
use imaged_core::model::{
    BlobRef, Container, ContainerState, HistoryEntry, Image, ImageConfig, Layer, ManifestInstance,
    Platform, RunConfig,
};
use imaged_core::time::parse_rfc3339;
use serde_json::Value;

use crate::driver::Paths;
use crate::schema::{ContainerRecord, ImageRecord, LayerRecord};

const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_DOCKER_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// What imaged takes from a stored manifest.
#[derive(Debug, Clone, Default)]
pub(crate) struct ManifestInfo {
    /// Its media type.
    pub(crate) media_type: String,
    /// The config descriptor's media type.
    pub(crate) config_media_type: Option<String>,
    /// Manifest lists: the instances.
    pub(crate) instances: Option<Vec<ManifestInstance>>,
    /// Its length in bytes.
    pub(crate) len: u64,
    /// Its digest (of the bytes).
    pub(crate) digest: Option<Digest>,
}

/// Parses cached per image ID (both are immutable for an ID).
#[derive(Debug, Default)]
pub(crate) struct ConvertCache {
    /// `(created string, config)` by image ID.
    configs: HashMap<String, (String, Arc<ImageConfig>)>,
    /// Manifest info by image ID, with the digest of the `manifest` item it was read from
    /// (`podman manifest add` rewrites that item and leaves the record's `digest` alone).
    manifests: HashMap<String, (String, ManifestInfo)>,
}

impl ConvertCache {
    /// Forgets images no longer present.
    pub(crate) fn retain(&mut self, ids: &HashSet<&str>) {
        self.configs.retain(|k, _| ids.contains(k.as_str()));
        self.manifests.retain(|k, _| ids.contains(k.as_str()));
    }
}

/// One store's records, as read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreRecords<'a> {
    pub(crate) paths: &'a Paths,
    pub(crate) images: &'a [Arc<ImageRecord>],
    pub(crate) layers: &'a [Arc<LayerRecord>],
    pub(crate) read_only: bool,
}

/// Layers of all stores by ID (primary first: its records win).
pub(crate) fn layer_index<'a>(stores: &[StoreRecords<'a>]) -> HashMap<&'a str, &'a LayerRecord> {
    let mut m = HashMap::new();
    for s in stores {
        for l in s.layers {
            m.entry(l.id.as_str()).or_insert(l.as_ref());
        }
    }
    m
}

fn parse_digest(s: &str) -> Option<Digest> {
    Digest::parse(s).ok()
}

fn id_digest(hex: &str) -> Option<Digest> {
    Digest::from_hex(hex).ok()
}

/// podman's `ImageSize` (design doc §2.6): each layer of the top and mapped chains once,
/// `diff-size`, plus every big-data item's size.
pub(crate) fn image_size(
    rec: &ImageRecord,
    layers: &HashMap<&str, &LayerRecord>,
    paths: &Paths,
) -> u64 {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut total: i64 = 0;
    let mut queue: Vec<&str> = Vec::new();
    if !rec.layer.is_empty() {
        queue.push(&rec.layer);
    }
    queue.extend(rec.mapped_layers.iter().map(String::as_str));
    for start in queue {
        let mut cur = Some(start);
        while let Some(id) = cur {
            if !seen.insert(id) {
                break;
            }
            let Some(l) = layers.get(id) else { break };
            total = total.saturating_add(l.diff_size.max(0));
            cur = (!l.parent.is_empty()).then_some(l.parent.as_str());
        }
    }
    for key in &rec.big_data_names {
        let size = match rec.big_data_sizes.get(key) {
            Some(s) => *s,
            None => std::fs::metadata(paths.image_big_data(&rec.id, key))
                .map(|m| i64::try_from(m.len()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        };
        total = total.saturating_add(size.max(0));
    }
    u64::try_from(total).unwrap_or(0)
}

fn read_manifest(paths: &Paths, id: &str) -> Option<(Vec<u8>, ManifestInfo)> {
    let bytes = std::fs::read(paths.image_big_data(id, "manifest")).ok()?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mt = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
    let schema = v.get("schemaVersion").and_then(Value::as_i64).unwrap_or(2);
    // A list is known by its media type; `podman manifest create` writes an empty one
    // with `"manifests": null`, which is still a list (of no instances).
    let is_list_type = mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST;
    let empty: Vec<Value> = Vec::new();
    let list = v
        .get("manifests")
        .and_then(Value::as_array)
        .or_else(|| is_list_type.then_some(&empty));
    let media_type = if !mt.is_empty() {
        mt.to_owned()
    } else if schema == 1 {
        MT_DOCKER_V1_SIGNED.to_owned()
    } else if list.is_some() {
        MT_OCI_INDEX.to_owned()
    } else {
        MT_OCI_MANIFEST.to_owned()
    };
    let instances = list.map(|l| {
        l.iter()
            .filter_map(|m| {
                let digest = parse_digest(m.get("digest")?.as_str()?)?;
                let p = m.get("platform");
                let s = |k: &str| {
                    p.and_then(|p| p.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                Some(ManifestInstance {
                    digest,
                    platform: Platform {
                        os: s("os"),
                        architecture: s("architecture"),
                        variant: s("variant"),
                    },
                })
            })
            .collect()
    });
    let config_media_type = v
        .get("config")
        .and_then(|c| c.get("mediaType"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let info = ManifestInfo {
        media_type,
        config_media_type,
        instances,
        len: bytes.len() as u64,
        digest: Some(Digest::of(&bytes)),
    };
    Some((bytes, info))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn keys(v: Option<&Value>) -> Vec<String> {
    let mut k: Vec<String> = v
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn string(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or("").to_owned()
}

/// Parses an image config leniently (any missing field is empty).
pub(crate) fn parse_config(bytes: &[u8]) -> ImageConfig {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return ImageConfig::default();
    };
    let c = v.get("config");
    let cf = |k: &str| c.and_then(|c| c.get(k));
    ImageConfig {
        created: v
            .get("created")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339),
        platform: imaged_core::intern::platform(
            &string(v.get("os")),
            &string(v.get("architecture")),
            &string(v.get("variant")),
        ),
        labels: Arc::new(
            cf("Labels")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default(),
        ),
        run: Arc::new(RunConfig {
            user: string(cf("User")),
            env: strings(cf("Env")),
            entrypoint: strings(cf("Entrypoint")),
            cmd: strings(cf("Cmd")),
            working_dir: string(cf("WorkingDir")),
            exposed_ports: keys(cf("ExposedPorts")),
            volumes: keys(cf("Volumes")),
            stop_signal: string(cf("StopSignal")),
        }),
        history: v
            .get("history")
            .and_then(Value::as_array)
            .map(|h| {
                h.iter()
                    .map(|e| {
                        Arc::new(HistoryEntry {
                            created: e
                                .get("created")
                                .and_then(Value::as_str)
                                .and_then(parse_rfc3339),
                            created_by: string(e.get("created_by")),
                            author: string(e.get("author")),
                            comment: string(e.get("comment")),
                            empty_layer: e
                                .get("empty_layer")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn layer_media_type(l: &LayerRecord) -> &'static str {
    if l.compressed_digest.is_empty() {
        return MT_LAYER_TAR;
    }
    match l.compression {
        2 => MT_LAYER_GZIP,
        4 => MT_LAYER_ZSTD,
        _ => MT_LAYER_TAR,
    }
}

/// The layers of `top`'s chain, base first (stops at a missing or repeated layer).
pub(crate) fn chain<'a>(
    top: &'a str,
    layers: &HashMap<&str, &'a LayerRecord>,
) -> Vec<&'a LayerRecord> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut cur = (!top.is_empty()).then_some(top);
    while let Some(id) = cur {
        if !seen.insert(id) {
            break;
        }
        let Some(l) = layers.get(id) else { break };
        out.push(*l);
        cur = (!l.parent.is_empty()).then_some(l.parent.as_str());
    }
    out.reverse();
    out
}

/// Whether `rec`'s top or mapped layers are in `ids` (layers whose chain changed, see
/// `snapshot::with_descendants`): its converted image (layers, size) would differ.
pub(crate) fn uses_any(rec: &ImageRecord, ids: &HashSet<String>) -> bool {
    !ids.is_empty()
        && (ids.contains(rec.layer.as_str())
            || rec.mapped_layers.iter().any(|m| ids.contains(m.as_str())))
}

/// Converts one image record; `None` when its ID is not a sha256 hex.
pub(crate) fn image(
    rec: &ImageRecord,
    store: &StoreRecords<'_>,
    layers: &HashMap<&str, &LayerRecord>,
    cache: &mut ConvertCache,
) -> Option<Image> {
    let id = id_digest(&rec.id)?;
    let paths = store.paths;
    let has = |k: &str| rec.big_data_names.iter().any(|n| n == k);

    let manifest = if has("manifest") {
        let item = rec
            .big_data_digests
            .get("manifest")
            .map_or_else(|| rec.digest.clone(), Clone::clone);
        match cache.manifests.get(&rec.id) {
            Some((d, info)) if *d == item => Some(info.clone()),
            _ => {
                let info = read_manifest(paths, &rec.id).map(|(_, i)| i);
                if let Some(i) = &info {
                    cache.manifests.insert(rec.id.clone(), (item, i.clone()));
                }
                info
            }
        }
    } else {
        None
    };
    let manifest = manifest.unwrap_or_default();

    let mut others: Vec<Digest> = rec
        .big_data_digests
        .iter()
        .filter(|(k, _)| k.starts_with("manifest"))
        .filter_map(|(_, v)| parse_digest(v))
        .collect();
    others.sort();
    others.dedup();
    let primary = parse_digest(&rec.digest)
        .or(manifest.digest)
        .or_else(|| others.first().copied())
        .unwrap_or(id);
    let mut digests = vec![primary];
    digests.extend(others.into_iter().filter(|d| *d != primary));

    let manifest_ref = BlobRef {
        digest: primary,
        size: rec
            .big_data_sizes
            .get("manifest")
            .and_then(|s| u64::try_from(*s).ok())
            .unwrap_or(manifest.len),
        media_type: manifest.media_type.as_str().into(),
    };

    let created_str = rec.created.as_str();
    let created = parse_rfc3339(created_str).unwrap_or(0);
    let is_list = manifest.instances.is_some();
    let config_key = format!("sha256:{}", rec.id);
    let config_blob = (!is_list && has(&config_key)).then(|| BlobRef {
        digest: id,
        size: rec
            .big_data_sizes
            .get(&config_key)
            .and_then(|s| u64::try_from(*s).ok())
            .unwrap_or(0),
        media_type: manifest
            .config_media_type
            .as_deref()
            .unwrap_or(MT_OCI_CONFIG)
            .into(),
    });
    let config = match cache.configs.get(&rec.id) {
        Some((c, cfg)) if c == created_str => Arc::clone(cfg),
        _ => {
            // Only a config that was read is cached: c/image writes an image's record
            // before its config item (two lock sessions), and a view taken in between
            // must not keep the empty config once the item is there.
            let read = config_blob
                .is_some()
                .then(|| std::fs::read(paths.image_big_data(&rec.id, &config_key)).ok())
                .flatten();
            let mut cfg = read.as_deref().map(parse_config).unwrap_or_default();
            cfg.created = parse_rfc3339(created_str);
            let cfg = Arc::new(cfg);
            if read.is_some() {
                cache
                    .configs
                    .insert(rec.id.clone(), (created_str.to_owned(), Arc::clone(&cfg)));
            }
            cfg
        }
    };

    let layers_out = if is_list {
        Vec::new()
    } else {
        chain(&rec.layer, layers)
            .into_iter()
            .map(|l| {
                let fallback = id_digest(&l.id).unwrap_or(id);
                let diff = parse_digest(&l.diff_digest);
                Layer {
                    blob: BlobRef {
                        digest: parse_digest(&l.compressed_digest)
                            .or(diff)
                            .unwrap_or(fallback),
                        size: u64::try_from(l.diff_size).unwrap_or(0),
                        media_type: layer_media_type(l).into(),
                    },
                    diff_id: diff.unwrap_or(fallback),
                }
            })
            .collect()
    };

    Some(Image {
        id,
        names: rec.names.clone(),
        digests,
        manifest: manifest_ref,
        config_blob,
        layers: layers_out,
        config,
        instances: manifest.instances,
        read_only: store.read_only,
        added: created,
        last_used: None,
        stored_size: Some(image_size(rec, layers, paths)),
    })
}

/// Converts the container records: those with an image that exists in `images`.
/// `mounted`: layer IDs with a mount count > 0; `podman`: podman's container IDs.
pub(crate) fn containers(
    recs: &[Arc<ContainerRecord>],
    images: &HashSet<Digest>,
    mounted: &HashSet<&str>,
    podman: &HashSet<String>,
) -> Vec<Container> {
    recs.iter()
        .filter_map(|c| {
            let image_id = id_digest(&c.image)?;
            if !images.contains(&image_id) {
                return None;
            }
            Some(Container {
                id: c.id.clone(),
                image_id,
                state: if mounted.contains(c.layer.as_str()) {
                    ContainerState::Running
                } else {
                    ContainerState::Created
                },
                external: !podman.contains(&c.id),
                name: c.names.first().cloned().unwrap_or_default(),
                created: parse_rfc3339(&c.created).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lenient_config() {
        let c = parse_config(
            br#"{"created":"2026-01-01T00:00:00Z","os":"linux","architecture":"amd64",
            "config":{"Cmd":["a"],"Labels":{"k":"v"},"ExposedPorts":{"80/tcp":{}}},
            "history":[{"created_by":"x","empty_layer":true}]}"#,
        );
        assert_eq!(c.run.cmd, vec!["a"]);
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(c.run.exposed_ports, vec!["80/tcp"]);
        assert!(c.history[0].empty_layer);
        assert_eq!(c.platform.os, "linux");
        assert_eq!(parse_config(b"not json"), ImageConfig::default());
    }

    #[test]
    fn a_config_written_after_the_record_is_read_once_there() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths {
            root: d.path().to_path_buf(),
            run: None,
            driver: crate::config::Driver::Vfs,
        };
        let id = "b".repeat(64);
        let key = format!("sha256:{id}");
        let record = |with_config: bool| -> ImageRecord {
            let names: Vec<&str> = if with_config { vec![&key] } else { vec![] };
            serde_json::from_value(serde_json::json!({
                "id": id,
                "created": "2026-01-01T00:00:00Z",
                "big-data-names": names,
            }))
            .unwrap()
        };
        let store = StoreRecords {
            paths: &paths,
            images: &[],
            layers: &[],
            read_only: false,
        };
        let layers = HashMap::new();
        let mut cache = ConvertCache::default();
        // The record first (c/image's first session), without its config item.
        let before = image(&record(false), &store, &layers, &mut cache).unwrap();
        assert!(before.config.labels.is_empty());
        // Then the item (the next session).
        let file = paths.image_big_data(&id, &key);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, br#"{"config":{"Labels":{"k":"v"}}}"#).unwrap();
        let after = image(&record(true), &store, &layers, &mut cache).unwrap();
        assert_eq!(after.config.labels.get("k").map(String::as_str), Some("v"));
    }
}
