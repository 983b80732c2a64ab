//! PullImage, PushImage and CRI PullImage served in-process over a unix socket with a
//! fake [`Registry`] (it stages a synthesized image through the engine's load path and
//! emits progress): streaming order, request conversion, UNIMPLEMENTED without a
//! registry, error mapping, authorization, and credentials absent from every status
//! and every log line.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cri_common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use cri_common::*;
use imaged_core::ops::LoadOptions;
use imaged_core::transfer::{
    Cancel, Credentials, PullOutcome, PullPolicy, PullRequest, PushOutcome, PushRequest, Registry,
    TlsVerify, TransferEvent,
};
use imaged_core::{Digest, Engine, Error, ErrorKind, Store};
use imaged_grpc::GrpcOptions;
use imaged_grpc::auth::AuthConfig;
use imaged_proto::imaged::v1 as pb;
use imaged_proto::imaged::v1::image_service_client::ImageServiceClient;
use imaged_proto::runtime::v1 as cri;
use imaged_testkit::archive::{SynthImage, docker_archive};
use pb::pull_image_response::Event as PullEv;
use pb::push_image_response::Event as PushEv;
use tonic::Code;
use tonic_types::StatusExt;

const SECRET: &str = "pa55-w0rd-XYZZY";
const TOKEN: &str = "tok-en-PLUGH";

// ------------------------------------------------------------------ log capture

/// Every log line of this test binary (all tests share the global subscriber).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                logs().lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| W)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(sub).expect("one subscriber");
        Mutex::new(Vec::new())
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

// ------------------------------------------------------------------ the fake

/// A registry that "has" `registry.test/app:1` (one synthesized image), refuses
/// `registry.test/private:1` without the password [`SECRET`] (echoing what it got, as a
/// careless client might), hangs on `registry.test/hang:1` until the pull is cancelled
/// (then reports it on `cancelled`), knows nothing else, and records every request.
#[derive(Default)]
struct FakeRegistry {
    pulls: Mutex<Vec<PullRequest>>,
    pushes: Mutex<Vec<PushRequest>>,
    cancelled: Mutex<Option<std::sync::mpsc::Sender<String>>>,
}

fn image() -> SynthImage {
    SynthImage::new("fake-base").child(b"fake-top", "RUN top")
}

fn qualify(r: &str) -> String {
    if r.contains('/') {
        r.to_owned()
    } else {
        format!("registry.test/{r}")
    }
}

impl Registry for FakeRegistry {
    fn pull(
        &self,
        engine: &Engine,
        req: &PullRequest,
        progress: &mut dyn FnMut(TransferEvent),
        cancel: &Cancel,
    ) -> imaged_core::Result<PullOutcome> {
        self.pulls.lock().unwrap().push(req.clone());
        let reference = qualify(&req.reference);
        match reference.as_str() {
            "registry.test/app:1" => {}
            "registry.test/hang:1" => {
                progress(TransferEvent::Resolved {
                    reference: reference.clone(),
                });
                let seen = cancel.wait_timeout(std::time::Duration::from_secs(60));
                if let Some(tx) = self.cancelled.lock().unwrap().as_ref() {
                    let _ = tx.send(if seen {
                        reference.clone()
                    } else {
                        "never cancelled".to_owned()
                    });
                }
                return Err(Cancel::error(&reference));
            }
            "registry.test/private:1" => {
                let pw = req.credentials.as_ref().map(|c| c.password.clone());
                if pw.as_deref() != Some(SECRET) {
                    return Err(Error::new(
                        ErrorKind::RegistryUnauthorized,
                        format!("registry.test: unauthorized with password {pw:?}"),
                    )
                    .with_meta("registry", format!("registry.test (tried {pw:?})")));
                }
            }
            "registry.test/broken:1" => {
                return Err(Error::internal(format!(
                    "broken: token {}",
                    req.credentials
                        .as_ref()
                        .map(|c| c.registry_token.clone())
                        .unwrap_or_default()
                )));
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::NotFoundInRegistries,
                    format!("{reference}: image not known"),
                )
                .with_meta("candidates", reference.clone()));
            }
        }
        progress(TransferEvent::Resolved {
            reference: reference.clone(),
        });
        let img = image();
        if req.policy == PullPolicy::Missing && engine.inspect(&reference).is_ok() {
            return Ok(PullOutcome {
                image_id: img.id(),
                reference,
                digest: img.manifest_digest(false),
                up_to_date: true,
            });
        }
        for (i, layer) in img.layers.iter().enumerate() {
            let digest = Digest::of(layer);
            let total = 1000 + i as u64;
            for done in [0, total / 2, total] {
                progress(TransferEvent::Blob {
                    digest,
                    done,
                    total,
                    skipped: false,
                });
            }
        }
        let archive = docker_archive(std::slice::from_ref(&img), false);
        let report = engine.load(
            &mut archive.as_slice(),
            &LoadOptions {
                default_names: vec![reference.clone()],
                ..LoadOptions::default()
            },
        )?;
        Ok(PullOutcome {
            image_id: report.images[0].id,
            reference,
            digest: img.manifest_digest(false),
            up_to_date: false,
        })
    }

    fn push(
        &self,
        engine: &Engine,
        req: &PushRequest,
        progress: &mut dyn FnMut(TransferEvent),
        _cancel: &Cancel,
    ) -> imaged_core::Result<PushOutcome> {
        self.pushes.lock().unwrap().push(req.clone());
        let details = engine.inspect(&req.source)?;
        let dest = if req.destination.is_empty() {
            req.source.clone()
        } else {
            req.destination.clone()
        };
        progress(TransferEvent::Resolved {
            reference: dest.clone(),
        });
        for (i, l) in details.layers.iter().enumerate() {
            progress(TransferEvent::Blob {
                digest: l.blob.digest,
                done: l.blob.size,
                total: l.blob.size,
                skipped: i == 0,
            });
        }
        Ok(PushOutcome {
            reference: dest,
            digest: Digest::of(b"pushed manifest"),
        })
    }
}

async fn start_fake(auth: AuthConfig) -> (Fixture, Arc<FakeRegistry>) {
    logs();
    let fake = Arc::new(FakeRegistry::default());
    let f = start_with(
        GrpcOptions {
            auth,
            registry: Some(Arc::clone(&fake) as Arc<dyn Registry>),
            ..GrpcOptions::default()
        },
        &[],
    )
    .await;
    (f, fake)
}

async fn pull_all(
    c: &mut ImageServiceClient<tonic::transport::Channel>,
    req: pb::PullImageRequest,
) -> Result<Vec<PullEv>, tonic::Status> {
    let mut s = c.pull_image(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.push(m.event.expect("every message has an event"));
    }
    Ok(out)
}

fn creds(password: &str) -> pb::RegistryCredentials {
    pb::RegistryCredentials {
        username: "bob".into(),
        password: password.into(),
        ..Default::default()
    }
}

/// The status in every form a client or a log could show it.
fn everything(st: &tonic::Status) -> String {
    format!(
        "{st:?} {} {:?} {:?}",
        st.message(),
        st.get_error_details(),
        st.metadata()
    )
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn pull_streams_resolved_blobs_then_done_and_stores_the_image() {
    let (f, fake) = start_fake(AuthConfig::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let evs = pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "app:1".into(),
            platform: Some(pb::Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: "v8".into(),
            }),
            policy: pb::PullPolicy::Always as i32,
            credentials: None,
            tls_verify: pb::TlsVerify::Disabled as i32,
        },
    )
    .await
    .expect("pull");
    let Some(PullEv::Resolved(r)) = evs.first() else {
        panic!("resolved first: {evs:?}")
    };
    assert_eq!(r.reference, "registry.test/app:1");
    let Some(PullEv::Done(done)) = evs.last() else {
        panic!("done last: {evs:?}")
    };
    let blobs: Vec<&pb::BlobProgress> = evs[1..evs.len() - 1]
        .iter()
        .map(|e| match e {
            PullEv::Blob(b) => b,
            other => panic!("only blobs between: {other:?}"),
        })
        .collect();
    // Every final progress arrives; each blob's progress grows.
    let finals: Vec<&&pb::BlobProgress> = blobs.iter().filter(|b| b.bytes_done == b.size).collect();
    assert_eq!(finals.len(), 2, "{blobs:?}");
    for b in &blobs {
        assert!(b.digest.starts_with("sha256:") && b.size >= 1000, "{b:?}");
    }
    let id = image().id().to_string();
    assert_eq!(done.image_id, id);
    assert_eq!(done.reference, "registry.test/app:1");
    assert!(!done.up_to_date);
    let stored = f.store.view();
    let img = stored.image(&image().id()).expect("stored");
    assert!(
        img.names.iter().any(|n| n == "registry.test/app:1"),
        "{:?}",
        img.names
    );
    // The request reached the registry as sent.
    let seen = fake.pulls.lock().unwrap()[0].clone();
    assert_eq!(seen.policy, PullPolicy::Always);
    assert_eq!(seen.tls_verify, TlsVerify::Skip);
    let p = seen.platform.expect("platform");
    assert_eq!(
        (p.os.as_str(), p.architecture.as_str(), p.variant.as_str()),
        ("linux", "arm64", "v8")
    );
    assert_eq!(seen.credentials, None);

    // Policy missing (the default): the local image answers, nothing is fetched.
    let evs = pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "registry.test/app:1".into(),
            ..Default::default()
        },
    )
    .await
    .expect("pull again");
    let Some(PullEv::Done(again)) = evs.last() else {
        panic!("{evs:?}")
    };
    assert!(again.up_to_date && again.image_id == id, "{again:?}");
    assert!(!evs.iter().any(|e| matches!(e, PullEv::Blob(_))), "{evs:?}");
    assert_eq!(fake.pulls.lock().unwrap()[1].policy, PullPolicy::Missing);
}

#[tokio::test]
async fn without_a_registry_pull_and_push_are_unimplemented() {
    let f = start(AuthConfig::default(), &[]).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let err = pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "app:1".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("no registry");
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(
        err.get_details_error_info().expect("ErrorInfo").reason,
        "UNIMPLEMENTED"
    );
    assert!(
        err.message().contains("no registry client") && err.message().contains("LoadImages"),
        "{}",
        err.message()
    );
    let err = c
        .push_image(pb::PushImageRequest {
            source: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("no registry");
    assert_eq!(err.code(), Code::Unimplemented);
    let err = raw(&f, "PullImage", ld(1, &ld(1, b"busybox")))
        .await
        .expect_err("CRI: no registry");
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("LoadImages"), "{}", err.message());
}

#[tokio::test]
async fn errors_map_to_their_reasons_and_nothing_is_stored() {
    let (f, _fake) = start_fake(AuthConfig::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let err = pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "registry.test/nope:1".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "NOT_FOUND_IN_REGISTRIES");
    assert_eq!(info.metadata["candidates"], "registry.test/nope:1");

    for (req, code, reason) in [
        (
            pb::PullImageRequest {
                reference: "  ".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "INVALID_REFERENCE",
        ),
        (
            pb::PullImageRequest {
                reference: "app:1".into(),
                policy: 42,
                ..Default::default()
            },
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            pb::PullImageRequest {
                reference: "app:1".into(),
                tls_verify: 7,
                ..Default::default()
            },
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
    ] {
        let err = pull_all(&mut c, req).await.expect_err("invalid");
        assert_eq!(err.code(), code);
        assert_eq!(err.get_details_error_info().expect("info").reason, reason);
    }
    let err = c
        .push_image(pb::PushImageRequest {
            source: "localhost/absent:1".into(),
            destination: "registry.test/x:1".into(),
            ..Default::default()
        })
        .await
        .expect("stream")
        .into_inner()
        .message()
        .await
        .expect_err("unknown source");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(f.store.view().len(), 0, "nothing stored");
}

#[tokio::test]
async fn credentials_reach_the_registry_but_no_status_and_no_log_line() {
    let (f, fake) = start_fake(AuthConfig::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let wrong = "wr0ng-PASSWORD-q";
    let err = pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "registry.test/private:1".into(),
            credentials: Some(creds(wrong)),
            ..Default::default()
        },
    )
    .await
    .expect_err("wrong password");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.get_details_error_info().expect("info").reason,
        "REGISTRY_UNAUTHORIZED"
    );
    let shown = everything(&err);
    assert!(!shown.contains(wrong), "{shown}");
    assert!(shown.contains("***"), "redacted, not dropped: {shown}");

    let evs = pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "registry.test/private:1".into(),
            credentials: Some(creds(SECRET)),
            ..Default::default()
        },
    )
    .await
    .expect("right password");
    assert!(matches!(evs.last(), Some(PullEv::Done(_))), "{evs:?}");
    let seen = fake.pulls.lock().unwrap().clone();
    assert_eq!(
        seen.last().and_then(|r| r.credentials.clone()),
        Some(Credentials {
            username: "bob".into(),
            password: SECRET.into(),
            ..Default::default()
        })
    );

    // An INTERNAL error is logged in full by the status table: redacted first.
    let err = pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "registry.test/broken:1".into(),
            credentials: Some(pb::RegistryCredentials {
                registry_token: TOKEN.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .expect_err("broken");
    assert_eq!(err.code(), Code::Internal);
    assert!(!everything(&err).contains(TOKEN));

    // CRI with `auth` (base64 of bob:<wrong>) and with username/password.
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("bob:{wrong}"))
    };
    let mut cric =
        imaged_proto::runtime::v1::image_service_client::ImageServiceClient::new(f.channel.clone());
    let err = cric
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: "registry.test/private:1".into(),
                ..Default::default()
            }),
            auth: Some(cri::AuthConfig {
                auth: auth.clone(),
                ..Default::default()
            }),
            sandbox_config: None,
        })
        .await
        .expect_err("CRI wrong password");
    assert_eq!(err.code(), Code::PermissionDenied);
    let shown = everything(&err);
    assert!(!shown.contains(wrong) && !shown.contains(&auth), "{shown}");

    let text = log_text();
    for secret in [wrong, SECRET, TOKEN, auth.as_str()] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
    assert!(text.contains("pull failed"), "failures are logged:\n{text}");
    assert!(
        !f.store.view().is_empty(),
        "the authorized pull stored its image"
    );
}

#[tokio::test]
async fn cri_pull_answers_the_image_id_and_lists_it() {
    let (f, fake) = start_fake(AuthConfig::default()).await;
    let mut c =
        imaged_proto::runtime::v1::image_service_client::ImageServiceClient::new(f.channel.clone());
    let spec = |s: &str| cri::ImageSpec {
        image: s.into(),
        annotations: [("io.kubernetes.cri.x".to_owned(), "ignored".to_owned())].into(),
        runtime_handler: "ignored".into(),
        ..Default::default()
    };
    let resp = c
        .pull_image(cri::PullImageRequest {
            image: Some(spec("registry.test/private:1")),
            auth: Some(cri::AuthConfig {
                username: "bob".into(),
                password: SECRET.into(),
                server_address: "registry.test".into(),
                ..Default::default()
            }),
            sandbox_config: None,
        })
        .await
        .expect("pull")
        .into_inner();
    let id = image().id().to_string();
    assert_eq!(resp.image_ref, id);
    let seen = fake.pulls.lock().unwrap()[0].clone();
    assert_eq!(seen.policy, PullPolicy::Always, "kubelet decided already");
    assert_eq!(seen.platform, None);
    let status = c
        .image_status(cri::ImageStatusRequest {
            image: Some(spec("registry.test/private:1")),
            verbose: false,
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.image.expect("present").id, id);
    // Without AuthConfig.
    let resp = c
        .pull_image(cri::PullImageRequest {
            image: Some(spec("app:1")),
            auth: None,
            sandbox_config: None,
        })
        .await
        .expect("anonymous pull")
        .into_inner();
    assert_eq!(resp.image_ref, id);
    assert_eq!(fake.pulls.lock().unwrap()[1].credentials, None);
    let err = c
        .pull_image(cri::PullImageRequest {
            image: Some(spec("registry.test/nope:1")),
            auth: None,
            sandbox_config: None,
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn push_streams_resolved_blobs_then_done() {
    let (f, fake) = start_fake(AuthConfig::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "app:1".into(),
            ..Default::default()
        },
    )
    .await
    .expect("pull");
    let mut s = c
        .push_image(pb::PushImageRequest {
            source: "registry.test/app:1".into(),
            destination: "registry.test/other:2".into(),
            credentials: Some(creds(SECRET)),
            tls_verify: pb::TlsVerify::Enabled as i32,
        })
        .await
        .expect("push")
        .into_inner();
    let mut evs = Vec::new();
    while let Some(m) = s.message().await.expect("message") {
        evs.push(m.event.expect("event"));
    }
    assert!(
        matches!(evs.first(), Some(PushEv::Resolved(r)) if r.reference == "registry.test/other:2"),
        "{evs:?}"
    );
    assert!(
        matches!(evs.last(), Some(PushEv::Done(d)) if d.reference == "registry.test/other:2"
            && d.digest == Digest::of(b"pushed manifest").to_string()),
        "{evs:?}"
    );
    let skipped: Vec<bool> = evs
        .iter()
        .filter_map(|e| match e {
            PushEv::Blob(b) => Some(b.skipped),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, [true, false]);
    let seen = fake.pushes.lock().unwrap()[0].clone();
    assert_eq!(seen.tls_verify, TlsVerify::Verify);
    assert_eq!(
        seen.credentials.map(|c| c.password),
        Some(SECRET.to_owned())
    );
}

#[tokio::test]
async fn readers_may_not_pull_or_push() {
    let uid = my_uid().await;
    let (f, fake) = start_fake(AuthConfig {
        reader_uids: vec![uid],
        ..AuthConfig::default()
    })
    .await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let err = pull_all(
        &mut c,
        pb::PullImageRequest {
            reference: "app:1".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("reader");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .push_image(pb::PushImageRequest {
            source: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("reader");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = raw(&f, "PullImage", ld(1, &ld(1, b"app:1")))
        .await
        .expect_err("reader");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(fake.pulls.lock().unwrap().is_empty());
    assert!(fake.pushes.lock().unwrap().is_empty());
    assert_eq!(f.store.view().len(), 0);
}

/// The fake's report of a pull it saw cancelled ("never cancelled" after a minute).
fn watch_cancels(fake: &FakeRegistry) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    *fake.cancelled.lock().unwrap() = Some(tx);
    rx
}

#[tokio::test]
async fn a_client_that_drops_the_pull_stream_cancels_the_pull() {
    let (f, fake) = start_fake(AuthConfig::default()).await;
    let cancelled = watch_cancels(&fake);
    let mut c = ImageServiceClient::new(f.channel.clone());
    let mut s = c
        .pull_image(pb::PullImageRequest {
            reference: "registry.test/hang:1".into(),
            ..Default::default()
        })
        .await
        .expect("pull")
        .into_inner();
    let first = s.message().await.expect("a message").expect("resolved");
    assert!(
        matches!(first.event, Some(PullEv::Resolved(_))),
        "{first:?}"
    );
    drop(s);
    let seen = tokio::task::spawn_blocking(move || cancelled.recv())
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Ok("registry.test/hang:1"));
}

#[tokio::test]
async fn a_cri_pull_past_its_deadline_is_cancelled() {
    let (f, fake) = start_fake(AuthConfig::default()).await;
    let cancelled = watch_cancels(&fake);
    let mut c =
        imaged_proto::runtime::v1::image_service_client::ImageServiceClient::new(f.channel.clone());
    let mut req = tonic::Request::new(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: "registry.test/hang:1".into(),
            ..Default::default()
        }),
        auth: None,
        sandbox_config: None,
    });
    req.set_timeout(std::time::Duration::from_millis(200));
    let st = c.pull_image(req).await.expect_err("past its deadline");
    assert_eq!(st.code(), Code::DeadlineExceeded, "{st:?}");
    let seen = tokio::task::spawn_blocking(move || cancelled.recv())
        .await
        .unwrap();
    assert_eq!(seen.as_deref(), Ok("registry.test/hang:1"));
}
