//! Pinned images (SPEC §8): by label or by a configured name pattern. Prune never removes
//! them; CRI reports them `pinned`.

use crate::model::Image;

/// Labels that pin an image (containerd's sandbox-image label and imaged's own).
pub const PIN_LABELS: &[(&str, &str)] = &[
    ("io.cri-containerd.pinned", "pinned"),
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
    pub fn new(entries: &[String]) -> Self {
        let mut p = Self::default();
        for e in entries {
            match glob::Pattern::new(e) {
                Ok(pat) if e.contains(['*', '?', '[']) => p.patterns.push(pat),
                _ => p.exact.push(e.clone()),
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
                self.exact.iter().any(|e| e == n) || self.patterns.iter().any(|p| p.matches(n))
            })
    }
}
