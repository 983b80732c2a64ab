//! Domain → CRI `runtime.v1` conversions: images (containerd's user rule), the verbose
//! ImageStatus info and the image-filesystem usage.

use std::path::PathBuf;

use imaged_core::ops::{ImageDetails, ImageSummary};
use imaged_core::store::FsUsage;
use imaged_core::{Catalog, Digest, Engine};
use imaged_proto::runtime::v1 as cri;

/// The default user of an image config, as containerd's `getUserFromImage`: the part
/// before `:`; numeric → `uid`, otherwise `username`; both unset when there is no user.
pub(crate) fn user_of(user: &str) -> (Option<cri::Int64Value>, String) {
    let first = user.split(':').next().unwrap_or_default();
    if first.is_empty() {
        return (None, String::new());
    }
    match first.parse::<i64>() {
        Ok(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
        Err(_) => (None, first.to_owned()),
    }
}

/// One CRI `Image` from a listed summary and the config user (`""` when unknown).
pub(crate) fn image(s: &ImageSummary, config_user: &str) -> cri::Image {
    let (uid, username) = user_of(config_user);
    cri::Image {
        id: s.id.to_string(),
        repo_tags: s.repo_tags.clone(),
        repo_digests: s.repo_digests.clone(),
        // CRI requires size > 0; every stored image has at least a manifest blob, so this
        // only guards against a store reporting a zero-length image.
        size: s.size.max(1),
        uid,
        username,
        spec: None,
        pinned: s.pinned,
    }
}

/// CRI images for `summaries`, the config users read from `view`. An image removed since
/// the summaries were made (not in `view`) keeps its listed fields and no user.
pub(crate) fn images(summaries: &[ImageSummary], view: &Catalog) -> Vec<cri::Image> {
    summaries
        .iter()
        .map(|s| {
            let user = view
                .image(&s.id)
                .map(|i| i.config.run.user.as_str())
                .unwrap_or_default();
            image(s, user)
        })
        .collect()
}

/// The OCI chain ID of a layer stack (`None` without layers).
pub(crate) fn chain_id(diff_ids: impl Iterator<Item = Digest>) -> Option<Digest> {
    diff_ids.fold(None, |acc, d| match acc {
        None => Some(d),
        Some(prev) => Some(Digest::of(format!("{prev} {d}").as_bytes())),
    })
}

/// The verbose `info` value of ImageStatus, as containerd writes it:
/// `{"chainID": "sha256:…", "imageSpec": <the OCI image config>}`. `raw_config` is the
/// config blob (the image ID is its digest); `null` when it is gone or not JSON.
pub(crate) fn verbose_info(details: &ImageDetails, raw_config: Option<&[u8]>) -> String {
    let image_spec = raw_config
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(raw).ok())
        .unwrap_or(serde_json::Value::Null);
    let chain = chain_id(details.layers.iter().map(|l| l.diff_id));
    serde_json::json!({
        "chainID": chain.map(|c| c.to_string()).unwrap_or_default(),
        "imageSpec": image_spec,
    })
    .to_string()
}

/// What the catalog says the blobs take, for when the store cannot be measured: the sum
/// of the blob sizes, one inode per blob plus the metadata.
pub(crate) fn catalog_usage(view: &Catalog) -> FsUsage {
    view.blobs().fold(
        FsUsage {
            used_bytes: 0,
            inodes_used: 1,
        },
        |acc, (_, b)| FsUsage {
            used_bytes: acc.used_bytes + b.size,
            inodes_used: acc.inodes_used + 1,
        },
    )
}

/// ImageFsInfo: always one image filesystem, the store's data directory (its real path,
/// symlinks resolved, so that kubelet's cAdvisor can map it to a device), with the bytes
/// and inodes of the stored blobs and the time of measurement. Blocking I/O.
///
/// It never fails: cri-client calls it to validate the endpoint and kubelet reads
/// `used_bytes` without a nil check. When the store cannot be measured, the catalog's
/// blob sizes are reported and the error is logged.
pub(crate) fn fs_info(engine: &Engine) -> cri::ImageFsInfoResponse {
    let store = engine.store();
    let usage = store.fs_usage().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "CRI ImageFsInfo: cannot measure the store; reporting the catalog's blob sizes");
        catalog_usage(&engine.view())
    });
    let root = store.info().root;
    let mountpoint = real_path(root);
    let fs = cri::FilesystemUsage {
        timestamp: imaged_core::time::now().max(1),
        fs_id: Some(cri::FilesystemIdentifier {
            mountpoint: mountpoint.display().to_string(),
        }),
        used_bytes: Some(cri::UInt64Value {
            value: usage.used_bytes,
        }),
        inodes_used: Some(cri::UInt64Value {
            value: usage.inodes_used,
        }),
    };
    cri::ImageFsInfoResponse {
        image_filesystems: vec![fs],
        container_filesystems: Vec::new(),
    }
}

/// `path` with symlinks resolved and made absolute; as given when that fails.
fn real_path(path: PathBuf) -> PathBuf {
    std::fs::canonicalize(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_rules_follow_containerd() {
        assert_eq!(user_of("root"), (None, "root".to_owned()));
        assert_eq!(
            user_of("1234:1234"),
            (Some(cri::Int64Value { value: 1234 }), String::new())
        );
        assert_eq!(user_of("nobody:nogroup"), (None, "nobody".to_owned()));
        assert_eq!(user_of(""), (None, String::new()));
        assert_eq!(user_of(":100"), (None, String::new()));
        assert_eq!(
            user_of("0"),
            (Some(cri::Int64Value { value: 0 }), String::new())
        );
    }

    #[test]
    fn chain_id_follows_the_oci_rule() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = Digest::of(b"c");
        assert_eq!(chain_id([a].into_iter()), Some(a));
        let ab = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(chain_id([a, b].into_iter()), Some(ab));
        assert_eq!(
            chain_id([a, b, c].into_iter()),
            Some(Digest::of(format!("{ab} {c}").as_bytes()))
        );
        assert_eq!(chain_id(std::iter::empty()), None);
    }

    #[test]
    fn real_path_resolves_symlinks_and_keeps_missing_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let want = std::fs::canonicalize(&real).expect("canonical");
        assert_eq!(real_path(link), want);
        let missing = dir.path().join("missing");
        assert_eq!(real_path(missing.clone()), missing);
    }
}
