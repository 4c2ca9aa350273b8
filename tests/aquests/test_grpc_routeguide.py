"""gRPC over HTTP/2 against a real grpcio server: unary, server/client streaming, bidi, errors.

Message classes come from tests/aquests/protos/routeguide.proto (generated with
``python -m grpc_tools.protoc``; the _pb2 files are committed).
"""
from __future__ import annotations

import asyncio
import time
from concurrent import futures

import pytest

grpc = pytest.importorskip("grpc")

import aquests  # noqa: E402
from aquests import codes  # noqa: E402
from aquests.rpc.grpc import GrpcError  # noqa: E402

from .protos import routeguide_pb2 as pb  # noqa: E402
from .protos import routeguide_pb2_grpc as pb_grpc  # noqa: E402

SERVICE = pb.DESCRIPTOR.services_by_name["RouteGuide"]


class Guide(pb_grpc.RouteGuideServicer):
    def GetFeature(self, request, context):
        if request.latitude < 0:
            context.abort(grpc.StatusCode.NOT_FOUND, "no feature at négative latitude")
        if request.latitude == 999:
            time.sleep(2)
        return pb.Feature(name=f"f{request.latitude},{request.longitude}", location=request)

    def ListFeatures(self, request, context):
        for lat in range(request.lo.latitude, request.hi.latitude + 1):
            yield pb.Feature(name=f"lat{lat}" + "x" * 100, location=pb.Point(latitude=lat))

    def RecordRoute(self, request_iterator, context):
        n = dist = 0
        for p in request_iterator:
            n += 1
            dist += abs(p.latitude)
        return pb.RouteSummary(point_count=n, distance=dist)

    def RouteChat(self, request_iterator, context):
        for note in request_iterator:
            yield pb.Note(location=note.location, message=note.message.upper())


@pytest.fixture(scope="module")
def grpc_url():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_RouteGuideServicer_to_server(Guide(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)


def test_standalone_all_four_kinds(grpc_url):
    got = {}
    aquests.configure(workers=4, callback=lambda r: got.__setitem__(r.meta["k"], r))
    stub = aquests.grpc(grpc_url, service=SERVICE)
    stub.GetFeature(pb.Point(latitude=1, longitude=2), meta={"k": "unary"})
    stub.ListFeatures(pb.Rectangle(lo=pb.Point(latitude=1), hi=pb.Point(latitude=5)), meta={"k": "server"})
    stub.RecordRoute([pb.Point(latitude=i) for i in range(1, 5)], meta={"k": "client"})
    stub.RouteChat(iter([pb.Note(message="hi"), pb.Note(message="yo")]), meta={"k": "bidi"})
    aquests.fetchall()
    u = got["unary"]
    assert u.status_code == 200 and u.ok and u.grpc_status == 0 and u.version == "2"
    assert u.data == pb.Feature(name="f1,2", location=pb.Point(latitude=1, longitude=2))
    assert u.url == f"{grpc_url}/routeguide.RouteGuide/GetFeature"
    assert u.trailers["grpc-status"] == "0"
    assert [f.location.latitude for f in got["server"].data] == [1, 2, 3, 4, 5]
    assert got["client"].data == pb.RouteSummary(point_count=4, distance=10)
    assert [n.message for n in got["bidi"].data] == ["HI", "YO"]


async def test_status_and_message_from_trailers(grpc_url):
    stub = aquests.aio.grpc(grpc_url, service=pb)  # the generated module works too
    r = await stub.GetFeature(pb.Point(latitude=-1))
    assert r.grpc_status == 5 and r.grpc_message == "no feature at négative latitude"
    assert not r.ok and r.data is None and isinstance(r.error, GrpcError)
    assert r.reason == "gRPC NOT_FOUND (5): no feature at négative latitude"
    with pytest.raises(aquests.HTTPError, match="NOT_FOUND"):
        r.raise_for_status()


async def test_incremental_streaming(grpc_url):
    async with aquests.Session() as s:
        stub = s.grpc(f"{grpc_url}/routeguide.RouteGuide")  # service named by the URL path
        seen = []
        async for f in stub.ListFeatures.stream(pb.Rectangle(lo=pb.Point(latitude=1), hi=pb.Point(latitude=300))):
            seen.append(f.location.latitude)
        assert seen == list(range(1, 301))

        call = await stub.RouteChat.open()
        replies = []
        for word in ("one", "two", "three"):
            await call.send(pb.Note(message=word))
            replies.append((await call.read()).message)  # each reply before the next send
        call.done_writing()
        assert await call.read() is None
        assert replies == ["ONE", "TWO", "THREE"] and call.status == 0

        async def points():
            for i in range(3):
                await asyncio.sleep(0)
                yield pb.Point(latitude=i)
        r = await stub.RecordRoute(points())
        assert r.data.point_count == 3
        assert s.client.pools.count() == 1  # every call shared one HTTP/2 connection


async def test_deadline_unavailable_and_bad_arguments(grpc_url):
    stub = aquests.aio.grpc(grpc_url, service=SERVICE)
    r = await stub.GetFeature(pb.Point(latitude=999), timeout=0.3)
    assert r.status_code == codes.TIMEOUT or r.grpc_status == 4  # our timer or the server's deadline
    from tests.support.net import free_port
    r = await aquests.aio.grpc(f"http://127.0.0.1:{free_port()}", service=SERVICE).GetFeature(pb.Point())
    assert r.status_code == codes.CONNECTION_REFUSED
    with pytest.raises(TypeError, match="expected a routeguide.Point"):
        aquests.configure()
        aquests.grpc(grpc_url, service=SERVICE).GetFeature(pb.Rectangle())
    with pytest.raises(TypeError, match="client-streaming"):
        aquests.grpc(grpc_url, service=SERVICE).RecordRoute(pb.Point())
    with pytest.raises(AttributeError, match="has no method 'Nope'"):
        getattr(stub, "Nope")  # noqa: B009
    with pytest.raises(ValueError, match="not registered"):
        aquests.aio.grpc(f"{grpc_url}/no.Such")
    with pytest.raises(ValueError, match="needs service="):
        aquests.aio.grpc(grpc_url)


async def test_grpc_to_http1_only_server_fails_cleanly():
    from .http_support import start_app_server
    app = start_app_server()
    try:
        r = await aquests.aio.grpc(app.url, service=SERVICE).GetFeature(pb.Point(), timeout=2)
        assert codes.is_failure(r.status_code)
    finally:
        app.stop()


async def test_bad_message_inside_a_stream_fails_the_call(grpc_url):
    stub = aquests.aio.grpc(grpc_url, service=SERVICE)
    r = await stub.RecordRoute(iter([pb.Point(latitude=1), pb.Rectangle()]), timeout=5)
    assert r.status_code == codes.REQUEST_FAILED and "expected a routeguide.Point" in r.reason
    r = await stub.RecordRoute([pb.Point(latitude=2)])  # the connection is still fine
    assert r.data.point_count == 1


@pytest.fixture(scope="module")
def grpc_tls():
    import trustme
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    creds = grpc.ssl_server_credentials([(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_RouteGuideServicer_to_server(Guide(), server)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        with ca.cert_pem.tempfile() as cafile:
            yield f"https://127.0.0.1:{port}", cafile
    finally:
        server.stop(0)


async def test_grpc_over_tls(grpc_tls):
    url, cafile = grpc_tls
    async with aquests.Session(verify=cafile) as s:
        r = await s.grpc(url, service=SERVICE).GetFeature(pb.Point(latitude=7))
        assert r.ok and r.data.name == "f7,0" and r.version == "2"
    r = await aquests.aio.grpc(url, service=SERVICE).GetFeature(pb.Point(latitude=7))
    assert r.status_code == codes.TLS_FAILED  # the test CA is not trusted by default
