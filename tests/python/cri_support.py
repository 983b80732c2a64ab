"""Support code of the CRI suite (test_cri*.py): a daemon started with a config file,
stubs generated from proto/runtime/v1/api.proto, images with a config user, and a
protobuf reader for the wire checks.

Independent of the Rust code like imaged_support: stubs come from grpcio-tools at test
time, archives from tarfile/hashlib.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

import imaged_support as support

CRI_SERVICE = "runtime.v1.ImageService"
CHUNK = 16 * 1024


# --------------------------------------------------------------------------- daemon


class CriDaemon(support.Daemon):
    """imaged on a unix socket in ``workdir`` with ``--config <workdir>/imaged.toml``
    holding ``config`` (TOML text). Same ready-line protocol and stop() as
    imaged_support.Daemon."""

    def __init__(self, workdir: Path, store: str = "memory", config: str = "",
                 extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.socket = workdir / "imaged.sock"
        self.root = workdir / "root"
        self.log_path = workdir / "imaged.log"
        config_path = workdir / "imaged.toml"
        config_path.write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGED_")}
        env.update(extra_env or {})
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(support.imaged_binary()),
                "--config", str(config_path),
                "--store", store,
                "--root", str(self.root),
                "--listen", f"unix://{self.socket}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=support.START_LIMIT_S)
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"no ready line within {support.START_LIMIT_S}s:\n{self.log()}")
            if line is None:
                self.stop()
                raise RuntimeError(f"imaged exited before it was ready:\n{self.log()}")
            if line.startswith(support.READY_PREFIX):
                self.url = line[len(support.READY_PREFIX):].strip()
                break


# --------------------------------------------------------------------------- stubs


def generate_cri_stubs(out: Path):
    """``python -m grpc_tools.protoc`` on proto/runtime/v1/api.proto into ``out``; returns
    an object with ``api_pb2`` and ``api_pb2_grpc``."""
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{support.REPO / 'proto'}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        "runtime/v1/api.proto",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"protoc failed ({done.returncode}):\n{done.stderr}")
    sys.path.insert(0, str(out))

    class Stubs:
        pass

    stubs = Stubs()
    for name in ("api_pb2", "api_pb2_grpc"):
        setattr(stubs, name, importlib.import_module(f"runtime.v1.{name}"))
    return stubs


# --------------------------------------------------------------------------- images


@dataclass
class UserImage(support.Image):
    """An image whose config names a default user (``config.User``) when ``user`` is set."""

    user: str = ""

    def config(self) -> bytes:
        cfg = json.loads(super().config())
        if self.user:
            cfg["config"]["User"] = self.user
        return json.dumps(cfg, sort_keys=True).encode()

    def diff_ids(self) -> list[str]:
        return [support.sha256(layer) for layer in self.layers()]


def chain_id(diff_ids: list[str]) -> str:
    """The OCI chain ID: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    chain = diff_ids[0]
    for d in diff_ids[1:]:
        chain = support.sha256(f"{chain} {d}".encode())
    return chain


def load(pb, native, images: list[support.Image]) -> list[str]:
    """Loads ``images`` through imaged.v1 LoadImages (docker-archive); their IDs."""
    archive = support.docker_archive(images)

    def requests():
        for off in range(0, len(archive), CHUNK):
            yield pb.images_pb2.LoadImagesRequest(chunk=archive[off:off + CHUNK])

    resp = native.LoadImages(requests(), timeout=60)
    return [i.id for i in resp.images]


# --------------------------------------------------------------------------- wire


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of every field of a message, in wire order; varint and
    length-delimited only (all the CRI image messages use)."""
    return [(num, val) for num, _, val in support._fields(buf)]


def field_numbers(buf: bytes) -> set[int]:
    return {num for num, _ in fields(buf)}


def values(buf: bytes, num: int) -> list:
    return [v for n, v in fields(buf) if n == num]


def one(buf: bytes, num: int):
    v = values(buf, num)
    assert len(v) == 1, f"field {num} once in {fields(buf)}"
    return v[0]


def ld(num: int, payload: bytes) -> bytes:
    """A length-delimited field (payloads < 128 bytes)."""
    assert len(payload) < 128
    return bytes([(num << 3) | 2, len(payload)]) + payload


# --------------------------------------------------------------------------- fixtures
# Imported by the test_cri*.py modules (`from cri_support import cri_pb, cri_env`).

PAUSE_PATTERN = "localhost/k8s/pause:*"
DEFAULT_CONFIG = f'pinned_images = ["{PAUSE_PATTERN}"]\n'


@dataclass
class Env:
    """A running daemon with its channel and the three stubs."""

    daemon: CriDaemon
    channel: grpc.Channel
    cri: object  # runtime.v1.ImageService stub
    native: object  # imaged.v1.ImageService stub
    ctrs: object  # imaged.v1.ContainerService stub

    def raw(self, method: str, body: bytes, timeout: float = 30) -> bytes:
        """Calls ``/runtime.v1.ImageService/<method>`` with raw request bytes; the reply's bytes."""
        call = self.channel.unary_unary(f"/{CRI_SERVICE}/{method}")
        return call(body, timeout=timeout)


@pytest.fixture(scope="session")
def cri_pb(tmp_path_factory):
    """The generated CRI modules: cri_pb.api_pb2, cri_pb.api_pb2_grpc."""
    return generate_cri_stubs(tmp_path_factory.mktemp("cri_stubs"))


@pytest.fixture
def cri_env(pb, cri_pb, tmp_path):
    """A factory: ``cri_env(store="memory", config=DEFAULT_CONFIG, environ=None)`` starts a
    daemon (each call in its own directory, ``environ`` added to its environment) and returns
    an Env; every daemon is stopped at teardown and must exit 0."""
    started: list[Env] = []

    def start(store: str = "memory", config: str = DEFAULT_CONFIG,
              environ: dict[str, str] | None = None) -> Env:
        workdir = tmp_path / f"d{len(started)}"
        workdir.mkdir()
        d = CriDaemon(workdir, store=store, config=config, extra_env=environ)
        # The authority option older daemons required (default channels: SPEC §10 and
        # test_default_authority.py).
        ch = grpc.insecure_channel(d.url, options=[("grpc.default_authority", "localhost")])
        env = Env(
            daemon=d,
            channel=ch,
            cri=cri_pb.api_pb2_grpc.ImageServiceStub(ch),
            native=pb.images_pb2_grpc.ImageServiceStub(ch),
            ctrs=pb.containers_pb2_grpc.ContainerServiceStub(ch),
        )
        started.append(env)
        return env

    yield start
    for env in started:
        env.channel.close()
        code = env.daemon.stop()
        assert code == 0, f"imaged exited {code} after SIGTERM:\n{env.daemon.log()}"
