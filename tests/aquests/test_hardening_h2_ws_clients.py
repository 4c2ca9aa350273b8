"""HTTP/2 and WebSocket clients against misbehaving servers, over real sockets.

Each server here is a few lines of the ``h2`` package (server side) or raw WebSocket framing
on an asyncio socket, doing one wrong thing; the client must answer with a clear 7xx, within
the call's timeout, without buffering without bound or keeping a broken connection.
"""
from __future__ import annotations

import asyncio
import socket
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

import aquests
from aquests import codes


class BadH2(asyncio.Protocol):
    """An h2 server calling ``on_request(server, stream_id, headers)`` for each request."""

    def __init__(self, on_request, settings: dict | None = None, read: bool = True) -> None:
        self.on_request = on_request
        self.settings = settings or {}
        self.read = read
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False))
        self.transport: asyncio.Transport | None = None
        self.requests: list[int] = []
        self.busy: set[int] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.h2.initiate_connection()
        if self.settings:
            self.h2.update_settings(self.settings)
        self.flush()
        if not self.read:
            transport.pause_reading()
            self.on_request(self, 0, [])

    def data_received(self, data: bytes) -> None:
        for ev in self.h2.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                self.requests.append(ev.stream_id)
                self.on_request(self, ev.stream_id, ev.headers)
        self.flush()

    def flush(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self.h2.data_to_send())


class Servers:
    """Starts BadH2 servers on the test's loop and closes them (and the client pools) at the end."""

    def __init__(self) -> None:
        self.servers: list[asyncio.AbstractServer] = []
        self.protocols: list[BadH2] = []

    async def start(self, on_request, **kw) -> str:
        def make():
            p = BadH2(on_request, **kw)
            self.protocols.append(p)
            return p
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a server that does not read fills fast
        sock.bind(("127.0.0.1", 0))
        srv = await asyncio.get_running_loop().create_server(make, sock=sock)
        self.servers.append(srv)
        return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        for p in self.protocols:
            if p.transport is not None:
                p.transport.abort()
        for s in self.servers:
            s.close()


@pytest.fixture
async def h2srv():
    s = Servers()
    yield s
    s.close()
    await aquests.aio.close()


def _ok(server: BadH2, sid: int, body: bytes = b"ok", extra=()) -> None:
    server.h2.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))] + list(extra))
    server.h2.send_data(sid, body, end_stream=True)


# -- HTTP/2 ----------------------------------------------------------------------------------

async def test_h2_upload_into_a_window_that_never_opens_times_out(h2srv):
    url = await h2srv.start(lambda *a: None, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    async with aquests.Session(http2=True, timeout=0.5) as s:
        t0 = time.monotonic()
        r = await s.post(url + "/", data=b"x" * 200_000)
        assert r.status_code == codes.TIMEOUT and time.monotonic() - t0 < 3, r.reason


async def test_h2_streams_closed_unread_give_their_bytes_back_to_the_connection_window(h2srv):
    """A stream that fails (or is closed) with body bytes buffered: those bytes count against the
    connection's window until acknowledged. Five such 1 MiB answers overrun our 4 MiB connection window,
    so without giving them back the next answer on the connection could never arrive."""
    def serve(server, sid, headers):
        path = dict(headers).get(b":path", b"")
        server.h2.send_headers(sid, [(":status", "200")])
        if path == b"/broken":
            for _ in range(64):
                room = min(16384, server.h2.local_flow_control_window(sid))
                if room:
                    server.h2.send_data(sid, b"x" * room)
            server.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        else:
            body = b"fine" * 1000
            room = min(len(body), server.h2.local_flow_control_window(sid))
            server.h2.send_data(sid, body[:room], end_stream=room == len(body))
    url = await h2srv.start(serve)
    async with aquests.Session(http2=True, timeout=3) as s:
        for _ in range(5):
            r = await s.get(url + "/broken", stream=True)
            await asyncio.sleep(0.05)             # the DATA and the reset arrive; nothing reads them
            r.stream.close()
        r = await s.get(url + "/ok")
        assert r.status_code == 200 and r.content == b"fine" * 1000, r.reason
        assert len(h2srv.protocols) == 1          # all on one connection


async def test_h2_status_that_is_not_a_number_is_a_protocol_error(h2srv):
    def bad(server, sid, _h):
        server.h2.send_headers(sid, [(":status", "abc")], end_stream=True)
    url = await h2srv.start(bad)
    async with aquests.Session(http2=True, timeout=5) as s:
        r = await s.get(url + "/")
        assert r.status_code == codes.PROTOCOL_ERROR, r.reason


@pytest.mark.parametrize("method, status", [("GET", 200), ("POST", codes.CONNECTION_CLOSED)])
async def test_h2_goaway_resends_only_idempotent_requests_it_did_not_process(h2srv, method, status):
    def goaway_after_two(server, sid, _h):
        if server is not h2srv.protocols[0]:
            _ok(server, sid, b"again")
        elif len(server.requests) == 2:
            first = server.requests[0]
            _ok(server, first)
            server.h2.close_connection(last_stream_id=first)
            server.flush()
            server.transport.close()
    url = await h2srv.start(goaway_after_two)
    async with aquests.Session(http2=True, timeout=5) as s:
        r1, r2 = await asyncio.gather(s.request(method, url + "/1", data=b"a"),
                                      s.request(method, url + "/2", data=b"b"))
        assert r1.status_code == 200 and r2.status_code == status, r2.reason
        if method == "GET":
            assert r2.content == b"again" and len(h2srv.protocols) == 2
        else:
            assert "GOAWAY" in r2.reason and "before acting on stream 3" in r2.reason
        assert all(c.reusable for p in s.client.pools.pools.values() for c in p.h2conns)


async def test_h2_ping_flood_from_a_server_not_reading_our_answers_drops_the_connection(h2srv):
    from hyperframe.frame import PingFrame

    def answer_then_flood(server, sid, headers):
        if dict(headers).get(b":path") == b"/flood":
            server.transport.pause_reading()  # it reads none of our PING answers
            server.transport.write(PingFrame(0, opaque_data=b"12345678").serialize() * 20_000)
        else:
            _ok(server, sid)
    url = await h2srv.start(answer_then_flood)
    async with aquests.Session(http2=True, timeout=5) as s:
        assert (await s.get(url + "/")).status_code == 200
        (conn,) = [c for p in s.client.pools.pools.values() for c in p.h2conns]
        # small buffers make "the server reads nothing" show within a few KiB
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        conn.transport.set_write_buffer_limits(high=4096)
        r = await s.get(url + "/flood")
        assert r.status_code == codes.PROTOCOL_ERROR and "floods PING" in r.reason, r.reason
        assert conn.closed and conn.transport.get_write_buffer_size() < 100_000
        assert (await s.get(url + "/")).status_code == 200  # on a new connection


async def test_h2_many_requests_to_a_one_stream_server_are_not_refused(h2srv):
    def one_at_a_time(server, sid, _h):
        if server.busy:
            server.h2.reset_stream(sid, 7)  # REFUSED_STREAM, as a server enforcing its limit does
            return
        server.busy.add(sid)

        def done():
            server.busy.discard(sid)
            _ok(server, sid)
            server.flush()
        asyncio.get_running_loop().call_later(0.02, done)
    url = await h2srv.start(one_at_a_time, settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    async with aquests.Session(http2=True, timeout=5) as s:
        rs = await asyncio.gather(*(s.get(url + f"/{i}") for i in range(8)))
        assert [r.status_code for r in rs] == [200] * 8, [r.reason for r in rs]


async def test_h2_server_allowing_no_streams_fails_clearly_and_keeps_no_connection(h2srv):
    url = await h2srv.start(lambda server, sid, h: _ok(server, sid),
                            settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0})
    async with aquests.Session(http2=True, timeout=2) as s:
        rs = await asyncio.gather(*(s.get(url + f"/{i}") for i in range(5)))
        assert all(r.status_code == codes.PROTOCOL_ERROR for r in rs)
        assert s.client.pools.count() == 0

