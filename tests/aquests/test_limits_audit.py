"""Client limits that had a default but no test crossing them (the limits audit).

gRPC's ``MAX_MESSAGE_SIZE`` (4 MiB, per received message), against a real grpcio server: a bigger reply is
a clear protocol error naming the limit, the module setting is honoured, and the next call still works.
"""
from __future__ import annotations

from concurrent import futures

import pytest

grpc = pytest.importorskip("grpc")

import aquests  # noqa: E402
from aquests import codes  # noqa: E402
from aquests.rpc import grpc as agrpc  # noqa: E402

from .protos import routeguide_pb2 as pb  # noqa: E402
from .protos import routeguide_pb2_grpc as pb_grpc  # noqa: E402

SERVICE = pb.DESCRIPTOR.services_by_name["RouteGuide"]


class Sized(pb_grpc.RouteGuideServicer):
    """GetFeature answers a name of ``latitude`` bytes."""

    def GetFeature(self, request, context):
        return pb.Feature(name="n" * request.latitude)


@pytest.fixture(scope="module")
def grpc_url():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.max_send_message_length", -1)])
    pb_grpc.add_RouteGuideServicer_to_server(Sized(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)


async def test_a_reply_over_the_default_4_mib_is_a_protocol_error_and_the_next_call_works(grpc_url):
    assert agrpc.MAX_MESSAGE_SIZE == 4 * 1024 * 1024
    stub = aquests.aio.grpc(grpc_url, service=SERVICE)
    r = await stub.GetFeature(pb.Point(latitude=4 * 1024 * 1024 + 10), timeout=5)
    assert r.status_code == codes.PROTOCOL_ERROR and "exceeds the 4194304-byte limit" in r.reason, r.reason
    r = await stub.GetFeature(pb.Point(latitude=4 * 1024 * 1024 - 100), timeout=5)   # just under: fine
    assert r.ok and len(r.data.name) == 4 * 1024 * 1024 - 100
    await aquests.aio.close()


async def test_the_module_setting_is_read_at_call_time(grpc_url, monkeypatch):
    # before: the default was bound when the class was defined, so the documented setting did nothing
    monkeypatch.setattr(agrpc, "MAX_MESSAGE_SIZE", 1000)
    stub = aquests.aio.grpc(grpc_url, service=SERVICE)
    r = await stub.GetFeature(pb.Point(latitude=2000), timeout=5)
    assert r.status_code == codes.PROTOCOL_ERROR and "exceeds the 1000-byte limit" in r.reason, r.reason
    r = await stub.GetFeature(pb.Point(latitude=900), timeout=5)
    assert r.ok and r.data.name == "n" * 900
    await aquests.aio.close()
