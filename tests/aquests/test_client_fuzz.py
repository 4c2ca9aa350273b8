"""Fuzz sweep of the aquests clients against hostile servers over real sockets on 127.0.0.1.

Each example starts a raw asyncio server that answers the first connection with generated bad
bytes (HTTP/1.1, HTTP/2 frames or RESP) and every later request with a good answer, then checks:

(a) the call ends within its timeout as a response (a 7xx failure naming what went wrong, or an
    HTTP status 100-599), never an exception from inside a parser;
(b) nothing reaches the loop's exception handler ("Exception in callback", "Task exception was
    never retrieved");
(c) a following good request to the same server succeeds (no poisoned pooled connection);
(d) the loop stays usable (a good request to another server succeeds too).

PostgreSQL is not fuzzed here: aquests drives psycopg2/libpq and has no wire parser of its own.
Every example runs on a fresh event loop so that (b) is checked per example.
"""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
import time
import zlib
from typing import Any, Callable

import h2.config
import h2.connection
import h2.events
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aquests
from aquests import codes
from aquests.http.errors import ClientError

from .fuzz_support import (FUZZ, GOOD_TIMEOUT, SLACK, TIMEOUT, FrameReader, Server, frame, hang_until_more,
                           hblock, run)

LIMITS = dict(max_body_size=256 * 1024, max_header_size=8 * 1024)


def check_failure_or_status(r: Any, elapsed: float, timeout: float = TIMEOUT) -> None:
    """Invariant (a) for one HTTP response."""
    assert elapsed <= timeout + SLACK, f"took {elapsed:.2f}s ({r.status_code} {r.reason})"
    if codes.is_failure(r.status_code):
        assert r.status_code in (codes.TIMEOUT, codes.REQUEST_FAILED, codes.CONNECTION_REFUSED,
                                 codes.PROTOCOL_ERROR, codes.CONNECTION_CLOSED), r
        assert r.reason, r
        # a failure names the problem: never a bare IndexError/ValueError/... from a parser
        assert r.error is None or isinstance(r.error, (ClientError, TimeoutError, OSError)), repr(r.error)
    else:
        assert 100 <= r.status_code <= 599, r
        assert "x-trailer-only" not in r.headers, "a trailer was taken for a header"
        # what a caller reads from a response must not blow up on hostile headers/bodies
        r.text, r.cookies, r.max_age, r.ok, r.data  # noqa: B018


# -- HTTP/1.1 ---------------------------------------------------------------------------------
async def serve_h1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A well-behaved keep-alive server: 200 with the request target as the body."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1]
        body = b"GOOD " + target
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()


async def good_get(session: aquests.Session, url: str, path: str) -> None:
    r = await session.get(url + path, timeout=GOOD_TIMEOUT)
    assert (r.status_code, r.content) == (200, b"GOOD " + path.encode()), (r.status_code, r.reason, r.content)


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, i = [], 0
    for n in sizes:
        if i >= len(body):
            break
        out.append(b"%x\r\n%s\r\n" % (len(body[i:i + n]), body[i:i + n]))
        i += n
    if i < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - i, body[i:]))
    return b"".join(out) + b"0\r\n\r\n"


POST_BODY = b"x" * 10
BOMB = gzip.compress(b"\0" * (4 * 1024 * 1024))   # 4 MiB of zeros in ~4 KiB: over max_body_size

STATUS_LINES = st.sampled_from([
    b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 404 Not Found",
    b"HTTP/1.1 302 Found", b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 Not Modified",
    b"HTTP/1.1 abc OK", b"HTTP/1.1 99999999999 X", b"HTTP/1.1 -1 X", b"HTTP/1.1 999 X",
    b"HTTP/1.1 700 X", b"HTTP/2 200 OK", b"HTTP/1.1 101 Switching", b"HTTP/1.1  200 OK",
    b"ICY 200 OK", b"http/1.1 200 ok", b"HTTP/1.1 200 OK\x00", b"HTTP/1.1 20", b"",
    b"HTTP/1.1 200 \xff\xfe", b"HTTP/9.9 200 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 401 Unauthorized",
])
INTERIM = st.sampled_from([b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early\r\nLink: </a>\r\n\r\n",
                           b"HTTP/1.1 102 Processing\r\nContent-Length: 3\r\n\r\n"])
HEADERS = st.sampled_from([
    b"Content-Length: {n}", b"Content-Length: {n+5}", b"Content-Length: {n-1}", b"Content-Length: abc",
    b"Content-Length: -1", b"Content-Length: 99999999999999999999999", b"Content-Length: {n}, {n}",
    b"Content-Length: 1, 2", b"Content-Length: 0", b"Content-Length:  {n} ",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked, chunked",
    b"Transfer-Encoding: identity", b"Content-Encoding: gzip", b"Content-Encoding: deflate",
    b"Content-Encoding: br", b"Content-Encoding: gzip, gzip, gzip, gzip", b"Content-Encoding: x-gzip",
    b"Connection: close", b"Connection: keep-alive", b"Location: /good/redirected",
    b"Location: http://[::1", b"Location: javascript:alert(1)", b"Location: ", b"Location: //",
    b"Location: http://127.0.0.1:99999/", b"Location: http://h\x00st/", b"Location: \xff\xfe/x",
    b"NoColonHeader", b" folded continuation", b"X-A: a\r\n\tfolded", b": empty name",
    b"X-Long: " + b"v" * 9000, b"X-Nul: a\x00b", b"Content-Type: application/json",
    b"Content-Type: text/xml", b"Content-Type: text/plain; charset=no-such-charset",
    b"Content-Type: text/plain; charset=idna", b"Content-Type: text/plain; charset=undefined",
    b"Cache-Control: max-age=99999999999999999999999", b"Expires: Fri, 31 Dec 99999 23:59:59 GMT",
    b"Expires: garbage", b"Set-Cookie: a=b; Domain=..; Expires=nonsense", b"Set-Cookie: \xff=\x00",
    b"Trailer: X-T", b"X-Bare-LF: v\nX-Other: w", b"WWW-Authenticate: Digest realm", b"WWW-Authenticate: Digest =",
    b'WWW-Authenticate: Digest realm="r", nonce="n", qop="auth-int"', b'WWW-Authenticate: Digest nonce="n", algorithm=X',
])
BODY_KINDS = [
    "plain", "chunked", "gzip", "deflate", "raw-deflate", "corrupt-gzip", "bomb", "truncated-gzip",
    "json-bad", "xmlrpc-bad", "xmlrpc-empty", "bad-chunk-size", "negative-chunk", "huge-chunk",
    "chunk-ext", "trailers", "chunk-no-crlf", "gzip-chunked", "empty",
]


def make_body(kind: str, data: bytes, sizes: list[int]) -> tuple[bytes, bytes]:
    """(wire bytes of the body, the bytes Content-Length counts)."""
    if kind == "plain":
        return data, data
    if kind == "empty":
        return b"", b""
    if kind == "chunked":
        return chunked(data, sizes), data
    if kind in ("gzip", "gzip-chunked"):
        z = gzip.compress(data)
        return (chunked(z, sizes) if kind == "gzip-chunked" else z), z
    if kind == "deflate":
        z = zlib.compress(data)
        return z, z
    if kind == "raw-deflate":
        c = zlib.compressobj(wbits=-15)
        z = c.compress(data) + c.flush()
        return z, z
    if kind == "corrupt-gzip":
        z = bytearray(gzip.compress(data or b"x"))
        z[len(z) // 2] ^= 0xFF
        return bytes(z), bytes(z)
    if kind == "truncated-gzip":
        z = gzip.compress(data or b"x")[:-6]
        return z, z
    if kind == "bomb":
        return BOMB, BOMB
    if kind == "json-bad":
        return b'{"a": [1, 2', b'{"a": [1, 2'
    if kind == "xmlrpc-bad":
        b = b"<methodResponse><params><param><value><int>x</int>"
        return b, b
    if kind == "xmlrpc-empty":
        b = b"<?xml version='1.0'?><methodResponse><params></params></methodResponse>"
        return b, b
    if kind == "bad-chunk-size":
        return b"zz\r\nabc\r\n0\r\n\r\n", data
    if kind == "negative-chunk":
        return b"-1\r\nabc\r\n0\r\n\r\n", data
    if kind == "huge-chunk":
        return b"ffffffffffffffffffff\r\nabc\r\n", data
    if kind == "chunk-ext":
        return b"3;" + b"e" * 20000 + b"\r\nabc\r\n0\r\n\r\n", data
    if kind == "trailers":
        return (b"3\r\nabc\r\n0\r\nX-Trailer-Only: 1\r\nContent-Length: 99\r\nContent-Encoding: gzip\r\n"
                b"Location: /evil\r\n\r\n", data)
    if kind == "chunk-no-crlf":
        return b"3\r\nabcdef0\r\n\r\n", data
    raise AssertionError(kind)


CHUNKED = [b"Transfer-Encoding: chunked"]
KIND_HEADERS = {
    "chunked": CHUNKED, "bad": CHUNKED, "negative": CHUNKED, "huge": CHUNKED, "chunk": CHUNKED,
    "trailers": CHUNKED, "gzip-chunked": CHUNKED + [b"Content-Encoding: gzip"],
    "gzip": [b"Content-Encoding: gzip"], "corrupt": [b"Content-Encoding: gzip"], "bomb": [b"Content-Encoding: gzip"],
    "truncated": [b"Content-Encoding: gzip"], "deflate": [b"Content-Encoding: deflate"],
    "raw": [b"Content-Encoding: deflate"], "json": [b"Content-Type: application/json"],
    "xmlrpc": [b"Content-Type: text/xml"],
}


@st.composite
def h1_answers(draw: st.DrawFn, kind: str = "plain") -> dict:
    data = draw(st.binary(max_size=300))
    sizes = draw(st.lists(st.integers(1, 64), max_size=6))
    wire, counted = make_body(kind, data, sizes)
    n = len(counted)
    # a sound status line and the headers the body kind calls for, most of the time: the damage
    # is then in the body, where the kind puts it
    lines = [draw(STATUS_LINES) if draw(st.booleans()) else b"HTTP/1.1 200 OK"]
    if draw(st.integers(0, 3)):
        lines += KIND_HEADERS.get(kind) or KIND_HEADERS.get(kind.split("-")[0], [])
    for h in draw(st.lists(HEADERS, max_size=5)):
        h = h.replace(b"{n}", str(n).encode()).replace(b"{n+5}", str(n + 5).encode())
        lines.append(h.replace(b"{n-1}", str(max(n - 1, 0)).encode()))
    eol = b"\n" if draw(st.integers(0, 5)) == 0 else b"\r\n"
    head = eol.join(lines) + eol + eol
    payload = b"".join(draw(st.lists(INTERIM, max_size=3))) + head + wire
    if draw(st.booleans()):
        payload += draw(st.sampled_from([b"", b"junk after", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=4)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)]) if payload[a:b]]
    return {
        "pieces": pieces,
        "early": draw(st.integers(0, 9)) == 0,          # answer before reading the request
        "after": draw(st.sampled_from(["close", "close", "serve", "serve", "hang"])),
        "method": draw(st.sampled_from(["GET", "GET", "HEAD", "POST"])),
        "stream": draw(st.integers(0, 3)) == 0,
        "decompress": draw(st.integers(0, 4)) != 0,
        "auth": draw(st.booleans()),
    }


def h1_hostile(answer: dict) -> Callable:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        async def take_request() -> None:
            await reader.readuntil(b"\r\n\r\n")
            if answer["method"] == "POST":
                await reader.readexactly(len(POST_BODY))

        if not answer["early"]:
            await take_request()
        for piece in answer["pieces"]:
            writer.write(piece)
            await writer.drain()
        server.sent.set()
        if answer["early"]:
            await take_request()      # what follows must not be taken for an answer to it
        if answer["after"] == "hang":
            await hang_until_more(server, reader)
        return answer["after"] == "serve"
    return hostile


async def read_stream(r: Any) -> None:
    """Read a streamed body (into ``r.content``) within the timeout; clear errors are fine."""
    parts: list[bytes] = []
    try:
        async with asyncio.timeout(TIMEOUT + SLACK):
            async for chunk in r.stream:
                parts.append(chunk)
                if sum(map(len, parts)) > 4 * 1024 * 1024:
                    break
    except (ClientError, TimeoutError, OSError):
        pass
    finally:
        r.stream.close()
        r.content = b"".join(parts)


async def h1_example(answer: dict) -> None:
    async with Server(h1_hostile(answer), serve_h1) as bad, Server(None, serve_h1) as other:
        async with aquests.Session(timeout=TIMEOUT, decompress=answer["decompress"], **LIMITS) as s:
            t0 = time.monotonic()
            r = await s.request(answer["method"], bad.url + "/hostile", stream=answer["stream"],
                                data=POST_BODY if answer["method"] == "POST" else None,
                                auth=("user", "pw") if answer.get("auth") else None)
            if r.stream is not None:
                await read_stream(r)
            check_failure_or_status(r, time.monotonic() - t0)
            # the same server, now behaving, and another server: neither may see a poisoned connection
            async with asyncio.timeout(GOOD_TIMEOUT):
                await bad.sent.wait()
            await asyncio.sleep(0.02)   # bytes the hostile server wrote have reached the client
            await good_get(s, bad.url, "/after")
            await good_get(s, bad.url, "/again")
            await good_get(s, other.url, "/other")


@pytest.mark.parametrize("kind", BODY_KINDS)   # every body kind gets its examples
def test_h1_hostile_answers(kind: str) -> None:
    # first the kind as meant (a sound head with its framing headers), buffered and streamed ...
    wire, counted = make_body(kind, b"hello world", [4])
    head = [b"HTTP/1.1 200 OK", *(KIND_HEADERS.get(kind) or KIND_HEADERS.get(kind.split("-")[0], []))]
    if not head[1:] or head[1] != CHUNKED[0]:
        head.append(b"Content-Length: %d" % len(counted))
    for stream in (False, True):
        answer = {"pieces": [b"\r\n".join(head) + b"\r\n\r\n" + wire], "early": False, "after": "serve",
                  "method": "GET", "stream": stream, "decompress": True}
        run(lambda a=answer: h1_example(a))

    # ... then mangled by hypothesis
    @settings(FUZZ, max_examples=5)
    @given(h1_answers(kind))
    def check(answer: dict) -> None:
        run(lambda: h1_example(answer))
    check()


def test_harness_reports_exceptions_nobody_retrieved() -> None:
    async def main() -> None:
        async def boom() -> None:
            raise ValueError("lost")
        asyncio.ensure_future(boom())
        await asyncio.sleep(0.01)
    with pytest.raises(AssertionError, match="never retrieved"):
        run(main)


def test_h1_hang_mode_harness_is_sane() -> None:
    """A plain good answer through the fuzz harness passes (guards the harness itself)."""
    answer = {"pieces": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], "early": False, "after": "hang",
              "method": "GET", "stream": False, "decompress": True}
    run(lambda: h1_example(answer))


# -- HTTP/2 (h2c prior knowledge) -------------------------------------------------------------
async def next_request(reader: asyncio.StreamReader, frames: FrameReader, min_sid: int) -> int:
    """Read until the client opens a stream (a HEADERS frame) with an id >= ``min_sid``."""
    while True:
        data = await reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        for kind, _flags, sid in frames.feed(data):
            if kind == 1 and sid >= min_sid:
                return sid


async def serve_h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A well-behaved h2c server (hyper-h2): 200 with the request path as the body."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    while True:
        data = await reader.read(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                path = dict(ev.headers)[b":path"]
                body = b"GOOD " + path
                conn.send_headers(ev.stream_id, [(b":status", b"200"), (b"content-length", b"%d" % len(body))])
                conn.send_data(ev.stream_id, body, end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()


H2_STATUS = st.sampled_from([[(b":status", b"200")], [(b":status", b"200")], [(b":status", b"404")],
                             [(b":status", b"abc")], [(b":status", b"99")], [(b":status", b"1000")],
                             [(b":status", b"")], [], [(b":status", b"200"), (b":status", b"500")],
                             [(b":status", b"100")], [(b":status", b"302")]])
H2_FIELDS = st.sampled_from([
    (b"content-length", b"5"), (b"content-length", b"abc"), (b"content-length", b"-1"),
    (b"content-encoding", b"gzip"), (b"content-encoding", b"deflate"), (b"location", b"/good/r"),
    (b"location", b"http://[::1"), (b"x-big", b"v" * 9000), (b":path", b"/pseudo-in-response"),
    (b"connection", b"close"), (b"transfer-encoding", b"chunked"), (b"Upper", b"case"),
    (b"x-nul", b"a\x00b"), (b"content-type", b"application/json"), (b"set-cookie", b"\xff=\x00"),
])


@st.composite
def h2_frames(draw: st.DrawFn) -> list[bytes]:
    """Frames for stream 1 (the request), some aimed elsewhere, some broken."""
    out = []
    if draw(st.integers(0, 9)):
        out.append(frame(4, 0, 0))                  # SETTINGS
    for _ in range(draw(st.integers(1, 6))):
        what = draw(st.sampled_from(["headers", "headers", "data", "data", "rst", "goaway", "ping",
                                     "window", "continuation", "unknown", "garbage", "big-frame",
                                     "settings-bad", "data-stream0", "data-stream3", "push", "bad-hpack",
                                     "gzip-data", "bomb-data", "trailers", "ping-storm"]))
        end = draw(st.booleans())
        if what == "headers":
            fields = draw(H2_STATUS) + draw(st.lists(H2_FIELDS, max_size=3))
            out.append(frame(1, 0x4 | (0x1 if end else 0), 1, hblock(fields)))
        elif what == "trailers":
            out.append(frame(1, 0x5, 1, hblock([(b"grpc-status", b"0"), (b"x-t", b"1")])))
        elif what == "data":
            data = draw(st.binary(max_size=200))
            out.append(frame(0, 1 if end else 0, 1, data))
        elif what == "gzip-data":
            out.append(frame(0, 1 if end else 0, 1, gzip.compress(b"hello")))
        elif what == "bomb-data":
            out.append(frame(0, 1, 1, BOMB))
        elif what == "rst":
            out.append(frame(3, 0, 1, draw(st.sampled_from([0, 2, 7, 8, 99])).to_bytes(4, "big")))
        elif what == "goaway":
            last = draw(st.sampled_from([0, 1, 3]))
            out.append(frame(7, 0, 0, last.to_bytes(4, "big") + draw(st.sampled_from([0, 1, 2])).to_bytes(4, "big")))
        elif what == "ping":
            out.append(frame(6, 0, 0, b"\0" * 8))
        elif what == "ping-storm":
            out.append(frame(6, 0, 0, b"\0" * 8) * 2000)
        elif what == "window":
            out.append(frame(8, 0, draw(st.sampled_from([0, 1])),
                             draw(st.sampled_from([0, 1, 2 ** 31 - 1])).to_bytes(4, "big")))
        elif what == "continuation":
            out.append(frame(9, 0x4, 1, hblock([(b"x-c", b"1")])))
        elif what == "unknown":
            out.append(frame(0xEE, 0xFF, 1, b"whatever"))
        elif what == "garbage":
            out.append(draw(st.binary(min_size=1, max_size=40)))
        elif what == "big-frame":
            out.append(frame(0, 0, 1, b"x" * 20000))   # over the default 16 KiB frame size
        elif what == "settings-bad":
            out.append(frame(4, 0, 0, b"\x00\x04\xff\xff\xff\xff"))  # INITIAL_WINDOW_SIZE over 2^31-1
        elif what == "data-stream0":
            out.append(frame(0, 0, 0, b"abc"))
        elif what == "data-stream3":
            out.append(frame(0, 1, 3, b"abc"))
        elif what == "push":
            out.append(frame(5, 0x4, 1, (2).to_bytes(4, "big") + hblock([(b":method", b"GET")])))
        elif what == "bad-hpack":
            out.append(frame(1, 0x5, 1, draw(st.binary(min_size=1, max_size=30))))
    return out


@st.composite
def h2_answers(draw: st.DrawFn) -> dict:
    return {"frames": draw(h2_frames()), "early": draw(st.integers(0, 9)) == 0,
            "after": draw(st.sampled_from(["close", "hang", "hang"])), "stream": draw(st.integers(0, 3)) == 0}


def h2_hostile(answer: dict) -> Callable:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        frames = FrameReader()
        todo = list(answer["frames"])
        # the client opens no stream before the server's SETTINGS: they go first, the rest after
        # the request (or at once, "early", or when there are no SETTINGS to wait for)
        if todo[0] == frame(4, 0, 0) and not answer["early"]:
            writer.write(todo.pop(0))
            await next_request(reader, frames, 1)
        for f in todo:
            writer.write(f)
            await writer.drain()
        server.sent.set()
        if answer["after"] == "hang":
            # silent until the client opens another stream on this connection (it judged the
            # connection sound): then a GOAWAY says that stream was not acted on, and we leave
            stop = asyncio.ensure_future(server.stop.wait())
            req = asyncio.ensure_future(next_request(reader, frames, 3))
            await asyncio.wait([stop, req], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            req.cancel()
            await asyncio.gather(stop, req, return_exceptions=True)
            writer.write(frame(7, 0, 0, (1).to_bytes(4, "big") + (0).to_bytes(4, "big")))
        return False
    return hostile


async def h2_example(answer: dict) -> None:
    async with Server(h2_hostile(answer), serve_h2) as bad, Server(None, serve_h2) as other:
        async with aquests.Session(timeout=TIMEOUT, http2=True, **LIMITS) as s:
            t0 = time.monotonic()
            r = await s.get(bad.url + "/hostile", stream=answer["stream"])
            if r.stream is not None:
                await read_stream(r)
            check_failure_or_status(r, time.monotonic() - t0)
            async with asyncio.timeout(GOOD_TIMEOUT):
                await bad.sent.wait()
            await asyncio.sleep(0.02)
            await good_get(s, bad.url, "/after")
            await good_get(s, bad.url, "/again")
            await good_get(s, other.url, "/other")


@settings(FUZZ, max_examples=60)
@given(h2_answers())
def test_h2_hostile_frames(answer: dict) -> None:
    run(lambda: h2_example(answer))


# -- Redis (RESP2) ----------------------------------------------------------------------------
async def read_command(reader: asyncio.StreamReader) -> list[bytes]:
    """One RESP command array from the client."""
    n = int((await reader.readuntil(b"\r\n"))[1:-2])
    args = []
    for _ in range(n):
        size = int((await reader.readuntil(b"\r\n"))[1:-2])
        args.append((await reader.readexactly(size + 2))[:-2])
    return args


async def serve_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A well-behaved server for ECHO: the argument back as a bulk string."""
    while True:
        args = await read_command(reader)
        value = args[-1]
        writer.write(b"$%d\r\n%s\r\n" % (len(value), value))
        await writer.drain()


RESP_TOKENS = st.sampled_from([
    b"+OK\r\n", b":42\r\n", b"$3\r\nabc\r\n", b"$0\r\n\r\n", b"$-1\r\n", b"*-1\r\n", b"*0\r\n",
    b"*2\r\n:1\r\n$1\r\na\r\n", b"-ERR boom\r\n", b"*1\r\n", b"*3\r\n",
    b"!5\r\nhello\r\n", b"_\r\n", b",1.5\r\n", b"%1\r\n+a\r\n+b\r\n", b">1\r\n+x\r\n", b"\x00\r\n",
    b"$5\r\nab\r\n", b"$3\r\nabcdef\r\n", b"$-5\r\n", b"*-2\r\n", b"$99999999999\r\n",
    b"*2147483647\r\n", b"*99999999999999999999\r\n", b"$abc\r\n", b":1.5\r\n", b":\r\n", b"*\r\n",
    b"$\r\n", b"+OK\n", b"+" + b"x" * 70000, b"*1\r\n" * 100, b"+PARTIAL", b"$10\r\nabc",
    b"$1_0\r\n0123456789\r\n", b": 7 \r\n", b"+\xff\xfe\r\n", b"-\r\n", b"*1000\r\n" + b":1\r\n" * 999,
])


RESP_GOOD = st.sampled_from([b"+OK\r\n", b"$3\r\nabc\r\n", b"*2\r\n:1\r\n$1\r\na\r\n", b"$-1\r\n"])
RESP_TAILS = st.sampled_from([b"+PARTIAL", b"$10\r\nabc", b"*2\r\n", b"*2\r\n:1\r\n", b"+LATE\r\n", b"\x00",
                              b"-ERR late\r\n", b"$-1\r\n", b"\r\n"])


@st.composite
def resp_answers(draw: st.DrawFn) -> dict:
    pipeline = draw(st.integers(0, 3)) == 0
    if draw(st.booleans()):
        # sound replies (three for the pipeline), then something nobody asked for
        payload = b"".join([draw(RESP_GOOD) for _ in range(3 if pipeline else 1)] + [draw(RESP_TAILS)])
    else:
        payload = b"".join(draw(st.lists(RESP_TOKENS, min_size=1, max_size=4)))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    return {
        "pieces": [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)]) if payload[a:b]],
        "after": draw(st.sampled_from(["close", "serve", "serve", "hang"])),
        "pipeline": pipeline,
        "early": draw(st.integers(0, 9)) == 0,
    }


def resp_hostile(answer: dict) -> Callable:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        commands = 3 if answer["pipeline"] else 1
        if not answer["early"]:
            for _ in range(commands):
                await read_command(reader)
        for piece in answer["pieces"]:
            writer.write(piece)
            await writer.drain()
        server.sent.set()
        if answer["early"]:
            for _ in range(commands):
                await read_command(reader)
        if answer["after"] == "hang":
            await hang_until_more(server, reader)
        return answer["after"] == "serve"
    return hostile


def check_db_response(r: Any, elapsed: float) -> None:
    from aquests.dbapi.resp import ReplyError
    assert elapsed <= TIMEOUT + SLACK, f"took {elapsed:.2f}s ({r.status_code} {r.reason})"
    if r.status_code == codes.DB_ERROR:
        assert r.expt_class is ReplyError, (r.expt_class, r.reason)   # only an error reply is a 740
    elif codes.is_failure(r.status_code):
        assert r.status_code in (codes.TIMEOUT, codes.PROTOCOL_ERROR, codes.CONNECTION_CLOSED), (r.status_code, r.reason)
        assert r.reason
    else:
        assert r.status_code == 200, r


async def good_echo(db: Any, word: str) -> None:
    r = await db.execute("ECHO", word, timeout=GOOD_TIMEOUT)
    assert (r.status_code, r.data) == (200, word.encode()), (r.status_code, r.reason, r.data)


async def resp_example(answer: dict) -> None:
    async with Server(resp_hostile(answer), serve_redis) as bad, Server(None, serve_redis) as other:
        db = aquests.aio.redis(f"127.0.0.1:{bad.port}", timeout=TIMEOUT, max_reply_size=64 * 1024,
                               max_reply_items=500)
        t0 = time.monotonic()
        if answer["pipeline"]:
            r = await db.pipeline([("ECHO", "a"), ("ECHO", "b"), ("ECHO", "c")])
        else:
            r = await db.execute("ECHO", "hostile")
        check_db_response(r, time.monotonic() - t0)
        async with asyncio.timeout(GOOD_TIMEOUT):
            await bad.sent.wait()
        await asyncio.sleep(0.02)
        await good_echo(db, "after")
        await good_echo(db, "again")
        await good_echo(aquests.aio.redis(f"127.0.0.1:{other.port}"), "other")


@settings(FUZZ, max_examples=60)
@given(resp_answers())
def test_redis_hostile_replies(answer: dict) -> None:
    run(lambda: resp_example(answer))


# -- regressions: each failed before its fix ---------------------------------------------------
def fixed_h1(payload: bytes, after: str = "close") -> Callable:
    return h1_hostile({"pieces": [payload], "early": False, "after": after, "method": "GET"})


@pytest.mark.parametrize("trailer", [b"Set-Cookie: sid=evil", b"Content-Encoding: gzip", b"Location: /evil"])
def test_h1_trailers_are_not_headers(trailer: bytes) -> None:
    """Fields after a chunked body were merged into the headers: a trailer could set a cookie,
    make a plain body "gzip" (a 735) or add a Location."""
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" + trailer
              + b"\r\nX-Sum: 1\r\n\r\n")

    async def main() -> None:
        async with Server(fixed_h1(answer), serve_h1) as bad:
            async with aquests.Session(timeout=3, cookie=True) as s:
                r = await s.get(bad.url + "/t")
                assert (r.status_code, r.content) == (200, b"abc"), (r.status_code, r.reason)
                name = trailer.split(b":")[0].decode()
                assert name not in r.headers and not r.cookies and not s.cookies
                assert r.trailers is not None and r.trailers["x-sum"] == "1" and name in r.trailers
                bad.conns = 0                # the next connection is hostile again
                rs = await s.get(bad.url + "/t", stream=True)
                assert rs.status_code == 200 and await rs.stream.read() == b"abc"
                assert name not in rs.headers and rs.trailers is not None and rs.trailers["x-sum"] == "1"
                await good_get(s, bad.url, "/after")
    run(main)


@pytest.mark.parametrize("prefix", [
    b"3;",                    # an endless chunk extension
    b"3\r\nabc\r\n0\r\nX-T: ",  # an endless trailer line (httptools held it whole, growing)
], ids=["chunk-extension", "trailer-line"])
def test_h1_endless_chunk_framing_is_bound_like_the_head(prefix: bytes) -> None:
    """Chunk extensions and trailers had no size bound: the call waited for the whole timeout
    (an endless trailer line meanwhile grew in memory, ~20 MB/s here) instead of failing at once."""

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + prefix)
        server.sent.set()
        with contextlib.suppress(ConnectionError):
            while not server.stop.is_set():
                writer.write(b"e" * 65536)
                await writer.drain()
        return False

    async def main() -> None:
        async with Server(endless, serve_h1) as bad:
            async with aquests.Session(timeout=3, max_header_size=8192) as s:
                for stream in (False, True):
                    bad.conns = 0            # a new connection, hostile again
                    t0 = time.monotonic()
                    r = await s.get(bad.url + "/t", stream=stream)
                    if r.stream is not None:
                        with pytest.raises(ClientError, match="chunk extensions or trailers"):
                            await r.stream.read()
                    else:
                        assert r.status_code == codes.PROTOCOL_ERROR, (r.status_code, r.reason)
                        assert "chunk extensions or trailers exceed the 8192-byte" in r.reason
                    assert time.monotonic() - t0 < 1.5
                await good_get(s, bad.url, "/after")
    run(main)


@pytest.mark.parametrize("tail", [b"+PARTIAL", b"$10\r\nabc", b"*2\r\n", b"*2\r\n:1\r\n"])
@pytest.mark.parametrize("split", [False, True], ids=["one-read", "two-reads"])
def test_redis_bytes_after_the_reply_do_not_answer_the_next_command(tail: bytes, split: bool) -> None:
    """The start of a reply nobody asked for stayed in the pooled connection's reader: the next
    command got it as its answer ("PARTIAL$5"), a protocol error or a timeout."""
    pieces = [b"+OK\r\n", tail] if split else [b"+OK\r\n" + tail]
    answer = {"pieces": pieces, "after": "serve", "pipeline": False, "early": False}

    async def main() -> None:
        async with Server(resp_hostile(answer), serve_redis) as bad:
            db = aquests.aio.redis(f"127.0.0.1:{bad.port}", timeout=3)
            r = await db.execute("ECHO", "hostile")
            assert (r.status_code, r.data) == (200, "OK")
            await bad.sent.wait()
            await asyncio.sleep(0.05)
            await good_echo(db, "after")
            await good_echo(db, "again")
    run(main)


def test_h1_streamed_body_error_names_its_cause() -> None:
    """A protocol error in a streamed body was overwritten by the close that follows it: the
    reader saw "server closed the connection mid-body" instead of what was wrong."""
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"

    async def main() -> None:
        async with Server(fixed_h1(answer, "hang"), serve_h1) as bad:
            async with aquests.Session(timeout=3) as s:
                r = await s.get(bad.url + "/t", stream=True)
                assert r.status_code == 200
                await asyncio.sleep(0.05)          # the bad chunk line and the close have both come
                with pytest.raises(ClientError, match="malformed response"):
                    await r.stream.read()
                await good_get(s, bad.url, "/after")
    run(main)


@pytest.mark.parametrize("body", [
    b"<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>",
    b"<?xml version='1.0'?><methodResponse><params></params></methodResponse>",
    b"<methodResponse><fault><value><int>1</int></value></fault></methodResponse>",
    b"<methodResponse>&xxe;</methodResponse>",
], ids=["bad-int", "no-params", "bad-fault", "bad-entity"])
def test_h1_data_of_a_broken_xmlrpc_looking_body_is_the_bytes(body: bytes) -> None:
    """``response.data`` raised ValueError/IndexError/TypeError/ExpatError from xmlrpc.client for a
    text/xml body that only looks like an XML-RPC answer; like broken JSON it is now the bytes."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def main() -> None:
        async with Server(fixed_h1(answer, "serve"), serve_h1) as bad:
            async with aquests.Session(timeout=3) as s:
                r = await s.get(bad.url + "/x")
                assert (r.status_code, r.data, r.error) == (200, body, None)
                await good_get(s, bad.url, "/after")
    run(main)


@pytest.mark.parametrize("charset", ["idna", "undefined"])
def test_h1_text_with_a_codec_that_refuses_replace_falls_back_to_utf8(charset: str) -> None:
    """``response.text`` raised UnicodeError when the server named a charset whose codec has no
    "replace" error handling (idna, undefined); an unknown charset already fell back to UTF-8."""
    body = b"caf\xc3\xa9 \xff"
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=%s\r\nContent-Length: %d\r\n\r\n%s"
              % (charset.encode(), len(body), body))

    async def main() -> None:
        async with Server(fixed_h1(answer, "serve"), serve_h1) as bad:
            async with aquests.Session(timeout=3) as s:
                r = await s.get(bad.url + "/x")
                assert r.status_code == 200 and r.text == "caf\u00e9 \ufffd"
    run(main)


def test_h1_streamed_redirect_with_a_trickling_body_keeps_the_timeout() -> None:
    """With stream=True the body of a 3xx is drained before the next hop; it was drained for up
    to a fixed 5 s, so a server trickling that body held a 0.5 s call for 5 s."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 100\r\n\r\n")
        server.sent.set()
        with contextlib.suppress(ConnectionError):
            while not server.stop.is_set():
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        return False

    async def main() -> None:
        async with Server(trickle, serve_h1) as bad:
            async with aquests.Session(timeout=0.5) as s:
                t0 = time.monotonic()
                r = await s.get(bad.url + "/r", stream=True)
                assert r.status_code == codes.TIMEOUT, (r.status_code, r.reason)
                assert time.monotonic() - t0 < 1.5
                await good_get(s, bad.url, "/after")
    run(main)


@pytest.mark.parametrize("challenge", [b"Digest =", b"Digest realm", b"Digest realm=", b"Digest nonce=, realm"])
def test_h1_malformed_digest_challenge_is_not_raised(challenge: bytes) -> None:
    """A 401 whose Digest challenge has an item without "=" or without a value made
    ``await s.get(url, auth=...)`` raise IndexError/ValueError from urllib's parse_keqv_list."""
    answer = b"HTTP/1.1 401 No\r\nWWW-Authenticate: %s\r\nContent-Length: 0\r\n\r\n" % challenge

    async def main() -> None:
        async with Server(fixed_h1(answer), serve_h1) as bad:
            async with aquests.Session(timeout=3) as s:
                r = await s.get(bad.url + "/r", auth=("user", "pw"))
                # the answer to the challenge goes out on a new connection, which is served well
                assert (r.status_code, r.content) == (200, b"GOOD /r"), (r.status_code, r.reason)
                assert [h.status_code for h in r.history] == [401]
    run(main)


def test_h1_reset_ends_a_close_delimited_body_as_a_failure() -> None:
    """A body without Content-Length or chunking ends when the server closes; a connection reset
    (RST) ended it too, so a cut-short body came back as a 200."""

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npartial body")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()   # SO_LINGER 0: the close is a reset
        return False

    async def main() -> None:
        async with Server(reset, serve_h1) as bad:
            async with aquests.Session(timeout=3) as s:
                r = await s.get(bad.url + "/r")
                assert r.status_code == codes.CONNECTION_CLOSED and "reset" in r.reason, (r.status_code, r.reason)
                bad.conns = 0
                r = await s.get(bad.url + "/r", stream=True)
                with pytest.raises(ClientError, match="reset the connection mid-body"):
                    await r.stream.read()
                await good_get(s, bad.url, "/after")
    run(main)
