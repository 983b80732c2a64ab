//! The driver pieces of the conformance suite: build a case's setup in a store, run its
//! action on an engine, compare what happened with the expectation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::remote::Observation;
use super::{Action, Case, Rec, Reclaim, Ref, SetupContainer};
use imaged_core::catalog::{Catalog, ChangeSet};
use imaged_core::digest::Digest;
use imaged_core::engine::Engine;
use imaged_core::error::Error;
use imaged_core::model::{Container, ImageId, Platform};
use imaged_core::ops::{
    ImageSummary, ListOptions, PruneReport, Record, RemoveOptions, RemoveReport,
};
use imaged_core::store::Store;

use crate::images::ImageSpec;

/// The IDs of a case's images once stored.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    /// Image ID by key.
    pub ids: BTreeMap<&'static str, ImageId>,
    /// Manifest digest by key.
    pub digests: BTreeMap<&'static str, Digest>,
    /// Layer diff IDs by key, base first.
    pub diff_ids: BTreeMap<&'static str, Vec<Digest>>,
    /// The store's container ID (and name) of each case container, for a backend whose
    /// containers are made by its engine ([`SetupHook::container`]); a container missing
    /// here has the case's ID as its store ID.
    pub containers: BTreeMap<&'static str, RealContainer>,
}

/// A container a backend made for a case container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealContainer {
    /// The store's container ID (64 hex).
    pub id: String,
    /// Its name in the engine.
    pub name: String,
}

/// What a backend does itself when a case's setup asks for it, instead of the suite's
/// change sets: containers made by the engine's own tools (a backend whose containers are
/// not registered through the store, e.g. containers-storage: `podman create`,
/// `buildah from`, mounts for running ones) and names added with the engine's own command.
pub trait SetupHook: Send {
    /// Creates the case container `c` on the image `image` (stored already) in the state
    /// and kind the case asks for; gives its ID and name in the store.
    fn container(&self, c: &SetupContainer, image: &ImageId) -> Result<RealContainer, String>;

    /// Adds `name` to `image` (whose names are `current`, newest first) natively; `Ok(false)`
    /// when this hook leaves it to the store's name write (a change set through
    /// `Store::apply`).
    fn tag(&self, image: &ImageId, current: &[String], name: &str) -> Result<bool, String> {
        let _ = (image, current, name);
        Ok(false)
    }

    /// Stores the read-only image `spec` where the backend keeps such images (an additional
    /// image store); its ID, or `None` when the store's own load takes it.
    fn read_only_image(&self, spec: &ImageSpec) -> Result<Option<ImageId>, String> {
        let _ = spec;
        Ok(None)
    }

    /// Makes the manifest list `spec` with the engine's own tools, once the case's other
    /// images are stored: `instances` are `spec.instances` in order, each with the ID of the
    /// case image it names when the case has one (`stored`: every image of the case in the
    /// store, lists aside). Gives the list's ID and digest as the engine reports them, or
    /// `None` when the store's own load takes the list as the case writes it.
    fn list(
        &self,
        spec: &ImageSpec,
        instances: &[ListInstance<'_>],
        stored: &[ImageId],
    ) -> Result<Option<RealList>, String> {
        let _ = (spec, instances, stored);
        Ok(None)
    }
}

/// An instance of a case's manifest list, for [`SetupHook::list`].
#[derive(Debug, Clone, Copy)]
pub struct ListInstance<'a> {
    /// The manifest digest the case lists.
    pub digest: Digest,
    /// The platform the case gives it.
    pub platform: &'a Platform,
    /// The stored case image with this manifest digest, if the case has one (else the
    /// instance is absent from the store).
    pub local: Option<ImageId>,
}

/// A manifest list a backend made itself ([`SetupHook::list`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealList {
    /// Its image ID in the store.
    pub id: ImageId,
    /// Its manifest digest as the engine reports it.
    pub digest: Digest,
}

impl Fixture {
    /// The expected record of `r`.
    fn record(&self, r: &Rec) -> Result<Record, String> {
        Ok(match r {
            Rec::U(n) => Record::Untagged((*n).to_owned()),
            Rec::D(k) => Record::Deleted(self.id(k)?),
            Rec::L(k, depth) => {
                let diffs = self
                    .diff_ids
                    .get(k)
                    .filter(|d| *depth < d.len())
                    .ok_or_else(|| format!("the case has no layer {depth} of {k:?}"))?;
                Record::DeletedLayer(chain_id(&diffs[..=*depth]))
            }
        })
    }

    fn id(&self, key: &str) -> Result<ImageId, String> {
        self.ids
            .get(key)
            .copied()
            .ok_or_else(|| format!("the case has no image {key:?}"))
    }

    /// The store's container ID of the case container `id`.
    pub fn container_id(&self, id: &str) -> String {
        self.containers
            .get(id)
            .map_or_else(|| id.to_owned(), |c| c.id.clone())
    }

    /// The ways an error message may spell the case's containers: the message as written
    /// when the case's IDs are the store's, else with every case container ID (as a whole
    /// word) replaced by the store's ID, its 12-hex short form, or its name.
    fn message_variants(&self, m: &str) -> Vec<String> {
        if self.containers.is_empty() {
            return vec![m.to_owned()];
        }
        let forms: [fn(&RealContainer) -> String; 3] = [
            |c| c.id.clone(),
            |c| c.id.get(..12).unwrap_or(&c.id).to_owned(),
            |c| c.name.clone(),
        ];
        forms
            .iter()
            .map(|form| {
                self.containers
                    .iter()
                    .fold(m.to_owned(), |acc, (k, c)| replace_word(&acc, k, &form(c)))
            })
            .collect()
    }

    /// The string a reference stands for.
    pub fn reference(&self, r: &Ref) -> Result<String, String> {
        Ok(match r {
            Ref::Id(k) => self.id(k)?.to_string(),
            Ref::Hex(k) => self.id(k)?.hex(),
            Ref::Prefix(k, n) => self.id(k)?.hex()[..*n].to_owned(),
            Ref::RepoDigest(repo, k) => {
                let d = self
                    .digests
                    .get(k)
                    .ok_or_else(|| format!("no image {k:?}"))?;
                format!("{repo}@{d}")
            }
            Ref::Text(s) => s.clone(),
        })
    }

    /// Expands `{hex:k}`, `{id:k}`, `{short:k}` and `{digest:k}` in `s`.
    pub fn expand(&self, s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or("unclosed placeholder")? + start;
            let (kind, key) = rest[start + 1..end]
                .split_once(':')
                .ok_or("placeholder without ':'")?;
            let id = self.id(key)?;
            out.push_str(&match kind {
                "hex" => id.hex(),
                "id" => id.to_string(),
                "short" => id.short(),
                "digest" => self
                    .digests
                    .get(key)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                other => return Err(format!("unknown placeholder {other}")),
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `s` with every whole-word occurrence of `word` (not next to an alphanumeric character)
/// replaced by `by`.
fn replace_word(s: &str, word: &str, by: &str) -> String {
    let word_char = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut out = String::new();
    let mut done = 0;
    for (i, _) in s.match_indices(word) {
        if i < done {
            continue;
        }
        let end = i + word.len();
        if !word_char(s[..i].chars().next_back()) && !word_char(s[end..].chars().next()) {
            out.push_str(&s[done..i]);
            out.push_str(by);
            done = end;
        }
    }
    out.push_str(&s[done..]);
    out
}

/// Stores a case's images, tags and containers in `store`.
pub fn setup(case: &Case, store: &dyn Store) -> Result<Fixture, String> {
    setup_with(case, store, None)
}

/// [`setup`], with the backend's own ways of making containers and names where it has
/// them (`hook`).
pub fn setup_with(
    case: &Case,
    store: &dyn Store,
    hook: Option<&dyn SetupHook>,
) -> Result<Fixture, String> {
    let err = |e: Error| format!("setup: {e}");
    let mut fixture = Fixture::default();
    let is_list = |s: &ImageSpec| s.instances.is_some();
    let mut elsewhere = BTreeMap::new();
    if let Some(h) = hook {
        for (key, spec) in case
            .images
            .iter()
            .filter(|(_, s)| s.read_only && !is_list(s))
        {
            if let Some(id) = h.read_only_image(spec)? {
                elsewhere.insert(*key, id);
            }
        }
    }
    // With a hook, lists come after the other images (their instances must be stored).
    let first: Vec<_> = case
        .images
        .iter()
        .filter(|(k, s)| !(elsewhere.contains_key(k) || (hook.is_some() && is_list(s))))
        .collect();
    let specs: Vec<_> = first.iter().map(|(_, s)| s.clone()).collect();
    let ids = crate::images::add_images(store, &specs).map_err(err)?;
    let mut ids: BTreeMap<&'static str, ImageId> = first
        .iter()
        .map(|(k, _)| *k)
        .zip(ids)
        .chain(elsewhere)
        .collect();
    let mut made: BTreeMap<&'static str, Digest> = BTreeMap::new();
    if let Some(h) = hook {
        let stored: Vec<ImageId> = first
            .iter()
            .filter(|(_, s)| !is_list(s))
            .filter_map(|(k, _)| ids.get(k).copied())
            .collect();
        let mut deferred = Vec::new();
        for (key, spec) in case.images.iter().filter(|(_, s)| is_list(s)) {
            let instances: Vec<ListInstance<'_>> = spec
                .instances
                .iter()
                .flatten()
                .map(|(digest, platform)| ListInstance {
                    digest: *digest,
                    platform,
                    local: first
                        .iter()
                        .find(|(_, s)| !is_list(s) && s.build().1.digest() == *digest)
                        .and_then(|(k, _)| ids.get(k).copied()),
                })
                .collect();
            match h.list(spec, &instances, &stored)? {
                Some(real) => {
                    ids.insert(key, real.id);
                    made.insert(key, real.digest);
                }
                None => deferred.push((*key, spec.clone())),
            }
        }
        if !deferred.is_empty() {
            let specs: Vec<_> = deferred.iter().map(|(_, s)| s.clone()).collect();
            let later = crate::images::add_images(store, &specs).map_err(err)?;
            ids.extend(deferred.iter().map(|(k, _)| *k).zip(later));
        }
    }
    for (key, spec) in &case.images {
        fixture
            .ids
            .insert(key, *ids.get(key).ok_or("an image was not stored")?);
        let digest = made
            .get(key)
            .copied()
            .unwrap_or_else(|| spec.build().1.digest());
        fixture.digests.insert(key, digest);
        let layers = spec.build().1.layers;
        fixture
            .diff_ids
            .insert(key, layers.iter().map(|l| l.diff_id).collect());
    }
    for (key, name) in &case.tags {
        let view = store.view();
        let img = view
            .image(&fixture.id(key)?)
            .ok_or("tagged image missing")?;
        // A list is named through the store: the engine's tag command names its instance.
        let list = case.images.iter().any(|(k, s)| k == key && is_list(s));
        if let Some(h) = hook
            && !list
            && h.tag(&img.id, &img.names, name)?
        {
            continue;
        }
        let mut next = (**img).clone();
        next.names.insert(0, (*name).to_owned());
        store
            .apply(&ChangeSet {
                put_images: vec![Arc::new(next)],
                ..ChangeSet::default()
            })
            .map_err(err)?;
    }
    if let Some(h) = hook {
        for c in &case.containers {
            let real = h.container(c, &fixture.id(c.image)?)?;
            fixture.containers.insert(c.id, real);
        }
    } else if !case.containers.is_empty() {
        let mut change = ChangeSet::default();
        for c in &case.containers {
            change.put_containers.push(Arc::new(Container {
                id: c.id.to_owned(),
                image_id: fixture.id(c.image)?,
                state: c.state,
                external: c.external,
                name: String::new(),
                created: 0,
            }));
        }
        store.apply(&change).map_err(err)?;
    }
    Ok(fixture)
}

/// What an action returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// RemoveImage (all references of the action, reports merged) or CRI RemoveImage.
    Remove(Result<RemoveReport, Error>),
    /// RemoveImages: each removal's report or error, in order (or the call's error).
    Batch(Result<Vec<Result<RemoveReport, Error>>, Error>),
    /// PruneImages.
    Prune(Result<PruneReport, Error>),
    /// ListImages, every page.
    List(Result<Vec<ImageSummary>, Error>),
}

/// Runs a case's action on `engine` (in-process driver).
pub fn execute(engine: &Engine, case: &Case, fixture: &Fixture, dry_run: bool) -> Observed {
    let expand = |r: &Ref| fixture.reference(r).unwrap_or_else(|e| e);
    match &case.action {
        Action::Remove(refs, opts) => {
            let mut total = RemoveReport::default();
            for r in refs {
                let o = RemoveOptions {
                    reference: expand(r),
                    dry_run,
                    ..opts.clone()
                };
                match engine.remove(&o) {
                    Ok(rep) => {
                        total.records.extend(rep.records);
                        total.removed_containers.extend(rep.removed_containers);
                        total.reclaimed_bytes += rep.reclaimed_bytes;
                    }
                    Err(e) => return Observed::Remove(Err(e)),
                }
            }
            Observed::Remove(Ok(total))
        }
        Action::RemoveBatch(b) => {
            let o = imaged_core::ops::RemoveImagesOptions {
                references: b.refs.iter().map(expand).collect(),
                filters: b.filters.clone(),
                all: b.all,
                each: RemoveOptions {
                    dry_run,
                    ..b.opts.clone()
                },
            };
            Observed::Batch(
                engine
                    .remove_images(&o)
                    .map(|r| r.outcomes.into_iter().map(|o| o.result).collect()),
            )
        }
        Action::CriRemove(r) => Observed::Remove(engine.cri_remove(&expand(r))),
        Action::Prune(opts) => {
            let o = imaged_core::ops::PruneOptions {
                dry_run,
                ..opts.clone()
            };
            Observed::Prune(engine.prune(&o, None))
        }
        Action::Gc(policy) => {
            if let Err(e) = engine.set_gc_policy(policy.clone()) {
                return Observed::Prune(Err(e));
            }
            Observed::Prune(
                engine
                    .run_gc(dry_run, imaged_core::engine::gc::GcCause::Request, None)
                    .map(|r| r.prune),
            )
        }
        Action::List(filters, all) => {
            let mut out = Vec::new();
            let mut token = String::new();
            loop {
                let page = engine.list(&ListOptions {
                    filters: filters.clone(),
                    all: *all,
                    page_size: 2,
                    page_token: token,
                    ..ListOptions::default()
                });
                match page {
                    Ok(p) => {
                        out.extend(p.images);
                        token = p.next_page_token;
                        if token.is_empty() {
                            return Observed::List(Ok(out));
                        }
                    }
                    Err(e) => return Observed::List(Err(e)),
                }
            }
        }
    }
}

fn ids_of(f: &Fixture, keys: &[&'static str]) -> Result<BTreeSet<ImageId>, String> {
    keys.iter().map(|k| f.id(k)).collect()
}

/// Compares what happened (`observed`, the store `before` and `after`) with the case.
pub fn check(
    case: &Case,
    f: &Fixture,
    observed: &Observed,
    before: &Catalog,
    after: &Catalog,
) -> Result<(), String> {
    check_state(
        case,
        f,
        observed,
        &Observation::of(before),
        &Observation::of(after),
    )
}

/// [`check`] on what a client can observe of the store (any driver).
pub(super) fn check_state(
    case: &Case,
    f: &Fixture,
    observed: &Observed,
    before: &Observation,
    after: &Observation,
) -> Result<(), String> {
    let x = &case.expect;
    let err = match observed {
        Observed::Remove(r) => r.as_ref().err(),
        Observed::Batch(r) => r.as_ref().err(),
        Observed::Prune(r) => r.as_ref().err(),
        Observed::List(r) => r.as_ref().err(),
    };
    match (x.error, err) {
        (None, Some(e)) => return Err(format!("unexpected error {}: {}", e.kind.reason(), e)),
        (Some(want), None) => return Err(format!("expected error {want}, got success")),
        (Some(want), Some(e)) if e.kind.reason() != want => {
            return Err(format!(
                "expected error {want}, got {}: {}",
                e.kind.reason(),
                e
            ));
        }
        (Some(_), Some(e)) => {
            if let Some(m) = x.message {
                let m = f.expand(m)?;
                let variants = f.message_variants(&m);
                if !variants.iter().any(|v| e.message.contains(v)) {
                    return Err(format!("error message {:?} lacks {variants:?}", e.message));
                }
            }
        }
        (None, None) => {}
    }
    // A batch: its successful removals' reports together.
    let merged = match observed {
        Observed::Batch(Ok(items)) => {
            let mut m = RemoveReport::default();
            for r in items.iter().flatten() {
                m.records.extend(r.records.iter().cloned());
                m.removed_containers
                    .extend(r.removed_containers.iter().cloned());
                m.reclaimed_bytes += r.reclaimed_bytes;
            }
            Some(m)
        }
        _ => None,
    };
    if let (Some(want), Observed::Batch(Ok(items))) = (&x.batch, observed) {
        check_batch(f, want, items)?;
    }
    let (records, removed, reclaimed) = match (observed, &merged) {
        (_, Some(r)) | (Observed::Remove(Ok(r)), _) => (
            Some(&r.records),
            Some(&r.removed_containers),
            r.reclaimed_bytes,
        ),
        (Observed::Prune(Ok(r)), _) => (
            Some(&r.records),
            Some(&r.removed_containers),
            r.reclaimed_bytes,
        ),
        _ => (None, None, 0),
    };
    if let (Some(want), Some(got)) = (&x.records, records) {
        let want: Vec<Record> = want
            .iter()
            .map(|r| f.record(r))
            .collect::<Result<_, String>>()?;
        if &want != got {
            return Err(format!("records: expected {want:?}, got {got:?}"));
        }
    }
    if let (Some(want), Some(got)) = (&x.removed_containers, removed)
        && want.iter().map(|s| f.container_id(s)).collect::<Vec<_>>() != *got
    {
        return Err(format!(
            "removed containers: expected {want:?}, got {got:?}"
        ));
    }
    if let Some(want) = x.reclaimed {
        let all = before.blob_bytes;
        let ok = match want {
            Reclaim::Zero => reclaimed == 0,
            Reclaim::Positive => reclaimed > 0,
            Reclaim::AllBlobs => reclaimed == all,
        };
        if !ok {
            return Err(format!(
                "reclaimed {reclaimed} bytes, expected {want:?} (store had {all})"
            ));
        }
    }
    if let (Some(want), Observed::Prune(Ok(r))) = (&x.prune_errors, observed) {
        let got: BTreeSet<ImageId> = r.errors.iter().map(|e| e.image_id).collect();
        if got != ids_of(f, want)? {
            return Err(format!(
                "prune errors: expected {want:?}, got {:?}",
                r.errors
            ));
        }
    }
    if let Some(want) = &x.remaining {
        let got: BTreeSet<ImageId> = after.images.keys().copied().collect();
        if got != ids_of(f, want)? {
            let names: Vec<&str> = f
                .ids
                .iter()
                .filter(|(_, id)| got.contains(id))
                .map(|(k, _)| *k)
                .collect();
            return Err(format!(
                "remaining images: expected {want:?}, got {names:?}"
            ));
        }
    }
    if let Some(want) = &x.containers {
        let got: Vec<&str> = after.containers.iter().map(String::as_str).collect();
        let mut want: Vec<String> = want.iter().map(|c| f.container_id(c)).collect();
        want.sort_unstable();
        if got != want {
            return Err(format!("containers: expected {want:?}, got {got:?}"));
        }
    }
    let listed = match observed {
        Observed::List(Ok(l)) => Some(l),
        _ => None,
    };
    for (k, want) in &x.names {
        let id = f.id(k)?;
        let got = match listed {
            Some(l) => l.iter().find(|s| s.id == id).map(|s| s.names.clone()),
            None => after.images.get(&id).cloned(),
        }
        .ok_or_else(|| format!("image {k} not found for its names"))?;
        if got != *want {
            return Err(format!("names of {k}: expected {want:?}, got {got:?}"));
        }
    }
    if let (Some(want), Some(l)) = (&x.listed, listed) {
        let got: Vec<ImageId> = l.iter().map(|s| s.id).collect();
        let keys: Vec<&str> = got
            .iter()
            .map(|id| {
                f.ids
                    .iter()
                    .find(|(_, v)| *v == id)
                    .map_or("?", |(k, _)| *k)
            })
            .collect();
        let ok = if x.ordered {
            got == want
                .iter()
                .map(|k| f.id(k))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            got.iter().copied().collect::<BTreeSet<_>>() == ids_of(f, want)?
                && got.len() == want.len()
        };
        if !ok {
            return Err(format!("listed: expected {want:?}, got {keys:?}"));
        }
    }
    Ok(())
}

/// Each removal of a batch against its expected records or error reason.
fn check_batch(
    f: &Fixture,
    want: &[super::BatchItem],
    got: &[Result<RemoveReport, Error>],
) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!(
            "batch: expected {} results, got {}: {got:?}",
            want.len(),
            got.len()
        ));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        match (w, g) {
            (Ok(recs), Ok(r)) => {
                let recs: Vec<Record> = recs
                    .iter()
                    .map(|r| f.record(r))
                    .collect::<Result<_, String>>()?;
                if recs != r.records {
                    return Err(format!(
                        "batch #{i}: expected records {recs:?}, got {:?}",
                        r.records
                    ));
                }
            }
            (Err(reason), Err(e)) if e.kind.reason() == *reason => {}
            _ => return Err(format!("batch #{i}: expected {w:?}, got {g:?}")),
        }
    }
    Ok(())
}

/// moby's chain ID of a layer stack (base first): the base's diff ID, then
/// `sha256("<chain below> <diff ID>")` for each layer above (written here from the image
/// spec's definition, independently of the engine).
fn chain_id(diff_ids: &[Digest]) -> Digest {
    let mut chain = diff_ids[0];
    for d in &diff_ids[1..] {
        chain = Digest::of(format!("{chain} {d}").as_bytes());
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_replaced_as_whole_words() {
        assert_eq!(
            replace_word("container ctr1 is running", "ctr1", "X"),
            "container X is running"
        );
        assert_eq!(
            replace_word("ctr1,ctr12 xctr1 ctr1", "ctr1", "X"),
            "X,ctr12 xctr1 X"
        );
        assert_eq!(replace_word("no match", "ctr1", "X"), "no match");
    }

    #[test]
    fn messages_name_real_containers_by_id_short_id_or_name() {
        let mut f = Fixture::default();
        assert_eq!(f.message_variants("used by x1"), vec!["used by x1"]);
        let id = "ab".repeat(32);
        f.containers.insert(
            "x1",
            RealContainer {
                id: id.clone(),
                name: "x1".into(),
            },
        );
        assert_eq!(
            f.message_variants("used by x1: in use"),
            vec![
                format!("used by {id}: in use"),
                format!("used by {}: in use", &id[..12]),
                "used by x1: in use".to_owned(),
            ]
        );
        assert_eq!(f.container_id("x1"), id);
        assert_eq!(f.container_id("other"), "other");
    }
}
