//! Pinned images (SPEC §8): by label or by a configured name pattern. Prune never removes
//! them; CRI reports them `pinned`.

use crate::model::Image;
use crate::reference::{normalize_docker_name, normalize_name};

/// Labels that pin an image: containerd's sandbox-image label, imaged's own
/// (`io.imaged.pinned=true`, as documented in `images.proto` and the README) and its
/// earlier spelling `imaged.io/pinned=true`.
pub(crate) const PIN_LABELS: &[(&str, &str)] = &[
    ("io.cri-containerd.pinned", "pinned"),
    ("io.imaged.pinned", "true"),
    ("imaged.io/pinned", "true"),
];

/// The configured patterns, compiled once per request.
#[derive(Debug, Default)]
pub struct Pinned {
    patterns: Vec<glob::Pattern>,
    exact: Vec<String>,
}

impl Pinned {
    /// Compiles `pinned_images` entries: globs (`*`, `?`, `[…]`) or exact names. Entries that
    /// are not valid globs are compared literally.
    ///
    /// An exact entry also matches its normalised forms, as a user of containerd or podman
    /// would write it: `pause:3.9` pins `docker.io/library/pause:3.9` (Docker
    /// normalisation) and `localhost/pause:3.9` (libimage's), `registry.k8s.io/pause` pins
    /// `registry.k8s.io/pause:latest`. A glob is matched against the stored name and
    /// against its familiar form without `docker.io/library/`, `docker.io/` or
    /// `localhost/`, so `pause:*` pins `docker.io/library/pause:3.9`.
    pub fn new(entries: &[String]) -> Self {
        let mut p = Self::default();
        for e in entries {
            let e = e.trim();
            if e.is_empty() {
                continue;
            }
            match glob::Pattern::new(e) {
                Ok(pat) if e.contains(['*', '?', '[']) => p.patterns.push(pat),
                _ => {
                    p.exact.push(e.to_owned());
                    for n in [
                        normalize_docker_name(e),
                        normalize_name(e).map(|r| r.to_string()),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        if !p.exact.contains(&n) {
                            p.exact.push(n);
                        }
                    }
                }
            }
        }
        p
    }

    /// Whether `img` is pinned by label or by one of its names.
    pub fn is_pinned(&self, img: &Image) -> bool {
        PIN_LABELS
            .iter()
            .any(|(k, v)| img.config.labels.get(*k).is_some_and(|x| x == v))
            || img.names.iter().any(|n| {
                self.exact.iter().any(|e| e == n)
                    || self
                        .patterns
                        .iter()
                        .any(|p| p.matches(n) || familiar(n).is_some_and(|f| p.matches(f)))
            })
    }
}

/// The name without the implicit domain a user leaves out, if it has one.
fn familiar(name: &str) -> Option<&str> {
    ["docker.io/library/", "docker.io/", "localhost/"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
}
