//! The `reference` filter: an image matches a pattern when the pattern resolves to it, or
//! when the pattern glob-matches (`*` does not cross `/`) one of the forms of one of its
//! names: the full name, the path without domain and tag, the last component with tag, the
//! name without tag, the path with tag, the last component without tag.

use crate::catalog::Catalog;
use crate::engine::EngineConfig;
use crate::model::{Image, ImageId};
use crate::reference::resolve::resolve;
use crate::reference::{Reference, split_stored};

/// A compiled `reference` filter value.
#[derive(Debug)]
pub struct RefPattern {
    lookup: Option<ImageId>,
    glob: glob::Pattern,
    /// Canonical reference with tag or digest: (repository, exact name for a tag).
    canonical: Option<(String, Option<String>)>,
}

const OPTS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl RefPattern {
    /// Compiles `value` (resolving it once on `view`); the error is the message.
    pub fn compile(value: &str, view: &Catalog, config: &EngineConfig) -> Result<Self, String> {
        // Go's filepath.Match negates classes with `[^…]`; the glob crate with `[!…]`.
        // Go's `**` is two `*`; the glob crate only accepts it as a whole path component.
        let mut translated = value.replace("[^", "[!");
        while translated.contains("**") {
            translated = translated.replace("**", "*");
        }
        let glob = glob::Pattern::new(&translated)
            .map_err(|e| format!("invalid reference filter {value:?}: {}", e.msg))?;
        let lookup = resolve(view, config, value).ok().map(|r| r.image.id);
        let canonical = Reference::parse(value).ok().and_then(|r| {
            let canonical = r.is_qualified() && r.docker_normalized() == r;
            (canonical && (r.tag.is_some() || r.digest.is_some())).then(|| {
                let exact = if r.digest.is_some() {
                    None
                } else {
                    Some(r.to_string())
                };
                (r.repository(), exact)
            })
        });
        Ok(Self {
            lookup,
            glob,
            canonical,
        })
    }

    /// Whether `img` matches.
    pub fn matches(&self, img: &Image) -> bool {
        if self.lookup == Some(img.id) {
            return true;
        }
        img.names.iter().any(|n| {
            name_forms(n)
                .iter()
                .any(|f| self.glob.matches_with(f, OPTS))
        })
    }

    /// Whether [`Self::narrow`] narrows (a canonical reference).
    pub fn narrows(&self) -> bool {
        self.canonical.is_some()
    }

    /// The names to show for a matching image (libimage narrows only for canonical
    /// references with a tag or digest).
    pub fn narrow(&self, names: &[String]) -> Option<Vec<String>> {
        let (repo, exact) = self.canonical.as_ref()?;
        Some(
            names
                .iter()
                .filter(|n| match exact {
                    Some(e) => *n == e,
                    None => split_stored(n).0 == repo,
                })
                .cloned()
                .collect(),
        )
    }
}

/// The six forms of a stored name a pattern is matched against.
fn name_forms(name: &str) -> Vec<String> {
    let (repo, tag, digest) = split_stored(name);
    let suffix = match (tag, digest) {
        (Some(t), _) => format!(":{t}"),
        (None, Some(d)) => format!("@{d}"),
        (None, None) => String::new(),
    };
    let path = match repo.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => repo,
    };
    let last = path.rsplit('/').next().unwrap_or(path);
    vec![
        name.to_owned(),
        path.to_owned(),
        format!("{last}{suffix}"),
        repo.to_owned(),
        format!("{path}{suffix}"),
        last.to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::name_forms;

    #[test]
    fn forms_of_a_name() {
        assert_eq!(
            name_forms("quay.io/libpod/alpine:latest"),
            vec![
                "quay.io/libpod/alpine:latest",
                "libpod/alpine",
                "alpine:latest",
                "quay.io/libpod/alpine",
                "libpod/alpine:latest",
                "alpine"
            ]
        );
    }
}
