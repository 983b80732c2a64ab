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
}

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
            return Ok(into_instance(view, config, found, cand));
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
        return Ok(into_instance(view, config, img, name));
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

/// A manifest list found by name resolves to its local instance for the platform; the list
/// itself when no instance is stored.
fn into_instance(view: &Catalog, config: &EngineConfig, img: Arc<Image>, name: String) -> Resolved {
    if let Some(instances) = &img.instances {
        for inst in instances
            .iter()
            .filter(|i| platform_matches(&i.platform, &config.platform))
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
