"""imaged.v1.GcService from a Python gRPC client: the policy set and read back, a dry run."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2

import imaged_support as support
from imaged_support import Image

CHUNK = 16 * 1024


def load(pb, images, archive: bytes):
    def requests():
        for off in range(0, len(archive), CHUNK):
            yield pb.images_pb2.LoadImagesRequest(chunk=archive[off:off + CHUNK])
    return images.LoadImages(requests(), timeout=60)


def test_gc_policy_and_dry_run(pb, images, gc):
    # Two tags of one repository: keep_tags=1 keeps the newer (by creation time).
    old = Image(["py-gc-old"], names=["localhost/py/gc:1"], created="2024-01-01T00:00:00Z")
    new = Image(["py-gc-new"], names=["localhost/py/gc:2"], created="2024-02-01T00:00:00Z")
    load(pb, images, support.docker_archive([old, new]))

    g = pb.gc_pb2
    # Thresholds and a budget that the memory store (no filesystem, a few kB) never
    # crosses, so the daemon's GC loop does not run on its own; every image is unused.
    policy = g.GcPolicy(
        high=g.GcThreshold(percent=85),
        low=g.GcThreshold(percent=80),
        budget_bytes=1 << 40,
        max_unused=duration_pb2.Duration(nanos=1),
        keep_tags=1,
        min_age=duration_pb2.Duration(),
        interval=duration_pb2.Duration(seconds=300),
    )
    stored = gc.SetGcPolicy(g.SetGcPolicyRequest(policy=policy), timeout=10)
    assert stored == policy
    got = gc.GetGcPolicy(g.GetGcPolicyRequest(), timeout=10)
    assert got == policy
    assert got.high.WhichOneof("value") == "percent" and got.high.percent == 85
    assert got.HasField("min_age") and got.min_age.ToNanoseconds() == 0
    assert got.max_unused.ToNanoseconds() == 1

    dry = gc.RunGc(g.RunGcRequest(dry_run=True), timeout=30)
    assert [c.image_id for c in dry.chosen] == [old.id]
    choice = dry.chosen[0]
    assert list(choice.names) == ["localhost/py/gc:1"]
    assert choice.reason == g.GC_REASON_UNUSED
    assert choice.unused_for.ToNanoseconds() > 0 and choice.HasField("last_used")
    assert choice.bytes_freed > 0 and dry.planned_bytes == choice.bytes_freed
    assert list(dry.triggers) == [] and dry.need_bytes == 0
    assert dry.reached and list(dry.blocked) == []
    assert dry.HasField("result")
    assert list(dry.result.deleted_images) == [old.id]
    assert list(dry.result.untagged) == ["localhost/py/gc:1"]
    assert dry.result.reclaimed_bytes == dry.planned_bytes
    assert list(dry.result.errors) == []
    assert dry.store_bytes > 0 and dry.fs_capacity_bytes == 0

    # Nothing was deleted.
    listed = images.ListImages(pb.images_pb2.ListImagesRequest(all=True), timeout=30)
    assert sorted(i.id for i in listed.images) == sorted([old.id, new.id])

    # A percentage above 100 is refused and the policy stays.
    with pytest.raises(grpc.RpcError) as e:
        gc.SetGcPolicy(g.SetGcPolicyRequest(policy=g.GcPolicy(high=g.GcThreshold(percent=101))), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert gc.GetGcPolicy(g.GetGcPolicyRequest(), timeout=10) == policy
