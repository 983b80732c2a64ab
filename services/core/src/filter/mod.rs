//! Image filters (SPEC §5.3): libimage's grammar, keys and messages, with Docker's aliases.
//!
//! Each filter is `key=value` or `key!=value` (split on the first `!=`, else on the first
//! `=`). Different keys and repeated keys are ANDed, except positive `reference` filters,
//! which are ORed. Filters are parsed ([`parse`]) without a store, then compiled against a
//! view ([`Filters::compile`]: image references of `after`/`before` and `reference` are
//! resolved once), then evaluated per image in O(1) against the [`Tree`].
//!
//! Beyond libimage's keys: `unused-since=<time>` (imaged's usage data, SPEC §1): images
//! whose last use (`last_used`, else `added`) is before the time, given as `until`'s.

mod reference;
pub mod until;

use std::collections::HashMap;

use crate::catalog::Catalog;
use crate::engine::EngineConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::graph::tree::Tree;
use crate::graph::{Facts, TreeFacts};
use crate::model::Image;
use crate::reference::resolve::resolve;
use crate::time::UnixNanos;

pub use reference::RefPattern;

/// A filter key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// `after` / `since`.
    After,
    /// `before`.
    Before,
    /// `until`.
    Until,
    /// `unused-since`: last use (`last_used`, else `added`) before a time.
    UnusedSince,
    /// `containers`.
    Containers,
    /// `dangling`.
    Dangling,
    /// `intermediate`.
    Intermediate,
    /// `id`.
    Id,
    /// `digest`.
    Digest,
    /// `label` (and Docker's `label!`).
    Label,
    /// `readonly`.
    ReadOnly,
    /// `manifest`.
    Manifest,
    /// `reference`.
    Reference,
}

impl Key {
    fn parse(k: &str) -> Option<(Self, bool)> {
        Some(match k {
            "after" | "since" => (Self::After, false),
            "before" => (Self::Before, false),
            "until" => (Self::Until, false),
            "unused-since" => (Self::UnusedSince, false),
            "containers" => (Self::Containers, false),
            "dangling" => (Self::Dangling, false),
            "intermediate" => (Self::Intermediate, false),
            "id" => (Self::Id, false),
            "digest" => (Self::Digest, false),
            "label" => (Self::Label, false),
            "label!" => (Self::Label, true),
            "readonly" => (Self::ReadOnly, false),
            "manifest" => (Self::Manifest, false),
            "reference" => (Self::Reference, false),
            _ => return None,
        })
    }
}

/// One parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Position in the request (for `filters[i]`).
    pub index: usize,
    /// The key as written.
    pub key_text: String,
    /// The key.
    pub key: Key,
    /// `!=`.
    pub negate: bool,
    /// The value.
    pub value: String,
}

/// Containers filter values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainersValue {
    /// At least one container.
    True,
    /// None.
    False,
    /// Every container (if any) is external.
    External,
}

fn bad(field: &str, index: usize, raw: &str, message: String) -> Error {
    Error::new(ErrorKind::InvalidFilter, message.clone())
        .with_field(format!("{field}[{index}]"), message)
        .with_meta("filter", raw)
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses filter strings (`field` names the request field, e.g. `filters`), checking the
/// grammar, the keys, the values that need no store and contradictory repeats.
pub fn parse(filters: &[String], field: &str) -> Result<Vec<Spec>> {
    let mut out = Vec::with_capacity(filters.len());
    let mut seen: HashMap<Key, (String, usize)> = HashMap::new();
    for (index, raw) in filters.iter().enumerate() {
        let format_err = |what: &str| {
            bad(
                field,
                index,
                raw,
                format!(
                    "invalid image filter {what:?}: must be in the format \
                     \"filter=value or filter!=value\""
                ),
            )
        };
        let (key_text, negate, value) = match raw.split_once("!=") {
            Some((k, v)) => (k, true, v),
            None => match raw.split_once('=') {
                Some((k, v)) => (k, false, v),
                None => return Err(format_err(raw)),
            },
        };
        let Some((key, alias_negate)) = Key::parse(key_text) else {
            return Err(format_err(key_text));
        };
        let negate = negate ^ alias_negate;
        let canonical = match key {
            Key::Dangling | Key::Intermediate | Key::ReadOnly | Key::Manifest => {
                let Some(b) = parse_bool(value) else {
                    return Err(bad(
                        field,
                        index,
                        raw,
                        format!("non-boolean value {value:?} for {key_text} filter"),
                    ));
                };
                Some((b ^ negate).to_string())
            }
            Key::Containers => {
                if !matches!(value, "true" | "false" | "external") {
                    return Err(bad(
                        field,
                        index,
                        raw,
                        format!("unsupported value {value:?} for containers filter"),
                    ));
                }
                Some(format!("{negate}{value}"))
            }
            Key::Digest => {
                if !value.starts_with("sha256:") {
                    return Err(bad(
                        field,
                        index,
                        raw,
                        format!("invalid value {value:?} for digest filter"),
                    ));
                }
                None
            }
            _ => None,
        };
        if let Some(c) = canonical {
            if let Some((prev, _)) = seen.get(&key)
                && *prev != c
            {
                return Err(bad(
                    field,
                    index,
                    raw,
                    format!(
                        "specifying {key_text:?} filter more than once with different \
                             values is not supported"
                    ),
                ));
            }
            seen.insert(key, (c, index));
        }
        out.push(Spec {
            index,
            key_text: key_text.to_owned(),
            key,
            negate,
            value: value.to_owned(),
        });
    }
    Ok(out)
}

#[derive(Debug)]
enum Pred {
    After(i64),
    Before(i64),
    Until(i64),
    UnusedSince(i64),
    Containers(ContainersValue),
    Dangling(bool),
    Intermediate(bool),
    Id(String),
    Digest(String),
    Label(String, String),
    ReadOnly(bool),
    Manifest(bool),
}

/// Filters compiled against one view.
#[derive(Debug, Default)]
pub struct Filters {
    preds: Vec<(Pred, bool)>,
    wanted: Vec<RefPattern>,
    unwanted: Vec<RefPattern>,
    /// A user `dangling` filter is present.
    pub has_dangling: bool,
    /// A user `intermediate` filter is present.
    pub has_intermediate: bool,
}

impl Filters {
    /// Compiles parsed filters: resolves `after`/`before` images and `reference` lookups on
    /// `view`, parses `until` against `now`.
    pub fn compile(
        specs: &[Spec],
        raw: &[String],
        field: &str,
        view: &Catalog,
        config: &EngineConfig,
        now: UnixNanos,
    ) -> Result<Self> {
        let mut f = Self::default();
        for s in specs {
            let raw_s = raw.get(s.index).map_or("", String::as_str);
            let created_of = |key: &str| -> Result<i64> {
                let r = resolve(view, config, &s.value).map_err(|e| {
                    bad(
                        field,
                        s.index,
                        raw_s,
                        format!(
                            "could not find local image for filter {key:?}={:?}: {e}",
                            s.value
                        ),
                    )
                })?;
                Ok(r.image.config.created.unwrap_or(i64::MIN))
            };
            let p = match s.key {
                Key::After => Pred::After(created_of(&s.key_text)?),
                Key::Before => Pred::Before(created_of(&s.key_text)?),
                Key::Until | Key::UnusedSince => match until::parse_time(&s.value, now) {
                    Some(t) if s.key == Key::Until => Pred::Until(t),
                    Some(t) => Pred::UnusedSince(t),
                    None => {
                        return Err(bad(
                            field,
                            s.index,
                            raw_s,
                            format!("failed to parse value as time or duration: {:?}", s.value),
                        ));
                    }
                },
                Key::Containers => Pred::Containers(match s.value.as_str() {
                    "true" => ContainersValue::True,
                    "false" => ContainersValue::False,
                    _ => ContainersValue::External,
                }),
                Key::Dangling => {
                    f.has_dangling = true;
                    Pred::Dangling(parse_bool(&s.value).unwrap_or(true))
                }
                Key::Intermediate => {
                    f.has_intermediate = true;
                    Pred::Intermediate(parse_bool(&s.value).unwrap_or(true))
                }
                Key::ReadOnly => Pred::ReadOnly(parse_bool(&s.value).unwrap_or(true)),
                Key::Manifest => Pred::Manifest(parse_bool(&s.value).unwrap_or(true)),
                Key::Id => Pred::Id(
                    s.value
                        .strip_prefix("sha256:")
                        .unwrap_or(&s.value)
                        .to_owned(),
                ),
                Key::Digest => Pred::Digest(s.value.clone()),
                Key::Label => {
                    let (k, v) = s.value.split_once('=').unwrap_or((&s.value, ""));
                    Pred::Label(k.to_owned(), v.to_owned())
                }
                Key::Reference => {
                    let pat = RefPattern::compile(&s.value, view, config)
                        .map_err(|m| bad(field, s.index, raw_s, m))?;
                    if s.negate {
                        f.unwanted.push(pat)
                    } else {
                        f.wanted.push(pat)
                    }
                    continue;
                }
            };
            f.preds.push((p, s.negate));
        }
        Ok(f)
    }

    /// Whether image `i` of `tree` passes every filter.
    pub fn matches(&self, tree: &Tree, i: u32) -> bool {
        self.matches_facts(tree.image(i), &TreeFacts { tree, i })
    }

    /// Whether `img` passes every filter, its derived facts (containers, dangling,
    /// intermediate) asked of `facts` only when a filter needs them.
    pub fn matches_facts(&self, img: &Image, facts: &dyn Facts) -> bool {
        crate::work::add(1);
        for (p, negate) in &self.preds {
            let created = img.config.created.unwrap_or(i64::MIN);
            let ok = match p {
                Pred::After(t) => created > *t,
                Pred::Before(t) | Pred::Until(t) => created < *t,
                Pred::UnusedSince(t) => img.last_used.unwrap_or(img.added) < *t,
                Pred::Containers(v) => {
                    let c = facts.containers();
                    match v {
                        ContainersValue::True => !c.is_empty(),
                        ContainersValue::False => c.is_empty(),
                        ContainersValue::External => c.iter().all(|c| c.external),
                    }
                }
                Pred::Dangling(b) => facts.dangling() == *b,
                Pred::Intermediate(b) => facts.intermediate() == *b,
                Pred::ReadOnly(b) => img.read_only == *b,
                Pred::Manifest(b) => img.is_manifest_list() == *b,
                Pred::Id(prefix) => img.id.hex_starts_with(prefix),
                Pred::Digest(prefix) => img
                    .digests
                    .iter()
                    .any(|d| d.to_string().starts_with(prefix.as_str())),
                Pred::Label(k, v) => label_matches(&img.config.labels, k, v),
            };
            if ok == *negate {
                return false;
            }
        }
        if self.unwanted.iter().any(|p| p.matches(img)) {
            return false;
        }
        self.wanted.is_empty() || self.wanted.iter().any(|p| p.matches(img))
    }

    /// Whether [`Filters::narrow`] can narrow anything (a listing asks first, so that it
    /// reads no image's names for nothing).
    pub fn narrows(&self) -> bool {
        matches!((self.wanted.as_slice(), self.unwanted.is_empty()), ([p], true) if p.narrows())
    }

    /// libimage's name narrowing: with exactly one positive and no negative `reference`
    /// filter naming a canonical reference with a tag or digest, the names to show.
    pub fn narrow(&self, names: &[String]) -> Option<Vec<String>> {
        if !self.narrows() {
            return None;
        }
        match (self.wanted.as_slice(), self.unwanted.is_empty()) {
            ([p], true) => p.narrow(names),
            _ => None,
        }
    }
}

/// libimage's `MatchLabelFilters` for one filter: a label with that key (or, when the key
/// holds `*`, a key matching `*key*`) and that value (any value when `want` is empty).
fn label_matches(
    labels: &std::collections::BTreeMap<String, String>,
    key: &str,
    want: &str,
) -> bool {
    let pattern = key.contains('*').then(|| {
        let mut p = format!("*{key}*");
        while p.contains("**") {
            p = p.replace("**", "*");
        }
        glob::Pattern::new(&p).ok()
    });
    let pattern = pattern.flatten();
    labels.iter().any(|(k, v)| {
        (want.is_empty() || v == want)
            && (k == key || pattern.as_ref().is_some_and(|p| p.matches(k)))
    })
}
