//! Pull and push on a real podman store (issue 13): `imagectl pull` through
//! `imaged --store containers-storage` from a real registry; podman lists, inspects, saves
//! and runs what imaged pulled; a second image on the same base fetches only its own
//! layer; a push from the podman store mounts its layers from the repository they came
//! from and lands in the registry byte for byte as pulled.

use imaged_testkit::registry::Registry;

use crate::cstorage_support::*;
use crate::support::*;

#[test]
fn pulls_land_in_the_podman_store_and_run() {
    let s = store("overlay");
    let reg = Registry::start();
    reg.push_docker_archive(&busybox("localhost/cs/busybox:1"), "cs/busybox:1");
    let base = ImageSpec::new("cs-pull-base");
    let child = base.child("cs-pull-top");
    reg.push_archive(
        &archive::oci_archive(std::slice::from_ref(&base)),
        "cs/base:1",
        false,
    );
    reg.push_archive(
        &archive::oci_archive(std::slice::from_ref(&child)),
        "cs/child:1",
        false,
    );
    let d = daemon(&s);

    let busybox_ref = format!("{}/cs/busybox:1", reg.host());
    let run = d.imagectl(&["pull", "--tls-verify=false", &busybox_ref]);
    run.ok();
    let id = last_line(&run);
    let views = assert_agree(&s, &d, "pull busybox");
    assert!(
        views
            .images
            .iter()
            .any(|(i, names, _)| *i == id && names == std::slice::from_ref(&busybox_ref)),
        "{views:?}"
    );
    assert_images_usable(&s, &[&busybox_ref], "pull busybox");

    for (image, repo) in [(&base, "cs/base:1"), (&child, "cs/child:1")] {
        let r = format!("{}/{repo}", reg.host());
        let run = d.imagectl(&["pull", "--tls-verify=false", &r]);
        run.ok();
        assert_eq!(run.lines(), [image.hex_id()], "{run}");
    }
    // The child's base layer was already in the store: fetched once, by the first pull.
    let manifest: serde_json::Value =
        serde_json::from_slice(&reg.skopeo_raw("cs/base:1")).expect("manifest json");
    let base_layer = imaged_core::Digest::parse(
        manifest["layers"][0]["digest"]
            .as_str()
            .expect("a layer digest"),
    )
    .expect("digest");
    assert_eq!(reg.blob_gets(&base_layer), 1, "{}", reg.access_log());
    let views = assert_agree(&s, &d, "pull base and child");
    assert_eq!(views.images.len(), 3, "{views:?}");
    assert_no_incomplete_layers(&s, "pulls");
    assert_images_usable(&s, &[&busybox_ref], "pull base and child");

    // Push from the podman store to another repository: the layer, which
    // containers-storage keeps only unpacked, is mounted from the repository the image
    // came from; the manifest is the one pulled, byte for byte.
    let copy = format!("{}/cs/copy:1", reg.host());
    let run = d.imagectl(&["push", "--tls-verify=false", &busybox_ref, &copy]);
    run.ok();
    assert_eq!(reg.skopeo_raw("cs/copy:1"), reg.skopeo_raw("cs/busybox:1"));
    assert!(
        reg.access_log()
            .lines()
            .filter(|l| l.contains("POST /v2/cs/copy/blobs/uploads/?mount=")
                && l.contains("&from=cs%2Fbusybox ")
                && l.contains("\" 201 "))
            .count()
            == 2,
        "{}",
        reg.access_log()
    );
    // Nowhere to mount from (another registry): a clear refusal.
    let other = Registry::start();
    let run = d.imagectl(&[
        "push",
        "--tls-verify=false",
        &busybox_ref,
        &format!("{}/cs/busybox:1", other.host()),
    ]);
    assert_ne!(run.code(), 0, "{run}");
    assert!(run.stderr.contains("does not keep this blob"), "{run}");
    // podman pulls the pushed copy and sees the digest skopeo sees.
    podman_ok(&s, &["pull", "-q", "--tls-verify=false", &copy]);
    let podman_digest = podman_ok(&s, &["image", "inspect", "--format", "{{.Digest}}", &copy]);
    assert_eq!(
        podman_digest.stdout.trim(),
        reg.digest_of("cs/copy:1").to_string(),
        "{podman_digest}"
    );
    let again = d.imagectl(&["pull", "--tls-verify=false", &copy]);
    again.ok();
    assert_eq!(last_line(&again), id, "{again}");
}
