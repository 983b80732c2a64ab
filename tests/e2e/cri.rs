//! The CRI `runtime.v1.ImageService` through grpcurl with server reflection as the only
//! descriptor source (what `grpcurl -unix … list/describe/call` sees), on the real
//! daemon: the service is advertised (and no RuntimeService), described with the CRI
//! field numbers, healthy, and callable; plus a kubelet-style GC round over the local
//! store with the disk numbers read back from ImageFsInfo.

use imaged_tests::grpcurl::{call, call_json, grpcurl};
use serde_json::{Value, json};

use crate::support::*;

const CRI: &str = "runtime.v1.ImageService";

fn method(name: &str) -> String {
    format!("{CRI}/{name}")
}

fn spec(image: &str) -> String {
    json!({"image": {"image": image}}).to_string()
}

/// grpcurl prints (u)int64 as JSON strings.
fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|e| panic!("{v}: {e}")),
        Value::Number(n) => n.as_u64().expect("unsigned"),
        Value::Null => 0,
        other => panic!("not a number: {other}"),
    }
}

#[test]
fn reflection_lists_and_describes_the_cri_image_service() {
    let d = memory();
    let run = grpcurl(&d, &[], &["list"]);
    run.ok();
    let services = run.lines();
    assert!(
        services.contains(&CRI),
        "`grpcurl list` lacks {CRI}:\n{run}"
    );
    assert!(
        !services.contains(&"runtime.v1.RuntimeService"),
        "imaged is no runtime:\n{run}"
    );

    let run = grpcurl(&d, &[], &["list", CRI]);
    run.ok();
    let methods = run.lines();
    assert_eq!(methods.len(), 6, "exactly the CRI image RPCs:\n{run}");
    for m in [
        "ListImages",
        "StreamImages",
        "ImageStatus",
        "PullImage",
        "RemoveImage",
        "ImageFsInfo",
    ] {
        // grpcurl prints methods as `package.Service.Method`.
        let full = format!("{CRI}.{m}");
        assert!(methods.contains(&full.as_str()), "{m} missing:\n{run}");
    }

    let run = grpcurl(&d, &[], &["describe", "runtime.v1.Image"]);
    run.ok();
    for field in [
        "string id = 1;",
        "repeated string repo_tags = 2;",
        "repeated string repo_digests = 3;",
        "uint64 size = 4;",
        ".runtime.v1.Int64Value uid = 5;",
        "string username = 6;",
        ".runtime.v1.ImageSpec spec = 7;",
        "bool pinned = 8;",
    ] {
        run.stdout_has(field);
    }
    let run = grpcurl(&d, &[], &["describe", "runtime.v1.FilesystemUsage"]);
    run.ok();
    for field in [
        "int64 timestamp = 1;",
        ".runtime.v1.FilesystemIdentifier fs_id = 2;",
        ".runtime.v1.UInt64Value used_bytes = 3;",
        ".runtime.v1.UInt64Value inodes_used = 4;",
    ] {
        run.stdout_has(field);
    }

    let v = call_json(
        &d,
        "grpc.health.v1.Health/Check",
        &json!({"service": CRI}).to_string(),
    );
    assert_eq!(v["status"], "SERVING", "{v}");
}

#[test]
fn grpcurl_calls_every_cri_method() {
    let d = memory();
    let img = ImageSpec::new("cri-calls")
        .named("localhost/e2e/cri:1")
        .named("localhost/e2e/cri:2");
    load(&d, Format::Docker, std::slice::from_ref(&img));

    let v = call_json(&d, &method("ListImages"), "{}");
    let images = v["images"].as_array().expect("images");
    assert_eq!(images.len(), 1, "one Image per ID: {v}");
    let listed = &images[0];
    assert_eq!(listed["id"], img.id().as_str());
    assert!(num(&listed["size"]) > 0, "{v}");

    // Status by a 12-hex ID prefix, verbose: the config comes back in info.
    let body = json!({"image": {"image": &img.hex_id()[..12]}, "verbose": true}).to_string();
    let v = call_json(&d, &method("ImageStatus"), &body);
    assert_eq!(&v["image"], listed, "status equals the listed image");
    let info: Value =
        serde_json::from_str(v["info"]["info"].as_str().expect("info")).expect("json");
    let config: Value = serde_json::from_slice(&img.config_json()).expect("config");
    assert_eq!(info["imageSpec"], config);

    let v = call_json(&d, &method("StreamImages"), "{}");
    assert_eq!(v["images"][0]["id"], img.id().as_str(), "{v}");

    // PullImage goes to the registry client: a registry nobody listens on is
    // unreachable (UNAVAILABLE / REGISTRY_UNREACHABLE), and nothing is stored.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let run = call(
        &d,
        &method("PullImage"),
        &spec(&format!("127.0.0.1:{port}/e2e/none:1")),
    );
    assert_ne!(run.code(), 0, "{run}");
    run.stderr_has("Unavailable")
        .stderr_has("REGISTRY_UNREACHABLE");

    let v = call_json(&d, &method("RemoveImage"), &spec("localhost/e2e/cri:2"));
    assert_eq!(v, json!({}));
    let v = call_json(&d, &method("ImageStatus"), &spec("localhost/e2e/cri:1"));
    assert!(
        v.get("image").is_none(),
        "removing one tag removed the image: {v}"
    );
}

#[test]
fn kubelet_gc_round_on_the_local_store() {
    let d = Daemon::start("local");
    let keep = ImageSpec::new("gc-keep")
        .named("localhost/gc/keep:1")
        .label("io.cri-containerd.pinned", "pinned");
    let a = ImageSpec::new("gc-a").named("localhost/gc/a:1");
    let b = ImageSpec::new("gc-b").named("localhost/gc/b:1");
    load(&d, Format::Oci, &[keep.clone(), a.clone(), b.clone()]);

    let fs = |d: &Daemon| {
        let v = call_json(d, &method("ImageFsInfo"), "{}");
        let f = v["imageFilesystems"][0].clone();
        assert!(num(&f["timestamp"]) > 0, "{v}");
        (
            num(&f["usedBytes"]["value"]),
            f["fsId"]["mountpoint"]
                .as_str()
                .expect("mountpoint")
                .to_owned(),
        )
    };
    let (used, mountpoint) = fs(&d);
    assert_eq!(
        std::path::Path::new(&mountpoint),
        std::fs::canonicalize(d.root()).expect("root"),
        "the store's real directory"
    );

    // kubelet: list, drop pinned images, remove by ID, count Image.size.
    let v = call_json(&d, &method("ListImages"), "{}");
    let mut freed = 0;
    let mut removed = Vec::new();
    for i in v["images"].as_array().expect("images") {
        if i["pinned"] == true {
            continue;
        }
        let id = i["id"].as_str().expect("id");
        call_json(&d, &method("RemoveImage"), &spec(id));
        removed.push(id.to_owned());
        freed += num(&i["size"]);
    }
    removed.sort();
    let mut want = vec![a.id(), b.id()];
    want.sort();
    assert_eq!(removed, want);
    let (after, _) = fs(&d);
    assert_eq!(used - after, freed, "ImageFsInfo shows the bytes freed");
    let v = call_json(&d, &method("ListImages"), "{}");
    assert_eq!(v["images"][0]["id"], keep.id().as_str(), "{v}");
    assert_eq!(v["images"].as_array().map(Vec::len), Some(1), "{v}");
}
