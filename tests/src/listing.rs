//! Reading `imagectl ls --format json`: one JSON array, one object per image.
//!
//! Field names are looked up in the spellings a podman-like CLI may use (`id`/`Id`/`ID`,
//! `names`/`Names`, …); IDs are compared as bare hex (podman prints them without the
//! `sha256:` prefix, the API with it).

use serde_json::Value;

use crate::daemon::Daemon;

/// One listed image.
#[derive(Debug, Clone)]
pub struct Listed(pub Value);

impl Listed {
    /// The image ID as bare 64 hex.
    pub fn hex_id(&self) -> String {
        self.str_field(&["id", "Id", "ID"])
            .trim_start_matches("sha256:")
            .to_owned()
    }

    /// The image's names in store order.
    pub fn names(&self) -> Vec<String> {
        self.field(&["names", "Names"])
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A boolean field (`dangling`, `read_only`, … or their podman spellings `Dangling`,
    /// `ReadOnly`); absent means false.
    pub fn flag(&self, name: &str) -> bool {
        let pascal = pascal_case(name);
        self.field(&[name, &pascal])
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// A numeric field (`size`, `unique_size`, … or `Size`, `UniqueSize`); absent means 0.
    pub fn number(&self, name: &str) -> u64 {
        let pascal = pascal_case(name);
        self.field(&[name, &pascal])
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(0)
    }

    /// The parent's ID as bare hex, empty when there is none.
    pub fn parent_hex(&self) -> String {
        self.field(&["parent_id", "parentId", "ParentId", "parent", "Parent"])
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_start_matches("sha256:")
            .to_owned()
    }

    fn field(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().find_map(|k| self.0.get(*k))
    }

    fn str_field(&self, keys: &[&str]) -> String {
        self.field(keys)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// The store as `imagectl ls -a --format json` shows it, plus the raw text (compare the
/// raw text to prove that a failed call changed nothing).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Exact standard output.
    pub raw: String,
    /// Parsed images.
    pub images: Vec<Listed>,
}

impl Snapshot {
    /// The image with this ID (bare hex or `sha256:`), if listed.
    pub fn by_id(&self, id: &str) -> Option<&Listed> {
        let hex = id.trim_start_matches("sha256:");
        self.images.iter().find(|i| i.hex_id() == hex)
    }

    /// Bare hex IDs in listing order.
    pub fn hex_ids(&self) -> Vec<String> {
        self.images.iter().map(Listed::hex_id).collect()
    }

    /// Every name of every image.
    pub fn all_names(&self) -> Vec<String> {
        self.images.iter().flat_map(Listed::names).collect()
    }
}

/// Runs `imagectl ls -a --format json <extra…>` and parses it; panics on failure.
#[track_caller]
pub fn snapshot(daemon: &Daemon, extra: &[&str]) -> Snapshot {
    let mut args = vec!["ls", "-a", "--format", "json"];
    args.extend_from_slice(extra);
    let run = daemon.imagectl(&args);
    run.ok();
    let value: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("`ls --format json` printed no JSON ({e}):\n{run}"));
    let images = match value {
        Value::Array(a) => a.into_iter().map(Listed).collect(),
        Value::Null => Vec::new(),
        other => panic!("`ls --format json` printed no array: {other}"),
    };
    Snapshot {
        raw: run.stdout.clone(),
        images,
    }
}

/// `unique_size` -> `UniqueSize` (podman's JSON field names).
fn pascal_case(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_and_snake_spellings() {
        let l = Listed(serde_json::json!({
            "Id": "ab", "ParentId": "sha256:cd", "Names": ["x"], "Dangling": true,
            "UniqueSize": 7, "size": "9"
        }));
        assert_eq!(l.hex_id(), "ab");
        assert_eq!(l.parent_hex(), "cd");
        assert_eq!(l.names(), ["x"]);
        assert!(l.flag("dangling") && !l.flag("intermediate"));
        assert_eq!((l.number("unique_size"), l.number("size")), (7, 9));
    }
}
