//! Driving the conformance cases through a public API instead of a [`Store`]: a case's
//! setup turned into real image archives ([`api_case`]), and the store state as a client
//! observes it ([`Observation`]) so that [`check_observed`] applies the same expectations.
//!
//! The archives are written with [`crate::archive`]: every case image becomes a
//! [`SynthImage`] with the same layers (content), history, labels, creation time, platform
//! and names, so the same parent/child relations, dangling and intermediate flags hold;
//! manifest lists become OCI index archives (instances the case lacks are listed but left
//! out of the archive). The image IDs differ from the in-process ones (the configs are
//! real JSON now), so the returned [`Fixture`] maps the case's keys to the new IDs, and
//! the case is rewritten where it spells in-process IDs literally:
//! * images whose in-process IDs share a leading hex prefix that the case uses (the
//!   ambiguity cases) get configs that make their new IDs share it too;
//! * a literal hex reference that is a prefix of a case image's in-process ID (and not a
//!   name of the case) becomes the same-length prefix of its new ID, and so does a name
//!   component spelling it (the "a name wins over an ID prefix" case).
//!
//! What the API cannot express is refused with the reason ([`api_case`] errors): read-only
//! images (no RPC makes one).
//!
//! [`Store`]: imaged_core::store::Store

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Case, Fixture, Observed, Ref};
use crate::archive::{self as synth, ArchiveOptions, SynthImage, corrupt};
use crate::images::ImageSpec;
use imaged_core::catalog::Catalog;
use imaged_core::digest::Digest;
use imaged_core::model::ImageId;

/// A case ready for an API driver.
#[derive(Debug, Clone)]
pub struct ApiCase {
    /// The case, with literal in-process IDs rewritten for the new IDs.
    pub case: Case,
    /// Archives to load, in order: one `docker-archive` with every plain image (when there
    /// is any), then one `oci-archive` per manifest list.
    pub archives: Vec<ApiArchive>,
    /// The new image IDs by key (`digests` stays empty: the driver reads the manifest
    /// digests from the daemon after loading).
    pub fixture: Fixture,
}

/// One archive of an [`ApiCase`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiArchive {
    /// `true`: an `oci-archive`; `false`: a `docker-archive`.
    pub oci: bool,
    /// The archive bytes (plain tar).
    pub bytes: Vec<u8>,
}

/// The store as a client observes it: every image with its names, the container IDs and
/// the bytes of all stored blobs (each once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Names of every image (manifest lists included), by ID.
    pub images: BTreeMap<ImageId, Vec<String>>,
    /// Container IDs, sorted.
    pub containers: Vec<String>,
    /// Bytes of every referenced blob, each once (`ImageDiskUsage.total_bytes`).
    pub blob_bytes: u64,
}

impl Observation {
    /// What a client would observe of `catalog`.
    pub fn of(catalog: &Catalog) -> Self {
        let mut containers: Vec<String> = catalog.containers().map(|c| c.id.clone()).collect();
        containers.sort();
        Self {
            images: catalog.images().map(|i| (i.id, i.names.clone())).collect(),
            containers,
            blob_bytes: catalog.blobs().map(|(_, e)| e.size).sum(),
        }
    }
}

/// [`super::check`] on observations: compares what happened (`observed`, the store
/// `before` and `after` the action) with the case's expectation.
pub fn check_observed(
    case: &Case,
    f: &Fixture,
    observed: &Observed,
    before: &Observation,
    after: &Observation,
) -> Result<(), String> {
    super::check::check_state(case, f, observed, before, after)
}

/// The hex prefix lengths a case's references use (ID prefixes and literal hex strings).
fn prefix_lengths(case: &Case) -> BTreeSet<usize> {
    let refs: Vec<&Ref> = match &case.action {
        Action::Remove(refs, _) => refs.iter().collect(),
        Action::RemoveBatch(b) => b.refs.iter().collect(),
        Action::CriRemove(r) => vec![r],
        Action::Prune(_) | Action::Gc(_) | Action::List(..) => Vec::new(),
    };
    refs.into_iter()
        .filter_map(|r| match r {
            Ref::Prefix(_, n) => Some(*n),
            Ref::Text(s) if is_short_hex(s) => Some(s.len()),
            _ => None,
        })
        .collect()
}

fn is_short_hex(s: &str) -> bool {
    (1..64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// The synthetic image standing for a testkit image (same layers, history, labels,
/// creation time, platform, names); `salt` goes into the config's user.
fn synth_of(spec: &ImageSpec, salt: &str) -> SynthImage {
    spec.synth(salt)
}

/// Turns a case into archives, a fixture and a rewritten case; `Err` with the reason when
/// the API cannot express its setup.
pub fn api_case(case: &Case) -> Result<ApiCase, String> {
    if let Some((k, _)) = case.images.iter().find(|(_, s)| s.read_only) {
        return Err(format!(
            "image {k:?} is read-only: no RPC creates a read-only image"
        ));
    }
    let old_id = |s: &ImageSpec| s.build().1.id.hex();
    let lengths = prefix_lengths(case);
    // Plain images: synthesise, salting until every ID prefix the case relies on holds.
    let mut plain: Vec<(&'static str, &ImageSpec, SynthImage)> = Vec::new();
    for (key, spec) in case.images.iter().filter(|(_, s)| s.instances.is_none()) {
        let need: Vec<(String, usize)> = plain
            .iter()
            .filter_map(|(_, other, synth)| {
                let shared = common_prefix(&old_id(spec), &old_id(other));
                let n = lengths.iter().copied().filter(|n| *n <= shared).max()?;
                Some((synth.id().hex(), n))
            })
            .collect();
        let mut salt = 0u32;
        let img = loop {
            let s = if salt == 0 {
                String::new()
            } else {
                format!(" {salt}")
            };
            let img = synth_of(spec, &s);
            let id = img.id().hex();
            if need.iter().all(|(o, n)| common_prefix(&id, o) >= *n) {
                break img;
            }
            salt += 1;
            if salt > 1_000_000 {
                return Err(format!(
                    "no salt gives {key:?} the ID prefix the case needs"
                ));
            }
        };
        plain.push((key, spec, img));
    }
    let mut fixture = Fixture::default();
    for (k, _, img) in &plain {
        fixture.ids.insert(*k, img.id());
        fixture.diff_ids.insert(*k, img.diff_ids());
    }
    let mut archives = Vec::new();
    // Manifest lists: an OCI index over the case's instances; absent ones are cut out.
    let mut lists = Vec::new();
    for (key, spec) in case.images.iter() {
        let Some(instances) = &spec.instances else {
            continue;
        };
        if spec.names.len() > 1 {
            return Err(format!("manifest list {key:?} has more than one name"));
        }
        let mut members = Vec::new();
        let mut absent: Vec<Digest> = Vec::new();
        for (digest, platform) in instances {
            let found = plain
                .iter()
                .find(|(_, s, _)| s.build().1.digest() == *digest);
            let mut img = match found {
                Some((_, _, img)) => img.clone(),
                None => SynthImage::new(&format!("absent instance {digest}")),
            };
            img.names.clear();
            img.platform = platform.clone();
            if found.is_none() {
                // Listed in the index, but none of its blobs in the archive.
                absent.push(img.manifest_digest(false));
                absent.push(img.id());
                absent.extend(img.diff_ids());
            }
            members.push(img);
        }
        let (bytes, index) = synth::oci_index_archive(
            spec.names.first().map(String::as_str),
            &members,
            &ArchiveOptions::default(),
        );
        let cut: BTreeSet<String> = absent
            .iter()
            .map(|d| format!("blobs/sha256/{}", d.hex()))
            .collect();
        let bytes = corrupt::remove_entries(&bytes, |p| cut.contains(p));
        fixture.ids.insert(key, index);
        lists.push(ApiArchive { oci: true, bytes });
    }
    let rewrite = rewrites(case, &plain);
    let mut out = case.clone();
    for (_, spec) in &mut out.images {
        for n in &mut spec.names {
            *n = rename(n, &rewrite);
        }
    }
    if let Action::Remove(refs, _) = &mut out.action {
        for r in refs {
            remap_ref(r, &rewrite);
        }
    }
    if let Action::CriRemove(r) = &mut out.action {
        remap_ref(r, &rewrite);
    }
    if !plain.is_empty() {
        let images: Vec<SynthImage> = plain
            .iter()
            .map(|(_, _, img)| SynthImage {
                names: img.names.iter().map(|n| rename(n, &rewrite)).collect(),
                ..img.clone()
            })
            .collect();
        archives.push(ApiArchive {
            oci: false,
            bytes: synth::docker_archive(&images, false),
        });
    }
    archives.extend(lists);
    Ok(ApiCase {
        case: out,
        archives,
        fixture,
    })
}

/// Literal hex references of the case that stand for in-process ID prefixes, with their
/// replacements: a prefix of an image's in-process ID that no name of the case spells as
/// its last repository component, or any such prefix of 4 or more characters.
fn rewrites(
    case: &Case,
    plain: &[(&'static str, &ImageSpec, SynthImage)],
) -> BTreeMap<String, String> {
    let refs: Vec<&Ref> = match &case.action {
        Action::Remove(refs, _) => refs.iter().collect(),
        Action::RemoveBatch(b) => b.refs.iter().collect(),
        Action::CriRemove(r) => vec![r],
        Action::Prune(_) | Action::Gc(_) | Action::List(..) => Vec::new(),
    };
    let components: BTreeSet<String> = case
        .images
        .iter()
        .flat_map(|(_, s)| s.names.iter())
        .map(|n| last_component(n).to_owned())
        .collect();
    let mut out = BTreeMap::new();
    for r in refs {
        let Ref::Text(s) = r else { continue };
        if !is_short_hex(s) || (s.len() < 4 && components.contains(s)) {
            continue;
        }
        if let Some((_, _, img)) = plain
            .iter()
            .find(|(_, spec, _)| spec.build().1.id.hex().starts_with(s.as_str()))
        {
            out.insert(s.clone(), img.id().hex()[..s.len()].to_owned());
        }
    }
    out
}

/// The last path component of a name's repository (`localhost/a/b:1` → `b`).
fn last_component(name: &str) -> &str {
    let repo = name.split('@').next().unwrap_or(name);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    last.split(':').next().unwrap_or(last)
}

fn rename(name: &str, rewrite: &BTreeMap<String, String>) -> String {
    let comp = last_component(name);
    match rewrite.get(comp) {
        Some(new) => {
            let repo_end = name.find('@').unwrap_or(name.len());
            let slash = name[..repo_end].rfind('/').map_or(0, |i| i + 1);
            format!("{}{new}{}", &name[..slash], &name[slash + comp.len()..])
        }
        None => name.to_owned(),
    }
}

fn remap_ref(r: &mut Ref, rewrite: &BTreeMap<String, String>) {
    if let Ref::Text(s) = r
        && let Some(new) = rewrite.get(s.as_str())
    {
        *s = new.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_removal_and_prune_case_is_expressible_or_refused_for_read_only() {
        let all: Vec<Case> = super::super::removal_cases()
            .into_iter()
            .chain(super::super::prune_cases())
            .collect();
        for c in &all {
            match api_case(c) {
                Ok(a) => {
                    assert_eq!(a.fixture.ids.len(), c.images.len(), "{}", c.name);
                    assert_eq!(a.case.expect, c.expect, "{}", c.name);
                }
                Err(e) => assert!(e.contains("read-only"), "{}: {e}", c.name),
            }
        }
    }

    #[test]
    fn names_and_references_follow_rewritten_prefixes() {
        let mut map = BTreeMap::new();
        map.insert("abcd".to_owned(), "1234".to_owned());
        assert_eq!(
            rename("localhost/abcd:latest", &map),
            "localhost/1234:latest"
        );
        assert_eq!(rename("localhost/x/abcd", &map), "localhost/x/1234");
        assert_eq!(
            rename("localhost/abcde:latest", &map),
            "localhost/abcde:latest"
        );
        let mut r = Ref::Text("abcd".into());
        remap_ref(&mut r, &map);
        assert_eq!(r, Ref::Text("1234".into()));
        assert_eq!(last_component("quay.io/a/b@sha256:00"), "b");
    }

    #[test]
    fn layer_steps_and_parents_survive_the_translation() {
        let base = ImageSpec::base("p", 1);
        let child = base.child("c", 2);
        let (p, c) = (synth_of(&base, ""), synth_of(&child, ""));
        assert_eq!(c.diff_ids()[0], p.diff_ids()[0]);
        assert_eq!(c.history[0], p.history[0]);
        assert!(!c.history[1].empty_layer);
        let empty = base.child("", 3);
        assert!(synth_of(&empty, "").history[1].empty_layer);
    }
}
