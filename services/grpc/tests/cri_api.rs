//! CRI `runtime.v1.ImageService` served in-process over a unix socket, through the
//! generated client and reflection: removal with registered containers, the descriptors
//! reflection serves (the contract's field numbers and types), authorization of readers,
//! and StreamImages batching.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cri_common;

use cri_common::*;
use imaged_core::Store;
use imaged_grpc::auth::AuthConfig;
use imaged_proto::imaged::v1 as pb;
use imaged_proto::imaged::v1::container_service_client::ContainerServiceClient;
use imaged_proto::runtime::v1 as cri;
use imaged_proto::runtime::v1::image_service_client::ImageServiceClient;
use imaged_testkit::images::ImageSpec;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn running_container_blocks_cri_removal_others_go_with_the_image() {
    let f = start(AuthConfig::default(), &[]).await;
    let id = add(
        f.store.as_ref(),
        &named("run", &["localhost/run:1", "localhost/run:2"]),
        "",
    );
    let mut ctr = ContainerServiceClient::new(f.channel.clone());
    for (cid, state) in [
        ("c-run", pb::ContainerState::Running),
        ("c-stop", pb::ContainerState::Stopped),
    ] {
        ctr.register_container(pb::RegisterContainerRequest {
            id: cid.into(),
            image: id.clone(),
            state: state as i32,
            ..Default::default()
        })
        .await
        .expect("register");
    }
    let mut c = ImageServiceClient::new(f.channel.clone());
    let spec = |s: &str| cri::ImageSpec {
        image: s.into(),
        ..Default::default()
    };
    let err = c
        .remove_image(cri::RemoveImageRequest {
            image: Some(spec("localhost/run:2")),
        })
        .await
        .expect_err("running");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "CONTAINER_RUNNING");
    assert_eq!(f.store.view().len(), 1, "nothing removed");

    ctr.set_container_state(pb::SetContainerStateRequest {
        id: "c-run".into(),
        state: pb::ContainerState::Stopped as i32,
    })
    .await
    .expect("stop");
    c.remove_image(cri::RemoveImageRequest {
        image: Some(spec("localhost/run:2")),
    })
    .await
    .expect("stopped containers do not block CRI removal");
    assert_eq!(f.store.view().len(), 0, "the whole image, every name");
    let left = ctr
        .list_containers(pb::ListContainersRequest::default())
        .await
        .expect("containers")
        .into_inner();
    assert!(left.containers.is_empty(), "{left:?}");
}

#[tokio::test]
async fn reflection_serves_the_contract_numbers() {
    use prost::Message;
    use prost_types::field_descriptor_proto::{Label, Type};
    use tonic_reflection::pb::v1alpha as r;
    let f = start(AuthConfig::default(), &[]).await;
    let mut c = r::server_reflection_client::ServerReflectionClient::new(f.channel.clone());
    let req = r::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r::server_reflection_request::MessageRequest::FileContainingSymbol(
                "runtime.v1.ImageService".into(),
            ),
        ),
    };
    let mut s = c
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let resp = s.message().await.expect("recv").expect("one response");
    let Some(r::server_reflection_response::MessageResponse::FileDescriptorResponse(fd)) =
        resp.message_response
    else {
        panic!("runtime.v1.ImageService must be resolvable: {resp:?}")
    };
    let file = fd
        .file_descriptor_proto
        .iter()
        .map(|b| prost_types::FileDescriptorProto::decode(b.as_slice()).expect("descriptor"))
        .find(|f| f.package() == "runtime.v1")
        .expect("runtime.v1 file");
    let services: Vec<&str> = file.service.iter().map(|s| s.name()).collect();
    assert_eq!(services, ["ImageService"], "no RuntimeService");
    let methods: Vec<(&str, &str, &str, bool)> = file.service[0]
        .method
        .iter()
        .map(|m| {
            (
                m.name(),
                m.input_type(),
                m.output_type(),
                m.server_streaming(),
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            (
                "ListImages",
                ".runtime.v1.ListImagesRequest",
                ".runtime.v1.ListImagesResponse",
                false
            ),
            (
                "StreamImages",
                ".runtime.v1.StreamImagesRequest",
                ".runtime.v1.StreamImagesResponse",
                true
            ),
            (
                "ImageStatus",
                ".runtime.v1.ImageStatusRequest",
                ".runtime.v1.ImageStatusResponse",
                false
            ),
            (
                "PullImage",
                ".runtime.v1.PullImageRequest",
                ".runtime.v1.PullImageResponse",
                false
            ),
            (
                "RemoveImage",
                ".runtime.v1.RemoveImageRequest",
                ".runtime.v1.RemoveImageResponse",
                false
            ),
            (
                "ImageFsInfo",
                ".runtime.v1.ImageFsInfoRequest",
                ".runtime.v1.ImageFsInfoResponse",
                false
            ),
        ]
    );
    let msg = |name: &str| -> Vec<(String, i32, Type, Label, String)> {
        let m = file
            .message_type
            .iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("message {name}"));
        m.field
            .iter()
            .map(|f| {
                (
                    f.name().to_owned(),
                    f.number(),
                    f.r#type(),
                    f.label(),
                    f.type_name().to_owned(),
                )
            })
            .collect()
    };
    let field = |n: &str, num, t, l, tn: &str| (n.to_owned(), num, t, l, tn.to_owned());
    use Label::{Optional as O, Repeated as R};
    use Type::{Bool, Int64, Message as M, String as S, Uint64};
    assert_eq!(
        msg("Image"),
        [
            field("id", 1, S, O, ""),
            field("repo_tags", 2, S, R, ""),
            field("repo_digests", 3, S, R, ""),
            field("size", 4, Uint64, O, ""),
            field("uid", 5, M, O, ".runtime.v1.Int64Value"),
            field("username", 6, S, O, ""),
            field("spec", 7, M, O, ".runtime.v1.ImageSpec"),
            field("pinned", 8, Bool, O, ""),
        ]
    );
    let spec = msg("ImageSpec");
    let spec: Vec<(String, i32, Type)> = spec
        .into_iter()
        .map(|(n, num, t, _, _)| (n, num, t))
        .collect();
    assert_eq!(
        spec,
        [
            ("image".to_owned(), 1, S),
            ("annotations".to_owned(), 2, M),
            ("user_specified_image".to_owned(), 18, S),
            ("runtime_handler".to_owned(), 19, S),
            ("image_ref".to_owned(), 20, S),
        ]
    );
    assert_eq!(
        msg("FilesystemUsage"),
        [
            field("timestamp", 1, Int64, O, ""),
            field("fs_id", 2, M, O, ".runtime.v1.FilesystemIdentifier"),
            field("used_bytes", 3, M, O, ".runtime.v1.UInt64Value"),
            field("inodes_used", 4, M, O, ".runtime.v1.UInt64Value"),
        ]
    );
    assert_eq!(
        msg("ImageFsInfoResponse"),
        [
            field("image_filesystems", 1, M, R, ".runtime.v1.FilesystemUsage"),
            field(
                "container_filesystems",
                2,
                M,
                R,
                ".runtime.v1.FilesystemUsage"
            ),
        ]
    );
    assert_eq!(
        msg("ImageStatusResponse")[..1],
        [field("image", 1, M, O, ".runtime.v1.Image")]
    );
    assert_eq!(msg("ImageStatusResponse")[1].1, 2, "info = 2");
    assert_eq!(
        msg("ImageStatusRequest"),
        [
            field("image", 1, M, O, ".runtime.v1.ImageSpec"),
            field("verbose", 2, Bool, O, ""),
        ]
    );
}

#[tokio::test]
async fn readers_read_admins_remove() {
    let uid = my_uid().await;
    let f = start(
        AuthConfig {
            reader_uids: vec![uid],
            ..AuthConfig::default()
        },
        &[],
    )
    .await;
    let id = add(f.store.as_ref(), &named("ro", &["localhost/ro:1"]), "");
    for (method, body) in [
        ("ListImages", Vec::new()),
        ("ImageStatus", ld(1, &ld(1, id.as_bytes()))),
        ("ImageFsInfo", Vec::new()),
    ] {
        raw(&f, method, body)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e:?}"));
    }
    let mut c = ImageServiceClient::new(f.channel.clone());
    let mut s = c
        .stream_images(cri::StreamImagesRequest::default())
        .await
        .expect("StreamImages is read-only")
        .into_inner();
    assert_eq!(
        s.message().await.expect("batch").expect("one").images.len(),
        1
    );
    for method in ["RemoveImage", "PullImage"] {
        let err = raw(&f, method, ld(1, &ld(1, id.as_bytes())))
            .await
            .expect_err("reader");
        assert_eq!(err.code(), Code::PermissionDenied, "{method}");
        assert_eq!(
            err.get_details_error_info().expect("ErrorInfo").reason,
            "PERMISSION_DENIED"
        );
    }
    assert_eq!(f.store.view().len(), 1);
}

#[tokio::test]
async fn stream_images_sends_every_image_once_in_batches() {
    let f = start(AuthConfig::default(), &[]).await;
    let n = imaged_grpc::CRI_STREAM_BATCH + 3;
    let specs: Vec<ImageSpec> = (0..n)
        .map(|i| named(&format!("s{i}"), &[&format!("localhost/s/{i}:1")]))
        .collect();
    imaged_testkit::images::add_images(f.store.as_ref(), &specs).expect("add");
    let mut c = ImageServiceClient::new(f.channel.clone());
    let mut s = c
        .stream_images(cri::StreamImagesRequest::default())
        .await
        .expect("stream")
        .into_inner();
    let mut batches = Vec::new();
    while let Some(b) = s.message().await.expect("recv") {
        batches.push(b.images);
    }
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [imaged_grpc::CRI_STREAM_BATCH, 3]);
    let mut streamed: Vec<String> = batches.into_iter().flatten().map(|i| i.id).collect();
    let listed = c
        .list_images(cri::ListImagesRequest::default())
        .await
        .expect("list")
        .into_inner();
    let mut ids: Vec<String> = listed.images.into_iter().map(|i| i.id).collect();
    streamed.sort();
    ids.sort();
    assert_eq!(ids.len(), n);
    assert_eq!(streamed, ids);

    // An empty store: the stream just ends.
    let empty = start(AuthConfig::default(), &[]).await;
    let mut c = ImageServiceClient::new(empty.channel.clone());
    let mut s = c
        .stream_images(cri::StreamImagesRequest::default())
        .await
        .expect("stream")
        .into_inner();
    assert!(s.message().await.expect("end").is_none());
}
