//! The registry client against a real `docker-registry` (plain HTTP on 127.0.0.1):
//! pulls by tag and digest into a memory and a local store, platform choice, blobs the
//! store has not fetched again, concurrent pulls fetching each blob once, a corrupting
//! proxy → DIGEST_MISMATCH with nothing stored, and a push that skopeo agrees with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use imaged_core::digest::Digest;
use imaged_core::error::ErrorKind;
use imaged_core::model::Platform;
use imaged_core::transfer::{
    Cancel, PullPolicy, PullRequest, PushRequest, Registry, TransferEvent,
};
use imaged_core::{Engine, EngineConfig, Store};
use imaged_testkit::archive::{SynthImage, oci_archive_with, oci_index_archive};
use imaged_testkit::registry::Registry as TestRegistry;

use support::{client, gz, header, mem_engine, pull, read_head};

fn req(reference: &str) -> PullRequest {
    PullRequest {
        reference: reference.to_owned(),
        policy: PullPolicy::Always,
        ..PullRequest::default()
    }
}

/// The blob digests (config, layers) of a manifest.
fn blobs_of(raw: &[u8]) -> Vec<Digest> {
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap();
    let mut out = vec![Digest::parse(v["config"]["digest"].as_str().unwrap()).unwrap()];
    for l in v["layers"].as_array().unwrap() {
        out.push(Digest::parse(l["digest"].as_str().unwrap()).unwrap());
    }
    out
}

fn base() -> SynthImage {
    SynthImage::new("reg-base")
}

#[test]
fn pull_by_tag_and_by_digest_into_memory_and_local_stores() {
    let reg = TestRegistry::start();
    let img = base().child(b"app layer", "RUN app");
    let digest = reg.push_archive(
        &oci_archive_with(std::slice::from_ref(&img), &gz()),
        "app:1",
        false,
    );
    let c = client(&[reg.host()]);
    let name = format!("{}/app:1", reg.host());

    let (e, store) = mem_engine();
    let mut events = Vec::new();
    let out = c
        .pull(&e, &req(&name), &mut |ev| events.push(ev), &Cancel::new())
        .unwrap();
    assert_eq!(out.image_id, img.id());
    assert_eq!(out.digest, digest);
    assert!(!out.up_to_date);
    assert!(matches!(
        events.first(),
        Some(TransferEvent::Resolved { .. })
    ));
    let view = e.view();
    let got = view.image_by_name(&name).expect("named after the pull");
    assert_eq!(got.id, img.id());
    assert!(got.digests.contains(&digest));
    assert_eq!(store.check(false).unwrap().problems, Vec::<String>::new());

    // Again: nothing fetched (Missing policy answers locally, Always finds it current).
    let again = pull(
        &c,
        &e,
        &PullRequest {
            policy: PullPolicy::Missing,
            ..req(&name)
        },
    )
    .unwrap();
    assert!(again.up_to_date);
    let again = pull(&c, &e, &req(&name)).unwrap();
    assert!(again.up_to_date);
    // By digest: nothing fetched, and the digested name joins first, as podman names it.
    let by_digest = format!("{}/app@{digest}", reg.host());
    let gets = reg.access_log().matches("/blobs/").count();
    let again = pull(&c, &e, &req(&by_digest)).unwrap();
    assert!(again.up_to_date);
    assert_eq!(reg.access_log().matches("/blobs/").count(), gets);
    let view = e.view();
    let got = view.image_by_name(&by_digest).expect("named by digest");
    assert_eq!(got.names, [by_digest.clone(), name.clone()]);

    // By digest, into a local store.
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(imaged_store_local::open(dir.path()).unwrap());
    let le = Engine::new(local as Arc<dyn Store>, EngineConfig::default());
    let out = pull(&c, &le, &req(&by_digest)).unwrap();
    assert_eq!(out.image_id, img.id());
    let view = le.view();
    let got = view.image(&img.id()).expect("pulled");
    assert_eq!(got.names, std::slice::from_ref(&by_digest));
    assert_eq!(
        le.store().check(false).unwrap().problems,
        Vec::<String>::new()
    );

    // Not there: NOT_FOUND_IN_REGISTRIES listing the candidate.
    let err = pull(&c, &e, &req(&format!("{}/nope:1", reg.host()))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFoundInRegistries, "{err:?}");
    assert!(err.message.contains("nope"), "{}", err.message);
}

#[test]
fn platform_of_a_manifest_list() {
    let reg = TestRegistry::start();
    let amd = base().child(b"amd", "RUN amd").on("linux", "amd64", "");
    let arm = base().child(b"arm", "RUN arm").on("linux", "arm64", "v8");
    let (archive, _) = oci_index_archive(None, &[amd.clone(), arm.clone()], &gz());
    let list = reg.push_archive(&archive, "multi:1", true);
    let c = client(&[reg.host()]);
    let name = format!("{}/multi:1", reg.host());

    let (e, _) = mem_engine();
    let r = PullRequest {
        platform: Some(Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: String::new(),
        }),
        ..req(&name)
    };
    let out = pull(&c, &e, &r).unwrap();
    assert_eq!(out.image_id, arm.id());
    assert_eq!(out.digest, list);
    assert!(e.view().image(&arm.id()).unwrap().digests.contains(&list));
    assert!(
        e.view().image(&amd.id()).is_none(),
        "only the chosen instance"
    );

    let (e, _) = mem_engine();
    let r = PullRequest {
        platform: Some(Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: String::new(),
        }),
        ..req(&name)
    };
    assert_eq!(pull(&c, &e, &r).unwrap().image_id, amd.id());

    let r = PullRequest {
        platform: Some(Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: String::new(),
        }),
        ..req(&name)
    };
    let (e, store) = mem_engine();
    let err = pull(&c, &e, &r).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoMatchingPlatform, "{err:?}");
    assert_eq!(store.blob_count(), 0);
}

#[test]
fn blobs_the_store_has_are_not_fetched_again() {
    let reg = TestRegistry::start();
    let b = base();
    let child = b.child(b"child", "RUN child");
    reg.push_archive(
        &oci_archive_with(std::slice::from_ref(&b), &gz()),
        "base:1",
        false,
    );
    reg.push_archive(
        &oci_archive_with(std::slice::from_ref(&child), &gz()),
        "child:1",
        false,
    );
    let c = client(&[reg.host()]);
    let (e, _) = mem_engine();
    pull(&c, &e, &req(&format!("{}/base:1", reg.host()))).unwrap();
    let mut skipped = Vec::new();
    c.pull(
        &e,
        &req(&format!("{}/child:1", reg.host())),
        &mut |ev| {
            if let TransferEvent::Blob {
                digest,
                skipped: true,
                ..
            } = ev
            {
                skipped.push(digest);
            }
        },
        &Cancel::new(),
    )
    .unwrap();
    let base_layers = blobs_of(&reg.skopeo_raw("base:1"));
    let shared = base_layers[1];
    assert!(skipped.contains(&shared), "{skipped:?}");
    assert_eq!(reg.blob_gets(&shared), 1, "{}", reg.access_log());
}

#[test]
fn concurrent_pulls_fetch_each_blob_once() {
    let reg = TestRegistry::start();
    let b = base().child(b"shared middle", "RUN mid");
    let mut names = Vec::new();
    for i in 0..8 {
        let img = b.child(format!("leaf {i}").as_bytes(), "RUN leaf");
        let tag = format!("leaf{i}:1");
        reg.push_archive(&oci_archive_with(&[img], &gz()), &tag, false);
        names.push(tag);
    }
    let c = client(&[reg.host()]);
    let (e, store) = mem_engine();
    std::thread::scope(|s| {
        for n in &names {
            let (c, e) = (&c, &e);
            let r = req(&format!("{}/{n}", reg.host()));
            s.spawn(move || pull(c, e, &r).unwrap());
        }
    });
    assert_eq!(e.view().len(), 8);
    let mut all = std::collections::BTreeSet::new();
    for n in &names {
        all.extend(blobs_of(&reg.skopeo_raw(n)));
    }
    for d in &all {
        assert_eq!(reg.blob_gets(d), 1, "blob {d} fetched more than once");
    }
    assert_eq!(store.check(false).unwrap().problems, Vec::<String>::new());
}

/// What a proxy in front of the registry does to one blob's body.
#[derive(Clone)]
enum Fault {
    /// Flips its last byte.
    Corrupt,
    /// Sends half of it, then waits for the client to close the connection and reports
    /// that on the channel.
    Stall(std::sync::mpsc::Sender<()>),
}

/// A proxy in front of the registry that flips the last byte of one blob's body.
fn corrupting_proxy(upstream: String, target: Digest) -> String {
    proxy(upstream, target, Fault::Corrupt)
}

/// A proxy in front of the registry applying `fault` to blob `target`.
fn proxy(upstream: String, target: Digest, fault: Fault) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(client) = conn else { return };
            let upstream = upstream.clone();
            let fault = fault.clone();
            std::thread::spawn(move || {
                let _ = relay(client, &upstream, target, &fault);
            });
        }
    });
    addr
}

fn relay(client: TcpStream, upstream: &str, target: Digest, fault: &Fault) -> std::io::Result<()> {
    let up = TcpStream::connect(upstream)?;
    let mut cr = BufReader::new(client.try_clone()?);
    let mut cw = client;
    let mut ur = BufReader::new(up.try_clone()?);
    let mut uw = up;
    loop {
        let head = read_head(&mut cr)?;
        if head.is_empty() {
            return Ok(());
        }
        let first = head[0].clone();
        let hit = first.starts_with("GET ") && first.contains(&format!("/blobs/{target}"));
        let head_req = first.starts_with("HEAD ");
        for l in &head {
            uw.write_all(l.as_bytes())?;
        }
        uw.write_all(b"\r\n")?;
        let resp = read_head(&mut ur)?;
        let len: usize = header(&resp, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for l in &resp {
            cw.write_all(l.as_bytes())?;
        }
        cw.write_all(b"\r\n")?;
        if head_req {
            continue;
        }
        let mut body = vec![0; len];
        ur.read_exact(&mut body)?;
        match fault {
            Fault::Corrupt if hit => {
                if let Some(b) = body.last_mut() {
                    *b ^= 0xff;
                }
            }
            Fault::Stall(closed) if hit => {
                cw.write_all(&body[..len / 2])?;
                cw.flush()?;
                // Nothing more until the client gives up the connection.
                let mut rest = Vec::new();
                let _ = cr.read_to_end(&mut rest);
                let _ = closed.send(());
                return Ok(());
            }
            _ => {}
        }
        cw.write_all(&body)?;
    }
}

#[test]
fn a_corrupt_blob_is_a_digest_mismatch_and_leaves_nothing() {
    let reg = TestRegistry::start();
    let img = base().child(b"to corrupt", "RUN x");
    reg.push_archive(&oci_archive_with(&[img], &gz()), "bad:1", false);
    let layers = blobs_of(&reg.skopeo_raw("bad:1"));
    let proxy = corrupting_proxy(reg.host().to_owned(), *layers.last().unwrap());
    let c = client(&[&proxy]);
    let (e, store) = mem_engine();
    let err = pull(&c, &e, &req(&format!("{proxy}/bad:1"))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::DigestMismatch, "{err:?}");
    assert_eq!(e.view().len(), 0);
    assert_eq!(store.blob_count(), 0, "nothing stored");
}

/// A pull cancelled while a layer is half received stops at once (it closes the
/// connection to the stalled registry), answers CANCELLED, stores nothing, and leaves the
/// layer unclaimed: the next pull of it fetches it.
#[test]
fn a_pull_cancelled_mid_layer_stops_and_leaves_nothing() {
    let reg = TestRegistry::start();
    let img = base().child(&[7u8; 64 << 10], "RUN stall");
    reg.push_archive(&oci_archive_with(&[img], &gz()), "slow:1", false);
    let target = *blobs_of(&reg.skopeo_raw("slow:1")).last().unwrap();
    let (closed_tx, closed) = std::sync::mpsc::channel();
    let stalling = proxy(reg.host().to_owned(), target, Fault::Stall(closed_tx));
    let c = client(&[&stalling, reg.host()]);
    let (e, store) = mem_engine();
    let cancel = Cancel::new();
    let (half_tx, half) = std::sync::mpsc::channel();
    let err = std::thread::scope(|scope| {
        let pulling = scope.spawn(|| {
            let mut half_tx = Some(half_tx);
            c.pull(
                &e,
                &req(&format!("{stalling}/slow:1")),
                &mut |ev| {
                    if let TransferEvent::Blob {
                        digest,
                        done,
                        total,
                        ..
                    } = ev
                        && digest == target
                        && done > 0
                        && done < total
                        && let Some(tx) = half_tx.take()
                    {
                        let _ = tx.send(());
                    }
                },
                &cancel,
            )
        });
        half.recv().expect("half of the layer arrives");
        cancel.cancel();
        pulling.join().unwrap().unwrap_err()
    });
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err:?}");
    closed
        .recv()
        .expect("the connection to the stalled registry is closed");
    assert_eq!(e.view().len(), 0);
    assert_eq!(store.blob_count(), 0, "nothing stored");
    // Not claimed any more: a pull from the registry itself gets it.
    let out = pull(&c, &e, &req(&format!("{}/slow:1", reg.host()))).unwrap();
    assert_eq!(reg.blob_gets(&target), 2, "{}", reg.access_log());
    assert!(!out.up_to_date);
}

#[test]
fn push_of_a_pulled_image_agrees_with_skopeo() {
    let reg = TestRegistry::start();
    let img = base().child(b"pushed", "RUN push");
    let digest = reg.push_archive(&oci_archive_with(&[img], &gz()), "src:1", false);
    let c = client(&[reg.host()]);
    let (e, _) = mem_engine();
    let src = format!("{}/src:1", reg.host());
    pull(&c, &e, &req(&src)).unwrap();
    let mut skipped = 0;
    let out = c
        .push(
            &e,
            &PushRequest {
                source: src.clone(),
                destination: format!("{}/other/dst:2", reg.host()),
                ..PushRequest::default()
            },
            &mut |ev| {
                if matches!(ev, TransferEvent::Blob { skipped: true, .. }) {
                    skipped += 1;
                }
            },
            &Cancel::new(),
        )
        .unwrap();
    assert_eq!(out.digest, digest);
    assert_eq!(reg.digest_of("other/dst:2"), digest);
    // Pushing again: every blob is already there.
    let mut again = 0;
    c.push(
        &e,
        &PushRequest {
            source: src,
            destination: format!("{}/other/dst:2", reg.host()),
            ..PushRequest::default()
        },
        &mut |ev| {
            if matches!(ev, TransferEvent::Blob { skipped: true, .. }) {
                again += 1;
            }
        },
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!(again, 3, "config and two layers skipped");
    let _ = skipped;
}

/// `newer` (podman's `--pull newer`): a changed tag is fetched; a registry that cannot
/// be reached leaves the local image as the answer, where `always` fails.
#[test]
fn pull_policy_newer_asks_the_registry_and_falls_back_to_the_local_image() {
    let reg = TestRegistry::start();
    let one = base().child(b"first", "RUN one");
    let two = base().child(b"second", "RUN two");
    reg.push_archive(
        &oci_archive_with(std::slice::from_ref(&one), &gz()),
        "app:1",
        false,
    );
    let host = reg.host().to_owned();
    let c = client(&[&host]);
    let (e, _) = mem_engine();
    let name = format!("{host}/app:1");
    let newer = PullRequest {
        policy: PullPolicy::Newer,
        ..req(&name)
    };
    assert_eq!(pull(&c, &e, &newer).unwrap().image_id, one.id());
    let current = pull(&c, &e, &newer).unwrap();
    assert!(current.up_to_date && current.image_id == one.id());

    reg.push_archive(
        &oci_archive_with(std::slice::from_ref(&two), &gz()),
        "app:1",
        false,
    );
    let out = pull(&c, &e, &newer).unwrap();
    assert_eq!(out.image_id, two.id());
    assert!(!out.up_to_date);

    drop(reg);
    let err = pull(&c, &e, &req(&name)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::RegistryUnreachable, "{err:?}");
    let out = pull(&c, &e, &newer).unwrap();
    assert_eq!(out.image_id, two.id(), "the local image answers");
    assert!(out.up_to_date);
    // Nothing local under that name: the error stands.
    let err = pull(
        &c,
        &e,
        &PullRequest {
            policy: PullPolicy::Newer,
            ..req(&format!("{host}/other:1"))
        },
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RegistryUnreachable, "{err:?}");
}
