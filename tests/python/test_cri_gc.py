"""Pinned images and a kubelet-style image GC walk against the CRI face.

kubelet's image GC (pkg/kubelet/images/image_gc_manager.go): ListImages (nil filter),
skip images in use and images with ``pinned``, order the rest least-recently-used first
(never-used first), RemoveImage by ``Image.id`` until the sum of the removed
``Image.size`` reaches the amount to free, and read the disk numbers from
``ImageFsInfo.image_filesystems[0]``. kubelet learns "in use" and "last used" from the
runtime; here the runtime's role is played by imaged's own container records
(ContainerService) and ``last_used``.
"""

from __future__ import annotations

import os

import grpc
import pytest

from cri_support import (  # noqa: F401  (cri_pb and cri_env are fixtures)
    UserImage,
    cri_env,
    cri_pb,
    load,
)

PIN_CONFIG = 'pinned_images = ["localhost/k8s/pause:*", "docker.io/library/exact:1"]\n'


def cri_list(cri_pb, env):
    return {i.id: i for i in env.cri.ListImages(cri_pb.api_pb2.ListImagesRequest(), timeout=30).images}


def native_list(pb, env):
    return {i.id: i for i in env.native.ListImages(pb.images_pb2.ListImagesRequest(all=True), timeout=30).images}


def fs_info(cri_pb, env):
    resp = env.cri.ImageFsInfo(cri_pb.api_pb2.ImageFsInfoRequest(), timeout=30)
    return resp.image_filesystems[0]


def register(pb, env, cid: str, image: str, state: str):
    st = getattr(pb.containers_pb2, f"CONTAINER_STATE_{state}")
    env.ctrs.RegisterContainer(
        pb.containers_pb2.RegisterContainerRequest(id=cid, image=image, state=st), timeout=10
    )


def unregister(pb, env, cid: str):
    env.ctrs.UnregisterContainer(pb.containers_pb2.UnregisterContainerRequest(id=cid), timeout=10)


# --------------------------------------------------------------------------- pinned


def test_pinned_by_config_and_labels_never_pruned(pb, cri_pb, cri_env):
    env = cri_env(config=PIN_CONFIG)
    by_glob = UserImage(["p-glob"], names=["localhost/k8s/pause:3.10"])
    by_exact = UserImage(["p-exact"], names=["docker.io/library/exact:1"])
    near_miss = UserImage(["p-near"], names=["docker.io/library/exact:2"])
    containerd_label = UserImage(["p-ctrd"], labels={"io.cri-containerd.pinned": "pinned"})
    imaged_label = UserImage(["p-imaged"], labels={"io.imaged.pinned": "true"})
    wrong_value = UserImage(["p-wrong"], labels={"io.imaged.pinned": "false"})
    dangling = UserImage(["p-dangling"])
    pinned = {by_glob.id, by_exact.id, containerd_label.id, imaged_label.id}
    everything = [by_glob, by_exact, near_miss, containerd_label, imaged_label, wrong_value, dangling]
    load(pb, env.native, everything)

    cri = cri_list(cri_pb, env)
    native = native_list(pb, env)
    assert {i for i, img in cri.items() if img.pinned} == pinned
    assert {i for i, img in native.items() if img.pinned} == pinned, "both APIs agree"

    # Default prune (dangling only): the label-pinned dangling images stay.
    r = env.native.PruneImages(pb.images_pb2.PruneImagesRequest(), timeout=30)
    assert sorted(r.deleted_images) == sorted([wrong_value.id, dangling.id])
    # Prune everything unused: only the pinned ones stay.
    r = env.native.PruneImages(pb.images_pb2.PruneImagesRequest(all=True), timeout=30)
    assert list(r.deleted_images) == [near_miss.id]
    assert set(cri_list(cri_pb, env)) == pinned

    # The pin only advises GC: an explicit CRI RemoveImage still removes the image.
    env.cri.RemoveImage(
        cri_pb.api_pb2.RemoveImageRequest(image=cri_pb.api_pb2.ImageSpec(image="localhost/k8s/pause:3.10")),
        timeout=30,
    )
    assert set(cri_list(cri_pb, env)) == pinned - {by_glob.id}


# --------------------------------------------------------------------------- GC walk


def kubelet_gc(pb, cri_pb, env, amount_to_free: int) -> tuple[list[str], int]:
    """One kubelet ``freeSpace`` run: the IDs removed in order and the bytes kubelet
    believes it freed (the sum of their ``Image.size``)."""
    images = cri_list(cri_pb, env)  # detectImages: ListImages with a nil filter
    ctrs = env.ctrs.ListContainers(pb.containers_pb2.ListContainersRequest(), timeout=10).containers
    in_use = {c.image_id for c in ctrs}
    last_used = {
        i: (img.last_used.ToNanoseconds() if img.HasField("last_used") else 0)
        for i, img in native_list(pb, env).items()
    }
    # imagesInEvictionOrder: not in use, not pinned; LRU first (never used = time zero).
    candidates = sorted(
        (i for i, img in images.items() if i not in in_use and not img.pinned),
        key=lambda i: (last_used.get(i, 0), i),
    )
    removed, freed = [], 0
    for i in candidates:
        if freed >= amount_to_free:
            break
        # freeImage → RemoveImage(ImageSpec{image: <Image.id>}) only.
        env.cri.RemoveImage(
            cri_pb.api_pb2.RemoveImageRequest(image=cri_pb.api_pb2.ImageSpec(image=i)), timeout=30
        )
        removed.append(i)
        freed += images[i].size
    return removed, freed


def test_kubelet_style_gc_walk_frees_what_it_counts(pb, cri_pb, cri_env):
    env = cri_env(store="local")
    pause = UserImage(["gc-pause"], names=["localhost/k8s/pause:3.10"])
    sandbox = UserImage(["gc-sandbox"], names=["localhost/gc/sandbox:1"],
                        labels={"io.cri-containerd.pinned": "pinned"})
    never = UserImage(["gc-never"], names=["localhost/gc/never:1"])
    old = UserImage(["gc-old-1", "gc-old-2"], names=["localhost/gc/old:1", "localhost/gc/old:2"])
    mid = UserImage(["gc-mid"], names=["localhost/gc/mid:1"])
    new = UserImage(["gc-new"], names=["localhost/gc/new:1"])
    busy = UserImage(["gc-busy"], names=["localhost/gc/busy:1"])
    load(pb, env.native, [pause, sandbox, never, old, mid, new, busy])

    # Usage history: old, then mid, then new ran and exited; busy and pause run now.
    for n, img in enumerate([old, mid, new]):
        register(pb, env, f"done-{n}", img.id, "STOPPED")
        unregister(pb, env, f"done-{n}")
    register(pb, env, "web", busy.id, "RUNNING")
    register(pb, env, "sandbox", pause.id, "RUNNING")

    fs = fs_info(cri_pb, env)
    assert os.path.realpath(fs.fs_id.mountpoint) == fs.fs_id.mountpoint
    assert fs.fs_id.mountpoint == os.path.realpath(env.daemon.root)
    sizes = {i: img.size for i, img in cri_list(cri_pb, env).items()}
    assert all(s > 0 for s in sizes.values())

    # Free just over never + old: kubelet must also take mid, and stop there.
    removed, freed = kubelet_gc(pb, cri_pb, env, sizes[never.id] + sizes[old.id] + 1)
    assert removed == [never.id, old.id, mid.id]
    assert freed == sizes[never.id] + sizes[old.id] + sizes[mid.id]
    after = fs_info(cri_pb, env)
    assert fs.used_bytes.value - after.used_bytes.value == freed, "Image.size is what removal frees"
    assert fs.inodes_used.value - after.inodes_used.value == 3 + 4 + 3, "every blob of the three"
    assert set(cri_list(cri_pb, env)) == {pause.id, sandbox.id, new.id, busy.id}

    # DeleteUnusedImages (freeSpace(MaxInt64)): everything unused and unpinned goes.
    removed, freed = kubelet_gc(pb, cri_pb, env, 2**63 - 1)
    assert removed == [new.id]
    final = fs_info(cri_pb, env)
    assert after.used_bytes.value - final.used_bytes.value == freed == sizes[new.id]
    assert set(cri_list(cri_pb, env)) == {pause.id, sandbox.id, busy.id}

    # What kubelet never does, refused anyway: the running image cannot go.
    with pytest.raises(grpc.RpcError) as e:
        env.cri.RemoveImage(
            cri_pb.api_pb2.RemoveImageRequest(image=cri_pb.api_pb2.ImageSpec(image=busy.id)), timeout=30
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert fs_info(cri_pb, env).used_bytes.value == final.used_bytes.value


def test_shared_layers_are_freed_with_their_last_image(pb, cri_pb, cri_env):
    # Image.size counts shared blobs too (like containerd); the bytes of a shared layer
    # are freed when its last image goes, so the sum over a full GC still matches.
    env = cri_env(store="local")
    a = UserImage(["sh-base", "sh-a"], names=["localhost/sh/a:1"])
    b = UserImage(["sh-base", "sh-b"], names=["localhost/sh/b:1"])
    load(pb, env.native, [a, b])
    sizes = {i: img.size for i, img in cri_list(cri_pb, env).items()}
    start = fs_info(cri_pb, env).used_bytes.value
    removed, freed = kubelet_gc(pb, cri_pb, env, 2**63 - 1)
    assert sorted(removed) == sorted([a.id, b.id])
    shared = len(a.layers()[0])
    assert freed == sizes[a.id] + sizes[b.id]
    assert start - fs_info(cri_pb, env).used_bytes.value == freed - shared
