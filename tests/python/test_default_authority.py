"""A default gRPC C-core channel over the unix socket: no ``grpc.default_authority``.

C-core sends the %-encoded socket path as the HTTP/2 ``:authority`` of a ``unix://``
channel; the daemon accepts it (SPEC §10). The other tests keep the ``localhost`` option,
so both forms stay covered.
"""

from __future__ import annotations

import grpc

import imaged_support as support
from cri_support import CriDaemon, UserImage, load
from cri_support import cri_pb  # noqa: F401  (a fixture)
from imaged_support import Image


def test_default_channel_native_list_load_and_list_again(pb, daemon):
    # The channel exactly as a user's first try writes it.
    ch = grpc.insecure_channel("unix://" + str(daemon.socket))
    try:
        images = pb.images_pb2_grpc.ImageServiceStub(ch)
        empty = images.ListImages(pb.images_pb2.ListImagesRequest(all=True), timeout=30)
        assert list(empty.images) == []

        app = Image(["default-authority-app"], names=["localhost/da/app:1"])
        archive = support.gz(support.docker_archive([app]))

        def chunks():
            for off in range(0, len(archive), 16 * 1024):
                yield pb.images_pb2.LoadImagesRequest(chunk=archive[off:off + 16 * 1024])

        loaded = images.LoadImages(chunks(), timeout=60)
        assert [i.id for i in loaded.images] == [app.id]
        # Several calls on one connection: the client's HPACK dynamic table is in use.
        for _ in range(5):
            got = images.ListImages(pb.images_pb2.ListImagesRequest(all=True), timeout=30)
            assert [(i.id, list(i.repo_tags)) for i in got.images] == [(app.id, ["localhost/da/app:1"])]
    finally:
        ch.close()


def test_default_channel_cri_list_images(pb, cri_pb, tmp_path):
    d = CriDaemon(tmp_path, store="memory")
    ch = grpc.insecure_channel("unix://" + str(d.socket))
    try:
        native = pb.images_pb2_grpc.ImageServiceStub(ch)
        app = UserImage(["da-cri"], names=["localhost/da/cri:1"])
        load(pb, native, [app])
        cri = cri_pb.api_pb2_grpc.ImageServiceStub(ch)
        got = cri.ListImages(cri_pb.api_pb2.ListImagesRequest(), timeout=30)
        assert [(i.id, list(i.repo_tags)) for i in got.images] == [(app.id, ["localhost/da/cri:1"])]
    finally:
        ch.close()
        code = d.stop()
        assert code == 0, f"imaged exited {code} after SIGTERM:\n{d.log()}"


def test_explicit_localhost_authority_still_works(pb, channel):
    # The ``channel`` fixture sets grpc.default_authority=localhost (the advice before).
    images = pb.images_pb2_grpc.ImageServiceStub(channel)
    got = images.ListImages(pb.images_pb2.ListImagesRequest(all=True), timeout=30)
    assert list(got.images) == []
