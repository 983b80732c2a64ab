//! The logical scenario: a realistic store of about N images, described by small
//! [`FamilySpec`]s and turned into real archives by imaged's own generator
//! (`imaged_testkit::archive`) on demand, deterministically (same N, same bytes).
//!
//! A *family* is what one team's host accumulates around one base image:
//! * a named base image (1–3 layers, ~30% with a second tag);
//! * 4–12 applications built on it, each 1–5 layers deeper (shared base layers, layer
//!   chains of varying depth, parent/child chains). ~15% were built locally with
//!   intermediate images kept (unnamed images with children); the others were pulled
//!   (only the final image is stored);
//! * application names carry one tag (85%), two (10%) or three (5%), and a `tier` label;
//! * ~18% of applications also keep an old build whose tag moved on: an unnamed leaf
//!   image (dangling);
//! * every tenth family also holds a manifest list (OCI index) of two platform instances.
//!
//! Containers are registered on ~5% of the images (named ones), mostly stopped or
//! created, every tenth running, every tenth external.

use imaged_testkit::archive::{
    self as synth, ArchiveOptions, DEFAULT_CREATED, DockerLayout, SynthImage,
};

/// Nanoseconds in a second.
const SECOND: i64 = 1_000_000_000;

/// What an image record is in the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A named base image.
    Base,
    /// A named application image (a leaf).
    App,
    /// An unnamed image with a child (kept from a local build).
    Intermediate,
    /// An unnamed leaf: an old build whose tag moved on.
    Dangling,
    /// A manifest list record.
    List,
    /// An instance of a manifest list (unnamed, not dangling).
    Instance,
}

/// One application of a family.
#[derive(Debug, Clone)]
struct AppSpec {
    /// Layers on top of the base (1–5).
    depth: usize,
    /// Built locally: the intermediate images are stored too.
    built: bool,
    /// Number of tags (1–3).
    tags: usize,
    /// An old, now unnamed build is kept.
    dangling_old: bool,
}

/// One family: a base image and what was built on it (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct FamilySpec {
    /// Index of the family (part of every name and layer content).
    pub index: usize,
    seed: u64,
    base_depth: usize,
    base_tags: usize,
    apps: Vec<AppSpec>,
    manifest_list: bool,
}

/// One image record the scenario stores.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// `sha256:<hex>` (config digest; index digest for a manifest list).
    pub id: String,
    /// Fully-qualified names.
    pub names: Vec<String>,
    /// Its role.
    pub role: Role,
}

/// A container to register on an image.
#[derive(Debug, Clone)]
pub(crate) struct ContainerPlan {
    /// Image ID.
    pub image_id: String,
    /// Running (blocks removal even with force).
    pub running: bool,
    /// External (a build container or another engine's).
    pub external: bool,
    /// Human name.
    pub name: String,
}

/// The images of one family, ready to be written as archives.
#[derive(Debug, Clone)]
pub(crate) struct FamilyImages {
    /// Every ordinary image of the family, in archive order, with its role.
    pub images: Vec<(SynthImage, Role)>,
    /// The manifest list: its name and instances.
    pub list: Option<(String, Vec<SynthImage>)>,
}

/// Archive formats the scenario is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `docker save` layout.
    Docker,
    /// OCI layout.
    Oci,
}

/// One archive of the scenario.
#[derive(Debug, Clone)]
pub(crate) struct Archive {
    /// The archive bytes (plain tar).
    pub bytes: Vec<u8>,
    /// Its format.
    pub format: Format,
}

/// The whole scenario for one size.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// The families, in load order.
    pub families: Vec<FamilySpec>,
    /// Every image record, in load order.
    pub images: Vec<Planned>,
    /// Containers to register.
    pub containers: Vec<ContainerPlan>,
}

/// Counts of the scenario's records, by kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    /// Image records (manifest lists included).
    pub images: usize,
    /// Images with at least one name.
    pub named: usize,
    /// Images with two or more names.
    pub multi_tagged: usize,
    /// Intermediate images.
    pub intermediate: usize,
    /// Dangling images.
    pub dangling: usize,
    /// Manifest lists.
    pub lists: usize,
    /// Registered containers.
    pub containers: usize,
    /// Families (archives, plus one per manifest list).
    pub families: usize,
}

fn base_name(f: usize) -> String {
    format!("docker.io/library/base{f}")
}

fn app_repo(f: usize, a: usize) -> String {
    format!("registry.example.com/team{}/app{f}-{a}", f % 7)
}

const TIERS: [&str; 3] = ["web", "db", "batch"];

impl FamilySpec {
    fn random(index: usize, rng: &mut fastrand::Rng) -> Self {
        let apps = (0..rng.usize(4..=12))
            .map(|_| AppSpec {
                depth: rng.usize(1..=5),
                built: rng.f32() < 0.15,
                tags: match rng.u32(0..100) {
                    0..85 => 1,
                    85..95 => 2,
                    _ => 3,
                },
                dangling_old: rng.f32() < 0.18,
            })
            .collect();
        Self {
            index,
            seed: rng.u64(..),
            base_depth: rng.usize(1..=3),
            base_tags: if rng.f32() < 0.3 { 2 } else { 1 },
            apps,
            manifest_list: index % 10 == 9,
        }
    }

    /// Number of image records the family stores.
    pub(crate) fn record_count(&self) -> usize {
        let apps: usize = self
            .apps
            .iter()
            .map(|a| 1 + usize::from(a.dangling_old) + if a.built { a.depth - 1 } else { 0 })
            .sum();
        1 + apps + if self.manifest_list { 3 } else { 0 }
    }

    /// Builds the family's images (deterministic).
    pub(crate) fn build(&self) -> FamilyImages {
        let f = self.index;
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let mut content = |key: &str| -> Vec<u8> {
            let pad = rng.usize(0..2048);
            let mut v = format!("{key}\n").into_bytes();
            v.extend((0..pad).map(|_| rng.alphanumeric() as u8));
            v
        };
        let mut base = SynthImage::new(&format!("base{f}"));
        base.created = Some(DEFAULT_CREATED + i64::try_from(f).unwrap_or(0) * 3600 * SECOND);
        base.layers[0] = content(&format!("base{f}/0"));
        for i in 1..self.base_depth {
            base = base.child(
                &content(&format!("base{f}/{i}")),
                &format!("/bin/sh -c apt-get install -y pkg{i}"),
            );
        }
        base.names = vec![format!("{}:latest", base_name(f))];
        if self.base_tags > 1 {
            base.names.push(format!("{}:{f}.0", base_name(f)));
        }
        let mut images = vec![(base.clone(), Role::Base)];
        for (a, app) in self.apps.iter().enumerate() {
            let tier = TIERS[(f + a) % TIERS.len()];
            let mut cur = base.clone().label("tier", tier);
            cur.names.clear();
            let mut chain = Vec::new();
            for step in 0..app.depth {
                cur = cur.child(
                    &content(&format!("app{f}-{a}/{step}")),
                    &format!("/bin/sh -c make step{step}"),
                );
                chain.push(cur.clone());
            }
            let parent_of_final = chain.len().checked_sub(2).map(|i| chain[i].clone());
            if app.built {
                for i in chain.iter().take(app.depth - 1) {
                    images.push((i.clone(), Role::Intermediate));
                }
            }
            if app.dangling_old {
                let from = parent_of_final.unwrap_or_else(|| base.clone().label("tier", tier));
                let mut old =
                    from.child(&content(&format!("app{f}-{a}/old")), "/bin/sh -c make old");
                old.names.clear();
                images.push((old, Role::Dangling));
            }
            let repo = app_repo(f, a);
            let tags = ["v1", "latest", "stable"];
            cur.names = tags[..app.tags]
                .iter()
                .map(|t| format!("{repo}:{t}"))
                .collect();
            images.push((cur, Role::App));
        }
        let list = self.manifest_list.then(|| {
            let mut host = base.child(&content(&format!("multi{f}/amd64")), "RUN multi");
            host.names.clear();
            let mut arm = base
                .child(&content(&format!("multi{f}/arm64")), "RUN multi")
                .on("linux", "arm64", "v8");
            arm.names.clear();
            (
                format!("docker.io/library/multi{f}:latest"),
                vec![host, arm],
            )
        });
        FamilyImages { images, list }
    }
}

impl FamilyImages {
    /// The family's archives: the images in `format`, then the manifest list (OCI index).
    pub(crate) fn archives(&self, format: Format) -> Vec<Archive> {
        let imgs: Vec<SynthImage> = self.images.iter().map(|(i, _)| i.clone()).collect();
        let bytes = match format {
            Format::Docker => synth::docker_archive_with(
                &imgs,
                &ArchiveOptions {
                    docker_layout: DockerLayout::Legacy,
                    ..ArchiveOptions::default()
                },
            ),
            Format::Oci => synth::oci_archive(&imgs, false),
        };
        let mut out = vec![Archive { bytes, format }];
        if let Some((name, instances)) = &self.list {
            let (bytes, _) =
                synth::oci_index_archive(Some(name), instances, &ArchiveOptions::default());
            out.push(Archive {
                bytes,
                format: Format::Oci,
            });
        }
        out
    }
}

/// The record a load of `img` gives (the generator's names are fully qualified and
/// tagged already, so the loader keeps them as they are).
fn planned(img: &SynthImage, role: Role) -> Planned {
    Planned {
        id: img.id().to_string(),
        names: img.names.clone(),
        role,
    }
}

impl Scenario {
    /// Plans about `target` images (a whole number of families, so slightly more).
    pub(crate) fn plan(target: usize) -> Self {
        let mut rng = fastrand::Rng::with_seed(0x1ade_d000 ^ target as u64);
        let mut families = Vec::new();
        let mut total = 0;
        while total < target {
            let f = FamilySpec::random(families.len(), &mut rng);
            total += f.record_count();
            families.push(f);
        }
        let mut images = Vec::with_capacity(total);
        for f in &families {
            let built = f.build();
            images.extend(built.images.iter().map(|(i, r)| planned(i, *r)));
            if let Some((name, instances)) = &built.list {
                let (_, digest) =
                    synth::oci_index_archive(Some(name), instances, &ArchiveOptions::default());
                images.push(Planned {
                    id: digest.to_string(),
                    names: vec![name.clone()],
                    role: Role::List,
                });
                images.extend(instances.iter().map(|i| planned(i, Role::Instance)));
            }
        }
        let containers = plan_containers(&images, &mut rng);
        Self {
            families,
            images,
            containers,
        }
    }

    /// Counts by kind.
    pub(crate) fn counts(&self) -> Counts {
        let by = |r: Role| self.images.iter().filter(|i| i.role == r).count();
        Counts {
            images: self.images.len(),
            named: self.images.iter().filter(|i| !i.names.is_empty()).count(),
            multi_tagged: self.images.iter().filter(|i| i.names.len() > 1).count(),
            intermediate: by(Role::Intermediate),
            dangling: by(Role::Dangling),
            lists: by(Role::List),
            containers: self.containers.len(),
            families: self.families.len(),
        }
    }

    /// Named application images with exactly one name and no container, shuffled
    /// deterministically: the removal targets (removing one deletes it whole).
    pub(crate) fn removable(&self) -> Vec<&Planned> {
        let used: std::collections::HashSet<&str> = self
            .containers
            .iter()
            .map(|c| c.image_id.as_str())
            .collect();
        let mut v: Vec<&Planned> = self
            .images
            .iter()
            .filter(|i| i.role == Role::App && i.names.len() == 1 && !used.contains(i.id.as_str()))
            .collect();
        fastrand::Rng::with_seed(7).shuffle(&mut v);
        v
    }

    /// Every archive of the scenario in load order, each family's images in `format`
    /// (`None`: docker-archive for most families, OCI for every fourth), produced one
    /// family at a time.
    pub(crate) fn archives(&self, format: Option<Format>) -> impl Iterator<Item = Archive> + '_ {
        self.families.iter().flat_map(move |f| {
            let fmt = format.unwrap_or(if f.index % 4 == 3 {
                Format::Oci
            } else {
                Format::Docker
            });
            f.build().archives(fmt)
        })
    }
}

impl Scenario {
    /// The same images in fewer archives: one docker-archive per `per` families, each
    /// followed by the OCI indexes of those families' manifest lists (for peers whose
    /// import costs mostly per call).
    pub(crate) fn batched_archives(&self, per: usize) -> impl Iterator<Item = Archive> + '_ {
        self.families.chunks(per.max(1)).flat_map(|chunk| {
            let built: Vec<FamilyImages> = chunk.iter().map(FamilySpec::build).collect();
            let imgs: Vec<SynthImage> = built
                .iter()
                .flat_map(|b| b.images.iter().map(|(i, _)| i.clone()))
                .collect();
            let mut out = vec![Archive {
                bytes: synth::docker_archive(&imgs, false),
                format: Format::Docker,
            }];
            for b in &built {
                out.extend(b.archives(Format::Docker).into_iter().skip(1));
            }
            out
        })
    }
}

/// ~5% of the images get a container, on named images (bases and applications).
fn plan_containers(images: &[Planned], rng: &mut fastrand::Rng) -> Vec<ContainerPlan> {
    let mut named: Vec<&Planned> = images
        .iter()
        .filter(|i| matches!(i.role, Role::Base | Role::App))
        .collect();
    rng.shuffle(&mut named);
    let n = images.len().div_ceil(20).min(named.len());
    named
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(k, img)| ContainerPlan {
            image_id: img.id.clone(),
            running: k % 10 == 0,
            external: k % 10 == 1,
            name: format!("bench-c{k}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_has_every_kind() {
        let a = Scenario::plan(300);
        let b = Scenario::plan(300);
        assert_eq!(
            a.images.iter().map(|i| &i.id).collect::<Vec<_>>(),
            b.images.iter().map(|i| &i.id).collect::<Vec<_>>()
        );
        let c = a.counts();
        assert!(c.images >= 300, "{c:?}");
        assert!(
            c.dangling > 0 && c.intermediate > 0 && c.multi_tagged > 0,
            "{c:?}"
        );
        assert!(c.lists > 0 && c.containers >= c.images / 20, "{c:?}");
        let ids: std::collections::HashSet<_> = a.images.iter().map(|i| &i.id).collect();
        assert_eq!(
            ids.len(),
            a.images.len(),
            "every planned record is distinct"
        );
        let names: Vec<_> = a.images.iter().flat_map(|i| &i.names).collect();
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "no name is given twice");
    }

    #[test]
    fn batched_archives_hold_every_image_once() {
        let s = Scenario::plan(200);
        let per_family: usize = s.archives(Some(Format::Docker)).count();
        let batched: Vec<Archive> = s.batched_archives(4).collect();
        let lists = s.counts().lists;
        assert_eq!(batched.len(), s.families.len().div_ceil(4) + lists);
        assert_eq!(per_family, s.families.len() + lists);
        let docker = batched
            .iter()
            .filter(|a| a.format == Format::Docker)
            .count();
        assert_eq!(docker, s.families.len().div_ceil(4));
    }

    #[test]
    fn record_count_matches_what_build_produces() {
        let s = Scenario::plan(200);
        for f in &s.families {
            let b = f.build();
            let n = b.images.len() + b.list.as_ref().map_or(0, |(_, i)| i.len() + 1);
            assert_eq!(n, f.record_count());
        }
        assert_eq!(
            s.images.len(),
            s.families
                .iter()
                .map(FamilySpec::record_count)
                .sum::<usize>()
        );
    }
}
