//! GC by policy on a real podman store (issue 15): buildah commits four images on a
//! runnable busybox base, podman creates a container on one; a GC run with a budget no
//! store can meet deletes the others, least recently used first, never the image with
//! the container nor the base it needs; podman then lists exactly what imaged lists and
//! every remaining image still runs.

use imaged_tests::grpcurl::call_json;

use crate::cstorage_support::*;

#[test]
fn gc_on_a_podman_store_keeps_what_podman_needs() {
    let s = store("overlay");
    podman_load(&s, "base.tar", &busybox("localhost/gc/base:1"));
    for i in 1..=4 {
        let w = format!("gc-w{i}");
        buildah_ok(&s, &["from", "--name", &w, "localhost/gc/base:1"]);
        buildah_ok(&s, &["config", "--label", &format!("gc={i}"), &w]);
        buildah_ok(&s, &["commit", "-q", &w, &format!("localhost/gc/img{i}:1")]);
        buildah_ok(&s, &["rm", &w]);
    }
    podman_ok(
        &s,
        &[
            "create",
            "--name",
            "keep",
            "localhost/gc/img2:1",
            "/bin/busybox",
            "true",
        ],
    );
    let d = daemon(&s);
    let id_of = |name: &str| {
        podman_ok(&s, &["image", "inspect", "--format", "{{.Id}}", name])
            .stdout
            .trim()
            .to_owned()
    };
    let (base, img1, img2, img3, img4) = (
        id_of("localhost/gc/base:1"),
        id_of("localhost/gc/img1:1"),
        id_of("localhost/gc/img2:1"),
        id_of("localhost/gc/img3:1"),
        id_of("localhost/gc/img4:1"),
    );

    // A budget of one byte: everything that may go, goes.
    call_json(
        &d,
        "imaged.v1.GcService/SetGcPolicy",
        r#"{"policy": {"budgetBytes": "1", "minAge": "0s"}}"#,
    );
    let ids = |r: &serde_json::Value, k: &str| -> Vec<String> {
        r[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("imageId").or(Some(x))?.as_str())
                    .map(|s| s.trim_start_matches("sha256:").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let dry = call_json(&d, "imaged.v1.GcService/RunGc", r#"{"dryRun": true}"#);
    // Least recently used first (the order buildah committed them); img2 has podman's
    // container and the base is its parent.
    assert_eq!(
        ids(&dry, "chosen"),
        [img1.clone(), img3.clone(), img4.clone()],
        "{dry}"
    );
    // (proto3 JSON leaves a false `reached` out.)
    assert_ne!(
        dry["reached"], true,
        "a budget of one byte cannot be met: {dry}"
    );
    let reasons: Vec<&str> = dry["blocked"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b["reason"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(reasons, ["GC_BLOCKER_IN_USE", "GC_BLOCKER_PARENT"], "{dry}");
    assert_eq!(podman_images(&s).len(), 5, "a dry run changes nothing");

    let run = call_json(&d, "imaged.v1.GcService/RunGc", "{}");
    let deleted: Vec<String> = run["result"]["deletedImages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(|s| s.trim_start_matches("sha256:").to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(deleted, [img1, img3, img4], "{run}");
    let views = assert_agree(&s, &d, "gc");
    let mut left: Vec<String> = views.images.iter().map(|(i, _, _)| i.clone()).collect();
    left.sort();
    let mut want = vec![base, img2];
    want.sort();
    assert_eq!(left, want);
    assert_no_incomplete_layers(&s, "gc");
    assert_images_usable(&s, &["localhost/gc/base:1", "localhost/gc/img2:1"], "gc");
    podman_ok(&s, &["start", "--attach", "keep"]);
}
