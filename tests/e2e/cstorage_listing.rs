//! Listing parity and LoadImages on containers-storage (issue 12, points 2 and 5), through
//! the real binaries, on ONE store per driver (vfs, overlay) shared by podman, buildah and
//! `imaged --store containers-storage`.
//!
//! LoadImages: `imagectl load` of a static-busybox docker-archive named
//! `localhost/loaded:1` into the running daemon; podman lists it under the same ID, runs
//! it and saves it. The rest of the store is then built by podman and buildah around it:
//! more names on that image, a `buildah commit` child, a podman container, images loaded
//! by `podman load` (one used by a podman container, one by a buildah container, a
//! dangling one, an intermediate one under a named child), and a manifest list
//! (`podman manifest create` + `add`).
//!
//! Listing parity, checked on that store and again after the later loads:
//! - `imagectl ls --format json` (and `-a`) against `podman images --format json` (and
//!   `-a`), image by image: ID, Names, RepoTags (podman prints them as `Names`; its
//!   `RepoTags` is always null in JSON), RepoDigests, Digest, ParentId, Created (exact
//!   seconds), CreatedAt, Size and VirtualSize (exact bytes), Containers, Dangling,
//!   ReadOnly, Labels. podman repeats an image once per name; the repeats must agree.
//! - `imagectl ls` (and `-a`) against `podman images` (and `-a`): the same header and the
//!   same rows (REPOSITORY, TAG, IMAGE ID, CREATED, SIZE), newest first. One known
//!   difference is tolerated and only that: the order of rows whose images were created in
//!   the same second. podman sorts on whole seconds with Go's `sort.Slice` (an insertion
//!   sort up to 12 rows, so ties keep `images.json` order); imaged breaks ties by
//!   nanoseconds, newest first, then by ID. The store's record order is not in the API.
//! - ContainerService: `imagectl container ls` against `podman ps -a --external` (IDs,
//!   images, external), and Register / Unregister / SetState answer FAILED_PRECONDITION
//!   with reason READ_ONLY_STORE and change nothing.
//!
//! Later loads: an archive naming `localhost/bb:2`, which the busybox image holds, moves
//! the name to the new image (both views agree); an archive whose layer does not match
//! its diff ID fails with INVALID_ARGUMENT / INVALID_ARCHIVE and leaves nothing behind:
//! not in `podman images`, not in `layers.json`, not in `<root>/imaged-staging`.

use std::collections::BTreeMap;

use imaged_client::{Client, Code, ErrorKind, ErrorReason, proto};
use imaged_testkit::podman::PodmanStore;
use imaged_tests::archive::{self as tarch, ImageSpec, Tamper};
use imaged_tests::process::Run;
use serde_json::Value;

use crate::cstorage_support::*;
use crate::support::Daemon;

/// How many times a table comparison is tried when imagectl's CREATED text is not one of
/// the bracketing podman runs' (two second boundaries passed during the bracket).
const TABLE_ATTEMPTS: usize = 4;

/// Runs `imagectl` and requires success.
#[track_caller]
fn imagectl_ok(d: &Daemon, args: &[&str]) -> Run {
    let r = d.imagectl(args);
    r.ok();
    r
}

/// `imagectl load -i <file>` of `bytes` (written into the daemon's scratch directory).
fn imagectl_load(d: &Daemon, file: &str, bytes: &[u8]) -> Run {
    let path = d.write_file(file, bytes);
    d.imagectl(&["load", "-i", path.to_str().expect("utf-8 temp path")])
}

/// The ID podman resolves `name` to (bare hex).
#[track_caller]
fn podman_id(s: &PodmanStore, name: &str) -> String {
    last_line(&podman_ok(
        s,
        &["image", "inspect", "--format", "{{.Id}}", name],
    ))
}

/// The ID imaged resolves `name` to (bare hex).
#[track_caller]
fn imaged_id(d: &Daemon, name: &str) -> String {
    let r = imagectl_ok(d, &["inspect", name]);
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("imagectl inspect printed no JSON ({e}):\n{r}"));
    v[0]["Id"]
        .as_str()
        .unwrap_or_else(|| panic!("no Id:\n{r}"))
        .trim_start_matches("sha256:")
        .to_owned()
}

/// The entries of an `images --format json` listing by image ID. podman repeats an image
/// once per name: the repeats must be identical.
#[track_caller]
fn json_by_id(r: &Run, what: &str) -> BTreeMap<String, Value> {
    let list = match serde_json::from_str::<Value>(&r.stdout) {
        Ok(Value::Array(a)) => a,
        Ok(Value::Null) => Vec::new(),
        other => panic!("{what} printed no JSON array ({other:?}):\n{r}"),
    };
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for entry in list {
        let id = entry["Id"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: entry without Id: {entry}"))
            .to_owned();
        if let Some(seen) = out.get(&id) {
            assert_eq!(seen, &entry, "{what}: two different entries for {id}");
        } else {
            out.insert(id, entry);
        }
    }
    out
}

/// The fields compared between podman's and imagectl's JSON.
const FIELDS: &[&str] = &[
    "Id",
    "Names",
    "RepoDigests",
    "Digest",
    "ParentId",
    "Created",
    "CreatedAt",
    "Size",
    "VirtualSize",
    "Containers",
    "Dangling",
    "ReadOnly",
    "Labels",
];

/// `entry[key]` with podman's `omitempty` spelled out: an absent list is empty, an absent
/// string empty, an absent flag false, absent or empty labels null.
fn field(entry: &Value, key: &str) -> Value {
    let v = entry.get(key).cloned().unwrap_or(Value::Null);
    match key {
        "Names" | "RepoDigests" | "RepoTags" if v.is_null() => Value::Array(Vec::new()),
        "Digest" | "ParentId" if v.is_null() => Value::String(String::new()),
        "Dangling" | "ReadOnly" if v.is_null() => Value::Bool(false),
        "Labels" if v.as_object().is_some_and(serde_json::Map::is_empty) => Value::Null,
        _ => v,
    }
}

/// The names of a JSON entry that are tags (no `@digest`).
fn tags(entry: &Value) -> Value {
    match field(entry, "Names") {
        Value::Array(a) => Value::Array(
            a.into_iter()
                .filter(|n| n.as_str().is_some_and(|n| !n.contains('@')))
                .collect(),
        ),
        other => other,
    }
}

/// `podman images --format json <extra>` against `imagectl ls --format json <extra>`,
/// image by image and field by field; returns imaged's entries by ID.
#[track_caller]
fn json_parity(s: &PodmanStore, d: &Daemon, extra: &[&str], at: &str) -> BTreeMap<String, Value> {
    let mut pa = vec!["images", "--format", "json"];
    pa.extend_from_slice(extra);
    let mut ia = vec!["ls", "--format", "json"];
    ia.extend_from_slice(extra);
    let p = json_by_id(&podman_ok(s, &pa), "podman images");
    let ir = imagectl_ok(d, &ia);
    let i = json_by_id(&ir, "imagectl ls");
    let lines = ir.stdout.matches("\"Id\"").count();
    assert_eq!(lines, i.len(), "{at}: imagectl lists an image twice:\n{ir}");
    assert_eq!(
        i.keys().collect::<Vec<_>>(),
        p.keys().collect::<Vec<_>>(),
        "{at} {extra:?}: image IDs (left: imaged, right: podman)"
    );
    let mut diffs = Vec::new();
    for (id, pe) in &p {
        let ie = &i[id];
        for key in FIELDS {
            let (iv, pv) = (field(ie, key), field(pe, key));
            if iv != pv {
                diffs.push(format!("{id} {key}: imaged {iv}, podman {pv}"));
            }
        }
        // podman's JSON nulls RepoTags; its table rows are the tagged names.
        let (iv, pv) = (field(ie, "RepoTags"), tags(pe));
        if iv != pv {
            diffs.push(format!(
                "{id} RepoTags: imaged {iv}, podman's tagged Names {pv}"
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{at} {extra:?}: imagectl ls --format json differs from podman images:\n{}",
        diffs.join("\n")
    );
    i
}

/// The cells of a table line (columns are separated by at least two spaces).
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// Table rows in a canonical order that differs from the printed one only inside runs of
/// rows whose images were created in the same second (`created`: short ID -> seconds):
/// such a run is ordered by image ID, each image's rows kept in their printed order.
/// Panics unless the printed rows are newest first.
#[track_caller]
fn canonical_rows(rows: &[&str], created: &BTreeMap<String, i64>, what: &str) -> Vec<String> {
    let key = |row: &str| -> (i64, String) {
        let c = cells(row);
        let short = c
            .get(2)
            .unwrap_or_else(|| panic!("{what}: row without IMAGE ID: {row:?}"));
        let secs = *created
            .get(*short)
            .unwrap_or_else(|| panic!("{what}: row of an unknown image: {row:?}"));
        (secs, (*short).to_owned())
    };
    let keys: Vec<(i64, String)> = rows.iter().map(|r| key(r)).collect();
    assert!(
        keys.windows(2).all(|w| w[0].0 >= w[1].0),
        "{what}: rows not newest first:\n{}",
        rows.join("\n")
    );
    let mut order: Vec<(usize, &(i64, String))> = keys.iter().enumerate().collect();
    order.sort_by(|(ia, a), (ib, b)| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(ia.cmp(ib)));
    order.iter().map(|(i, _)| rows[*i].to_owned()).collect()
}

/// `podman images <extra>` against `imagectl ls <extra>`, the default table. The imagectl
/// run is bracketed by two podman runs. When they print the same table, imagectl must
/// print exactly it (layout included). When a CREATED text moved on between them (an
/// image made by this test is seconds old: `1 second ago`, `2 seconds ago`), every cell
/// but CREATED must be equal and each CREATED must be one of podman's two; when imagectl's
/// CREATED is neither (the bracket spanned two changes) the comparison is tried again.
#[track_caller]
fn table_parity(
    s: &PodmanStore,
    d: &Daemon,
    extra: &[&str],
    created: &BTreeMap<String, i64>,
    at: &str,
) {
    let mut pa = vec!["images"];
    pa.extend_from_slice(extra);
    let mut ia = vec!["ls"];
    ia.extend_from_slice(extra);
    let what = format!("{at} {extra:?}");
    let mut last = String::new();
    for _ in 0..TABLE_ATTEMPTS {
        let p1 = podman_ok(s, &pa);
        let i = imagectl_ok(d, &ia);
        let p2 = podman_ok(s, &pa);
        let shown = format!(
            "--- podman ---\n{}--- imagectl ---\n{}--- podman again ---\n{}",
            p1.stdout, i.stdout, p2.stdout
        );
        let (l1, li, l2) = (p1.lines(), i.lines(), p2.lines());
        assert!(
            !l1.is_empty() && !li.is_empty() && !l2.is_empty(),
            "{what}: no table\n{shown}"
        );
        let r1 = canonical_rows(&l1[1..], created, &format!("podman images, {what}"));
        let ri = canonical_rows(&li[1..], created, &format!("imagectl ls, {what}"));
        let r2 = canonical_rows(&l2[1..], created, &format!("podman images, {what}"));
        if p1.stdout == p2.stdout {
            assert_eq!(li[0], l1[0], "{what}: header (left: imaged, right: podman)");
            assert_eq!(
                ri, r1,
                "{what}: table rows (left: imaged, right: podman)\n{shown}"
            );
            return;
        }
        assert_eq!(cells(li[0]), cells(l1[0]), "{what}: header\n{shown}");
        assert_eq!(ri.len(), r1.len(), "{what}: number of rows\n{shown}");
        assert_eq!(r1.len(), r2.len(), "{what}: podman's rows\n{shown}");
        let mut in_bracket = true;
        for ((a, b), c) in ri.iter().zip(&r1).zip(&r2) {
            let (ci, c1, c2) = (cells(a), cells(b), cells(c));
            assert_eq!(ci.len(), 5, "{what}: row {a:?}\n{shown}");
            for col in [0, 1, 2, 4] {
                assert_eq!(
                    (ci[col], c1[col]),
                    (c1[col], c2[col]),
                    "{what}: column {col} of {a:?} / {b:?} / {c:?}\n{shown}"
                );
            }
            in_bracket &= ci[3] == c1[3] || ci[3] == c2[3];
        }
        if in_bracket {
            return;
        }
        last = shown;
    }
    panic!(
        "{what}: imagectl's CREATED fell outside podman's bracket {TABLE_ATTEMPTS} times:\n{last}"
    );
}

/// Every listing comparison (JSON and table, with and without `-a`) and the containers.
#[track_caller]
fn listing_parity(s: &PodmanStore, d: &Daemon, at: &str) {
    let all = json_parity(s, d, &["-a"], at);
    json_parity(s, d, &[], at);
    let created: BTreeMap<String, i64> = all
        .iter()
        .map(|(id, e)| {
            let secs = e["Created"]
                .as_i64()
                .unwrap_or_else(|| panic!("{at}: no Created in {e}"));
            (id.get(..12).unwrap_or(id).to_owned(), secs)
        })
        .collect();
    table_parity(s, d, &["-a"], &created, at);
    table_parity(s, d, &[], &created, at);
    assert_eq!(
        imaged_containers(d),
        podman_containers(s),
        "{at}: containers (left: imaged, right: podman ps -a --external)"
    );
}

/// The IDs of the layers `layers.json` lists.
fn layer_ids(s: &PodmanStore) -> Vec<String> {
    let path = s
        .root
        .join(format!("{}-layers", s.driver))
        .join("layers.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let layers: Vec<Value> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is no JSON array: {e}", path.display()));
    let mut ids: Vec<String> = layers
        .iter()
        .filter_map(|l| l["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// Register, Unregister and SetState through the typed client: each FAILED_PRECONDITION
/// with reason READ_ONLY_STORE.
fn container_writes_refused(d: &Daemon, image: &str, container: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let c = Client::connect(d.url()).await.expect("connect");
        let req = proto::RegisterContainerRequest {
            image: image.to_owned(),
            state: proto::ContainerState::Created as i32,
            ..Default::default()
        };
        let errors = [
            ("register", c.register_container(req).await.err()),
            (
                "unregister",
                c.unregister_container(container, false).await.err(),
            ),
            (
                "set state",
                c.set_container_state(container, proto::ContainerState::Running)
                    .await
                    .err(),
            ),
        ];
        for (what, e) in errors {
            let e = e.unwrap_or_else(|| panic!("{what} succeeded on containers-storage"));
            assert_eq!(e.code, Code::FailedPrecondition, "{what}: {e:?}");
            assert_eq!(
                e.kind,
                ErrorKind::Reason(ErrorReason::ReadOnlyStore),
                "{what}: {e:?}"
            );
        }
    });
}

/// LoadImages of `bytes` through the typed client; the error it must fail with.
fn load_error(d: &Daemon, bytes: Vec<u8>) -> imaged_client::ClientError {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let c = Client::connect(d.url()).await.expect("connect");
        match c
            .load(
                std::io::Cursor::new(bytes),
                proto::ArchiveFormat::Docker,
                Vec::new(),
                |_| {},
            )
            .await
        {
            Ok(resp) => panic!("a corrupt archive was loaded: {resp:?}"),
            Err(e) => e,
        }
    })
}

fn listing_and_load(driver: &'static str) {
    let s = store(driver);
    let d = daemon(&s);

    // LoadImages into the running daemon: podman sees the image under the same ID, runs
    // it and saves it.
    let r = imagectl_load(&d, "loaded.tar", &busybox("localhost/loaded:1"));
    r.ok();
    assert_eq!(r.lines(), ["Loaded image: localhost/loaded:1"], "{r}");
    let base = imaged_id(&d, "localhost/loaded:1");
    assert_eq!(
        podman_id(&s, "localhost/loaded:1"),
        base,
        "ID of the loaded image"
    );
    podman_ok(
        &s,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/loaded:1",
            "/bin/busybox",
            "true",
        ],
    );
    let saved = d.dir().join("saved.tar");
    podman_ok(
        &s,
        &[
            "save",
            "-q",
            "-o",
            saved.to_str().expect("utf-8 temp path"),
            "localhost/loaded:1",
        ],
    );
    let len = std::fs::metadata(&saved).map(|m| m.len()).unwrap_or(0);
    assert!(len > 0, "podman save wrote nothing");

    // The rest of the store, by podman and buildah.
    podman_ok(&s, &["tag", "localhost/loaded:1", "localhost/bb:1"]);
    podman_ok(&s, &["tag", "localhost/loaded:1", "localhost/bb:2"]);
    podman_ok(&s, &["tag", "localhost/loaded:1", "quay.io/e2e/bb:latest"]);
    buildah_ok(&s, &["from", "--name", "work", "localhost/bb:1"]);
    let child = last_line(&buildah_ok(
        &s,
        &["commit", "-q", "work", "localhost/child:1"],
    ));
    buildah_ok(&s, &["rm", "work"]);
    podman_ok(
        &s,
        &[
            "create",
            "--name",
            "pb",
            "localhost/bb:1",
            "/bin/busybox",
            "true",
        ],
    );
    let other = ImageSpec::new("cs-list-other")
        .named("localhost/other:1")
        .label("e2e", "other")
        .created("2024-03-01T00:00:00Z");
    let ext = ImageSpec::new("cs-list-ext")
        .named("localhost/ext:1")
        .created("2024-04-01T00:00:00Z");
    let dangling = ImageSpec::new("cs-list-dangling")
        .named("localhost/dangling:1")
        .created("2024-05-01T00:00:00Z");
    // `inter` loses its name and keeps its child: an intermediate image (`-a` only).
    let inter = ImageSpec::new("cs-list-inter").named("localhost/inter:1");
    let leaf = inter.child("cs-list-leaf").named("localhost/leaf:1");
    podman_load(
        &s,
        "synth.tar",
        &tarch::docker_archive(&[
            other.clone(),
            ext.clone(),
            dangling.clone(),
            inter.clone(),
            leaf.clone(),
        ]),
    );
    podman_ok(&s, &["create", "--name", "pc", "localhost/other:1", "true"]);
    buildah_ok(&s, &["from", "--name", "bctr", "localhost/ext:1"]);
    podman_ok(&s, &["untag", "localhost/dangling:1"]);
    podman_ok(&s, &["untag", "localhost/inter:1"]);
    podman_ok(&s, &["manifest", "create", "localhost/list:1"]);
    podman_ok(
        &s,
        &[
            "manifest",
            "add",
            "localhost/list:1",
            "containers-storage:localhost/bb:1",
        ],
    );

    // The store is what the test meant to build (podman's view).
    let v = podman_view(&s);
    let ids: Vec<&str> = v.images.iter().map(|e| e.0.as_str()).collect();
    for (what, id) in [
        ("busybox", base.as_str()),
        ("child", child.as_str()),
        ("dangling", dangling.hex_id().as_str()),
        ("intermediate", inter.hex_id().as_str()),
        ("leaf", leaf.hex_id().as_str()),
    ] {
        assert!(ids.contains(&id), "{what} {id} missing: {v:?}");
    }
    assert_eq!(v.images.len(), 8, "images: {v:?}");
    assert_eq!(v.containers.len(), 3, "containers: {v:?}");
    assert_eq!(
        v.containers.iter().filter(|c| c.2).count(),
        1,
        "one external container (bctr): {v:?}"
    );

    listing_parity(&s, &d, &format!("setup on {driver}"));
    let listed = json_parity(&s, &d, &["-a"], "flags");
    assert_eq!(listed[&dangling.hex_id()]["Dangling"], true, "dangling");
    assert_eq!(listed[&ext.hex_id()]["Containers"], 1, "buildah container");
    assert_eq!(listed[&other.hex_id()]["Containers"], 1, "podman container");
    let default = json_parity(&s, &d, &[], "default listing");
    assert!(
        !default.contains_key(&inter.hex_id()),
        "the intermediate image is listed without -a"
    );

    // ContainerService: the engine's records, read-only.
    let before = imaged_view(&d);
    let pb = before
        .containers
        .iter()
        .find(|c| !c.2 && c.1 == base)
        .map(|c| c.0.clone())
        .unwrap_or_else(|| panic!("podman container pb not listed: {before:?}"));
    container_writes_refused(&d, "localhost/bb:1", &pb);
    let r = d.imagectl(&["container", "register", "localhost/bb:1"]);
    assert_ne!(r.code(), 0, "imagectl container register:\n{r}");
    r.stderr_has("cannot be changed through imaged");
    let r = d.imagectl(&["container", "rm", &pb]);
    assert_ne!(r.code(), 0, "imagectl container rm:\n{r}");
    assert_eq!(
        assert_agree(&s, &d, "refused container writes"),
        before,
        "a refused container write changed the store"
    );

    // A load whose name another image holds moves the name.
    let mover = ImageSpec::new("cs-list-mover")
        .named("localhost/bb:2")
        .created("2024-06-01T00:00:00Z");
    let r = imagectl_load(
        &d,
        "mover.tar",
        &tarch::docker_archive(std::slice::from_ref(&mover)),
    );
    r.ok();
    assert_eq!(r.lines(), ["Loaded image: localhost/bb:2"], "{r}");
    assert_eq!(
        podman_id(&s, "localhost/bb:2"),
        mover.hex_id(),
        "podman: bb:2"
    );
    assert_eq!(
        imaged_id(&d, "localhost/bb:2"),
        mover.hex_id(),
        "imaged: bb:2"
    );
    let v = assert_agree(&s, &d, "the name move");
    let names_of_base = v
        .images
        .iter()
        .find(|e| e.0 == base)
        .map(|e| e.1.clone())
        .unwrap_or_default();
    assert_eq!(
        names_of_base,
        [
            "localhost/bb:1",
            "localhost/loaded:1",
            "quay.io/e2e/bb:latest"
        ],
        "the busybox image after the move"
    );

    // A corrupt layer: refused, nothing left behind.
    let layers = layer_ids(&s);
    let corrupt = ImageSpec::new("cs-list-corrupt").named("localhost/corrupt:1");
    let bytes = tarch::docker_archive_with(std::slice::from_ref(&corrupt), Tamper::LayerContent);
    let r = imagectl_load(&d, "corrupt.tar", &bytes);
    assert_ne!(r.code(), 0, "imagectl load of a corrupt archive:\n{r}");
    let e = load_error(&d, bytes);
    assert_eq!(e.code, Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.kind,
        ErrorKind::Reason(ErrorReason::InvalidArchive),
        "{e:?}"
    );
    let after = assert_agree(&s, &d, "the corrupt load");
    assert_eq!(after, v, "a refused load changed the store");
    assert!(
        !after.images.iter().any(|e| e.0 == corrupt.hex_id()),
        "the corrupt image is listed"
    );
    let r = podman(&s, &["image", "exists", "localhost/corrupt:1"]);
    assert_eq!(r.code(), 1, "podman image exists localhost/corrupt:1:\n{r}");
    assert_eq!(layer_ids(&s), layers, "layers.json changed");
    let staging = s.root.join("imaged-staging");
    let left: Vec<String> = match std::fs::read_dir(&staging) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", staging.display()),
    };
    assert!(left.is_empty(), "left in {}: {left:?}", staging.display());

    listing_parity(&s, &d, &format!("the loads on {driver}"));
}

#[test]
fn vfs() {
    listing_and_load("vfs");
}

#[test]
fn overlay() {
    listing_and_load("overlay");
}
