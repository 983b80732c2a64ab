//! The JSON records of `images.json`, `layers.json`, `containers.json` and
//! `mountpoints.json` (design doc §2), written the way Go's `encoding/json` writes them:
//! fields in the Go struct order, `omitempty` fields left out when empty, `created` always
//! written (Go never omits a `time.Time`), compact, map keys sorted and `<`, `>`, `&`,
//! U+2028, U+2029 escaped as `\u003c` etc. Times stay the original strings and fields this
//! version does not know are kept (`extra`) so that records written by another c/storage
//! version round-trip unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Go's zero `time.Time`, what c/storage writes for a record without a time.
pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn zero_time() -> String {
    ZERO_TIME.to_owned()
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The flag c/storage sets on a layer being created or deleted.
pub(crate) const INCOMPLETE: &str = "incomplete";

/// One `images.json` record (`cs/images.go` `Image`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// 64 hex, no algorithm.
    pub(crate) id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) names: Vec<String>,
    #[serde(
        default,
        rename = "names-history",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) names_history: Vec<String>,
    #[serde(default, rename = "layer", skip_serializing_if = "String::is_empty")]
    pub(crate) layer: String,
    #[serde(
        default,
        rename = "mapped-layers",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) mapped_layers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) metadata: String,
    #[serde(
        default,
        rename = "big-data-names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) big_data_names: Vec<String>,
    #[serde(
        default,
        rename = "big-data-sizes",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub(crate) big_data_sizes: BTreeMap<String, i64>,
    #[serde(
        default,
        rename = "big-data-digests",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub(crate) big_data_digests: BTreeMap<String, String>,
    #[serde(default = "zero_time")]
    pub(crate) created: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) flags: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub(crate) extra: BTreeMap<String, Value>,
}

/// One `layers.json` record (`cs/layers.go` `Layer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub(crate) id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) names: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) parent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) metadata: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) mountlabel: String,
    #[serde(default = "zero_time")]
    pub(crate) created: String,
    #[serde(
        default,
        rename = "compressed-diff-digest",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) compressed_digest: String,
    #[serde(default, rename = "compressed-size", skip_serializing_if = "is_zero")]
    pub(crate) compressed_size: i64,
    #[serde(
        default,
        rename = "diff-digest",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) diff_digest: String,
    #[serde(default, rename = "diff-size", skip_serializing_if = "is_zero")]
    pub(crate) diff_size: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) compression: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) uidset: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) gidset: Vec<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) flags: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) uidmap: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) gidmap: Vec<Value>,
    #[serde(
        default,
        rename = "big-data-names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) big_data_names: Vec<String>,
    #[serde(flatten)]
    pub(crate) extra: BTreeMap<String, Value>,
}

impl LayerRecord {
    /// `layerHasIncompleteFlag`: `flags.incomplete` is the JSON `true`.
    pub(crate) fn is_incomplete(&self) -> bool {
        self.flags.get(INCOMPLETE) == Some(&Value::Bool(true))
    }
}

/// One `containers.json` record (`cs/containers.go` `Container`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub(crate) id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) names: Vec<String>,
    /// Never omitted (`""` for rootfs containers).
    #[serde(default)]
    pub(crate) image: String,
    /// Never omitted.
    #[serde(default)]
    pub(crate) layer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) metadata: String,
    #[serde(
        default,
        rename = "big-data-names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) big_data_names: Vec<String>,
    #[serde(
        default,
        rename = "big-data-sizes",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub(crate) big_data_sizes: BTreeMap<String, i64>,
    #[serde(
        default,
        rename = "big-data-digests",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub(crate) big_data_digests: BTreeMap<String, String>,
    #[serde(default = "zero_time")]
    pub(crate) created: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) uidmap: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) gidmap: Vec<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) flags: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub(crate) extra: BTreeMap<String, Value>,
}

/// One `mountpoints.json` record (`cs/layers.go` `layerMountPoint`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MountRecord {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) count: i64,
}

/// Parses one of the files: empty data is no records (c/storage's `Load`). The store
/// reads them record by record (`tracked`); the tests read whole files.
#[cfg(test)]
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(data: &[u8]) -> serde_json::Result<Vec<T>> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice(data)
}

/// Serializes records as Go's `encoding/json` would (compact, HTML-escaped).
pub(crate) fn to_go_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let raw = serde_json::to_vec(value)?;
    Ok(html_escape(raw))
}

/// `<`, `>`, `&`, U+2028 and U+2029 only occur inside JSON strings, where Go writes them
/// as `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`.
fn html_escape(raw: Vec<u8>) -> Vec<u8> {
    // Records are megabytes with usually nothing to escape: find candidates with memchr
    // and copy the spans between them.
    let mut spots: Vec<usize> = memchr::memchr3_iter(b'<', b'>', b'&', &raw)
        .chain(memchr::memchr_iter(0xe2, &raw))
        .collect();
    if spots.is_empty() {
        return raw;
    }
    spots.sort_unstable();
    let mut out = Vec::with_capacity(raw.len() + 6 * spots.len());
    let mut from = 0;
    for i in spots {
        if i < from {
            continue;
        }
        out.extend_from_slice(&raw[from..i]);
        from = i + 1;
        match raw[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            _ if raw.get(i + 1) == Some(&0x80) && matches!(raw.get(i + 2), Some(0xa8 | 0xa9)) => {
                out.extend_from_slice(if raw[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                from = i + 3;
            }
            b => out.push(b),
        }
    }
    out.extend_from_slice(&raw[from..]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Removes the layout whitespace of the design doc's pretty-printed excerpts (outside
    /// strings), giving what Go writes.
    fn compact(s: &str) -> String {
        let mut out = String::new();
        let mut in_str = false;
        let mut esc = false;
        for c in s.chars() {
            if in_str {
                out.push(c);
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    in_str = false;
                }
            } else if !c.is_whitespace() {
                if c == '"' {
                    in_str = true;
                }
                out.push(c);
            }
        }
        out
    }

    /// Design doc §2.1 excerpt (`podman import` + `podman tag` x2).
    const IMAGES: &str = r#"[{"id":"fb69…0ece","digest":"sha256:996b…6fd7",
  "names":["localhost/bb:1","localhost/bb:2","quay.io/x/bb:latest"],
  "names-history":["quay.io/x/bb:latest","localhost/bb:2","localhost/bb:1"],
  "layer":"5fde…03d7",
  "metadata":"{\"signatures-sizes\":{\"sha256:996b…6fd7\":[]}}",
  "big-data-names":["sha256:fb69…0ece","manifest-sha256:996b…6fd7","manifest","signature-996b…6fd7"],
  "big-data-sizes":{"manifest":343,"manifest-sha256:996b…6fd7":343,"sha256:fb69…0ece":409,"signature-996b…6fd7":0},
  "big-data-digests":{"manifest":"sha256:996b…6fd7","manifest-sha256:996b…6fd7":"sha256:996b…6fd7",
                      "sha256:fb69…0ece":"sha256:fb69…0ece","signature-996b…6fd7":"sha256:e3b0…b855"},
  "created":"2026-12-06T04:06:26.950157278Z"}]"#;

    /// Design doc §2.3 excerpt: image layer, podman container layer, buildah container layer.
    const LAYERS: &str = r#"[{"id":"5fde…03d7","created":"…","compressed-diff-digest":"sha256:5fde…03d7","compressed-size":1986560,
  "diff-digest":"sha256:5fde…03d7","diff-size":1986560,"uidset":[0],"gidset":[0]},
 {"id":"8fe9…fed3a","names":["c1-layer"],"parent":"5fde…03d7","created":"…"},
 {"id":"7fff…a1ee","parent":"5fde…03d7","created":"…"}]"#;

    /// §2.4 / §2.5 shapes (podman container, buildah container with `Volatile`).
    const CONTAINERS: &str = r#"[{"id":"aa","names":["c1"],"image":"fb","layer":"8f","metadata":"{\"image-name\":\"localhost/bb:1\"}","created":"2026-12-06T04:07:00.1Z","flags":{"MountLabel":"","ProcessLabel":""}},{"id":"bb","names":["bctr"],"image":"fb","layer":"7f","created":"2026-12-06T04:08:00Z","flags":{"MountLabel":"","ProcessLabel":"","Volatile":true}},{"id":"cc","image":"","layer":"9f","created":"0001-01-01T00:00:00Z"}]"#;
    const MOUNTS: &str = r#"[{"id":"2424…f172","path":"/r/overlay/2424…f172/merged","count":1}]"#;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(src: &str) {
        let want = compact(src);
        let recs: Vec<T> = parse(want.as_bytes()).unwrap();
        let got = to_go_json(&recs).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }

    #[test]
    fn design_doc_excerpts_round_trip_byte_for_byte() {
        round_trip::<ImageRecord>(IMAGES);
        round_trip::<LayerRecord>(LAYERS);
        round_trip::<ContainerRecord>(CONTAINERS);
        round_trip::<MountRecord>(MOUNTS);
    }

    #[test]
    fn unknown_fields_survive_and_empty_is_no_records() {
        let src = r#"[{"id":"a","created":"2020-01-01T00:00:00Z","zz-new":{"k":[1,2]}}]"#;
        round_trip::<ImageRecord>(src);
        assert!(parse::<ImageRecord>(b"").unwrap().is_empty());
        assert!(parse::<ImageRecord>(b"[]").unwrap().is_empty());
        // A record without a time gets Go's zero time.
        let r: Vec<LayerRecord> = parse(br#"[{"id":"x"}]"#).unwrap();
        assert_eq!(
            String::from_utf8(to_go_json(&r).unwrap()).unwrap(),
            r#"[{"id":"x","created":"0001-01-01T00:00:00Z"}]"#
        );
    }

    #[test]
    fn html_characters_are_escaped_like_go() {
        let r: Vec<ImageRecord> =
            parse("[{\"id\":\"a\",\"metadata\":\"<a&b>\u{2028}\",\"created\":\"t\"}]".as_bytes())
                .unwrap();
        assert_eq!(
            String::from_utf8(to_go_json(&r).unwrap()).unwrap(),
            r#"[{"id":"a","metadata":"\u003ca\u0026b\u003e\u2028","created":"t"}]"#
        );
    }

    #[test]
    fn incomplete_flag_must_be_true() {
        let r: Vec<LayerRecord> = parse(
            br#"[{"id":"a","flags":{"incomplete":true}},{"id":"b","flags":{"incomplete":"true"}}]"#,
        )
        .unwrap();
        assert!(r[0].is_incomplete());
        assert!(!r[1].is_incomplete());
    }
}
