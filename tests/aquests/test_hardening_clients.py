"""Bad and dying servers against the DB and RPC clients: clear failures, no hangs, no leaks.

Each test plays one misbehaving peer over a real socket (a small asyncio server written here, or
a real PostgreSQL/grpcio server made to misbehave) and checks the client's answer and that its
pool goes on with a fresh connection.
"""
from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from concurrent import futures

import pytest

import aquests
from aquests import codes
from aquests.dbapi.resp import NOT_READY, RespReader

from .http_support import raw_server

pytestmark = pytest.mark.usefixtures("close_pools")


async def _tcp_server(handle) -> tuple[asyncio.AbstractServer, str]:
    async def guarded(reader, writer):
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
    srv = await asyncio.start_server(guarded, "127.0.0.1", 0)
    return srv, f"127.0.0.1:{srv.sockets[0].getsockname()[1]}"


# -- PostgreSQL -------------------------------------------------------------------------------

async def test_pg_backend_killed_mid_query_does_not_steal_a_reused_socket_number(pg_server):
    """libpq closes the socket when the server goes away; the number must not stay watched by
    us, or the next socket given that number is never polled and our cleanup unregisters it."""
    db = aquests.aio.postgresql(pg_server.server, "postgres", ("postgres", ""), pool_size=1, timeout=5)
    admin = aquests.aio.postgresql(pg_server.server, "template1", ("postgres", ""))
    pid = (await db.execute("SELECT pg_backend_pid() AS pid")).data[0].pid
    fd = db.pool._idle[0][0]._fd

    async def echo(reader, writer):
        while data := await reader.read(100):
            writer.write(data)
            await writer.drain()
    srv, addr = await _tcp_server(echo)
    spare = socket.create_connection(("127.0.0.1", int(addr.split(":")[1])))
    slow = asyncio.ensure_future(db.execute("SELECT pg_sleep(3)"))
    await asyncio.sleep(0.2)
    killer = asyncio.ensure_future(admin.execute("SELECT pg_terminate_backend(%s)", (pid,)))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # until libpq has closed the query's socket
        try:
            os.fstat(fd)
        except OSError:
            break
        await asyncio.sleep(0)
    os.dup2(spare.fileno(), fd)  # another socket gets the number, as a new connection would
    spare.close()
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    try:
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(10), 2) == b"ping"
        r = await slow
        assert r.status_code == codes.CONNECTION_CLOSED, r.reason
        assert (await killer).ok
        writer.write(b"again")  # our cleanup left the new socket's reader alone
        assert await asyncio.wait_for(reader.read(10), 2) == b"again"
    finally:
        writer.close()
        srv.close()
    assert (await db.execute("SELECT 1 AS one")).data[0].one == 1


def _pg_msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


_PG_LOGIN = _pg_msg(b"R", struct.pack("!I", 0)) + b"".join(
    _pg_msg(b"S", k + b"\0" + v + b"\0") for k, v in (
        (b"server_version", b"15.0"), (b"server_encoding", b"UTF8"), (b"client_encoding", b"UTF8"),
        (b"DateStyle", b"ISO, MDY"), (b"integer_datetimes", b"on"), (b"standard_conforming_strings", b"on"))
) + _pg_msg(b"K", struct.pack("!II", 1, 2)) + _pg_msg(b"Z", b"I")


def _pg_rows(value: bytes) -> bytes:
    desc = struct.pack("!H", 1) + b"x\0" + struct.pack("!IHIhih", 0, 0, 23, 4, -1, 0)
    row = struct.pack("!H", 1) + struct.pack("!i", len(value)) + value
    return _pg_msg(b"T", desc) + _pg_msg(b"D", row) + _pg_msg(b"C", b"SELECT 1\0") + _pg_msg(b"Z", b"I")


async def _fake_postgres(on_query) -> tuple[asyncio.AbstractServer, str]:
    """A PostgreSQL wire server: trust login, then ``on_query(writer, n)`` for the n-th query."""
    seen = [0]

    async def handle(reader, writer):
        while True:  # SSLRequest ("N": no TLS), then the startup message
            body = await reader.readexactly(struct.unpack("!I", await reader.readexactly(4))[0] - 4)
            if struct.unpack("!I", body[:4])[0] != 80877103:
                break
            writer.write(b"N")
        writer.write(_PG_LOGIN)
        while True:
            kind = await reader.readexactly(1)
            await reader.readexactly(struct.unpack("!I", await reader.readexactly(4))[0] - 4)
            if kind == b"X":
                return
            seen[0] += 1
            await on_query(writer, seen[0])
    return await _tcp_server(handle)


async def test_pg_protocol_violation_drops_the_connection():
    """A message libpq does not know, with the real rows coming late: reusing that connection
    would hand the late rows of query 1 to query 2."""
    async def on_query(writer, n):
        if n == 1:
            writer.write(_pg_msg(b"!", b"xx") + _pg_msg(b"Z", b"I"))
            await asyncio.sleep(0.2)
            writer.write(_pg_rows(b"1"))  # late: arrives while query 2 waits, if on this connection
        writer.write(_pg_rows(b"2"))
    srv, addr = await _fake_postgres(on_query)
    try:
        db = aquests.aio.postgresql(addr, "db", ("u", "p"), pool_size=1, timeout=3)
        bad = await db.execute("SELECT 1")
        assert bad.status_code == codes.PROTOCOL_ERROR and "unexpected response" in bad.reason
        good = await db.execute("SELECT 2")
        assert good.ok and good.data[0].x == 2 and db.pool.opened == 2
    finally:
        srv.close()


# -- Redis ------------------------------------------------------------------------------------

def test_redis_reader_is_linear_on_a_big_array_arriving_in_pieces():
    """A 200 000-item reply (LRANGE of a big list) fed in 4 KiB reads: it used to be parsed from
    its start on every read, seconds of blocked loop; resumed parsing takes a fraction of that."""
    n = 200_000
    wire = b"*%d\r\n" % n + b":7\r\n" * n
    reader = RespReader()
    started = time.perf_counter()
    for i in range(0, len(wire), 4096):
        reader.feed(wire[i:i + 4096])
        reply = reader.get()
        if i + 4096 < len(wire):
            assert reply is NOT_READY
    assert len(reply) == n and reply[-1] == 7
    assert time.perf_counter() - started < 4  # quadratic: ~20 s here; linear: ~0.3 s
    reader.feed(b"*2\r\n*1\r\n$1\r\na\r\n*0\r\n+OK\r\n")  # nesting still comes out right
    assert reader.get() == [[b"a"], []] and reader.get() == "OK" and reader.get() is NOT_READY


async def test_redis_deeply_nested_reply_is_a_protocol_error():
    async def handle(reader, writer):
        while await reader.read(65536):
            writer.write(b"*1\r\n" * 100_000 + b":1\r\n")
    srv, addr = await _tcp_server(handle)
    try:
        r = aquests.aio.redis(addr, pool_size=1, timeout=3)
        res = await r.get("k")
        assert res.status_code == codes.PROTOCOL_ERROR and "nested" in res.reason
        assert r.pool.idle == 0  # the connection was dropped
    finally:
        srv.close()


# -- MongoDB ----------------------------------------------------------------------------------

async def test_mongo_garbage_and_silent_servers_get_network_codes():
    pytest.importorskip("pymongo")

    async def garbage(reader, writer):
        head = await reader.readexactly(16)
        size, request_id = struct.unpack("<ii", head[:8])
        await reader.readexactly(size - 16)
        writer.write(struct.pack("<iiii", 8, 1, request_id, 2013) + b"x" * 20)  # length < header
        await asyncio.sleep(5)

    async def silent(reader, writer):
        await asyncio.sleep(5)
    for handle, code in ((garbage, codes.PROTOCOL_ERROR), (silent, codes.TIMEOUT)):
        srv, addr = await _tcp_server(handle)
        try:
            r = await aquests.aio.mongodb(addr, "db", timeout=0.6).findone("c", {})
            assert r.status_code == code, r.reason
        finally:
            srv.close()


# -- XML-RPC ----------------------------------------------------------------------------------

async def test_xmlrpc_struct_member_without_name_is_a_protocol_error():
    body = (b"<?xml version='1.0'?><methodResponse><params><param><value><struct><member>"
            b"<value><int>1</int></value></member></struct></value></param></params></methodResponse>")
    html = b"<html><body>502 Bad Gateway</body></html>"
    replies = [b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
               for b in (body, html)]
    async with raw_server(replies) as url:
        r = await aquests.aio.rpc(url + "/rpc2").add(1, 2)
        assert r.status_code == codes.PROTOCOL_ERROR and "incomplete struct member" in r.reason
        r = await aquests.aio.rpc(url + "/rpc2").add(1, 2)
        assert r.status_code == codes.PROTOCOL_ERROR and "not an XML-RPC methodResponse" in r.reason


# -- gRPC -------------------------------------------------------------------------------------

class _FakeH2(asyncio.Protocol):
    """An HTTP/2 server that does ``behaviour(self, stream_id)`` with each request."""

    def __init__(self, behaviour) -> None:
        import h2.config
        import h2.connection
        self.behaviour = behaviour
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.h2.initiate_connection()
        self.flush()

    def data_received(self, data: bytes) -> None:
        import h2.events
        for ev in self.h2.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                self.behaviour(self, ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        self.flush()

    def flush(self) -> None:
        self.transport.write(self.h2.data_to_send())

    def answer(self, sid: int, body: bytes, ctype: str = "application/grpc", end: bool = False) -> None:
        self.h2.send_headers(sid, [(":status", "200"), ("content-type", ctype)])
        if body:
            self.h2.send_data(sid, body, end_stream=end)


async def _fake_grpc(behaviour) -> tuple[asyncio.AbstractServer, str]:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _FakeH2(behaviour), "127.0.0.1", 0)
    return srv, f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


async def test_grpc_stream_obeys_its_timeout_on_a_silent_server():
    pytest.importorskip("google.protobuf")
    from .protos import routeguide_pb2 as pb

    def one_reply_then_silence(server, sid):
        data = pb.Feature(name="first").SerializeToString()
        server.answer(sid, b"\0" + len(data).to_bytes(4, "big") + data)
    srv, url = await _fake_grpc(one_reply_then_silence)
    try:
        stub = aquests.aio.grpc(url, service=pb)
        got = []
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="within the call's timeout"):
            async with asyncio.timeout(5):  # the test's own guard; the call must give up at 0.5 s
                async for feature in stub.ListFeatures.stream(pb.Rectangle(), timeout=0.5):
                    got.append(feature.name)
        assert got == ["first"] and time.monotonic() - started < 3
    finally:
        srv.close()
        await aquests.aio.close()


async def test_grpc_reply_bytes_that_are_not_grpc_are_protocol_errors():
    pytest.importorskip("google.protobuf")
    from .protos import routeguide_pb2 as pb

    def html(server, sid):
        server.answer(sid, b"<html>maintenance</html>", ctype="text/html", end=True)

    def corrupt(server, sid):
        server.answer(sid, b"\0\0\0\0\x05\xff\xff\xff\xff\xff")
        server.h2.send_headers(sid, [("grpc-status", "0")], end_stream=True)
    for behaviour, words in ((html, "not a gRPC answer: content-type 'text/html'"),
                             (corrupt, "not a valid routeguide.Feature")):
        srv, url = await _fake_grpc(behaviour)
        try:
            r = await aquests.aio.grpc(url, service=pb).GetFeature(pb.Point(), timeout=3)
            assert r.status_code == codes.PROTOCOL_ERROR and words in r.reason, r.reason
        finally:
            srv.close()
    await aquests.aio.close()


async def test_grpc_abandoned_stream_frees_its_slot_and_streams_keep_no_raw_copy():
    grpc = pytest.importorskip("grpc")
    from .protos import routeguide_pb2 as pb
    from .protos import routeguide_pb2_grpc as pb_grpc

    class Endless(pb_grpc.RouteGuideServicer):
        def ListFeatures(self, request, context):
            for i in range(request.hi.latitude):
                if not context.is_active():
                    return
                yield pb.Feature(name="x" * 100, location=pb.Point(latitude=i))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_RouteGuideServicer_to_server(Endless(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        async with aquests.Session(http2_streams=2) as s:
            stub = s.grpc(f"http://127.0.0.1:{port}", service=pb)
            for _ in range(3):  # leave a long stream after its first reply
                replies = stub.ListFeatures.stream(pb.Rectangle(hi=pb.Point(latitude=10**6)), timeout=5)
                async for _feature in replies:
                    break
                await replies.aclose()
            conns = [c for p in s.client.pools.pools.values() for c in p.h2conns]
            assert len(conns) == 1 and conns[0].reserved == 0 and not conns[0].streams

            call = await stub.ListFeatures.open(timeout=5)
            await call.send(pb.Rectangle(hi=pb.Point(latitude=500)))
            call.done_writing()
            n = 0
            while await call.read() is not None:
                n += 1
            assert n == 500 and len(call.raw) == 0  # a stream is not copied as it goes
            whole = await stub.ListFeatures(pb.Rectangle(hi=pb.Point(latitude=3)), timeout=5)
            assert len(whole.data) == 3 and len(whole.content) > 300  # whole calls keep content
    finally:
        server.stop(0)
