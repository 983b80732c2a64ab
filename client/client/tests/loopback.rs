//! The client against a fake ImageService on a unix socket in a temp dir: authority,
//! bearer token, paging, load streaming, error details, events; a fake GcService next to
//! it for the GC calls.

// The fake server's helpers are test code too.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use imaged_client::{Client, Code, ConnectOptions, ErrorKind, ErrorReason, proto};
use proto::gc_service_server::{GcService, GcServiceServer};
use proto::image_service_server::{ImageService, ImageServiceServer};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Default)]
struct Seen {
    authorities: Vec<String>,
    tokens: Vec<String>,
    page_tokens: Vec<String>,
    load_bytes: usize,
    load_messages: usize,
    load_format: i32,
    gc_tokens: Vec<String>,
    gc_policy: Option<proto::GcPolicy>,
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
}

const IMAGES: usize = 5;

#[tonic::async_trait]
impl ImageService for Fake {
    async fn list_images(
        &self,
        request: Request<proto::ListImagesRequest>,
    ) -> Result<Response<proto::ListImagesResponse>, Status> {
        if let Some(v) = request.metadata().get("authorization") {
            let token = v.to_str().unwrap_or_default().to_owned();
            self.seen.lock().unwrap().tokens.push(token);
        }
        let req = request.into_inner();
        self.seen
            .lock()
            .unwrap()
            .page_tokens
            .push(req.page_token.clone());
        let start: usize = if req.page_token.is_empty() {
            0
        } else {
            req.page_token
                .parse()
                .map_err(|_| Status::invalid_argument("bad token"))?
        };
        if start > 0 && req.filters.iter().any(|f| *f == format!("fail-at={start}")) {
            return Err(Status::aborted("page gone"));
        }
        let size = usize::try_from(req.page_size).unwrap_or(1).max(1);
        let end = (start + size).min(IMAGES);
        let images = (start..end)
            .map(|i| proto::Image {
                id: format!("sha256:{i:064x}"),
                ..Default::default()
            })
            .collect();
        let next_page_token = if end < IMAGES {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(proto::ListImagesResponse {
            images,
            next_page_token,
            total_size: IMAGES as i32,
        }))
    }

    async fn remove_image(
        &self,
        request: Request<proto::RemoveImageRequest>,
    ) -> Result<Response<proto::RemoveImageResponse>, Status> {
        let reference = request.into_inner().reference;
        let mut details = ErrorDetails::with_error_info(
            "IMAGE_IN_USE",
            "imaged.io",
            HashMap::from([("container_ids".to_owned(), "c1".to_owned())]),
        );
        details.add_precondition_failure_violation("CONTAINER", "c1", "uses the image");
        Err(Status::with_error_details(
            tonic::Code::FailedPrecondition,
            format!("image used by c1: image is in use by a container ({reference})"),
            details,
        ))
    }

    async fn load_images(
        &self,
        request: Request<tonic::Streaming<proto::LoadImagesRequest>>,
    ) -> Result<Response<proto::LoadImagesResponse>, Status> {
        let mut stream = request.into_inner();
        let mut total = 0usize;
        while let Some(msg) = stream.message().await? {
            let mut seen = self.seen.lock().unwrap();
            if seen.load_messages == 0 {
                seen.load_format = msg.format;
            }
            seen.load_messages += 1;
            total += msg.chunk.len();
        }
        self.seen.lock().unwrap().load_bytes = total;
        Ok(Response::new(proto::LoadImagesResponse {
            images: vec![proto::LoadedImage {
                id: format!("sha256:{:064x}", 1),
                names: vec!["localhost/loaded:latest".into()],
            }],
            bytes_received: total as u64,
            moved_names: Vec::new(),
        }))
    }

    async fn pull_image(
        &self,
        request: Request<proto::PullImageRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<proto::PullImageResponse>>, Status> {
        use proto::pull_image_response::Event;
        let req = request.into_inner();
        let msg = |e: Event| Ok(proto::PullImageResponse { event: Some(e) });
        let blob = |done| proto::BlobProgress {
            digest: "sha256:l".into(),
            bytes_done: done,
            size: 10,
            skipped: false,
        };
        let msgs = vec![
            msg(Event::Resolved(proto::TransferResolved {
                reference: format!("localhost:5000/{}", req.reference),
            })),
            // A message without an event (a newer daemon's kind) is skipped.
            Ok(proto::PullImageResponse { event: None }),
            msg(Event::Blob(blob(4))),
            msg(Event::Blob(blob(10))),
            msg(Event::Done(proto::PullDone {
                image_id: "sha256:abc".into(),
                reference: req.reference,
                digest: "sha256:def".into(),
                up_to_date: false,
            })),
        ];
        Ok(Response::new(Box::pin(futures_util::stream::iter(msgs))))
    }

    async fn push_image(
        &self,
        _request: Request<proto::PushImageRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<proto::PushImageResponse>>, Status> {
        use proto::push_image_response::Event;
        let msgs = vec![
            Ok(proto::PushImageResponse {
                event: Some(Event::Resolved(proto::TransferResolved {
                    reference: "localhost:5000/x:1".into(),
                })),
            }),
            Err(Status::unauthenticated("registry said no")),
        ];
        Ok(Response::new(Box::pin(futures_util::stream::iter(msgs))))
    }

    async fn watch_events(
        &self,
        request: Request<proto::WatchEventsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<proto::Event>>, Status> {
        let types = request.into_inner().types;
        let events = types
            .into_iter()
            .map(|t| {
                Ok(proto::Event {
                    r#type: t,
                    image_id: "sha256:x".into(),
                    ..Default::default()
                })
            })
            .collect::<Vec<_>>();
        Ok(Response::new(Box::pin(futures_util::stream::iter(events))))
    }
}

#[tonic::async_trait]
impl GcService for Fake {
    async fn get_gc_policy(
        &self,
        request: Request<proto::GetGcPolicyRequest>,
    ) -> Result<Response<proto::GcPolicy>, Status> {
        let mut seen = self.seen.lock().unwrap();
        record_token(&mut seen, &request);
        Ok(Response::new(seen.gc_policy.unwrap_or_default()))
    }

    async fn set_gc_policy(
        &self,
        request: Request<proto::SetGcPolicyRequest>,
    ) -> Result<Response<proto::GcPolicy>, Status> {
        let mut seen = self.seen.lock().unwrap();
        record_token(&mut seen, &request);
        let mut policy = request.into_inner().policy.unwrap_or_default();
        if policy.keep_tags > 100 {
            return Err(Status::invalid_argument("invalid GC policy: keep_tags"));
        }
        // As the daemon: an unset minimum age is 2 minutes.
        policy.min_age.get_or_insert(imaged_client::Duration {
            seconds: 120,
            nanos: 0,
        });
        seen.gc_policy = Some(policy);
        Ok(Response::new(policy))
    }

    async fn run_gc(
        &self,
        request: Request<proto::RunGcRequest>,
    ) -> Result<Response<proto::RunGcResponse>, Status> {
        record_token(&mut self.seen.lock().unwrap(), &request);
        let dry_run = request.into_inner().dry_run;
        let id = format!("sha256:{:064x}", 7);
        Ok(Response::new(proto::RunGcResponse {
            chosen: vec![proto::GcChoice {
                image_id: id.clone(),
                reason: proto::GcReason::Unused as i32,
                bytes_freed: 10,
                ..Default::default()
            }],
            planned_bytes: 10,
            reached: true,
            result: Some(proto::PruneImagesResponse {
                deleted_images: if dry_run { Vec::new() } else { vec![id] },
                reclaimed_bytes: if dry_run { 0 } else { 10 },
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

fn record_token<T>(seen: &mut Seen, request: &Request<T>) {
    if let Some(v) = request.metadata().get("authorization") {
        seen.gc_tokens
            .push(v.to_str().unwrap_or_default().to_owned());
    }
}

struct Server {
    _dir: tempfile::TempDir,
    url: String,
    seen: Arc<Mutex<Seen>>,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imaged.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let fake = Fake::default();
    let seen = Arc::clone(&fake.seen);
    let seen_layer = Arc::clone(&fake.seen);
    let record_authority = tower::util::MapRequestLayer::new(move |req: http::Request<_>| {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        seen_layer.lock().unwrap().authorities.push(authority);
        req
    });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(record_authority)
            .add_service(ImageServiceServer::new(fake.clone()))
            .add_service(GcServiceServer::new(fake))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
    let url = format!("unix://{}", path.display());
    Server {
        _dir: dir,
        url,
        seen,
    }
}

#[tokio::test]
async fn unix_socket_uses_localhost_authority_and_bearer_token() {
    let server = start().await;
    let opts = ConnectOptions::default().with_token("t0k");
    let client = Client::connect_with(&server.url, opts).await.unwrap();
    assert_eq!(client.url(), server.url);
    client
        .list_images(proto::ListImagesRequest::default())
        .await
        .unwrap();
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.authorities, vec!["localhost".to_owned()]);
    assert_eq!(seen.tokens, vec!["Bearer t0k".to_owned()]);
}

#[tokio::test]
async fn list_all_follows_every_page() {
    let server = start().await;
    let client = Client::connect(&server.url).await.unwrap();
    let req = proto::ListImagesRequest {
        page_size: 2,
        ..Default::default()
    };
    let images = client.list_all(req).await.unwrap();
    let ids: Vec<_> = images.iter().map(|i| i.id.clone()).collect();
    let want: Vec<_> = (0..IMAGES).map(|i| format!("sha256:{i:064x}")).collect();
    assert_eq!(ids, want);
    assert_eq!(server.seen.lock().unwrap().page_tokens, vec!["", "2", "4"]);
    // No token → no authorization header.
    assert!(server.seen.lock().unwrap().tokens.is_empty());
}

/// The pipelined listing (each page's token read before the page is decoded) sends the
/// bearer token on every page, returns the pages in order, and fails with the daemon's
/// status when a later page fails.
#[tokio::test]
async fn list_pages_are_pipelined_with_the_token_and_fail_with_the_daemon_status() {
    let server = start().await;
    let opts = ConnectOptions::default().with_token("t0k");
    let client = Client::connect_with(&server.url, opts).await.unwrap();
    let req = proto::ListImagesRequest {
        page_size: 2,
        ..Default::default()
    };
    let pages = client.list_pages(req.clone()).await.unwrap();
    let sizes: Vec<_> = pages.iter().map(|p| p.images.len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(pages[0].next_page_token, "2");
    assert_eq!(pages[2].total_size, IMAGES as i32);
    assert_eq!(server.seen.lock().unwrap().tokens, vec!["Bearer t0k"; 3]);

    let err = client
        .list_all(proto::ListImagesRequest {
            filters: vec!["fail-at=4".into()],
            ..req.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::Aborted, "{err}");
    assert!(err.message.contains("page gone"), "{err}");

    let err = client
        .list_all(proto::ListImagesRequest {
            page_token: "x".into(),
            ..req
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::InvalidArgument, "{err}");
}

#[tokio::test]
async fn errors_carry_kind_metadata_and_violations() {
    let server = start().await;
    let client = Client::connect(&server.url).await.unwrap();
    let err = client
        .remove_image(proto::RemoveImageRequest {
            reference: "busybox".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorReason::ImageInUse);
    assert_eq!(err.code, tonic::Code::FailedPrecondition);
    assert_eq!(err.metadata_list("container_ids"), vec!["c1"]);
    assert_eq!(err.violations.len(), 1);
    assert!(err.message.ends_with("(busybox)"), "{}", err.message);
    // An RPC the fake does not implement.
    let err = client.image_disk_usage(false).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Code(Code::Unimplemented));
}

#[tokio::test]
async fn load_streams_the_whole_input_with_progress() {
    let server = start().await;
    let client = Client::connect(&server.url).await.unwrap();
    let data = vec![42u8; imaged_client::load::CHUNK_SIZE * 2 + 5];
    let progress = Arc::new(Mutex::new(Vec::new()));
    let p2 = Arc::clone(&progress);
    let resp = client
        .load(
            std::io::Cursor::new(data.clone()),
            proto::ArchiveFormat::Docker,
            Vec::new(),
            move |n| p2.lock().unwrap().push(n),
        )
        .await
        .unwrap();
    assert_eq!(resp.bytes_received, data.len() as u64);
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.load_bytes, data.len());
    assert_eq!(seen.load_messages, 3);
    assert_eq!(seen.load_format, proto::ArchiveFormat::Docker as i32);
    assert_eq!(
        progress.lock().unwrap().last().copied(),
        Some(data.len() as u64)
    );
}

#[tokio::test]
async fn watch_events_streams_typed_events() {
    let server = start().await;
    let client = Client::connect(&server.url).await.unwrap();
    let types = [proto::EventType::Tag, proto::EventType::Delete];
    let mut events = client.watch_events(&types).await.unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.r#type, proto::EventType::Tag as i32);
    let second = events.next_event().await.unwrap().unwrap();
    assert_eq!(second.r#type, proto::EventType::Delete as i32);
    assert!(events.next_event().await.unwrap().is_none());
}

#[tokio::test]
async fn missing_socket_is_a_connection_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}", dir.path().join("absent.sock").display());
    let err = Client::connect(&url).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Code(Code::Unavailable));
    assert!(err.is_connection_error());
    assert!(err.message.contains("No such file"), "{}", err.message);
}

#[tokio::test]
async fn tls_options_on_a_unix_socket_are_rejected() {
    let opts = ConnectOptions::default().with_tls_ca("/ca.pem");
    let err = Client::connect_with("unix:///tmp/whatever.sock", opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
}

#[tokio::test]
async fn pull_and_push_stream_their_progress() {
    use proto::pull_image_response::Event as Pull;
    use proto::push_image_response::Event as Push;
    let server = start().await;
    let client = Client::connect(&server.url).await.unwrap();
    let mut seen = Vec::new();
    let done = client
        .pull_wait(
            proto::PullImageRequest {
                reference: "app:1".into(),
                ..Default::default()
            },
            |e| seen.push(e.clone()),
        )
        .await
        .unwrap();
    assert_eq!(done.image_id, "sha256:abc");
    assert!(matches!(&seen[0], Pull::Resolved(r) if r.reference == "localhost:5000/app:1"));
    let done_bytes: Vec<u64> = seen
        .iter()
        .filter_map(|e| match e {
            Pull::Blob(b) => Some(b.bytes_done),
            _ => None,
        })
        .collect();
    assert_eq!(done_bytes, [4, 10]);
    assert!(matches!(seen.last(), Some(Pull::Done(_))));

    let mut seen = Vec::new();
    let err = client
        .push_wait(proto::PushImageRequest::default(), |e| seen.push(e.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::Unauthenticated);
    assert!(matches!(&seen[..], [Push::Resolved(_)]), "{seen:?}");
}

#[tokio::test]
async fn gc_policy_and_runs_with_the_token() {
    let server = start().await;
    let opts = ConnectOptions::default().with_token("gc-t0k");
    let client = Client::connect_with(&server.url, opts).await.unwrap();
    assert_eq!(
        client.get_gc_policy().await.unwrap(),
        proto::GcPolicy::default()
    );
    let policy = proto::GcPolicy {
        high: Some(proto::GcThreshold {
            value: Some(proto::gc_threshold::Value::Percent(85)),
        }),
        budget_bytes: Some(1 << 30),
        ..Default::default()
    };
    let stored = client.set_gc_policy(policy).await.unwrap();
    assert_eq!(stored.budget_bytes, Some(1 << 30));
    assert_eq!(stored.min_age.map(|d| d.seconds), Some(120));
    assert_eq!(client.get_gc_policy().await.unwrap(), stored);
    let dry = client.run_gc(true).await.unwrap();
    assert_eq!(dry.chosen.len(), 1);
    assert!(dry.result.unwrap().deleted_images.is_empty());
    let real = client.run_gc(false).await.unwrap();
    assert_eq!(real.result.unwrap().reclaimed_bytes, 10);
    let err = client
        .set_gc_policy(proto::GcPolicy {
            keep_tags: 1000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::InvalidArgument);
    assert_eq!(err.kind, ErrorKind::Code(Code::InvalidArgument));
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.gc_tokens, vec!["Bearer gc-t0k".to_owned(); 6]);
}
