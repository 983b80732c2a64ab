"""Regenerates the *-unix-client.bin fixtures of src/authority.rs: the bytes real gRPC
clients send on a unix socket before any answer but an empty SETTINGS frame.

    python3 capture.py    # needs grpcio and grpcurl on PATH; writes into this directory

grpcio-unix-client.bin: grpc.insecure_channel("unix://…") with default options, two
ListImages calls on one connection (each times out; the second uses the HPACK dynamic
table). :authority is the %-encoded socket path, sent literally.
grpcurl-unix-client.bin: grpcurl 1.8 -plaintext -unix (reflection request); :authority
is the raw socket path, Huffman-coded.
"""

import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
EMPTY_SETTINGS = bytes.fromhex("000000040000000000")


def capture(path: str, client) -> bytes:
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    data = bytearray()

    def accept():
        conn, _ = srv.accept()
        conn.sendall(EMPTY_SETTINGS)
        conn.settimeout(2)
        try:
            while chunk := conn.recv(65536):
                data.extend(chunk)
        except OSError:
            pass
        conn.close()

    t = threading.Thread(target=accept)
    t.start()
    client(path)
    t.join()
    srv.close()
    return bytes(data)


def grpcio_client(path: str) -> None:
    ch = grpc.insecure_channel("unix://" + path)
    call = ch.unary_unary("/imaged.v1.ImageService/ListImages")
    for _ in range(2):
        try:
            call(b"", timeout=0.5)
        except grpc.RpcError:
            pass


def grpcurl_client(path: str) -> None:
    subprocess.run(
        ["grpcurl", "-plaintext", "-unix", "-max-time", "1", path,
         "imaged.v1.ImageService/ListImages"],
        capture_output=True,
    )


with tempfile.TemporaryDirectory() as tmp:
    run = Path(tmp) / "run" / "imaged"
    run.mkdir(parents=True)
    (HERE / "grpcio-unix-client.bin").write_bytes(capture(str(run / "imaged.sock"), grpcio_client))
    (HERE / "grpcurl-unix-client.bin").write_bytes(capture(str(run / "g.sock"), grpcurl_client))
