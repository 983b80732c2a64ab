//! CRI `runtime.v1.ImageService` served in-process over a unix socket, checked on the
//! wire: replies are read as raw bytes (a pass-through codec) and decoded field by field
//! with a hand-written protobuf reader, so the field numbers and wire types are those of
//! the CRI contract (`cri-and-grpc-contracts.md` §1.2), not whatever our generated code
//! says. Requests are encoded by hand too.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cri_common;

use std::path::Path;

use cri_common::*;
use imaged_core::Store;
use imaged_grpc::auth::AuthConfig;
use imaged_testkit::images::ImageSpec;
use tonic::Code;

#[tokio::test]
async fn list_images_reply_decoded_field_by_field() {
    let f = start(AuthConfig::default(), &["localhost/k8s/pause:*"]).await;
    let app = add(
        f.store.as_ref(),
        &named("app", &["localhost/app:1", "localhost/app:2"]),
        "1234:5",
    );
    let pause = add(
        f.store.as_ref(),
        &named("pause", &["localhost/k8s/pause:3.10"]),
        "nobody",
    );
    let loose = add(f.store.as_ref(), &ImageSpec::base("loose", 1), "");
    let view = f.store.view();
    let size_of = |id: &str| -> u64 {
        let img = view
            .images()
            .find(|i| i.id.to_string() == id)
            .expect("stored");
        img.blobs().map(|b| b.size).sum()
    };

    // ListImagesResponse { repeated Image images = 1; } with an empty request (nil filter).
    let reply = fields(&raw(&f, "ListImages", Vec::new()).await.expect("ListImages"));
    assert_eq!(numbers(&reply), [1], "only field 1 at the top: {reply:?}");
    let images: Vec<Vec<(u64, Val)>> = all(&reply, 1)
        .into_iter()
        .map(|v| fields(bytes(v)))
        .collect();
    assert_eq!(images.len(), 3, "one Image per image ID");
    let by_id = |id: &str| {
        images
            .iter()
            .find(|i| text(one(i, 1)) == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    };

    // Image { id = 1; repo_tags = 2; repo_digests = 3; size = 4; uid = 5 (Int64Value);
    //         username = 6; spec = 7; pinned = 8 }
    let a = by_id(&app);
    let mut tags: Vec<String> = all(a, 2).into_iter().map(text).collect();
    tags.sort();
    assert_eq!(tags, ["localhost/app:1", "localhost/app:2"]);
    let digests: Vec<String> = all(a, 3).into_iter().map(text).collect();
    assert_eq!(
        digests.len(),
        1,
        "one repository × one manifest digest: {digests:?}"
    );
    assert!(
        digests[0].starts_with("localhost/app@sha256:"),
        "{digests:?}"
    );
    assert_eq!(uint(one(a, 4)), size_of(&app));
    assert!(uint(one(a, 4)) > 0);
    let uid = fields(bytes(one(a, 5)));
    assert_eq!(uid, [(1, Val::Varint(1234))], "Int64Value {{ value = 1 }}");
    assert!(all(a, 6).is_empty(), "uid and username are exclusive");
    assert!(all(a, 8).is_empty(), "not pinned: proto3 omits false");
    assert_eq!(numbers(a), [1, 2, 3, 4, 5], "{a:?}");

    let p = by_id(&pause);
    assert_eq!(text(one(p, 6)), "nobody");
    assert!(all(p, 5).is_empty(), "a user name sets no uid");
    assert_eq!(uint(one(p, 8)), 1, "pinned by the configured pattern");
    assert_eq!(uint(one(p, 4)), size_of(&pause));

    let l = by_id(&loose);
    assert!(
        all(l, 2).is_empty() && all(l, 3).is_empty(),
        "no names: {l:?}"
    );
    assert_eq!(numbers(l), [1, 4]);

    // A filter naming one image: ListImagesRequest { filter = 1 { image = 1 { image = 1 } } }.
    let req = ld(1, &ld(1, &ld(1, b"localhost/app:2")));
    let reply = fields(&raw(&f, "ListImages", req).await.expect("filtered"));
    let only: Vec<String> = all(&reply, 1)
        .into_iter()
        .map(|v| text(one(&fields(bytes(v)), 1)))
        .collect();
    assert_eq!(only, std::slice::from_ref(&app));
    // filter.image.image == "" lists everything, like no filter.
    let reply = fields(
        &raw(&f, "ListImages", ld(1, &ld(1, &[])))
            .await
            .expect("empty"),
    );
    assert_eq!(all(&reply, 1).len(), 3);
}

#[tokio::test]
async fn image_fs_info_reply_decoded_field_by_field() {
    let f = start(AuthConfig::default(), &[]).await;
    let before = imaged_core::time::now();
    // An empty store still answers, with used_bytes and inodes_used present.
    let reply = fields(
        &raw(&f, "ImageFsInfo", Vec::new())
            .await
            .expect("empty store"),
    );
    assert_eq!(numbers(&reply), [1], "image_filesystems only: {reply:?}");
    let fs = fields(bytes(one(&reply, 1)));
    assert!(all(&fs, 3).len() == 1 && all(&fs, 4).len() == 1, "{fs:?}");
    assert!(
        fields(bytes(one(&fs, 3))).is_empty(),
        "used_bytes = 0 is an empty UInt64Value"
    );

    let id = add(f.store.as_ref(), &named("fs", &["localhost/fs:1"]), "");
    let used = f.store.fs_usage().expect("usage");
    let reply = fields(
        &raw(&f, "ImageFsInfo", Vec::new())
            .await
            .expect("ImageFsInfo"),
    );
    // ImageFsInfoResponse { image_filesystems = 1; container_filesystems = 2 (empty) }
    assert_eq!(numbers(&reply), [1]);
    // FilesystemUsage { timestamp = 1 (int64 ns); fs_id = 2 { mountpoint = 1 };
    //                   used_bytes = 3 { value = 1 }; inodes_used = 4 { value = 1 } }
    let fs = fields(bytes(one(&reply, 1)));
    assert_eq!(numbers(&fs), [1, 2, 3, 4], "{fs:?}");
    let ts = i64::try_from(uint(one(&fs, 1))).expect("int64");
    assert!(
        ts >= before && ts <= imaged_core::time::now(),
        "timestamp is now in ns"
    );
    let mountpoint = text(one(&fields(bytes(one(&fs, 2))), 1));
    assert_eq!(
        Path::new(&mountpoint),
        std::fs::canonicalize(f.root()).expect("canonical"),
        "the store's real directory"
    );
    let used_bytes = uint(one(&fields(bytes(one(&fs, 3))), 1));
    let inodes = uint(one(&fields(bytes(one(&fs, 4))), 1));
    assert_eq!((used_bytes, inodes), (used.used_bytes, used.inodes_used));
    assert!(used_bytes > 0 && inodes > 0);

    // RemoveImage by ID: the bytes are gone at once, and exactly the image's size.
    let listed = fields(&raw(&f, "ListImages", Vec::new()).await.expect("list"));
    let size = uint(one(&fields(bytes(one(&listed, 1))), 4));
    let rm = raw(&f, "RemoveImage", ld(1, &ld(1, id.as_bytes()))).await;
    assert_eq!(
        rm.expect("RemoveImage"),
        Vec::<u8>::new(),
        "RemoveImageResponse {{}}"
    );
    let reply = fields(&raw(&f, "ImageFsInfo", Vec::new()).await.expect("after"));
    let fs = fields(bytes(one(&reply, 1)));
    let after = fields(bytes(one(&fs, 3)));
    assert_eq!(
        used_bytes - size,
        all(&after, 1).first().map_or(0, |v| uint(v))
    );
}

#[tokio::test]
async fn absent_images_are_ok_and_pull_is_unimplemented() {
    let f = start(AuthConfig::default(), &[]).await;
    // ImageStatus of an absent image: OK, `image` unset → an empty message.
    let req = ld(1, &ld(1, b"docker.io/library/nope:1"));
    assert_eq!(
        raw(&f, "ImageStatus", req.clone()).await.expect("status"),
        Vec::<u8>::new()
    );
    assert_eq!(
        raw(&f, "RemoveImage", req.clone()).await.expect("remove"),
        Vec::<u8>::new()
    );
    let err = raw(&f, "PullImage", req).await.expect_err("no pulls");
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("LoadImages"), "{}", err.message());
    // Blank references are the resolver's INVALID_ARGUMENT.
    let err = raw(&f, "RemoveImage", ld(1, &ld(1, b"")))
        .await
        .expect_err("blank");
    assert_eq!(err.code(), Code::InvalidArgument);
}
