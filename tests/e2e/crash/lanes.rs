//! One lane of the crash test: a private set of images (label `crash.lane=<n>`, names
//! `localhost/crash/l<n>:<k>`) and container IDs (`<n as 2 hex>…`), driven one request
//! at a time, with a model of the state its acknowledged requests imply.
//!
//! Lanes run concurrently (several requests in flight), but a lane's requests only touch
//! its own images, names and containers (prunes are filtered by the lane's label; images
//! of different lanes share base-layer blobs but are never parent and child), so what the
//! store must hold of a lane after a kill is exact: the acknowledged state, or that state
//! with the lane's one in-flight request applied.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Cursor;

use imaged_client::{Client, ClientError, ErrorReason, proto};
use imaged_tests::archive::{self, ImageSpec, LayerSpec, Tamper};
use proto::removal_record::Record;

/// Names per lane: loads and tags move them between the lane's images.
const NAMES: u32 = 4;
/// Base layers shared by every lane's images (blob reference counting across lanes).
const BASES: usize = 3;
/// A lane keeps at most this many images: beyond it, removals are preferred.
const MAX_IMAGES: usize = 6;

/// What the store holds of one lane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct LaneState {
    /// Image hex ID → its names.
    pub images: BTreeMap<String, BTreeSet<String>>,
    /// Container ID → image hex ID.
    pub containers: BTreeMap<String, String>,
}

impl LaneState {
    fn holder(&self, name: &str) -> Option<String> {
        self.images
            .iter()
            .find(|(_, names)| names.contains(name))
            .map(|(id, _)| id.clone())
    }

    fn in_use(&self, id: &str) -> bool {
        self.containers.values().any(|i| i == id)
    }

    fn delete(&mut self, id: &str) {
        self.images.remove(id);
        self.containers.retain(|_, i| i != id);
    }

    fn take_name(&mut self, name: &str) {
        for names in self.images.values_mut() {
            names.remove(name);
        }
    }

    /// The differences from `expected`, one phrase each.
    pub(super) fn diff(&self, expected: &LaneState) -> Vec<String> {
        let mut out = Vec::new();
        for (id, names) in &expected.images {
            match self.images.get(id) {
                None => out.push(format!("image {id} acknowledged, missing")),
                Some(n) if n != names => out.push(format!(
                    "image {id} has names {n:?}, acknowledged {names:?}"
                )),
                Some(_) => {}
            }
        }
        for id in self.images.keys() {
            if !expected.images.contains_key(id) {
                out.push(format!("image {id} present, acknowledged gone"));
            }
        }
        for (c, img) in &expected.containers {
            match self.containers.get(c) {
                None => out.push(format!("container {c} acknowledged, missing")),
                Some(i) if i != img => out.push(format!("container {c} on {i}, not {img}")),
                Some(_) => {}
            }
        }
        for c in self.containers.keys() {
            if !expected.containers.contains_key(c) {
                out.push(format!("container {c} present, acknowledged gone"));
            }
        }
        out
    }
}

/// One request of a lane.
#[derive(Clone, Debug)]
pub(super) enum Op {
    /// `LoadImages` of an archive of these images (tampered: rejected, nothing stored).
    Load {
        /// The images, names included.
        images: Vec<ImageSpec>,
        /// `oci-archive` rather than `docker-archive`.
        oci: bool,
        /// A layer's bytes spoiled: the daemon must refuse the archive.
        tamper: bool,
    },
    /// `RemoveImage` by full ID with force (containers go too).
    RemoveId(String),
    /// `RemoveImage` by name, no force: untag when the image has other names.
    RemoveName(String),
    /// `TagImage` (the name moves from its holder).
    Tag(String, String),
    /// `UntagImage` of one name.
    Untag(String, String),
    /// `PruneImages` filtered to the lane's label.
    Prune {
        /// Every unused image of the lane, not only dangling ones.
        all: bool,
    },
    /// `RegisterContainer` with a lane-owned ID.
    Register(String, String),
    /// `UnregisterContainer`.
    Unregister(String),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Load {
                images,
                oci,
                tamper,
            } => {
                let ids: Vec<String> = images
                    .iter()
                    .map(|i| short(&i.hex_id()).to_owned())
                    .collect();
                let kind = if *oci { "oci" } else { "docker" };
                let bad = if *tamper { " (tampered)" } else { "" };
                write!(f, "load {kind}{bad} {ids:?}")
            }
            Op::RemoveId(id) => write!(f, "rm --force {}", short(id)),
            Op::RemoveName(n) => write!(f, "rm {n}"),
            Op::Tag(id, n) => write!(f, "tag {} {n}", short(id)),
            Op::Untag(id, n) => write!(f, "untag {} {n}", short(id)),
            Op::Prune { all } => write!(f, "prune all={all}"),
            Op::Register(c, id) => write!(f, "register {} on {}", short(c), short(id)),
            Op::Unregister(c) => write!(f, "unregister {}", short(c)),
        }
    }
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// What a request must get back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    /// Success.
    Ok,
    /// This error, and no change.
    Err(ErrorReason),
}

/// A lane: its model and its own random stream.
pub(super) struct Lane {
    /// Lane number.
    pub n: usize,
    /// The acknowledged state.
    pub state: LaneState,
    /// The request in flight when the daemon died, with the state it would leave.
    pub pending: Option<(Op, LaneState)>,
    /// Every image this lane ever loaded, by hex ID (reloads take one of the gone ones).
    pub specs: BTreeMap<String, ImageSpec>,
    rng: fastrand::Rng,
    counter: u64,
}

/// A successful response, for checking against the prediction.
pub(super) enum Response {
    /// `LoadImages`.
    Load(proto::LoadImagesResponse),
    /// `RemoveImage`.
    Remove(proto::RemoveImageResponse),
    /// `PruneImages`.
    Prune(proto::PruneImagesResponse),
    /// Anything else (nothing to check beyond success).
    Other,
}

impl Lane {
    /// A lane with an empty state.
    pub(super) fn new(n: usize, seed: u64) -> Self {
        Self {
            n,
            state: LaneState::default(),
            pending: None,
            specs: BTreeMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            counter: 0,
        }
    }

    fn name(&mut self) -> String {
        format!("localhost/crash/l{}:{}", self.n, self.rng.u32(..NAMES))
    }

    fn pick_image(&mut self) -> Option<String> {
        let ids: Vec<&String> = self.state.images.keys().collect();
        (!ids.is_empty()).then(|| ids[self.rng.usize(..ids.len())].clone())
    }

    fn new_spec(&mut self) -> ImageSpec {
        self.counter += 1;
        let mut spec = ImageSpec::new(&format!(
            "crash-l{}-{}-{}",
            self.n,
            self.counter,
            self.rng.u64(..)
        ))
        .label("crash.lane", &self.n.to_string());
        spec.layers.insert(0, base_layer(self.rng.usize(..BASES)));
        spec
    }

    /// The next request, chosen from the state.
    pub(super) fn choose(&mut self) -> Op {
        let named: Vec<String> = self.state.images.values().flatten().cloned().collect();
        let full = self.state.images.len() >= MAX_IMAGES;
        let roll = if self.state.images.is_empty() {
            0
        } else {
            self.rng.u32(if full { 30..100 } else { 0..100 })
        };
        match roll {
            30..=43 => return Op::RemoveId(self.pick_image().unwrap_or_default()),
            44..=55 if !named.is_empty() => {
                return Op::RemoveName(named[self.rng.usize(..named.len())].clone());
            }
            56..=69 => {
                let id = self.pick_image().unwrap_or_default();
                return Op::Tag(id, self.name());
            }
            70..=77 => {
                if let Some(id) = self.pick_image()
                    && let Some(n) = self.state.images[&id].iter().next().cloned()
                {
                    return Op::Untag(id, n);
                }
            }
            78..=85 => {
                return Op::Prune {
                    all: self.rng.u8(..4) == 0,
                };
            }
            86..=95 => {
                self.counter += 1;
                let c = format!("{:02x}{:062x}", self.n, self.counter);
                return Op::Register(c, self.pick_image().unwrap_or_default());
            }
            96.. if !self.state.containers.is_empty() => {
                let cs: Vec<&String> = self.state.containers.keys().collect();
                return Op::Unregister(cs[self.rng.usize(..cs.len())].clone());
            }
            _ => {}
        }
        self.choose_load()
    }

    fn choose_load(&mut self) -> Op {
        let gone: Vec<String> = self
            .specs
            .keys()
            .filter(|id| !self.state.images.contains_key(*id))
            .cloned()
            .collect();
        let mut images = Vec::new();
        let mut taken = BTreeSet::new();
        // A tampered archive holds one image: the harness's OCI writer stores a blob once,
        // so a second image sharing the spoiled layer would repair it.
        let tamper = self.rng.u8(..12) == 0;
        let count = if !tamper && self.rng.u8(..5) == 0 {
            2
        } else {
            1
        };
        for _ in 0..count {
            let mut spec = if !gone.is_empty() && self.rng.u8(..8) == 0 {
                // The same image again, after its removal: same config, maybe same blobs.
                self.specs[&gone[self.rng.usize(..gone.len())]].clone()
            } else {
                self.new_spec()
            };
            if images
                .iter()
                .any(|i: &ImageSpec| i.hex_id() == spec.hex_id())
            {
                continue;
            }
            spec.names.clear();
            for _ in 0..self.rng.usize(0..=2) {
                let n = self.name();
                if taken.insert(n.clone()) {
                    spec.names.push(n);
                }
            }
            images.push(spec);
        }
        Op::Load {
            images,
            oci: self.rng.bool(),
            tamper,
        }
    }

    /// The state `op` leaves (from the acknowledged one) and what it must return.
    pub(super) fn predict(&self, op: &Op) -> (LaneState, Expect) {
        let mut s = self.state.clone();
        let expect = match op {
            Op::Load { tamper: true, .. } => Expect::Err(ErrorReason::InvalidArchive),
            Op::Load { images, .. } => {
                for spec in images {
                    for n in &spec.names {
                        s.take_name(n);
                    }
                }
                for spec in images {
                    let names = s.images.entry(spec.hex_id()).or_default();
                    names.extend(spec.names.iter().cloned());
                }
                Expect::Ok
            }
            Op::RemoveId(id) => {
                s.delete(id);
                Expect::Ok
            }
            Op::RemoveName(n) => {
                let holder = s.holder(n).unwrap_or_default();
                if s.images[&holder].len() > 1 {
                    s.take_name(n);
                    Expect::Ok
                } else if s.in_use(&holder) {
                    Expect::Err(ErrorReason::ImageInUse)
                } else {
                    s.delete(&holder);
                    Expect::Ok
                }
            }
            Op::Tag(id, n) => {
                s.take_name(n);
                s.images.entry(id.clone()).or_default().insert(n.clone());
                Expect::Ok
            }
            Op::Untag(id, n) => {
                if let Some(names) = s.images.get_mut(id) {
                    names.remove(n);
                }
                Expect::Ok
            }
            Op::Prune { all } => {
                let doomed: Vec<String> = s
                    .images
                    .iter()
                    .filter(|(id, names)| (*all || names.is_empty()) && !s.in_use(id))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in doomed {
                    s.delete(&id);
                }
                Expect::Ok
            }
            Op::Register(c, id) => {
                s.containers.insert(c.clone(), id.clone());
                Expect::Ok
            }
            Op::Unregister(c) => {
                s.containers.remove(c);
                Expect::Ok
            }
        };
        if expect != Expect::Ok {
            return (self.state.clone(), expect);
        }
        (s, expect)
    }

    /// Sends `op`.
    pub(super) async fn execute(
        &mut self,
        client: &Client,
        op: &Op,
    ) -> Result<Response, ClientError> {
        Ok(match op {
            Op::Load {
                images,
                oci,
                tamper,
            } => {
                for spec in images {
                    self.specs.insert(spec.hex_id(), spec.clone());
                }
                let t = if *tamper {
                    Tamper::LayerContent
                } else {
                    Tamper::None
                };
                let (bytes, format) = if *oci {
                    (
                        archive::oci_archive_with(images, t),
                        proto::ArchiveFormat::Oci,
                    )
                } else {
                    (
                        archive::docker_archive_with(images, t),
                        proto::ArchiveFormat::Docker,
                    )
                };
                Response::Load(
                    client
                        .load(Cursor::new(bytes), format, Vec::new(), |_| {})
                        .await?,
                )
            }
            Op::RemoveId(id) => Response::Remove(
                client
                    .remove_image(proto::RemoveImageRequest {
                        reference: format!("sha256:{id}"),
                        force: true,
                        ..Default::default()
                    })
                    .await?,
            ),
            Op::RemoveName(n) => Response::Remove(
                client
                    .remove_image(proto::RemoveImageRequest {
                        reference: n.clone(),
                        ..Default::default()
                    })
                    .await?,
            ),
            Op::Tag(id, n) => {
                client
                    .tag_image(&format!("sha256:{id}"), vec![n.clone()])
                    .await?;
                Response::Other
            }
            Op::Untag(id, n) => {
                client
                    .untag_image(&format!("sha256:{id}"), vec![n.clone()])
                    .await?;
                Response::Other
            }
            Op::Prune { all } => Response::Prune(
                client
                    .prune_images(proto::PruneImagesRequest {
                        all: *all,
                        filters: vec![format!("label=crash.lane={}", self.n)],
                        ..Default::default()
                    })
                    .await?,
            ),
            Op::Register(c, id) => {
                client
                    .register_container(proto::RegisterContainerRequest {
                        id: c.clone(),
                        image: format!("sha256:{id}"),
                        ..Default::default()
                    })
                    .await?;
                Response::Other
            }
            Op::Unregister(c) => {
                client.unregister_container(c, false).await?;
                Response::Other
            }
        })
    }

    /// Checks a successful response of `op` against the states before and after it.
    pub(super) fn verify(&self, op: &Op, resp: &Response, after: &LaneState) -> Result<(), String> {
        let deleted = |records: &[proto::RemovalRecord]| -> BTreeSet<String> {
            records
                .iter()
                .filter_map(|r| match &r.record {
                    Some(Record::Deleted(id)) => Some(id.trim_start_matches("sha256:").to_owned()),
                    _ => None,
                })
                .collect()
        };
        let gone: BTreeSet<String> = self
            .state
            .images
            .keys()
            .filter(|id| !after.images.contains_key(*id))
            .cloned()
            .collect();
        let ids = |v: &[String]| -> BTreeSet<String> {
            v.iter()
                .map(|i| i.trim_start_matches("sha256:").to_owned())
                .collect()
        };
        match (op, resp) {
            (Op::Load { images, .. }, Response::Load(r)) => {
                let got: Vec<String> = r.images.iter().map(|i| i.id.clone()).collect();
                let want: Vec<String> = images.iter().map(ImageSpec::id).collect();
                (got == want)
                    .then_some(())
                    .ok_or_else(|| format!("loaded {got:?}, expected {want:?}"))
            }
            (Op::RemoveId(_) | Op::RemoveName(_), Response::Remove(r)) => (deleted(&r.records)
                == gone)
                .then_some(())
                .ok_or_else(|| format!("records {:?}, expected deletion of {gone:?}", r.records)),
            (Op::Prune { .. }, Response::Prune(r)) => {
                let got = ids(&r.deleted_images);
                (got == gone && r.errors.is_empty())
                    .then_some(())
                    .ok_or_else(|| format!("pruned {got:?} ({:?}), expected {gone:?}", r.errors))
            }
            _ => Ok(()),
        }
    }
}

/// Base layer `k` (64 KiB, shared by images of every lane).
fn base_layer(k: usize) -> LayerSpec {
    LayerSpec {
        path: format!("base-{k}.bin"),
        content: (0..64 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ k as u8)
            .collect(),
    }
}
