"""The CRI runtime.v1.ImageService from a Python grpcio client (stubs generated from
proto/runtime/v1/api.proto at test time) over the unix socket: listing, status, removal,
ImageFsInfo, PullImage, StreamImages, plus the critest image cases."""

from __future__ import annotations

import json
import os
import time

import grpc
import pytest

import imaged_support as support
from cri_support import (  # noqa: F401  (cri_pb and cri_env are fixtures)
    CRI_SERVICE,
    UserImage,
    chain_id,
    cri_env,
    cri_pb,
    load,
)


def spec(cri_pb, image: str):
    return cri_pb.api_pb2.ImageSpec(image=image)


def list_all(cri_pb, env, **kw):
    return list(env.cri.ListImages(cri_pb.api_pb2.ListImagesRequest(**kw), timeout=30).images)


def status(cri_pb, env, image: str, verbose: bool = False):
    req = cri_pb.api_pb2.ImageStatusRequest(image=spec(cri_pb, image), verbose=verbose)
    return env.cri.ImageStatus(req, timeout=30)


def remove(cri_pb, env, image: str):
    return env.cri.RemoveImage(cri_pb.api_pb2.RemoveImageRequest(image=spec(cri_pb, image)), timeout=30)


def native_list(pb, env):
    return {i.id: i for i in env.native.ListImages(pb.images_pb2.ListImagesRequest(all=True), timeout=30).images}


def register(pb, env, cid: str, image: str, state: str):
    st = getattr(pb.containers_pb2, f"CONTAINER_STATE_{state}")
    env.ctrs.RegisterContainer(
        pb.containers_pb2.RegisterContainerRequest(id=cid, image=image, state=st), timeout=10
    )


# --------------------------------------------------------------------------- ListImages


def test_list_nil_filter_and_empty_image_list_everything_once(pb, cri_pb, cri_env):
    env = cri_env()
    app = UserImage(["l-app"], names=["localhost/cri/app:1", "localhost/cri/app:2", "quay.io/x/app:3"])
    other = UserImage(["l-other"], names=["localhost/cri/other:1"])
    loose = UserImage(["l-loose"])
    load(pb, env.native, [app, other, loose])

    nil = list_all(cri_pb, env)
    empty = list_all(cri_pb, env, filter=cri_pb.api_pb2.ImageFilter(image=spec(cri_pb, "")))
    no_spec = list_all(cri_pb, env, filter=cri_pb.api_pb2.ImageFilter())
    assert sorted(i.id for i in nil) == sorted([app.id, other.id, loose.id])
    assert nil == empty == no_spec
    assert len({i.id for i in nil}) == len(nil), "one entry per image ID"

    native = native_list(pb, env)
    by_id = {i.id: i for i in nil}
    a = by_id[app.id]
    assert sorted(a.repo_tags) == sorted(app.names)
    assert all("@sha256:" in d for d in a.repo_digests)
    repos = sorted({d.split("@")[0] for d in a.repo_digests})
    assert repos == ["localhost/cri/app", "quay.io/x/app"], a.repo_digests
    assert list(a.repo_digests) == list(native[app.id].repo_digests)
    for i in nil:
        assert i.size > 0 and i.size == native[i.id].size, i
        assert not i.pinned
    l = by_id[loose.id]
    assert list(l.repo_tags) == [] and list(l.repo_digests) == [], "no names: crictl calls it dangling"


def test_list_with_a_reference_returns_that_image_only(pb, cri_pb, cri_env):
    env = cri_env()
    a = UserImage(["f-a"], names=["localhost/cri/a:1"])
    b = UserImage(["f-b"], names=["localhost/cri/b:1"])
    load(pb, env.native, [a, b])
    for ref in ["localhost/cri/a:1", "cri/a:1", a.id, a.id[7:19]]:
        got = list_all(cri_pb, env, filter=cri_pb.api_pb2.ImageFilter(image=spec(cri_pb, ref)))
        assert [i.id for i in got] == [a.id], ref
    absent = cri_pb.api_pb2.ImageFilter(image=spec(cri_pb, "localhost/cri/none:1"))
    assert list_all(cri_pb, env, filter=absent) == []


def test_one_image_with_n_repo_tags(pb, cri_pb, cri_env):
    # critest "listImage should get exactly 3 repoTags in the result image".
    env = cri_env()
    names = ["localhost/cri/three:a", "localhost/cri/three:b", "localhost/cri/three:c"]
    img = UserImage(["three"], names=names)
    load(pb, env.native, [img])
    got = list_all(cri_pb, env)
    assert len(got) == 1 and got[0].id == img.id
    assert sorted(got[0].repo_tags) == names


@pytest.mark.parametrize(
    "user, uid, username",
    [
        ("1234", 1234, ""),
        ("1000:1000", 1000, ""),
        ("0", 0, ""),
        ("www-data", None, "www-data"),
        ("nobody:nogroup", None, "nobody"),
        ("", None, ""),
    ],
)
def test_uid_and_username_follow_containerd(pb, cri_pb, cri_env, user, uid, username):
    env = cri_env()
    img = UserImage(["u"], names=["localhost/cri/user:1"], user=user)
    load(pb, env.native, [img])
    for got in (list_all(cri_pb, env)[0], status(cri_pb, env, img.id).image):
        assert got.id == img.id
        if uid is None:
            assert not got.HasField("uid"), got
        else:
            assert got.HasField("uid") and got.uid.value == uid, got
        assert got.username == username


# --------------------------------------------------------------------------- ImageStatus


def test_status_by_every_kind_of_reference_is_identical(pb, cri_pb, cri_env):
    # critest "image status should support all kinds of references".
    env = cri_env()
    img = UserImage(["s-1", "s-2"], names=["localhost/cri/status:1", "localhost/cri/status:2"], user="42")
    load(pb, env.native, [img])
    listed = list_all(cri_pb, env)[0]
    digest_ref = next(d for d in listed.repo_digests if d.startswith("localhost/cri/status@"))
    refs = [
        img.id,  # full ID
        img.id[7:],  # bare hex
        img.id[7:19],  # unique ID prefix
        "localhost/cri/status:1",  # tag
        "localhost/cri/status:2",  # another tag
        "cri/status:1",  # short name (localhost/ candidate)
        digest_ref,  # repo digest
        "localhost/cri/status:1@" + digest_ref.split("@")[1],  # tag and digest: tag dropped
    ]
    answers = [status(cri_pb, env, r) for r in refs]
    for r, a in zip(refs, answers):
        assert a.HasField("image"), r
        assert a.image == listed, f"{r}: {a.image} != {listed}"
        assert dict(a.info) == {}, "info only when verbose"


def test_status_of_an_absent_image_is_ok_without_image(pb, cri_pb, cri_env):
    env = cri_env()
    load(pb, env.native, [UserImage(["present"], names=["localhost/cri/present:1"])])
    for ref in ["localhost/cri/absent:1", "sha256:" + "0" * 64, "absent", "localhost/cri/present:2"]:
        r = status(cri_pb, env, ref)
        assert not r.HasField("image"), ref
        assert dict(r.info) == {}


def test_status_verbose_info_carries_the_image_config(pb, cri_pb, cri_env):
    env = cri_env()
    img = UserImage(["v-1", "v-2"], names=["localhost/cri/verbose:1"], labels={"k": "v"}, user="7")
    load(pb, env.native, [img])
    r = status(cri_pb, env, "localhost/cri/verbose:1", verbose=True)
    assert r.image.id == img.id
    assert set(r.info) == {"info"}
    info = json.loads(r.info["info"])
    assert info["imageSpec"] == json.loads(img.config())
    assert info["chainID"] == chain_id(img.diff_ids())
    assert info["chainID"] != img.diff_ids()[-1], "two layers: the chain differs from the last diff ID"


def test_blank_references_are_invalid_argument(pb, cri_pb, cri_env):
    env = cri_env()
    for call in (lambda: status(cri_pb, env, ""), lambda: remove(cri_pb, env, "  ")):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert support.error_info(e.value)["domain"] == "imaged.io"


# --------------------------------------------------------------------------- RemoveImage


def test_remove_by_one_tag_removes_all_tags(pb, cri_pb, cri_env):
    # critest "remove by one tag removes all tags"; across repositories too (k8s 1.36).
    env = cri_env()
    img = UserImage(["r-all"], names=["localhost/cri/rm:1", "localhost/cri/rm:2", "quay.io/y/rm:3"])
    keep = UserImage(["r-keep"], names=["localhost/cri/keep:1"])
    load(pb, env.native, [img, keep])
    assert remove(cri_pb, env, "localhost/cri/rm:2") == cri_pb.api_pb2.RemoveImageResponse()
    for ref in img.names + [img.id]:
        assert not status(cri_pb, env, ref).HasField("image"), ref
    assert [i.id for i in list_all(cri_pb, env)] == [keep.id]
    assert set(native_list(pb, env)) == {keep.id}


def test_remove_by_id_removes_every_name(pb, cri_pb, cri_env):
    # Unlike podman (MULTIPLE_NAMES without force), CRI removal by ID takes all names.
    env = cri_env()
    img = UserImage(["r-id"], names=["localhost/cri/byid:1", "localhost/cri/byid:2"])
    load(pb, env.native, [img])
    remove(cri_pb, env, img.id)
    assert list_all(cri_pb, env) == []


def test_remove_of_an_absent_image_is_ok(pb, cri_pb, cri_env):
    env = cri_env()
    img = UserImage(["r-twice"], names=["localhost/cri/twice:1"])
    load(pb, env.native, [img])
    remove(cri_pb, env, img.id)
    # Idempotent: again by ID, by name, and something never seen.
    for ref in [img.id, "localhost/cri/twice:1", "localhost/cri/never:1", "sha256:" + "1" * 64]:
        assert remove(cri_pb, env, ref) == cri_pb.api_pb2.RemoveImageResponse(), ref


def test_running_container_blocks_removal_stopped_ones_do_not(pb, cri_pb, cri_env):
    env = cri_env()
    img = UserImage(["r-run"], names=["localhost/cri/run:1"])
    load(pb, env.native, [img])
    register(pb, env, "ctr-running", img.id, "RUNNING")
    register(pb, env, "ctr-stopped", img.id, "STOPPED")
    with pytest.raises(grpc.RpcError) as e:
        remove(cri_pb, env, "localhost/cri/run:1")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = support.error_info(e.value)
    assert info["reason"] == "CONTAINER_RUNNING", info
    assert status(cri_pb, env, img.id).HasField("image"), "nothing removed"

    env.ctrs.SetContainerState(
        pb.containers_pb2.SetContainerStateRequest(
            id="ctr-running", state=pb.containers_pb2.CONTAINER_STATE_STOPPED
        ),
        timeout=10,
    )
    remove(cri_pb, env, "localhost/cri/run:1")
    assert list_all(cri_pb, env) == []
    left = env.ctrs.ListContainers(pb.containers_pb2.ListContainersRequest(), timeout=10)
    assert list(left.containers) == [], "container records of a removed image go with it"


def test_remove_child_keeps_parent_and_shared_layers(pb, cri_pb, cri_env):
    env = cri_env()
    base = UserImage(["c-base"], names=["localhost/cri/base:1"])
    child = UserImage(["c-base", "c-child"], names=["localhost/cri/child:1"])
    load(pb, env.native, [base, child])
    remove(cri_pb, env, "localhost/cri/child:1")
    got = list_all(cri_pb, env)
    assert [i.id for i in got] == [base.id]
    assert status(cri_pb, env, "localhost/cri/base:1").image == got[0]


# --------------------------------------------------------------------------- others


@pytest.mark.parametrize("store", ["memory", "local"])
def test_image_fs_info_always_answers(pb, cri_pb, cri_env, store):
    env = cri_env(store=store)
    before = time.time_ns()
    empty = env.cri.ImageFsInfo(cri_pb.api_pb2.ImageFsInfoRequest(), timeout=30)
    assert len(empty.image_filesystems) == 1 and list(empty.container_filesystems) == []
    fs = empty.image_filesystems[0]
    assert fs.HasField("used_bytes") and fs.HasField("inodes_used"), "kubelet dereferences them"
    assert before <= fs.timestamp <= time.time_ns(), "nanoseconds since the epoch"
    mount = fs.fs_id.mountpoint
    assert os.path.isabs(mount) and os.path.isdir(mount) and os.path.realpath(mount) == mount
    if store == "local":
        assert mount == os.path.realpath(env.daemon.root), "the store's real directory"

    img = UserImage(["fs-1", "fs-2"], names=["localhost/cri/fs:1"])
    load(pb, env.native, [img])
    fs2 = env.cri.ImageFsInfo(cri_pb.api_pb2.ImageFsInfoRequest(), timeout=30).image_filesystems[0]
    size = list_all(cri_pb, env)[0].size
    assert fs2.used_bytes.value - fs.used_bytes.value == size
    assert fs2.inodes_used.value - fs.inodes_used.value == 4, "manifest, config, two layers"
    assert fs2.timestamp >= fs.timestamp and fs2.fs_id.mountpoint == mount


def test_pull_reaches_the_registry_client_and_never_echoes_credentials(pb, cri_pb, cri_env):
    """PullImage goes to the daemon's registry client: a registry nobody listens on is
    UNAVAILABLE / REGISTRY_UNREACHABLE, with or without AuthConfig, and neither the
    password nor the `auth` string comes back in the status."""
    import base64
    import socket

    env = cri_env()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ref = f"127.0.0.1:{port}/cri/none:1"
    secret = "pa55-PYTHON-secret"
    auth = base64.b64encode(f"bob:{secret}".encode()).decode()
    for cfg in [None,
                cri_pb.api_pb2.AuthConfig(username="bob", password=secret),
                cri_pb.api_pb2.AuthConfig(auth=auth, server_address=f"127.0.0.1:{port}")]:
        req = cri_pb.api_pb2.PullImageRequest(image=spec(cri_pb, ref))
        if cfg is not None:
            req.auth.CopyFrom(cfg)
        with pytest.raises(grpc.RpcError) as e:
            env.cri.PullImage(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value.details()
        info = support.error_info(e.value)
        assert info["reason"] == "REGISTRY_UNREACHABLE", info
        shown = repr(e.value.details()) + repr(e.value.trailing_metadata())
        assert secret not in shown and auth not in shown
    assert list_all(cri_pb, env) == []
    assert secret not in env.daemon.log() and auth not in env.daemon.log()


def test_stream_images_matches_list_images(pb, cri_pb, cri_env):
    env = cri_env()
    assert list(env.cri.StreamImages(cri_pb.api_pb2.StreamImagesRequest(), timeout=30)) == []
    imgs = [UserImage([f"st-{i}"], names=[f"localhost/cri/st:{i}"]) for i in range(3)]
    load(pb, env.native, imgs)
    batches = list(env.cri.StreamImages(cri_pb.api_pb2.StreamImagesRequest(), timeout=30))
    assert batches and all(len(b.images) >= 1 for b in batches)
    streamed = [i for b in batches for i in b.images]
    assert sorted(streamed, key=lambda i: i.id) == sorted(list_all(cri_pb, env), key=lambda i: i.id)
    one = cri_pb.api_pb2.ImageFilter(image=spec(cri_pb, "localhost/cri/st:1"))
    got = list(env.cri.StreamImages(cri_pb.api_pb2.StreamImagesRequest(filter=one), timeout=30))
    assert [i.id for b in got for i in b.images] == [imgs[1].id]


def test_health_reports_the_cri_service(cri_env):
    env = cri_env()
    check = env.channel.unary_unary("/grpc.health.v1.Health/Check")
    name = CRI_SERVICE.encode()
    # HealthCheckRequest{service = 1}; SERVING is status = 1.
    assert check(bytes([0x0A, len(name)]) + name, timeout=10) == b"\x08\x01"
    with pytest.raises(grpc.RpcError) as e:
        other = b"runtime.v1.RuntimeService"
        check(bytes([0x0A, len(other)]) + other, timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, "imaged is no runtime"


# --------------------------------------------------------------------------- PullImage with AuthConfig


def auth_registry() -> dict[str, str]:
    """The password registry the Rust side (tests/e2e/python.rs) started for this run:
    TLS with its own CA and htpasswd basic auth, one image pushed into it."""
    keys = ["HOST", "CA", "USER", "PASSWORD", "IMAGE", "IMAGE_ID"]
    missing = [k for k in keys if not os.environ.get(f"E2E_AUTH_REGISTRY_{k}")]
    assert not missing, (
        f"E2E_AUTH_REGISTRY_{missing} unset: run this suite through "
        "`cargo test -p imaged-tests --test e2e python`, which starts the registry"
    )
    return {k.lower(): os.environ[f"E2E_AUTH_REGISTRY_{k}"] for k in keys}


def test_kubelet_pull_with_auth_config_from_a_password_registry(pb, cri_pb, cri_env, tmp_path):
    """kubelet's PullImage with AuthConfig (username/password, or the `auth` string of a
    docker config) against a real TLS + htpasswd registry answers the image ID; without or
    with wrong credentials it is PERMISSION_DENIED / REGISTRY_UNAUTHORIZED and stores
    nothing; ImageStatus, ListImages and RemoveImage then see the image as crictl does."""
    import base64
    import shutil

    reg = auth_registry()
    home = tmp_path / "home"
    certs = home / ".config" / "containers" / "certs.d" / reg["host"]
    certs.mkdir(parents=True)
    shutil.copy(reg["ca"], certs / "ca.crt")
    env = cri_env(environ={"HOME": str(home)})
    ref = f"{reg['host']}/{reg['image']}"
    api = cri_pb.api_pb2

    def pull(auth=None):
        req = api.PullImageRequest(image=spec(cri_pb, ref))
        if auth is not None:
            req.auth.CopyFrom(auth)
        return env.cri.PullImage(req, timeout=60)

    for bad in [None,
                api.AuthConfig(username=reg["user"], password="wrong-password"),
                api.AuthConfig(username="mallory", password=reg["password"])]:
        with pytest.raises(grpc.RpcError) as e:
            pull(bad)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, e.value.details()
        assert support.error_info(e.value)["reason"] == "REGISTRY_UNAUTHORIZED"
    assert list_all(cri_pb, env) == []

    good = api.AuthConfig(username=reg["user"], password=reg["password"],
                          server_address=reg["host"])
    assert pull(good).image_ref == reg["image_id"]
    got = status(cri_pb, env, ref).image
    assert got.id == reg["image_id"] and list(got.repo_tags) == [ref], got
    assert [i.id for i in list_all(cri_pb, env)] == [reg["image_id"]]
    remove(cri_pb, env, ref)
    assert not status(cri_pb, env, ref).HasField("image")
    assert list_all(cri_pb, env) == []

    encoded = base64.b64encode(f"{reg['user']}:{reg['password']}".encode()).decode()
    assert pull(api.AuthConfig(auth=encoded, server_address=reg["host"])).image_ref == reg["image_id"]
    assert status(cri_pb, env, reg["image_id"]).image.id == reg["image_id"]
    log = env.daemon.log()
    assert reg["password"] not in log and encoded not in log

    # Without AuthConfig, on a node whose daemon has the credentials stored (podman login).
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {reg["host"]: {"auth": encoded}}}))
    node = cri_env(environ={"HOME": str(home), "REGISTRY_AUTH_FILE": str(authfile)})
    req = api.PullImageRequest(image=spec(cri_pb, ref))
    assert node.cri.PullImage(req, timeout=60).image_ref == reg["image_id"]
    assert [i.id for i in list_all(cri_pb, node)] == [reg["image_id"]]
    assert encoded not in node.daemon.log()
