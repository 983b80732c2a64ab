"""imaged from a Python gRPC client: list / tag / rm / prune / load and error details."""

from __future__ import annotations

import grpc
import pytest

import imaged_support as support
from imaged_support import Image

CHUNK = 16 * 1024


def load(pb, images, archive: bytes):
    """Streams ``archive`` to LoadImages in chunks."""
    def requests():
        for off in range(0, len(archive), CHUNK):
            yield pb.images_pb2.LoadImagesRequest(chunk=archive[off:off + CHUNK])
    return images.LoadImages(requests(), timeout=60)


def listed(pb, images, **kw):
    return images.ListImages(pb.images_pb2.ListImagesRequest(all=True, **kw), timeout=30)


def ids(resp) -> list[str]:
    return [i.id for i in resp.images]


def test_health_over_raw_bytes(channel):
    # No stubs needed: HealthCheckRequest{} is empty; SERVING is status = 1.
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    assert check(b"", timeout=10) == b"\x08\x01"


def test_load_list_tag_remove(pb, images):
    app = Image(["py-app"], names=["localhost/py/app:1"])
    resp = load(pb, images, support.gz(support.docker_archive([app])))
    assert [(i.id, list(i.names)) for i in resp.images] == [(app.id, ["localhost/py/app:1"])]
    assert resp.bytes_received > 0

    got = listed(pb, images)
    assert ids(got) == [app.id] and got.total_size == 1
    img = got.images[0]
    assert list(img.repo_tags) == ["localhost/py/app:1"] and img.size > 0 and not img.dangling

    tag = images.TagImage(pb.images_pb2.TagImageRequest(source=app.id, names=["pyextra"]), timeout=10)
    assert tag.image_id == app.id and list(tag.names) == ["localhost/pyextra:latest"]

    rm = images.RemoveImage(pb.images_pb2.RemoveImageRequest(reference="pyextra"), timeout=10)
    assert [r.WhichOneof("record") for r in rm.records] == ["untagged"]
    assert rm.records[0].untagged == "localhost/pyextra:latest"

    rm = images.RemoveImage(pb.images_pb2.RemoveImageRequest(reference="localhost/py/app:1"), timeout=10)
    assert [(r.WhichOneof("record"), getattr(r, r.WhichOneof("record"))) for r in rm.records] == [
        ("untagged", "localhost/py/app:1"),
        ("deleted", app.id),
    ]
    assert rm.reclaimed_bytes > 0
    assert ids(listed(pb, images)) == []


def test_prune_dangling_then_all(pb, images):
    named = Image(["py-named"], names=["localhost/py/named:1"])
    loose = Image(["py-loose"])
    load(pb, images, support.docker_archive([named, loose]))
    dry = images.PruneImages(pb.images_pb2.PruneImagesRequest(dry_run=True), timeout=30)
    assert list(dry.deleted_images) == [loose.id]
    sizes = {i.id: i.size for i in listed(pb, images).images}
    assert sorted(ids(listed(pb, images))) == sorted([named.id, loose.id])
    assert [(d.id, d.size) for d in dry.deleted] == [(loose.id, sizes[loose.id])]
    real = images.PruneImages(pb.images_pb2.PruneImagesRequest(), timeout=30)
    assert real.deleted == dry.deleted
    assert list(real.deleted_images) == [loose.id] and real.reclaimed_bytes == dry.reclaimed_bytes
    assert ids(listed(pb, images)) == [named.id]
    every = images.PruneImages(pb.images_pb2.PruneImagesRequest(all=True), timeout=30)
    assert list(every.deleted_images) == [named.id]
    assert list(every.untagged) == ["localhost/py/named:1"]


def test_parent_pruned_with_child(pb, images):
    base = Image(["py-base"])
    child = Image(["py-base", "py-child"], names=["localhost/py/child:1"])
    load(pb, images, support.docker_archive([base, child]))
    top = listed(pb, images, filters=["reference=localhost/py/child"]).images[0]
    assert top.parent_id == base.id
    rm = images.RemoveImage(pb.images_pb2.RemoveImageRequest(reference="localhost/py/child:1"), timeout=10)
    assert [r.deleted for r in rm.records if r.WhichOneof("record") == "deleted"] == [child.id, base.id]


def test_paging_returns_each_image_once(pb, images):
    imgs = [Image([f"page-{i}"], names=[f"localhost/py/page:{i}"], created=f"2024-01-0{i + 1}T00:00:00Z") for i in range(5)]
    load(pb, images, support.docker_archive(imgs))
    seen, token, pages = [], "", 0
    while True:
        page = listed(pb, images, page_size=2, page_token=token)
        assert page.total_size == 5
        seen += ids(page)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [i.id for i in reversed(imgs)], "created descending, each once"
    assert pages == 3
    with pytest.raises(grpc.RpcError) as e:
        listed(pb, images, page_size=-1)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_not_found_carries_error_info(pb, images):
    with pytest.raises(grpc.RpcError) as e:
        images.RemoveImage(pb.images_pb2.RemoveImageRequest(reference="nope:1"), timeout=10)
    err = e.value
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "nope:1: image not known" in err.details()
    info = support.error_info(err)
    assert info["reason"] == "IMAGE_NOT_KNOWN" and info["domain"] == "imaged.io"
    assert info["metadata"].get("reference") == "nope:1"
    # The hand-written reader (used when googleapis-common-protos is missing) agrees.
    assert support.parse_error_info(support.error_info_value(err)) == info
    # The reason is one of imaged.v1.ErrorReason's names without the prefix.
    assert "ERROR_REASON_" + info["reason"] in pb.errors_pb2.ErrorReason.keys()
    # The trailer's status agrees with the call's status.
    status = support.rich_status(err)
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0] and status.message == err.details()
    via_grpcio_status = support.grpcio_status_decode(err)
    if via_grpcio_status is not None:
        assert via_grpcio_status.code == status.code
        assert [d.type_url for d in via_grpcio_status.details] == [d.type_url for d in status.details]

    ok = images.RemoveImage(pb.images_pb2.RemoveImageRequest(reference="nope:1", ignore_missing=True), timeout=10)
    assert list(ok.records) == []


def test_blank_reference_is_invalid_argument(pb, images):
    with pytest.raises(grpc.RpcError) as e:
        images.RemoveImage(pb.images_pb2.RemoveImageRequest(reference=""), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image name cannot be blank" in e.value.details()
    assert support.error_info(e.value)["reason"] == "INVALID_REFERENCE"


def test_malformed_filter_has_bad_request(pb, images):
    with pytest.raises(grpc.RpcError) as e:
        listed(pb, images, filters=["dangling=true", "json"])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert support.error_info(e.value)["reason"] == "INVALID_FILTER"
    types = [d.type_url for d in support.rich_status(e.value).details]
    assert "type.googleapis.com/google.rpc.BadRequest" in types
    bad = next(d for d in support.rich_status(e.value).details if d.type_url.endswith("BadRequest"))
    assert b"filters[1]" in bad.value


@pytest.mark.parametrize("tamper", ["garbage", "truncated", "digest"])
def test_bad_archives_store_nothing(pb, images, tamper):
    keep = Image(["py-keep"], names=["localhost/py/keep:1"])
    load(pb, images, support.docker_archive([keep]))
    before = listed(pb, images)
    good = support.docker_archive([Image(["py-bad"], names=["localhost/py/bad:1"])])
    data = {
        "garbage": bytes(range(256)) * 64,
        "truncated": good[: len(good) // 2],
        "digest": support.docker_archive([Image(["py-bad"], names=["localhost/py/bad:1"])], tamper=True),
    }[tamper]
    with pytest.raises(grpc.RpcError) as e:
        load(pb, images, data)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert support.error_info(e.value)["reason"] == "INVALID_ARCHIVE"
    assert listed(pb, images) == before


def test_image_in_use_is_failed_precondition(pb, images, containers):
    img = Image(["py-used"], names=["localhost/py/used:1"])
    load(pb, images, support.docker_archive([img]))
    ctr = containers.RegisterContainer(
        pb.containers_pb2.RegisterContainerRequest(image="localhost/py/used:1"), timeout=10
    ).container
    assert ctr.image_id == img.id and len(ctr.id) == 64
    with pytest.raises(grpc.RpcError) as e:
        images.RemoveImage(pb.images_pb2.RemoveImageRequest(reference="localhost/py/used:1"), timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = support.error_info(e.value)
    assert info["reason"] == "IMAGE_IN_USE" and ctr.id in info["metadata"].get("container_ids", "")
    types = [d.type_url for d in support.rich_status(e.value).details]
    assert "type.googleapis.com/google.rpc.PreconditionFailure" in types

    rm = images.RemoveImage(
        pb.images_pb2.RemoveImageRequest(reference="localhost/py/used:1", force=True), timeout=10
    )
    assert list(rm.removed_containers) == [ctr.id]
    assert list(containers.ListContainers(pb.containers_pb2.ListContainersRequest(), timeout=10).containers) == []


def test_remove_images_reports_each_result_and_error(pb, images, containers):
    """One RemoveImages call with mixed outcomes: a removal, an unknown reference, an
    image in use and an untag each get their own result; the batch goes on past the
    failures; sizes and podman's exit code come with it."""
    two = Image(["py-batch-two"], names=["localhost/py/two:1", "localhost/py/two:2"])
    gone = Image(["py-batch-gone"], names=["localhost/py/gone:1"])
    used = Image(["py-batch-used"], names=["localhost/py/used:1"])
    load(pb, images, support.docker_archive([two, gone, used]))
    containers.RegisterContainer(
        pb.containers_pb2.RegisterContainerRequest(image="localhost/py/used:1"), timeout=10
    )
    refs = ["localhost/py/gone:1", "localhost/py/nope:1", "localhost/py/used:1", "localhost/py/two:1"]
    resp = images.RemoveImages(pb.images_pb2.RemoveImagesRequest(references=refs), timeout=30)

    assert [r.reference for r in resp.results] == refs
    ok, missing, in_use, untag = resp.results
    assert [(r.WhichOneof("record"), getattr(r, r.WhichOneof("record"))) for r in ok.records] == [
        ("untagged", "localhost/py/gone:1"),
        ("deleted", gone.id),
    ]
    assert not ok.HasField("error")
    assert [(d.id, d.size > 0) for d in ok.deleted] == [(gone.id, True)]
    assert ok.reclaimed_bytes > 0
    assert missing.error.reason == "IMAGE_NOT_KNOWN"
    assert missing.error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "image not known" in missing.error.message and not missing.records
    assert in_use.error.reason == "IMAGE_IN_USE"
    assert in_use.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert in_use.error.image_id == used.id
    assert [r.untagged for r in untag.records] == ["localhost/py/two:1"] and not untag.deleted
    assert resp.reclaimed_bytes == ok.reclaimed_bytes
    assert resp.exit_code == 2, "an image in use: podman rmi exits 2"
    assert sorted(ids(listed(pb, images))) == sorted([two.id, used.id])

    # A dry run of everything: reported like the real call, nothing changed.
    dry = images.RemoveImages(
        pb.images_pb2.RemoveImagesRequest(all=True, force=True, dry_run=True), timeout=30
    )
    assert sorted(d.id for r in dry.results for d in r.deleted) == sorted([two.id, used.id])
    assert dry.exit_code == 0
    assert sorted(ids(listed(pb, images))) == sorted([two.id, used.id])

    with pytest.raises(grpc.RpcError) as e:
        images.RemoveImages(pb.images_pb2.RemoveImagesRequest(references=["x"], all=True), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
