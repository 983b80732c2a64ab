"""Fixtures: generated stubs (once per session), a fresh daemon and channel per test."""

from __future__ import annotations

import grpc
import pytest

import imaged_support as support


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The generated modules: pb.images_pb2, pb.images_pb2_grpc, pb.containers_pb2,
    pb.gc_pb2, …"""
    return support.generate_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture
def daemon(tmp_path):
    d = support.Daemon(tmp_path, store="memory")
    yield d
    code = d.stop()
    assert code == 0, f"imaged exited {code} after SIGTERM:\n{d.log()}"
    assert not d.socket.exists(), "socket left behind after a graceful stop"


@pytest.fixture
def channel(daemon):
    # With the authority option older daemons required; test_default_authority.py covers
    # default channels (C-core then sends the %-encoded socket path; SPEC §10).
    ch = grpc.insecure_channel(daemon.url, options=[("grpc.default_authority", "localhost")])
    yield ch
    ch.close()


@pytest.fixture
def images(pb, channel):
    return pb.images_pb2_grpc.ImageServiceStub(channel)


@pytest.fixture
def containers(pb, channel):
    return pb.containers_pb2_grpc.ContainerServiceStub(channel)


@pytest.fixture
def gc(pb, channel):
    return pb.gc_pb2_grpc.GcServiceStub(channel)
