//! Reference resolution (SPEC §2): the one function every RPC uses to turn a user's string
//! into an image.
//!
//! Exact lookups (IDs, candidate names) are hash lookups; only the fall-backs (digested
//! candidates, ID prefixes, the fuzzy repository match, manifest-list instances) scan the
//! catalog once, with cheap comparisons.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::engine::EngineConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Image, ImageId, Platform};
use crate::reference::{self, Reference, split_stored};

/// How a reference found its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// A full ID; `sha256_prefix` when written `sha256:<hex>` (libimage's "by digest").
    Id {
        /// Written with `sha256:`.
        sha256_prefix: bool,
    },
    /// A unique ID prefix.
    IdPrefix,
    /// A name candidate; the string is the candidate (fully qualified). For a digested
    /// candidate it may not be one of the image's stored names.
    Name(String),
    /// A name of a manifest list, resolved to the list's instance for this platform.
    ListInstance {
        /// The list.
        list: ImageId,
        /// The list's name that matched.
        name: String,
    },
    /// A `containers-storage:` reference: libimage resolves it to no name, so a removal
    /// takes the whole image whatever its names.
    Storage,
}

/// How to look a reference up, beyond the engine's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The platform whose instance a manifest list's name resolves to (default: the
    /// engine's).
    pub platform: Option<Platform>,
    /// libimage's `LookupManifest`: the reference must be a manifest list, and its name
    /// resolves to the list itself, never to an instance.
    pub manifest: bool,
}

/// The transports of containers/image (`alltransports`): a reference starting with
/// `<one of them>:` names an image of that transport, not a local one.
const TRANSPORTS: &[&str] = &[
    "containers-storage",
    "dir",
    "docker",
    "docker-archive",
    "docker-daemon",
    "oci",
    "oci-archive",
    "sif",
    "tarball",
];

impl How {
    /// Whether the image was named by its ID (full or prefix).
    pub fn by_id(&self) -> bool {
        matches!(self, Self::Id { .. } | Self::IdPrefix)
    }
}

/// A resolved reference.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The image.
    pub image: Arc<Image>,
    /// How it was found.
    pub how: How,
}

/// Resolves `s` on `view` (SPEC §2 steps 1–7).
pub fn resolve(view: &Catalog, config: &EngineConfig, s: &str) -> Result<Resolved> {
    resolve_with(view, config, s, &Lookup::default())
}

/// [`resolve`] with per-request lookup options: a platform for manifest lists, or the
/// list itself (`manifest`). A `containers-storage:` prefix is accepted (an optional
/// `[driver@root+runroot]` store part is ignored: there is one store); any other
/// transport is refused as libimage refuses it.
pub fn resolve_with(
    view: &Catalog,
    config: &EngineConfig,
    s: &str,
    lookup: &Lookup,
) -> Result<Resolved> {
    if let Some((transport, rest)) = s.split_once(':')
        && TRANSPORTS.contains(&transport)
    {
        if transport != "containers-storage" {
            return Err(Error::new(
                ErrorKind::InvalidReference,
                format!("unsupported transport {transport:?} for looking up local images"),
            )
            .with_meta("reference", s));
        }
        return storage_reference(view, config, s, rest, lookup);
    }
    let found = resolve_plain(view, config, s, lookup)?;
    if lookup.manifest && !found.image.is_manifest_list() {
        return Err(not_a_list(s));
    }
    Ok(found)
}

fn not_a_list(s: &str) -> Error {
    Error::new(
        ErrorKind::NotAManifestList,
        format!("{s}: image is not a manifest list"),
    )
    .with_meta("reference", s)
}

/// A `containers-storage:[store]NAME[@ID]` reference: by ID when it has one, else by
/// name (normalized as containers/image does: a short name is Docker Hub's).
fn storage_reference(
    view: &Catalog,
    config: &EngineConfig,
    s: &str,
    rest: &str,
    lookup: &Lookup,
) -> Result<Resolved> {
    let rest = match rest.strip_prefix('[') {
        Some(r) => r.split_once(']').map_or(r, |(_, after)| after),
        None => rest,
    };
    let (name, id) = match rest.rsplit_once('@') {
        Some((n, id)) if reference::is_full_hex_id(id) => (n, Some(id)),
        _ if reference::is_full_hex_id(rest) => ("", Some(rest)),
        _ => (rest, None),
    };
    let image = match id {
        Some(hex) => {
            let id = Digest::from_hex(hex).map_err(|_| Error::image_not_known(s))?;
            view.image(&id).cloned()
        }
        None if name.is_empty() => None,
        None => {
            let qualified = docker_normalized(name).ok_or_else(|| Error::image_not_known(s))?;
            view.image_by_name(&qualified).cloned()
        }
    }
    .ok_or_else(|| Error::image_not_known(s))?;
    let _ = config;
    if lookup.manifest && !image.is_manifest_list() {
        return Err(not_a_list(s));
    }
    Ok(Resolved {
        image,
        how: How::Storage,
    })
}

/// A name as containers/image's storage transport normalizes it: `docker.io/library/`
/// for one-component short names, `docker.io/` for other short names, `:latest` when no
/// tag or digest is given.
fn docker_normalized(name: &str) -> Option<String> {
    let parsed = Reference::parse(name).ok()?.with_default_tag();
    if parsed.is_qualified() {
        return Some(parsed.to_string());
    }
    let text = parsed.to_string();
    Some(if text.contains('/') {
        format!("docker.io/{text}")
    } else {
        format!("docker.io/library/{text}")
    })
}

/// [`resolve_with`] for a reference without a transport.
fn resolve_plain(
    view: &Catalog,
    config: &EngineConfig,
    s: &str,
    lookup: &Lookup,
) -> Result<Resolved> {
    if s.trim().is_empty() {
        return Err(
            Error::new(ErrorKind::InvalidReference, "image name cannot be blank")
                .with_meta("reference", s),
        );
    }
    // Step 3: IDs.
    if let Some(hex) = s.strip_prefix("sha256:") {
        let Ok(id) = Digest::from_hex(hex) else {
            return Err(Error::new(
                ErrorKind::InvalidReference,
                format!("{s}: invalid format: no 64-byte hexadecimal value"),
            )
            .with_meta("reference", s));
        };
        return by_id(view, s, id, true);
    }
    if reference::is_full_hex_id(s) {
        let id = Digest::from_hex(s).map_err(|_| Error::image_not_known(s))?;
        return by_id(view, s, id, false);
    }
    let parsed = Reference::parse(s).map_err(|e| {
        Error::new(
            ErrorKind::InvalidReference,
            format!("parsing reference {s:?}: {e}"),
        )
        .with_meta("reference", s)
    })?;
    // Step 2: a digest wins over a tag.
    let parsed = parsed.with_default_tag();

    // Step 4: name candidates.
    for cand in candidates(&parsed, config) {
        if let Some(found) = match_candidate(view, &cand) {
            return Ok(into_instance(view, config, lookup, found, cand));
        }
    }
    // Step 5: unique ID prefix.
    if s.len() < 64 && reference::is_lower_hex(s) {
        let mut hits = view.images().filter(|i| i.id.hex_starts_with(s));
        if let Some(first) = hits.next() {
            let rest: Vec<&Arc<Image>> = hits.collect();
            if rest.is_empty() {
                return Ok(Resolved {
                    image: Arc::clone(first),
                    how: How::IdPrefix,
                });
            }
            let mut ids: Vec<String> = std::iter::once(first)
                .chain(rest)
                .map(|i| i.id.to_string())
                .collect();
            ids.sort();
            return Err(ambiguous(s, &ids));
        }
    }
    // Step 6: fuzzy repository match (short input only).
    if !parsed.is_qualified()
        && let Some((img, name)) = fuzzy(view, &parsed)
    {
        return Ok(into_instance(view, config, lookup, img, name));
    }
    Err(Error::image_not_known(s))
}

fn by_id(view: &Catalog, s: &str, id: ImageId, sha256_prefix: bool) -> Result<Resolved> {
    view.image(&id)
        .map(|image| Resolved {
            image: Arc::clone(image),
            how: How::Id { sha256_prefix },
        })
        .ok_or_else(|| Error::image_not_known(s))
}

fn ambiguous(s: &str, ids: &[String]) -> Error {
    let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
    let more = if ids.len() > shown.len() { " …" } else { "" };
    let mut e = Error::new(
        ErrorKind::AmbiguousReference,
        format!(
            "{s}: ambiguous reference: the ID prefix matches {} images ({}{more})",
            ids.len(),
            shown.join(", ")
        ),
    )
    .with_meta("reference", s)
    .with_meta("candidates", ids.join(","));
    for id in ids.iter().take(32) {
        e = e.with_violation("IMAGE", id.clone(), "image ID starts with the given prefix");
    }
    e
}

/// The name candidates of a parsed reference, in order, fully qualified.
pub fn candidates(r: &Reference, config: &EngineConfig) -> Vec<String> {
    let suffix = |mut x: Reference| {
        x.tag.clone_from(&r.tag);
        x.digest = r.digest;
        x.to_string()
    };
    if r.is_qualified() {
        return vec![r.docker_normalized().to_string()];
    }
    let mut out = Vec::with_capacity(config.search_registries.len() + 2);
    let with_domain = |d: &str| Reference {
        domain: Some(d.to_owned()),
        ..r.clone()
    };
    out.push(suffix(with_domain("localhost")));
    for reg in &config.search_registries {
        let c = suffix(with_domain(reg).docker_normalized());
        if !out.contains(&c) {
            out.push(c);
        }
    }
    let hub = suffix(r.docker_normalized());
    if !out.contains(&hub) {
        out.push(hub);
    }
    out
}

/// An image having `cand` as a name; for `repo@D` also an image with digest D and some
/// name in `repo`.
fn match_candidate(view: &Catalog, cand: &str) -> Option<Arc<Image>> {
    if let Some(img) = view.image_by_name(cand) {
        return Some(Arc::clone(img));
    }
    let (repo, _, Some(d)) = split_stored(cand) else {
        return None;
    };
    let digest = Digest::parse(d).ok()?;
    best(view.images().filter(|img| {
        img.digests.contains(&digest) && img.names.iter().any(|n| split_stored(n).0 == repo)
    }))
}

/// libimage's fuzzy match: a name whose repository ends with `/<path>` and whose tag equals
/// the wanted one; digested input needs the digest and yields `<repo>@<digest>`.
fn fuzzy(view: &Catalog, r: &Reference) -> Option<(Arc<Image>, String)> {
    let want_suffix = format!("/{}", r.path);
    let mut found: Option<(Arc<Image>, String)> = None;
    for img in view.images() {
        if let Some(d) = &r.digest
            && !img.digests.contains(d)
        {
            continue;
        }
        for n in &img.names {
            let (repo, tag, _) = split_stored(n);
            if !(repo.ends_with(&want_suffix) || repo == r.path) {
                continue;
            }
            let name = match (&r.digest, &r.tag, tag) {
                (Some(d), _, _) => format!("{repo}@{d}"),
                (None, Some(want), Some(t)) if want == t => n.clone(),
                _ => continue,
            };
            let better = found.as_ref().is_none_or(|(_, cur)| name < *cur);
            if better {
                found = Some((Arc::clone(img), name));
            }
        }
    }
    found
}

/// Deterministic pick among several matches: the smallest ID.
fn best<'a>(it: impl Iterator<Item = &'a Arc<Image>>) -> Option<Arc<Image>> {
    it.min_by_key(|i| i.id).map(Arc::clone)
}

/// A manifest list found by name resolves to its local instance for the platform (the
/// request's, else the engine's); the list itself when no instance is stored, or when
/// the lookup asks for the list.
fn into_instance(
    view: &Catalog,
    config: &EngineConfig,
    lookup: &Lookup,
    img: Arc<Image>,
    name: String,
) -> Resolved {
    let platform = lookup.platform.as_ref().unwrap_or(&config.platform);
    if let Some(instances) = img.instances.as_ref().filter(|_| !lookup.manifest) {
        for inst in instances
            .iter()
            .filter(|i| platform_matches(&i.platform, platform))
        {
            if let Some(local) = best(
                view.images()
                    .filter(|i| !i.is_manifest_list() && i.digests.contains(&inst.digest)),
            ) {
                return Resolved {
                    image: local,
                    how: How::ListInstance { list: img.id, name },
                };
            }
        }
    }
    Resolved {
        image: img,
        how: How::Name(name),
    }
}

/// Whether an instance's platform fits the wanted one (variant only when both set).
pub fn platform_matches(have: &Platform, want: &Platform) -> bool {
    have.os == want.os
        && have.architecture == want.architecture
        && (have.variant.is_empty() || want.variant.is_empty() || have.variant == want.variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_libimage() {
        let cfg = EngineConfig {
            search_registries: vec!["docker.io".into(), "quay.io".into()],
            ..EngineConfig::default()
        };
        let r = Reference::parse("busybox").unwrap().with_default_tag();
        assert_eq!(
            candidates(&r, &cfg),
            vec![
                "localhost/busybox:latest",
                "docker.io/library/busybox:latest",
                "quay.io/busybox:latest"
            ]
        );
        let r = Reference::parse("docker.io/foo")
            .unwrap()
            .with_default_tag();
        assert_eq!(candidates(&r, &cfg), vec!["docker.io/library/foo:latest"]);
        let r = Reference::parse("a/b:1").unwrap();
        assert_eq!(
            candidates(&r, &EngineConfig::default()),
            vec!["localhost/a/b:1", "docker.io/a/b:1"]
        );
    }
}
