//! The gRPC layer served in-process over a unix socket in a temp dir, called with the
//! generated clients (authority `localhost`), over a `MemoryStore`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use imaged_core::{EngineConfig, MemoryStore, ops};
use imaged_grpc::auth::AuthConfig;
use imaged_grpc::{GrpcOptions, Services};
use imaged_proto::imaged::v1 as pb;
use imaged_proto::imaged::v1::container_service_client::ContainerServiceClient;
use imaged_proto::imaged::v1::image_service_client::ImageServiceClient;
use imaged_proto::imaged::v1::image_service_methods as methods;
use imaged_proto::runtime::v1 as cri;
use imaged_proto::runtime::v1::image_service_client::ImageServiceClient as CriClient;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

struct Fixture {
    _dir: tempfile::TempDir,
    services: Arc<Services>,
    channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(opts: GrpcOptions) -> Fixture {
    start_full(EngineConfig::default(), opts).await
}

async fn start_full(config: EngineConfig, opts: GrpcOptions) -> Fixture {
    let services = Arc::new(
        Services::new(Arc::new(MemoryStore::new()), config, opts)
            .await
            .expect("services"),
    );
    services.set_serving(true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let routes = services.routes();
    tokio::spawn(async move {
        Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
    });
    let channel = connect(path).await;
    Fixture {
        _dir: dir,
        services,
        channel,
        stop: Some(stop),
    }
}

async fn connect(path: PathBuf) -> Channel {
    Endpoint::try_from("http://localhost")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect")
}

async fn my_uid() -> u32 {
    let (a, _b) = UnixStream::pair().expect("pair");
    a.peer_cred().expect("cred").uid()
}

fn auth(cfg: AuthConfig) -> GrpcOptions {
    GrpcOptions {
        auth: cfg,
        ..GrpcOptions::default()
    }
}

#[tokio::test]
async fn health_per_service_and_not_serving_on_shutdown() {
    let f = start(GrpcOptions::default()).await;
    let mut h = HealthClient::new(f.channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    for s in [
        "",
        "imaged.v1.ImageService",
        "imaged.v1.ContainerService",
        "runtime.v1.ImageService",
    ] {
        let r = h.check(check(s)).await.expect("check").into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{s:?}");
    }
    let err = h
        .check(check("runtime.v1.RuntimeService"))
        .await
        .expect_err("not a served service");
    assert_eq!(err.code(), Code::NotFound);

    f.services.begin_shutdown().await;
    for s in ["", "imaged.v1.ImageService"] {
        let r = h.check(check(s)).await.expect("check").into_inner();
        assert_eq!(r.status, ServingStatus::NotServing as i32, "{s:?}");
    }
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_exactly_the_served_services() {
    use tonic_reflection::pb::{v1, v1alpha};
    let f = start(GrpcOptions::default()).await;
    let want = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "imaged.v1.ContainerService",
        "imaged.v1.GcService",
        "imaged.v1.ImageService",
        "runtime.v1.ImageService",
    ];

    let mut c = v1::server_reflection_client::ServerReflectionClient::new(f.channel.clone());
    let reqs = vec![
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        },
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "google.rpc.ErrorInfo".to_owned(),
                ),
            ),
        },
    ];
    let mut s = c
        .server_reflection_info(tokio_stream::iter(reqs))
        .await
        .expect("v1")
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = s
        .message()
        .await
        .expect("msg")
        .and_then(|r| r.message_response)
    else {
        panic!("list_services answer expected")
    };
    let mut got: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    got.sort();
    assert_eq!(got, want);
    let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(fd)) = s
        .message()
        .await
        .expect("msg")
        .and_then(|r| r.message_response)
    else {
        panic!("google.rpc.ErrorInfo must be resolvable for grpcurl")
    };
    assert!(!fd.file_descriptor_proto.is_empty());

    let mut c = v1alpha::server_reflection_client::ServerReflectionClient::new(f.channel.clone());
    let reqs = vec![
        v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        },
        v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "imaged.v1.ImageService".to_owned(),
                ),
            ),
        },
    ];
    let mut s = c
        .server_reflection_info(tokio_stream::iter(reqs))
        .await
        .expect("v1alpha")
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) = s
        .message()
        .await
        .expect("msg")
        .and_then(|r| r.message_response)
    else {
        panic!("list_services answer expected")
    };
    let mut got: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    got.sort();
    assert_eq!(got, want);
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(fd)) = s
        .message()
        .await
        .expect("msg")
        .and_then(|r| r.message_response)
    else {
        panic!("imaged.v1.ImageService must be resolvable")
    };
    assert!(!fd.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn every_local_peer_is_admin_without_lists() {
    let f = start(GrpcOptions::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let err = c
        .remove_image(pb::RemoveImageRequest {
            reference: "busybox".into(),
            ..Default::default()
        })
        .await
        .expect_err("empty store");
    assert!(
        !matches!(err.code(), Code::PermissionDenied | Code::Unauthenticated),
        "authorized, the engine answered: {err:?}"
    );
}

#[tokio::test]
async fn reader_uid_may_read_but_not_remove() {
    let uid = my_uid().await;
    let f = start(auth(AuthConfig {
        reader_uids: vec![uid],
        ..AuthConfig::default()
    }))
    .await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let err = c
        .remove_image(pb::RemoveImageRequest {
            reference: "busybox".into(),
            ..Default::default()
        })
        .await
        .expect_err("reader");
    assert_eq!(err.code(), Code::PermissionDenied);
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(
        (info.domain.as_str(), info.reason.as_str()),
        ("imaged.io", "PERMISSION_DENIED")
    );
    assert_eq!(
        info.metadata.get("method").map(String::as_str),
        Some(methods::REMOVE_IMAGE)
    );
    assert_eq!(
        f.services
            .metrics()
            .count(methods::REMOVE_IMAGE, Code::PermissionDenied),
        1
    );

    let r = c.list_images(pb::ListImagesRequest::default()).await;
    if let Err(e) = &r {
        assert!(
            !matches!(e.code(), Code::PermissionDenied | Code::Unauthenticated),
            "{e:?}"
        );
    }
    let mut cc = ContainerServiceClient::new(f.channel.clone());
    let err = cc
        .unregister_container(pb::UnregisterContainerRequest {
            id: "x".into(),
            ignore_missing: true,
        })
        .await
        .expect_err("reader cannot unregister");
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn unlisted_peer_is_denied_everything() {
    let uid = my_uid().await;
    let f = start(auth(AuthConfig {
        admin_uids: vec![uid.wrapping_add(1)],
        ..AuthConfig::default()
    }))
    .await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let err = c
        .list_images(pb::ListImagesRequest::default())
        .await
        .expect_err("not listed");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.get_details_error_info().expect("ErrorInfo").reason,
        "PERMISSION_DENIED"
    );
    let err = c
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect_err("not listed");
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn bad_enums_are_invalid_argument_with_bad_request() {
    let f = start(GrpcOptions::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let err = c
        .remove_image(pb::RemoveImageRequest {
            reference: "x".into(),
            policy: 99,
            ..Default::default()
        })
        .await
        .expect_err("bad policy");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.get_details_error_info().expect("ErrorInfo").reason,
        "INVALID_ARGUMENT"
    );
    let br = err.get_details_bad_request().expect("BadRequest");
    assert_eq!(br.field_violations[0].field, "policy");

    let mut cc = ContainerServiceClient::new(f.channel.clone());
    let err = cc
        .set_container_state(pb::SetContainerStateRequest {
            id: "a".into(),
            state: 0,
        })
        .await
        .expect_err("state required");
    assert_eq!(err.code(), Code::InvalidArgument);

    let first = pb::LoadImagesRequest {
        chunk: b"x".to_vec().into(),
        format: 7,
        default_names: vec![],
    };
    let err = c
        .load_images(tokio_stream::iter(vec![first]))
        .await
        .expect_err("bad format");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.get_details_bad_request()
            .expect("BadRequest")
            .field_violations[0]
            .field,
        "format"
    );
}

#[tokio::test]
async fn watch_events_filters_and_ends_on_shutdown() {
    let f = start(GrpcOptions::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let err = c
        .watch_events(pb::WatchEventsRequest { types: vec![0] })
        .await
        .expect_err("bad type");
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut s = c
        .watch_events(pb::WatchEventsRequest {
            types: vec![pb::EventType::Delete as i32],
        })
        .await
        .expect("watch")
        .into_inner();
    // The subscription exists once the call has answered: publish like the engine does.
    let ev = |kind, name: &str| ops::Event {
        kind,
        image_id: None,
        name: name.to_owned(),
        time: 7,
        reclaimed_bytes: 3,
    };
    f.services
        .events()
        .publish(&ev(ops::EventKind::Tag, "skipped"));
    f.services
        .events()
        .publish(&ev(ops::EventKind::Delete, "wanted"));
    let e = s.message().await.expect("stream ok").expect("an event");
    assert_eq!(
        (e.r#type, e.name.as_str()),
        (pb::EventType::Delete as i32, "wanted")
    );
    assert_eq!(e.reclaimed_bytes, 3);

    f.services.begin_shutdown().await;
    assert!(
        s.message().await.expect("clean end").is_none(),
        "stream ends on shutdown"
    );
}

#[tokio::test]
async fn message_size_limit_applies() {
    let f = start(GrpcOptions {
        max_recv_message_bytes: 1024,
        ..GrpcOptions::default()
    })
    .await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let big = pb::ListImagesRequest {
        filters: vec!["x".repeat(4096)],
        ..Default::default()
    };
    let err = c.list_images(big).await.expect_err("over the limit");
    too_large(&err, "ListImages");
    let big = "x".repeat(4096);
    let err = c
        .inspect_image(pb::InspectImageRequest {
            reference: big.clone(),
            ..Default::default()
        })
        .await
        .expect_err("over the limit");
    too_large(&err, "InspectImage");
    let first = pb::LoadImagesRequest {
        chunk: big.clone().into_bytes().into(),
        ..Default::default()
    };
    let err = c
        .load_images(tokio_stream::iter(vec![first]))
        .await
        .expect_err("over the limit");
    too_large(&err, "LoadImages");
    let err = ContainerServiceClient::new(f.channel.clone())
        .register_container(pb::RegisterContainerRequest {
            image: big.clone(),
            ..Default::default()
        })
        .await
        .expect_err("over the limit");
    too_large(&err, "RegisterContainer");
    let err = CriClient::new(f.channel.clone())
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: big,
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .expect_err("over the limit");
    too_large(&err, "CRI ImageStatus");
}

/// SPEC §7: over a size limit is RESOURCE_EXHAUSTED with reason TOO_LARGE and the limit.
fn too_large(err: &tonic::Status, what: &str) {
    assert_eq!(err.code(), Code::ResourceExhausted, "{what}: {err:?}");
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "TOO_LARGE", "{what}");
    assert_eq!(
        info.metadata.get("limit").map(String::as_str),
        Some("1024"),
        "{what}"
    );
}

/// A LoadImages stream that sends its first message and then nothing, open until
/// `tx` is dropped.
fn stalled_load() -> (
    tokio::sync::mpsc::Sender<pb::LoadImagesRequest>,
    tokio_stream::wrappers::ReceiverStream<pb::LoadImagesRequest>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.try_send(pb::LoadImagesRequest {
        chunk: vec![0u8; 700].into(),
        ..Default::default()
    })
    .expect("capacity");
    (tx, tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// tonic's server answers CANCELLED ("Timeout expired") when a call outlives its
/// `grpc-timeout`; the spec says DEADLINE_EXCEEDED with an ErrorInfo.
#[tokio::test]
async fn a_passed_deadline_is_deadline_exceeded() {
    let f = start(GrpcOptions::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let (tx, stream) = stalled_load();
    let mut req = tonic::Request::new(stream);
    req.set_timeout(std::time::Duration::from_millis(300));
    let err = tokio::time::timeout(std::time::Duration::from_secs(20), c.load_images(req))
        .await
        .expect("the deadline ends the call")
        .expect_err("deadline");
    drop(tx);
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "DEADLINE_EXCEEDED");
    assert!(f.services.engine().view().is_empty());
}

/// A LoadImages stream that stalls is abandoned after the idle timeout (nothing stored)
/// instead of holding a thread and its partial data forever.
#[tokio::test]
async fn a_stalled_load_is_abandoned_after_the_idle_timeout() {
    let f = start(GrpcOptions {
        load_idle_timeout: std::time::Duration::from_millis(300),
        ..GrpcOptions::default()
    })
    .await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let (tx, stream) = stalled_load();
    let err = tokio::time::timeout(std::time::Duration::from_secs(20), c.load_images(stream))
        .await
        .expect("a stalled load must end")
        .expect_err("abandoned");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "DEADLINE_EXCEEDED");
    assert_eq!(
        info.metadata.get("idle_timeout_ms").map(String::as_str),
        Some("300")
    );
    assert!(f.services.engine().view().is_empty(), "nothing stored");
    // The daemon still serves: the channel is fine and the next call works.
    drop(tx);
    c.list_images(pb::ListImagesRequest::default())
        .await
        .expect("still serving");
}

fn chunks(archive: &[u8], size: usize, first: pb::LoadImagesRequest) -> Vec<pb::LoadImagesRequest> {
    let mut out = vec![first];
    out.extend(archive.chunks(size).map(|c| pb::LoadImagesRequest {
        chunk: c.to_vec().into(),
        ..Default::default()
    }));
    out
}

async fn start_with(config: EngineConfig) -> Fixture {
    start_full(config, GrpcOptions::default()).await
}

#[tokio::test]
async fn load_streams_chunks_into_the_engine_and_emits_events() {
    use imaged_testkit::archive::{SynthImage, docker_archive};
    let f = start(GrpcOptions::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let mut events = c
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();

    let img = SynthImage::new("grpc-load").named("localhost/grpc:1");
    let archive = docker_archive(std::slice::from_ref(&img), false);
    let first = pb::LoadImagesRequest {
        format: pb::ArchiveFormat::Docker as i32,
        ..Default::default()
    };
    let resp = c
        .load_images(tokio_stream::iter(chunks(&archive, 1000, first)))
        .await
        .expect("load")
        .into_inner();
    assert_eq!(resp.bytes_received, archive.len() as u64);
    assert_eq!(resp.images.len(), 1);
    assert_eq!(resp.images[0].id, img.id().to_string());
    assert_eq!(resp.images[0].names, ["localhost/grpc:1"]);
    assert_eq!(f.services.engine().view().len(), 1);

    let e = events.message().await.expect("stream").expect("load event");
    assert_eq!(e.r#type, pb::EventType::Load as i32);
    assert_eq!(e.image_id, img.id().to_string());
}

#[tokio::test]
async fn truncated_stream_stores_nothing() {
    use imaged_testkit::archive::{SynthImage, docker_archive};
    let f = start(GrpcOptions::default()).await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let archive = docker_archive(&[SynthImage::new("cut").named("localhost/cut:1")], false);
    let half = &archive[..archive.len() / 2];
    let err = c
        .load_images(tokio_stream::iter(chunks(
            half,
            512,
            pb::LoadImagesRequest::default(),
        )))
        .await
        .expect_err("truncated");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.get_details_error_info().expect("ErrorInfo").reason,
        "INVALID_ARCHIVE"
    );
    assert!(f.services.engine().view().is_empty(), "all or nothing");
}

#[tokio::test]
async fn load_over_the_limit_is_resource_exhausted() {
    use imaged_testkit::archive::{SynthImage, docker_archive};
    let f = start_with(EngineConfig {
        max_load_bytes: 2048,
        ..EngineConfig::default()
    })
    .await;
    let mut c = ImageServiceClient::new(f.channel.clone());
    let archive = docker_archive(&[SynthImage::new("big").named("localhost/big:1")], false);
    assert!(archive.len() > 2048);
    let err = c
        .load_images(tokio_stream::iter(chunks(
            &archive,
            700,
            pb::LoadImagesRequest::default(),
        )))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "TOO_LARGE");
    assert_eq!(info.metadata.get("limit").map(String::as_str), Some("2048"));
    assert!(f.services.engine().view().is_empty());
}
