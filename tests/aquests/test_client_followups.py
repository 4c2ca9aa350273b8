"""Regressions for three weaknesses the fuzz sweep (test_client_fuzz.py) found; each test failed
before its fix. Real sockets on 127.0.0.1, the clients unmocked, each test on a fresh loop that
must see nothing reach its exception handler (``run``).

1. RESP numbers were parsed with ``int()``: ``$1_0``, ``: 7 ``, ``*+2`` were taken as 10, 7, 2.
2. An HTTP/2 stream error (one malformed response) failed every stream of its connection.
3. A streamed body whose server went quiet raised a ``TimeoutError`` without a message.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Callable

import h2.config
import h2.connection
import h2.events
import pytest

import aquests
from aquests import codes

from .test_client_fuzz import Server, frame, hblock, good_echo, read_command, run, serve_h1, serve_h2, serve_redis


# -- 1. RESP: an optional "-" and ASCII digits, nothing else -----------------------------------
@pytest.mark.parametrize("reply, header", [
    (b"$1_0\r\n0123456789\r\n", b"$1_0"),        # int() reads "1_0" as 10
    (b": 7 \r\n", b": 7 "),                       # int() strips the spaces
    (b"*+2\r\n:1\r\n:2\r\n", b"*+2"),             # int() takes a "+" sign
    (b":+7\r\n", b":+7"),
    (b"$ 3\r\nabc\r\n", b"$ 3"),
    ("$\u0663\r\nabc\r\n".encode(), "$\u0663".encode()),   # a non-ASCII digit (ARABIC-INDIC THREE)
], ids=["underscore", "spaces", "plus-array", "plus-int", "space-bulk", "non-ascii-digit"])
def test_redis_number_headers_are_ascii_digits_only(reply: bytes, header: bytes) -> None:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        await read_command(reader)
        writer.write(reply)
        await writer.drain()
        return True   # then serves well on this very connection: a reuse of it would go unnoticed

    async def main() -> None:
        async with Server(hostile, serve_redis) as bad:
            db = aquests.aio.redis(f"127.0.0.1:{bad.port}", timeout=3)
            r = await db.execute("ECHO", "hostile")
            assert r.status_code == codes.PROTOCOL_ERROR, (r.status_code, r.reason, r.data)
            assert repr(header) in r.reason and "ASCII digits" in r.reason, r.reason
            await good_echo(db, "after")
            assert bad.conns == 2, "the connection that sent the bad header was pooled"
    run(main)


# -- 2. HTTP/2: a stream error resets that stream only (RFC 9113 5.4.2) ------------------------
def _broken_answer(conn: h2.connection.H2Connection, sid: int, kind: str) -> bytes:
    """Queue one malformed response on stream ``sid`` (h2 does not check what a server sends here);
    what h2 refuses to send comes back as raw bytes to write after h2's."""
    if kind == "body-over-content-length":
        conn.send_headers(sid, [(b":status", b"200"), (b"content-length", b"5")])
        conn.send_data(sid, b"0123456789", end_stream=True)
    elif kind == "body-under-content-length":
        conn.send_headers(sid, [(b":status", b"200"), (b"content-length", b"10")])
        conn.send_data(sid, b"01234", end_stream=True)
    elif kind == "bad-content-length":
        conn.send_headers(sid, [(b":status", b"200"), (b"content-length", b"abc")])
        conn.send_data(sid, b"abc", end_stream=True)
    elif kind == "trailers-without-end-stream":
        conn.send_headers(sid, [(b":status", b"200")])
        conn.send_data(sid, b"abc")
        return frame(1, 0x4, sid, hblock([(b"x-trailer", b"1")]))  # no END_STREAM: malformed
    elif kind == "data-before-headers":
        conn.send_data(sid, b"abc")
        conn.send_headers(sid, [(b":status", b"200")], end_stream=True)
    else:
        raise AssertionError(kind)
    return b""


STREAM_ERRORS = {   # kind: what the reason of the broken stream's 735 says
    "body-over-content-length": "does not match its content-length (5 bytes; 10 received)",
    "body-under-content-length": "does not match its content-length (10 bytes; 5 received)",
    "bad-content-length": "Invalid content-length header: b'abc'",
    "trailers-without-end-stream": "Trailers must have END_STREAM set",
    "data-before-headers": "cannot receive data before headers",
}


def h2_pair_server(kind: str, seen: list) -> Callable:
    """An h2c server (hyper-h2) for the first connection: it waits until both /bad and /good are
    open, answers /bad with a ``kind`` of malformed response and /good (after it) with a good one,
    then answers every further request on this connection."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        opened: dict[bytes, int] = {}
        while data := await reader.read(65536):
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    path = dict(ev.headers)[b":path"]
                    seen.append((server.conns, path))
                    if path in (b"/bad", b"/good"):
                        opened[path] = ev.stream_id
                        if len(opened) == 2:   # both streams open: the broken answer, then the good one
                            raw = _broken_answer(conn, opened[b"/bad"], kind)
                            writer.write(conn.data_to_send() + raw)
                            conn.send_headers(opened[b"/good"], [(b":status", b"200")])
                            conn.send_data(opened[b"/good"], b"good", end_stream=True)
                    else:
                        conn.send_headers(ev.stream_id, [(b":status", b"200")])
                        conn.send_data(ev.stream_id, b"same connection " + path, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
        return False
    return handler


@pytest.mark.parametrize("kind", list(STREAM_ERRORS))
def test_h2_stream_error_fails_only_its_stream(kind: str) -> None:
    seen: list = []

    async def main() -> None:
        async with Server(h2_pair_server(kind, seen), serve_h2) as srv:
            async with aquests.Session(timeout=3, http2=True) as s:
                bad, good = await asyncio.gather(s.get(srv.url + "/bad"), s.get(srv.url + "/good"))
                assert seen == [(1, b"/bad"), (1, b"/good")], seen   # two streams of one connection
                assert (good.status_code, good.content) == (200, b"good"), (good.status_code, good.reason)
                assert bad.status_code == codes.PROTOCOL_ERROR, (bad.status_code, bad.reason)
                assert "HTTP/2 stream error" in bad.reason and STREAM_ERRORS[kind] in bad.reason, bad.reason
                assert "PROTOCOL_ERROR" in bad.reason, bad.reason   # the code of our RST_STREAM
                # the connection goes on: the next request is a new stream on it
                r = await s.get(srv.url + "/next")
                assert (r.status_code, r.content) == (200, b"same connection /next"), (r.status_code, r.reason)
                assert srv.conns == 1
    run(main)


def test_h2_connection_error_still_fails_the_connection() -> None:
    """A header block HPACK cannot decode is a connection error (RFC 9113 4.3): it leaves the
    decoder's state unknown. Every stream of the connection fails; the next request gets a new one."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        opened: dict[bytes, int] = {}
        while len(opened) < 2 and (data := await reader.read(65536)):
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    opened[dict(ev.headers)[b":path"]] = ev.stream_id
            writer.write(conn.data_to_send())
        writer.write(frame(1, 0x5, opened[b"/bad"], b"\xff\xff\xff\xff"))   # not HPACK
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        return False

    async def main() -> None:
        async with Server(handler, serve_h2) as srv:
            async with aquests.Session(timeout=3, http2=True) as s:
                bad, good = await asyncio.gather(s.get(srv.url + "/bad"), s.get(srv.url + "/good"))
                for r in (bad, good):
                    assert r.status_code == codes.PROTOCOL_ERROR, (r.status_code, r.reason)
                    assert "HTTP/2 protocol error" in r.reason, r.reason
                r = await s.get(srv.url + "/next")
                assert (r.status_code, r.content) == (200, b"GOOD /next"), (r.status_code, r.reason)
                assert srv.conns == 2
    run(main)


# -- 3. a streamed body that stops: the TimeoutError says what timed out -----------------------
async def quiet_h1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    await writer.drain()
    await server.stop.wait()
    return False


async def quiet_h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    while data := await reader.read(65536):
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                conn.send_headers(ev.stream_id, [(b":status", b"200"), (b"content-length", b"100")])
                conn.send_data(ev.stream_id, b"abc")
        writer.write(conn.data_to_send())
    return False


@pytest.mark.parametrize("version", ["1.1", "2"])
def test_streamed_body_timeout_says_what_timed_out(version: str) -> None:
    async def main() -> None:
        async with Server(quiet_h1 if version == "1.1" else quiet_h2, serve_h1) as srv:
            async with aquests.Session(timeout=0.3, http2=version == "2") as s:
                r = await s.get(srv.url + "/quiet", stream=True)
                assert (r.status_code, r.version) == (200, version), (r.status_code, r.reason)
                assert await r.stream.read(3) == b"abc"
                t0 = time.monotonic()
                with pytest.raises(TimeoutError) as info:
                    await r.stream.read()
                assert 0.25 < time.monotonic() - t0 < 2.0
                assert str(info.value) == ("no bytes of the streamed response body for 0.3 s "
                                           "(the timeout of each read)"), repr(info.value)
                r.stream.close()
    run(main)
