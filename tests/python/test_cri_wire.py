"""The CRI replies on the wire, without generated code: raw request bytes in, raw reply
bytes out (``channel.unary_unary`` with no (de)serializers), decoded field by field with
the field numbers of the CRI contract (cri-and-grpc-contracts.md §1.2):

    ListImagesResponse { repeated Image images = 1; }
    Image { id = 1; repo_tags = 2; repo_digests = 3; uint64 size = 4; Int64Value uid = 5;
            username = 6; ImageSpec spec = 7; bool pinned = 8; }
    ImageFsInfoResponse { repeated FilesystemUsage image_filesystems = 1;
                          repeated FilesystemUsage container_filesystems = 2; }
    FilesystemUsage { int64 timestamp = 1; FilesystemIdentifier fs_id = 2 {mountpoint = 1};
                      UInt64Value used_bytes = 3; UInt64Value inodes_used = 4; }
"""

from __future__ import annotations

import os
import time

from cri_support import (  # noqa: F401  (cri_pb and cri_env are fixtures)
    UserImage,
    cri_env,
    cri_pb,
    field_numbers,
    ld,
    load,
    one,
    values,
)


def test_list_images_reply_field_by_field(pb, cri_env):
    env = cri_env()  # pins localhost/k8s/pause:*
    app = UserImage(["w-app"], names=["localhost/w/app:1", "localhost/w/app:2"], user="1001:5")
    pause = UserImage(["w-pause"], names=["localhost/k8s/pause:3.10"], user="nobody")
    load(pb, env.native, [app, pause])

    reply = env.raw("ListImages", b"")
    assert field_numbers(reply) == {1}
    images = {one(m, 1).decode(): m for m in values(reply, 1)}
    assert set(images) == {app.id, pause.id}

    a = images[app.id]
    assert sorted(v.decode() for v in values(a, 2)) == ["localhost/w/app:1", "localhost/w/app:2"]
    digests = [v.decode() for v in values(a, 3)]
    assert len(digests) == 1 and digests[0].startswith("localhost/w/app@sha256:"), digests
    assert one(a, 4) > 0
    assert values(one(a, 5), 1) == [1001], "uid = Int64Value{value = 1}"
    assert values(a, 6) == [] and values(a, 8) == [], "no username; not pinned (false is omitted)"
    assert field_numbers(a) == {1, 2, 3, 4, 5}

    p = images[pause.id]
    assert one(p, 6) == b"nobody" and values(p, 5) == []
    assert one(p, 8) == 1, "pinned = 8 (bool true)"
    assert field_numbers(p) == {1, 2, 3, 4, 6, 8}

    # ListImagesRequest{filter = 1 {image = 1 {image = 1}}}, built by hand.
    reply = env.raw("ListImages", ld(1, ld(1, ld(1, b"localhost/w/app:2"))))
    assert [one(m, 1).decode() for m in values(reply, 1)] == [app.id]


def test_image_fs_info_reply_field_by_field(pb, cri_env):
    env = cri_env(store="local")
    load(pb, env.native, [UserImage(["w-fs"], names=["localhost/w/fs:1"])])
    before = time.time_ns()
    reply = env.raw("ImageFsInfo", b"")
    assert field_numbers(reply) == {1}, "one image filesystem, no container filesystems"
    fs = one(reply, 1)
    assert field_numbers(fs) == {1, 2, 3, 4}
    ts = one(fs, 1)
    assert before <= ts <= time.time_ns(), "int64 ns since the epoch"
    mountpoint = one(one(fs, 2), 1).decode()
    assert mountpoint == os.path.realpath(env.daemon.root)
    used = one(one(fs, 3), 1)
    inodes = one(one(fs, 4), 1)
    blobs = env.daemon.root / "blobs" / "sha256"
    on_disk = [p.stat().st_size for p in blobs.iterdir()]
    assert used == sum(on_disk) > 0
    assert inodes >= len(on_disk) == 3, "manifest, config, one layer"


def test_absent_image_status_and_removal_are_empty_replies(cri_env):
    env = cri_env()
    req = ld(1, ld(1, b"localhost/w/absent:1"))
    assert env.raw("ImageStatus", req) == b"", "ImageStatusResponse with image unset"
    assert env.raw("RemoveImage", req) == b""
