//! Real podman / buildah / skopeo stores for tests: a private containers-storage store under
//! a temporary directory, the commands to drive it, and its clean-up (mounts undone, store
//! removed). Nothing here touches `/var/lib/containers`.
//!
//! A test that needs these tools fails when they are missing (`scripts/setup` installs
//! them); it never skips.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The containers.conf every command gets: no ulimits (the sandbox refuses them), cgroupfs,
/// no events journal, runc, and file locks: they live in the store's `--tmpdir`, so each
/// test store has its own lock table. With podman's default (one shared-memory table of
/// 2048 locks for the machine, `/dev/shm/libpod_lock`), every container of a store a test
/// deletes with its directory keeps its lock, and after a few thousand the machine's
/// podman answers "allocating lock for new container: ... exceeded num_locks".
pub const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\nruntime = \"runc\"\nlock_type = \"file\"\n";

/// A private containers-storage store driven by the real tools.
#[derive(Debug)]
pub struct PodmanStore {
    dir: Option<tempfile::TempDir>,
    /// The graph root.
    pub root: PathBuf,
    /// The run root.
    pub run: PathBuf,
    /// `overlay` or `vfs`.
    pub driver: &'static str,
    conf: PathBuf,
    storage_conf: PathBuf,
}

/// The output of a command, with its exit status checked by the helpers that say so.
pub type CmdOutput = Output;

impl PodmanStore {
    /// A new empty store with `driver` (`overlay` or `vfs`). Panics are avoided: errors are
    /// returned as text for the test to report.
    pub fn new(driver: &'static str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("imaged-cstorage-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let root = dir.path().join("root");
        let run = dir.path().join("run");
        let conf = dir.path().join("containers.conf");
        let storage_conf = dir.path().join("storage.conf");
        std::fs::write(&conf, CONTAINERS_CONF).map_err(|e| format!("containers.conf: {e}"))?;
        std::fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"{driver}\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                root.display(),
                run.display()
            ),
        )
        .map_err(|e| format!("storage.conf: {e}"))?;
        // No search registries, no mirrors: every reference a test uses is qualified.
        std::fs::write(dir.path().join("registries.conf"), "")
            .map_err(|e| format!("registries.conf: {e}"))?;
        let s = Self {
            dir: Some(dir),
            root,
            run,
            driver,
            conf,
            storage_conf,
        };
        // Let podman create the store (and its BoltDB) the way it does on a real host.
        s.podman_ok(&["images", "-q"])?;
        Ok(s)
    }

    /// The temporary directory holding the store (for other files of the test).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(self.root.as_path(), |d| d.path())
    }

    /// A storage.conf naming this store (for `CONTAINERS_STORAGE_CONF`).
    pub fn storage_conf(&self) -> &Path {
        &self.storage_conf
    }

    /// `containers-storage:[driver@root+run]` — skopeo's reference prefix for this store.
    pub fn skopeo_ref(&self, name: &str) -> String {
        format!(
            "containers-storage:[{}@{}+{}]{name}",
            self.driver,
            self.root.display(),
            self.run.display()
        )
    }

    /// The environment every tool on this store gets (`CONTAINERS_CONF`,
    /// `CONTAINERS_STORAGE_CONF`, `CONTAINERS_REGISTRIES_CONF`), for another program that
    /// must see the store as podman does (imaged, which drives skopeo).
    pub fn env_vars(&self) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        vec![
            ("CONTAINERS_CONF".into(), self.conf.clone().into()),
            (
                "CONTAINERS_STORAGE_CONF".into(),
                self.storage_conf.clone().into(),
            ),
            (
                "CONTAINERS_REGISTRIES_CONF".into(),
                self.dir().join("registries.conf").into(),
            ),
        ]
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir().join("registries.conf"),
            )
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(std::process::Stdio::null());
    }

    /// A `podman` command on this store (not started).
    pub fn podman_cmd<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.run)
            .arg("--storage-driver")
            .arg(self.driver)
            .arg("--runtime")
            .arg("runc")
            .arg("--tmpdir")
            .arg(self.dir().join("podman-tmp"))
            .args(args);
        self.env(&mut cmd);
        cmd
    }

    /// Runs podman; the output whatever the exit status.
    pub fn podman(&self, args: &[&str]) -> Result<Output, String> {
        run(self.podman_cmd(args), "podman", args)
    }

    /// Runs podman and requires success; its stdout.
    pub fn podman_ok(&self, args: &[&str]) -> Result<String, String> {
        ok(self.podman(args)?, "podman", args)
    }

    /// A `buildah` command on this store (not started).
    pub fn buildah_cmd<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.run)
            .arg("--storage-driver")
            .arg(self.driver)
            .args(args);
        self.env(&mut cmd);
        cmd
    }

    /// Runs buildah and requires success; its stdout.
    pub fn buildah_ok(&self, args: &[&str]) -> Result<String, String> {
        ok(
            run(self.buildah_cmd(args), "buildah", args)?,
            "buildah",
            args,
        )
    }

    /// Runs skopeo (with this store's environment) and requires success; its stdout.
    pub fn skopeo_ok(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("skopeo");
        cmd.args(args);
        self.env(&mut cmd);
        ok(run(cmd, "skopeo", args)?, "skopeo", args)
    }

    /// `podman load -i <archive>` of archive bytes; the IDs podman printed are not parsed.
    pub fn load_archive(&self, archive: &[u8]) -> Result<(), String> {
        let path = self.dir().join(format!("load-{}.tar", fastrand_name()));
        std::fs::write(&path, archive).map_err(|e| format!("write archive: {e}"))?;
        let p = path.to_string_lossy().into_owned();
        let r = self.podman_ok(&["load", "-q", "-i", &p]);
        let _ = std::fs::remove_file(&path);
        r.map(|_| ())
    }

    /// Undoes every mount under the store (podman's and overlay's private bind of
    /// `<root>/overlay`), deepest first.
    pub fn unmount_all(&self) {
        let _ = self.podman(&["umount", "-a", "-f"]);
        let _ = run(
            self.buildah_cmd(["umount", "-a"]),
            "buildah",
            &["umount", "-a"],
        );
        let base = self.dir().to_path_buf();
        let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape_mount_path)
            .filter(|p| p.starts_with(&base))
            .collect();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in mounts {
            let _ = nix_umount(&m);
        }
    }
}

impl Drop for PodmanStore {
    fn drop(&mut self) {
        self.unmount_all();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

fn run(mut cmd: Command, what: &str, args: &[&str]) -> Result<Output, String> {
    cmd.output().map_err(|e| {
        format!(
            "{what} {}: cannot run: {e} (scripts/setup installs it)",
            args.join(" ")
        )
    })
}

fn ok(out: Output, what: &str, args: &[&str]) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// A lazy unmount through `umount -l` (the tests run as root; no unsafe code here).
fn nix_umount(path: &Path) -> std::io::Result<()> {
    let st = Command::new("umount").arg("-l").arg(path).status()?;
    if st.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "umount {} failed",
            path.display()
        )))
    }
}

/// A docker-archive of a runnable image: one layer with the static busybox from
/// busybox-static (`/bin/busybox`), named `name`. `podman run --rm <name> /bin/busybox
/// true` works offline.
pub fn busybox_archive(name: &str) -> Result<Vec<u8>, String> {
    let busybox = std::fs::read("/bin/busybox")
        .map_err(|e| format!("/bin/busybox: {e} (apt-get install busybox-static)"))?;
    let layer = busybox_layer(&busybox).map_err(|e| format!("busybox layer: {e}"))?;
    let diff_id = imaged_core::digest::Digest::of(&layer);
    let config = serde_json::json!({
        "architecture": imaged_core::model::Platform::host().architecture,
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/busybox", "true"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "ADD busybox-static /bin"}],
    });
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let chex = imaged_core::digest::Digest::of(&config).hex();
    let lhex = diff_id.hex();
    let manifest = serde_json::json!([{
        "Config": format!("{chex}.json"),
        "RepoTags": [name],
        "Layers": [format!("{lhex}/layer.tar")],
    }]);
    let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let mut t = crate::archive::TarOut::new();
    t.file(&format!("{chex}.json"), &config);
    t.dir(&format!("{lhex}/"));
    t.file(&format!("{lhex}/layer.tar"), &layer);
    t.file("manifest.json", &manifest);
    Ok(t.finish())
}

/// The busybox layer: `bin/`, `bin/busybox` executable (0755: `TarOut::file` writes 0644,
/// which runc refuses to exec), `bin/sh` and `bin/true` links to it. Deterministic headers.
fn busybox_layer(busybox: &[u8]) -> std::io::Result<Vec<u8>> {
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(
        &mut header(tar::EntryType::Directory, 0o755, 0),
        "bin",
        std::io::empty(),
    )?;
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o755, busybox.len() as u64),
        "bin/busybox",
        busybox,
    )?;
    for link in ["bin/sh", "bin/true"] {
        b.append_link(
            &mut header(tar::EntryType::Symlink, 0o777, 0),
            link,
            "busybox",
        )?;
    }
    b.into_inner()
}

impl PodmanStore {
    /// `podman create` (or, `external`, `buildah from`) of a container named `name` on the
    /// image `image` (an ID or a name), without pulling; gives the container's ID. podman's
    /// container gets a command (the suite's images have none) and no network.
    pub fn create_container(
        &self,
        name: &str,
        image: &str,
        external: bool,
    ) -> Result<String, String> {
        if external {
            self.buildah_ok(&["from", "--pull-never", "--quiet", "--name", name, image])?;
            let id = self.buildah_ok(&[
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.ContainerID}}",
                name,
            ])?;
            Ok(id.trim().to_owned())
        } else {
            let id = self.podman_ok(&[
                "create",
                "--quiet",
                "--pull",
                "never",
                "--network",
                "none",
                "--name",
                name,
                image,
                "/bin/true",
            ])?;
            Ok(id.trim().to_owned())
        }
    }

    /// Mounts the container's layer (`podman mount` / `buildah mount`): containers-storage
    /// counts a container whose layer is mounted as running. Undone by [`Self::unmount_all`].
    pub fn mount_container(&self, name: &str, external: bool) -> Result<(), String> {
        if external {
            self.buildah_ok(&["mount", name])?;
        } else {
            self.podman_ok(&["mount", name])?;
        }
        Ok(())
    }

    /// Writes the blobs of the image `spec` builds as an OCI layout (one manifest, no name)
    /// in a new directory of this store's temporary directory; the caller removes it.
    fn oci_layout(&self, spec: &crate::images::ImageSpec) -> Result<PathBuf, String> {
        let (blobs, img) = spec.build();
        let io = |e: std::io::Error| format!("OCI layout: {e}");
        let dir = self.dir().join(format!("oci-{}", fastrand_name()));
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(io)?;
        for b in &blobs {
            let d = imaged_core::digest::Digest::of(b);
            std::fs::write(dir.join("blobs/sha256").join(d.hex()), b).map_err(io)?;
        }
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": img.manifest.media_type,
            "digest": img.manifest.digest.to_string(),
            "size": img.manifest.size,
        }]});
        std::fs::write(dir.join("index.json"), index.to_string()).map_err(io)?;
        Ok(dir)
    }

    /// Copies the image `spec` builds into this store with skopeo from an OCI layout (as
    /// imaged's load does: `containers-storage:[…]NAME@ID`), named with the spec's first
    /// name and tagged with the others in order; gives its ID.
    pub fn copy_image(
        &self,
        spec: &crate::images::ImageSpec,
    ) -> Result<imaged_core::model::ImageId, String> {
        let img = spec.build().1;
        let dir = self.oci_layout(spec)?;
        let src = format!("oci:{}", dir.display());
        let first = spec.names.first().map_or("", String::as_str);
        let dest = self.skopeo_ref(&format!("{first}@{}", img.id.hex()));
        let r = self.skopeo_ok(&["copy", "--quiet", "--insecure-policy", &src, &dest]);
        let _ = std::fs::remove_dir_all(&dir);
        r?;
        for n in spec.names.iter().skip(1) {
            self.tag(&img.id.hex(), n)?;
        }
        Ok(img.id)
    }

    /// A manifest list made as podman users make one: `podman manifest create NAME`, then
    /// `podman manifest add LIST containers-storage:ID` for each instance in order, with
    /// `--os/--arch/--variant` so the list gives the instance the platform asked for. An
    /// instance given as a spec (not in the store) is added from an OCI layout of that image
    /// (`oci:DIR`: podman records the instance's digest and platform without copying it).
    /// c/storage gets an image with a random ID, no layer, and the list (an OCI index) as
    /// its `manifest` big data next to podman's `instances.json`. Gives the list's ID.
    pub fn create_manifest_list(
        &self,
        name: &str,
        instances: &[(ListSource<'_>, &imaged_core::model::Platform)],
    ) -> Result<imaged_core::model::ImageId, String> {
        let out = self.podman_ok(&["manifest", "create", name])?;
        let hex = out.trim();
        let id = imaged_core::digest::Digest::from_hex(hex)
            .map_err(|e| format!("podman manifest create gave {hex:?}: {e}"))?;
        for (source, platform) in instances {
            let (src, dir) = match source {
                ListSource::Stored(image) => (format!("containers-storage:{}", image.hex()), None),
                ListSource::Absent(spec) => {
                    let dir = self.oci_layout(spec)?;
                    (format!("oci:{}", dir.display()), Some(dir))
                }
            };
            let mut args = vec![
                "manifest",
                "add",
                "--os",
                &platform.os,
                "--arch",
                &platform.architecture,
            ];
            if !platform.variant.is_empty() {
                args.extend(["--variant", &platform.variant]);
            }
            args.extend([hex, &src]);
            let r = self.podman_ok(&args);
            if let Some(d) = dir {
                let _ = std::fs::remove_dir_all(d);
            }
            r?;
        }
        Ok(id)
    }

    /// The manifest digest podman reports for the image `id` (`podman images --digests`:
    /// c/storage's `digest` field, which for a list stays the digest it had when created).
    pub fn reported_digest(
        &self,
        id: &imaged_core::model::ImageId,
    ) -> Result<imaged_core::digest::Digest, String> {
        let out = self.podman_ok(&[
            "images",
            "--all",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Digest}}",
        ])?;
        let want = id.to_string();
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(&want)?.strip_prefix(' '))
            .ok_or_else(|| format!("podman images does not list {want}:\n{out}"))?;
        imaged_core::digest::Digest::parse(line.trim())
            .map_err(|e| format!("podman's digest {line:?} of {want}: {e}"))
    }

    /// `podman untag <image> <name>`.
    pub fn untag(&self, image: &str, name: &str) -> Result<(), String> {
        self.podman_ok(&["untag", image, name]).map(|_| ())
    }

    /// `podman tag <image> <name>`.
    pub fn tag(&self, image: &str, name: &str) -> Result<(), String> {
        self.podman_ok(&["tag", image, name]).map(|_| ())
    }
}

/// The conformance suite's setup steps done by the real tools on a containers-storage store
/// (a backend that refuses container records): every case container is made by `podman
/// create` (by `buildah from` when external), named with the case's ID; a running one has its
/// layer mounted (`podman mount` / `buildah mount`). A stopped container is made as a created
/// one: the suite's images hold no program to run, and no case tells the two apart (both keep
/// their image, neither blocks a forced removal). A name the case adds to an image without
/// names goes through `podman tag`; further names go through the store's own name write,
/// because `podman tag` appends while the cases' names are newest first (TagImage's order).
/// Read-only images (`ImageSpec::read_only`) are copied into `read_only`, the store's
/// additional image store, when there is one.
#[derive(Debug, Clone)]
pub struct PodmanSetup {
    /// The store under test.
    pub store: std::sync::Arc<PodmanStore>,
    /// Its additional (read-only) image store, same driver.
    pub read_only: Option<std::sync::Arc<PodmanStore>>,
}

impl crate::conformance::SetupHook for PodmanSetup {
    fn container(
        &self,
        c: &crate::conformance::SetupContainer,
        image: &imaged_core::model::ImageId,
    ) -> Result<crate::conformance::RealContainer, String> {
        let id = self
            .store
            .create_container(c.id, &image.hex(), c.external)?;
        if c.state == imaged_core::model::ContainerState::Running {
            self.store.mount_container(c.id, c.external)?;
        }
        Ok(crate::conformance::RealContainer {
            id,
            name: c.id.to_owned(),
        })
    }

    fn tag(
        &self,
        image: &imaged_core::model::ImageId,
        current: &[String],
        name: &str,
    ) -> Result<bool, String> {
        if !current.is_empty() {
            return Ok(false);
        }
        self.store.tag(&image.hex(), name)?;
        Ok(true)
    }

    fn read_only_image(
        &self,
        spec: &crate::images::ImageSpec,
    ) -> Result<Option<imaged_core::model::ImageId>, String> {
        match &self.read_only {
            Some(ro) => ro.copy_image(spec).map(Some),
            None => Ok(None),
        }
    }

    /// The case's list made by `podman manifest create/add` ([`PodmanStore::create_manifest_list`]):
    /// instances the case stored are added by ID; an instance the case only names is a
    /// stand-in image (not stored) with the platform asked for, so the list names an absent
    /// manifest as the case's does (under another digest, which no case refers to). An
    /// unnamed list is created under a temporary name that is then moved to another image
    /// of the case and untagged there: `podman untag` of a list untags its instance
    /// (libimage resolves a list to the instance for the host), and a name that moves away
    /// is how podman leaves a list unnamed. podman cannot give a list a second name
    /// (`podman tag` too names the instance).
    fn list(
        &self,
        spec: &crate::images::ImageSpec,
        instances: &[crate::conformance::ListInstance<'_>],
        stored: &[imaged_core::model::ImageId],
    ) -> Result<Option<crate::conformance::RealList>, String> {
        if spec.names.len() > 1 {
            return Err(format!(
                "podman names a manifest list once (podman tag names its instance): {:?}",
                spec.names
            ));
        }
        let stand_ins: Vec<crate::images::ImageSpec> = instances
            .iter()
            .map(|i| {
                let mut s = crate::images::ImageSpec::base(&format!("absent {}", i.digest), 0);
                s.platform = Some(i.platform.clone());
                s
            })
            .collect();
        let sources: Vec<(ListSource<'_>, &imaged_core::model::Platform)> = instances
            .iter()
            .zip(&stand_ins)
            .map(|(i, s)| {
                let src = i
                    .local
                    .as_ref()
                    .map_or(ListSource::Absent(s), ListSource::Stored);
                (src, i.platform)
            })
            .collect();
        let temporary = format!("localhost/imaged-unnamed-list-{}:latest", fastrand_name());
        let name = spec.names.first().unwrap_or(&temporary);
        let id = self.store.create_manifest_list(name, &sources)?;
        if spec.names.is_empty() {
            let other = stored
                .first()
                .ok_or("an unnamed manifest list needs another image to take its name away")?
                .hex();
            self.store.tag(&other, &temporary)?;
            self.store.untag(&other, &temporary)?;
        }
        let digest = self.store.reported_digest(&id)?;
        Ok(Some(crate::conformance::RealList { id, digest }))
    }
}

/// Where an instance of a manifest list comes from ([`PodmanStore::create_manifest_list`]).
#[derive(Debug, Clone, Copy)]
pub enum ListSource<'a> {
    /// An image of this store.
    Stored(&'a imaged_core::model::ImageId),
    /// An image not in the store (listed, absent).
    Absent(&'a crate::images::ImageSpec),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{SetupContainer, SetupHook};
    use imaged_core::model::{ContainerState, ImageId};
    use std::sync::Arc;

    /// The conformance hook on a real store: a podman container, a mounted (running)
    /// buildah container, a first name through `podman tag`, a second one left to the store.
    #[test]
    fn podman_setup_makes_real_containers_and_names() {
        let s = Arc::new(PodmanStore::new("vfs").unwrap());
        let rootfs = s.dir().join("rootfs.tar");
        let mut t = crate::archive::TarOut::new();
        t.file("f", b"content");
        std::fs::write(&rootfs, t.finish()).unwrap();
        let out = s
            .podman_ok(&["import", "-q", &rootfs.to_string_lossy()])
            .unwrap();
        let id = ImageId::parse(out.trim()).unwrap();
        let hook = PodmanSetup {
            store: Arc::clone(&s),
            read_only: None,
        };
        let ctr = |id: &'static str, state, external| SetupContainer {
            id,
            image: "i",
            state,
            external,
        };
        let c1 = hook
            .container(&ctr("ctr1", ContainerState::Stopped, false), &id)
            .unwrap();
        let x1 = hook
            .container(&ctr("x1", ContainerState::Running, true), &id)
            .unwrap();
        assert_eq!((c1.name.as_str(), c1.id.len()), ("ctr1", 64));
        assert_eq!((x1.name.as_str(), x1.id.len()), ("x1", 64));
        let ps = s
            .podman_ok(&[
                "ps",
                "-a",
                "--external",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Names}} {{.Status}}",
            ])
            .unwrap();
        assert!(ps.contains(&format!("{} ctr1 Created", c1.id)), "{ps}");
        assert!(ps.contains(&format!("{} x1 Storage", x1.id)), "{ps}");
        let mounts = std::fs::read_to_string(s.run.join("vfs-layers/mountpoints.json")).unwrap();
        assert!(mounts.contains("\"count\":1"), "{mounts}");
        assert!(hook.tag(&id, &[], "localhost/a:latest").unwrap());
        assert!(
            !hook
                .tag(&id, &["localhost/a:latest".into()], "localhost/b:latest")
                .unwrap()
        );
        let names = s
            .podman_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .unwrap();
        assert_eq!(names.trim(), "localhost/a:latest");
    }

    /// Manifest lists made by the conformance hook: `podman manifest create/add` gives a
    /// layer-less record holding an OCI index with the instances in order (a stored one
    /// under its own digest, an absent stand-in with the platform asked for); an unnamed
    /// list loses its temporary name to another image, which is untagged again; the
    /// containers-storage store reads both as lists with those instances.
    #[test]
    fn podman_setup_makes_manifest_lists() {
        use crate::conformance::ListInstance;
        use crate::images::ImageSpec;
        use imaged_core::model::Platform;
        let s = Arc::new(PodmanStore::new("vfs").unwrap());
        let inst = ImageSpec::base("inst", 1);
        let inst_digest = inst.build().1.digest();
        let inst_id = s.copy_image(&inst).unwrap();
        let hook = PodmanSetup {
            store: Arc::clone(&s),
            read_only: None,
        };
        let plan9 = Platform {
            os: "plan9".into(),
            architecture: "mips".into(),
            variant: String::new(),
        };
        let host = Platform::host();
        let absent = imaged_core::digest::Digest::of(b"absent");
        let named = ImageSpec::list(
            vec![(absent, plan9.clone()), (inst_digest, host.clone())],
            2,
        )
        .name("localhost/list:latest");
        let instances = [
            ListInstance {
                digest: absent,
                platform: &plan9,
                local: None,
            },
            ListInstance {
                digest: inst_digest,
                platform: &host,
                local: Some(inst_id),
            },
        ];
        let list = hook.list(&named, &instances, &[inst_id]).unwrap().unwrap();
        let unnamed = ImageSpec::list(vec![(inst_digest, host.clone())], 3);
        let bare = hook
            .list(&unnamed, &instances[1..], &[inst_id])
            .unwrap()
            .unwrap();
        assert_ne!(list.id, bare.id);

        let records: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.root.join("vfs-images/images.json")).unwrap())
                .unwrap();
        let record = |id: &ImageId| {
            records
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id.hex())
                .unwrap()
                .clone()
        };
        let r = record(&list.id);
        assert_eq!(r["names"], serde_json::json!(["localhost/list:latest"]));
        assert!(r.get("layer").is_none(), "{r}");
        assert_eq!(r["digest"], list.digest.to_string());
        assert!(record(&bare.id).get("names").is_none());
        assert!(record(&inst_id).get("names").is_none());
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                s.root
                    .join("vfs-images")
                    .join(list.id.hex())
                    .join("manifest"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let m = index["manifests"].as_array().unwrap();
        assert_eq!(m.len(), 2, "{index}");
        assert_eq!(m[0]["platform"]["os"], "plan9");
        assert_eq!(m[0]["platform"]["architecture"], "mips");
        assert_eq!(m[1]["digest"], inst_digest.to_string());
        assert_eq!(m[1]["platform"]["architecture"], host.architecture);

        let store = imaged_store_cstorage::open(imaged_store_cstorage::StoreOptions::new(
            s.root.clone(),
            s.run.clone(),
            imaged_store_cstorage::Driver::Vfs,
        ))
        .unwrap();
        let view = imaged_core::store::Store::view(&store);
        let img = view.image(&list.id).unwrap();
        let got: Vec<_> = img.instances.clone().unwrap_or_default();
        assert_eq!(got.len(), 2, "{img:?}");
        assert_eq!((got[1].digest, &got[1].platform), (inst_digest, &host));
        assert_eq!(got[0].platform, plan9);
        assert!(img.layers.is_empty() && img.config_blob.is_none());
        let img = view.image(&bare.id).unwrap();
        assert!(img.names.is_empty(), "{img:?}");
        assert_eq!(img.instances.as_ref().map(Vec::len), Some(1));
    }

    /// The conformance fixtures as containers-storage holds them: each spec's blobs copied
    /// by skopeo from an OCI layout (as the store's load does) keep the ID, manifest digest,
    /// layers (shared between parent and child), history and labels the in-process record
    /// has; a layer-less image loads too.
    #[test]
    fn image_specs_load_unchanged_through_skopeo() {
        use crate::images::ImageSpec;
        let s = PodmanStore::new("vfs").unwrap();
        let base = ImageSpec::base("p", 1).label("k", "v");
        let specs = [
            base.clone(),
            base.child("c", 2),
            base.child("", 3),
            ImageSpec {
                history: vec!["ENV a=1".into()],
                created: 4,
                ..ImageSpec::default()
            },
            ImageSpec::base("arm", 5)
                .platform("linux", "arm64")
                .salt("x"),
        ];
        for spec in &specs {
            let img = spec.build().1;
            assert_eq!(s.copy_image(spec).unwrap(), img.id);
            let out = s.podman_ok(&["image", "inspect", &img.id.hex()]).unwrap();
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let v = &v[0];
            assert_eq!(v["Id"], img.id.hex());
            assert_eq!(v["Digest"], img.manifest.digest.to_string());
            let layers: Vec<String> = img.layers.iter().map(|l| l.diff_id.to_string()).collect();
            let got: Vec<String> = v["RootFS"]["Layers"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            assert_eq!(got, layers, "{spec:?}");
            assert_eq!(
                v["History"].as_array().map_or(0, Vec::len),
                img.config.history.len()
            );
            assert_eq!(
                v["Labels"]["k"].as_str(),
                img.config.labels.get("k").map(String::as_str)
            );
            assert_eq!(v["Architecture"], img.config.platform.architecture);
        }
        let ls = s.podman_ok(&["images", "-a", "-q", "--no-trunc"]).unwrap();
        assert_eq!(ls.lines().count(), specs.len(), "{ls}");
    }
}
