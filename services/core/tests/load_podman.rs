//! Archives written by the real tools: `podman save` (docker-archive, oci-archive,
//! multi-image) and `skopeo copy` of an image built with `podman import` in a private
//! store. Skipped, saying why, when podman is not installed or cannot run here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use imaged_core::digest::Digest;
use imaged_testkit::archive::{self as synth, SynthImage};
use load_support::Rig;

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// A private podman store in a temp dir.
struct Podman {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Podman {
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn runroot(&self) -> PathBuf {
        self.dir.path().join("runroot")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs podman; `Err(stderr)` on failure.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("timeout")
            .arg("300")
            .arg(&self.bin)
            .arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "podman {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn must(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn storage_ref(&self, image: &str) -> String {
        format!(
            "containers-storage:[vfs@{}+{}]{image}",
            self.root().display(),
            self.runroot().display()
        )
    }
}

fn load_file(path: &Path) -> imaged_core::ops::LoadReport {
    let bytes = std::fs::read(path).unwrap();
    Rig::new()
        .load(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn loads_archives_written_by_podman_and_skopeo() {
    let Some(bin) = which("podman") else {
        eprintln!("skipping: podman is not installed");
        return;
    };
    let p = Podman {
        bin,
        dir: tempfile::tempdir().unwrap(),
    };
    let layer = SynthImage::new("made for podman").layer_tar(0);
    std::fs::write(p.path("layer.tar"), layer).unwrap();
    let layer_path = p.path("layer.tar");
    let import = [
        "import",
        "--change",
        "LABEL from=podman",
        layer_path.to_str().unwrap(),
    ];
    if let Err(e) = p.run(&[&import[..], &["localhost/imp:1"]].concat()) {
        eprintln!("skipping: podman cannot run here: {e}");
        return;
    }
    p.must(&["tag", "localhost/imp:1", "quay.io/x/y:2"]);
    let id = Digest::from_hex(&p.must(&["inspect", "--format", "{{.Id}}", "localhost/imp:1"]))
        .expect("podman prints the ID as 64 hex");
    let digest = p.must(&["inspect", "--format", "{{.Digest}}", "localhost/imp:1"]);

    let path = |n: &str| p.path(n).to_str().unwrap().to_owned();
    p.must(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        &path("d.tar"),
        "localhost/imp:1",
    ]);
    p.must(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        &path("o.tar"),
        "localhost/imp:1",
    ]);
    let multi = [
        "save",
        "-m",
        "--format",
        "docker-archive",
        "-o",
        &path("dm.tar"),
    ];
    p.must(&[&multi[..], &["localhost/imp:1", "quay.io/x/y:2"]].concat());

    let d = load_file(&p.path("d.tar"));
    assert_eq!(d.images.len(), 1);
    assert_eq!(d.images[0].id, id, "docker-archive: ID = podman's image ID");
    assert_eq!(d.images[0].names, vec!["localhost/imp:1"]);

    let o = load_file(&p.path("o.tar"));
    assert_eq!(o.images[0].id, id, "oci-archive: ID = podman's image ID");
    assert_eq!(o.images[0].names, vec!["localhost/imp:1"]);
    {
        let rig = Rig::new();
        rig.load(&std::fs::read(p.path("o.tar")).unwrap()).unwrap();
        let img = rig.image(&id);
        assert_eq!(
            img.config.labels.get("from").map(String::as_str),
            Some("podman")
        );
        assert_eq!(
            img.diff_ids().collect::<Vec<_>>(),
            SynthImage::new("made for podman").diff_ids()
        );
        eprintln!(
            "podman digest {digest}, loaded manifest {}",
            img.manifest.digest
        );
    }

    let dm = load_file(&p.path("dm.tar"));
    assert_eq!(dm.images.len(), 1);
    assert_eq!(dm.images[0].names, vec!["localhost/imp:1", "quay.io/x/y:2"]);

    // The same archive gzip-compressed as a whole.
    let gz = synth::gzip(&std::fs::read(p.path("d.tar")).unwrap());
    let report = Rig::new().load(&gz).unwrap();
    assert_eq!(report.images[0].id, id);

    let Some(skopeo) = which("skopeo") else {
        eprintln!("skopeo is not installed: skipping its part");
        return;
    };
    let copy = |dest: String| {
        let out = Command::new("timeout")
            .arg("300")
            .arg(&skopeo)
            .args(["copy", "--quiet", &p.storage_ref("localhost/imp:1"), &dest])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    copy(format!("oci-archive:{}:tag1", path("s-oci.tar")));
    copy(format!(
        "docker-archive:{}:quay.io/z/w:3",
        path("s-docker.tar")
    ));
    let so = load_file(&p.path("s-oci.tar"));
    assert_eq!(so.images[0].id, id);
    assert_eq!(
        so.images[0].names,
        vec!["localhost/tag1:latest"],
        "podman's rule for a bare tag"
    );
    let sd = load_file(&p.path("s-docker.tar"));
    assert_eq!(sd.images[0].id, id);
    assert_eq!(sd.images[0].names, vec!["quay.io/z/w:3"]);
}
