"""Support code of the Python client suite: the daemon, stubs, archives, error details.

Everything here is independent of the Rust code: archives are written with tarfile and
hashlib, stubs are generated from ``proto/`` with grpcio-tools at test time, and the
``google.rpc.Status`` in ``grpc-status-details-bin`` is decoded with grpcio-status when it
is installed, else by a small protobuf reader below.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import queue
import signal
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_PREFIX = "imaged ready: listening on "
START_LIMIT_S = 60
STOP_LIMIT_S = 30


# --------------------------------------------------------------------------- daemon


def imaged_binary() -> Path:
    """The daemon binary: $E2E_IMAGED_BIN (set by the Rust e2e test) or target/debug."""
    env = os.environ.get("E2E_IMAGED_BIN")
    path = Path(env) if env else REPO / "target" / "debug" / "imaged"
    if not path.is_file():
        raise RuntimeError(
            f"imaged not found at {path}: run `cargo build --workspace --bins` first "
            "(scripts/test does) or set E2E_IMAGED_BIN"
        )
    return path


class Daemon:
    """A real imaged on a unix socket in ``workdir``; stop() sends SIGTERM."""

    def __init__(self, workdir: Path, store: str = "memory") -> None:
        self.workdir = workdir
        self.socket = workdir / "imaged.sock"
        self.log_path = workdir / "imaged.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGED_")}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(imaged_binary()),
                "--store", store,
                "--root", str(workdir / "root"),
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
                line = lines.get(timeout=START_LIMIT_S)
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"no ready line within {START_LIMIT_S}s:\n{self.log()}")
            if line is None:
                self.stop()
                raise RuntimeError(f"imaged exited before it was ready:\n{self.log()}")
            if line.startswith(READY_PREFIX):
                self.url = line[len(READY_PREFIX):].strip()
                break

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_LIMIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


# --------------------------------------------------------------------------- stubs


def generate_stubs(out: Path):
    """Runs ``python -m grpc_tools.protoc`` on proto/imaged/v1 into ``out`` and imports
    the modules. timestamp.proto and duration.proto come with grpcio-tools (its
    ``_proto`` directory)."""
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(REPO / "proto")) for p in (REPO / "proto" / "imaged" / "v1").glob("*.proto"))
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{REPO / 'proto'}", f"-I{well_known}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        *protos,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"protoc failed ({done.returncode}):\n{done.stderr}")
    sys.path.insert(0, str(out))
    import importlib

    class Stubs:
        pass

    stubs = Stubs()
    for name in (
        "images_pb2", "images_pb2_grpc", "containers_pb2", "containers_pb2_grpc",
        "gc_pb2", "gc_pb2_grpc", "errors_pb2",
    ):
        setattr(stubs, name, importlib.import_module(f"imaged.v1.{name}"))
    return stubs


# --------------------------------------------------------------------------- archives


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Image:
    """An image for a docker-archive: one layer per seed; children extend the layers."""

    seeds: list[str]
    names: list[str] = field(default_factory=list)
    created: str = "2024-01-01T00:00:00Z"
    labels: dict[str, str] = field(default_factory=dict)

    def layers(self) -> list[bytes]:
        return [_tar({f"{s}.txt": f"py layer {s}\n".encode()}) for s in self.seeds]

    def config(self) -> bytes:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        cfg = {
            "architecture": arch,
            "os": "linux",
            "created": self.created,
            "config": {"Cmd": ["/bin/sh"], "Labels": self.labels},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in self.layers()]},
            "history": [{"created": self.created, "created_by": f"ADD {s}"} for s in self.seeds],
        }
        return json.dumps(cfg, sort_keys=True).encode()

    @property
    def id(self) -> str:
        return sha256(self.config())


def docker_archive(images: list[Image], tamper: bool = False) -> bytes:
    """A docker-archive; ``tamper`` changes the first layer's bytes after hashing."""
    files: dict[str, bytes] = {}
    manifest = []
    for i, img in enumerate(images):
        cfg = img.config()
        cfg_path = sha256(cfg)[7:] + ".json"
        files[cfg_path] = cfg
        paths = []
        for j, layer in enumerate(img.layers()):
            path = sha256(layer)[7:] + "/layer.tar"
            data = layer
            if tamper and i == 0 and j == 0:
                data = _tar({f"{img.seeds[0]}.txt": b"tampered\n"})
            files.setdefault(path, data)
            paths.append(path)
        manifest.append({"Config": cfg_path, "RepoTags": img.names, "Layers": paths})
    files["manifest.json"] = json.dumps(manifest).encode()
    return _tar(files)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# --------------------------------------------------------------------------- errors


@dataclass
class Detail:
    type_url: str
    value: bytes


@dataclass
class RichStatus:
    code: int
    message: str
    details: list[Detail]


def _fields(buf: bytes):
    """Yields (field number, wire type, value) of a protobuf message (varint and
    length-delimited fields only, which is all google.rpc.Status and its details use)."""
    i = 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < len(buf):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            yield num, wire, varint()
        elif wire == 2:
            n = varint()
            yield num, wire, buf[i:i + n]
            i += n
        else:
            raise ValueError(f"unexpected wire type {wire}")


def rich_status(err) -> RichStatus:
    """The google.rpc.Status of a failed call, from its grpc-status-details-bin trailer."""
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        raise AssertionError(f"no grpc-status-details-bin trailer on {err}")
    code, message, details = 0, "", []
    for num, _, val in _fields(raw):
        if num == 1:
            code = val
        elif num == 2:
            message = val.decode()
        elif num == 3:
            any_fields = {n: v for n, _, v in _fields(val)}
            details.append(Detail(any_fields.get(1, b"").decode(), any_fields.get(2, b"")))
    return RichStatus(code, message, details)


def error_info_value(err) -> bytes:
    """The serialized ErrorInfo detail of a failed call."""
    status = rich_status(err)
    infos = [d for d in status.details if d.type_url == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert infos, f"no ErrorInfo among {[d.type_url for d in status.details]}"
    return infos[0].value


def parse_error_info(value: bytes) -> dict:
    """ErrorInfo {reason = 1, domain = 2, map<string,string> metadata = 3} read by hand."""
    out: dict = {"reason": "", "domain": "", "metadata": {}}
    for num, _, val in _fields(value):
        if num == 1:
            out["reason"] = val.decode()
        elif num == 2:
            out["domain"] = val.decode()
        elif num == 3:
            entry = {n: v.decode() for n, _, v in _fields(val)}
            out["metadata"][entry.get(1, "")] = entry.get(2, "")
    return out


def error_info(err) -> dict:
    """The ErrorInfo detail as {reason, domain, metadata}; decoded with
    googleapis-common-protos when installed, else by hand."""
    value = error_info_value(err)
    try:
        from google.rpc import error_details_pb2
    except ImportError:
        return parse_error_info(value)
    info = error_details_pb2.ErrorInfo()
    info.ParseFromString(value)
    return {"reason": info.reason, "domain": info.domain, "metadata": dict(info.metadata)}


def grpcio_status_decode(err):
    """The same status through grpcio-status (None when it is not installed)."""
    try:
        from grpc_status import rpc_status
    except ImportError:
        return None
    return rpc_status.from_call(err)
