"""PEP 3333 compliance and misbehaving apps, over real sockets, on HTTP/1.1 and HTTP/2, threads=0 and threads=2.

Each test here pins a fix: what the server did wrong before is named in its docstring.
"""
from __future__ import annotations

import logging
import socket
import threading
import time

import h2.events
import pytest
import requests

from tests.skitai_core.h2ws_support import H2Client, h2_server
from tests.support.server import ServerThread, parse_responses, raw_request

THREADS = pytest.mark.parametrize("threads", [0, 2], ids=["threads0", "threads2"])


def _wait_for(cond, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def _chunks(body: bytes) -> int:
    """How many chunks a chunked body has (its last, empty one not counted)."""
    n = 0
    while body:
        line, _, body = body.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return n
        n += 1
        body = body[size + 2:]
    raise AssertionError("the chunked body has no end")


def _h2_stream(c: H2Client, sid: int) -> tuple[dict, bytes, bool, int]:
    """Headers, body, whether the server reset it, and how many DATA frames carried bytes."""
    headers, body = c.response(sid)
    reset = any(isinstance(e, h2.events.StreamReset) and e.stream_id == sid for e in c.events)
    frames = sum(1 for e in c.events if isinstance(e, h2.events.DataReceived) and e.stream_id == sid and e.data)
    return headers, body, reset, frames


def _errors(caplog, text: str) -> list[str]:
    """Lines of the ``skitai.app`` log (with their exception's message) that say ``text``."""
    lines = [r.getMessage() + (f" {r.exc_info[1]}" if r.exc_info else "") for r in caplog.records
             if r.name == "skitai.app"]
    return [line for line in lines if text in line]


# ---- the iterable's close() ----------------------------------------------------------------------------
@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_client_leaving_a_fast_stream_on_threads0_frees_the_loop(uvloop):
    """Before: on threads=0 a generator that never makes the transport pause kept writing into a transport
    whose send had failed (the client reset the connection): ``write()`` never waited, ``connection_lost``
    never ran, and the loop spun in the generator: the whole server stopped answering."""
    closed = []

    class Endless:
        def __iter__(self):
            stop = time.monotonic() + 4          # bounded, so a broken server recovers after the test
            while time.monotonic() < stop:
                yield b"x" * 1024

        def close(self):
            closed.append(1)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if environ["PATH_INFO"] == "/ping":
            return [b"pong"]
        return Endless()

    with ServerThread(app=app, threads=0, uvloop=uvloop) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.close()                                 # unread bytes: the kernel answers further data with RST
        assert _wait_for(lambda: closed, 2.0), "the iterable was not closed after the client left"
        assert requests.get(srv.url + "/ping", timeout=2).text == "pong"
        time.sleep(0.1)
        assert closed == [1]


@THREADS
def test_an_empty_iterable_is_closed_once(threads):
    """Before: on threads=0 an iterable that yielded nothing (or only b"") had close() called twice."""
    closed = []

    class Body:
        def __init__(self, items):
            self.items = items

        def __iter__(self):
            return iter(self.items)

        def close(self):
            closed.append(1)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body([] if environ["PATH_INFO"] == "/empty" else [b"", b""])

    with ServerThread(app=app, threads=threads) as srv, requests.Session() as s:
        for path in ("/empty", "/blanks"):
            closed.clear()
            r = s.get(srv.url + path, timeout=5)
            assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"
            time.sleep(0.1)
            assert closed == [1], path


# ---- many tiny yields ----------------------------------------------------------------------------------
HEAD_PIECE = b"-" * 20_000         # a first piece big enough to go out on its own


def _tiny(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield HEAD_PIECE
    for _ in range(20_000):
        yield b"x"


def test_many_tiny_yields_leave_in_few_chunks_http1():
    """Before: with threads=N every yielded piece became its own chunk and its own socket write (20,000
    one-byte yields: 20,000 writev calls and 6 bytes on the wire per byte). Pieces the loop has not sent yet
    are now joined; nothing waits for more, so a slow producer's pieces still go out at once."""
    with ServerThread(app=_tiny, threads=2) as srv:
        data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        assert parse_responses(data)[0].body == HEAD_PIECE + b"x" * 20_000
        assert _chunks(body) < 2_000, f"{_chunks(body)} chunks for 20,000 one-byte yields"


def test_many_tiny_yields_leave_in_few_frames_http2():
    with h2_server(app=_tiny, threads=2) as srv:
        c = H2Client(srv.port)
        try:
            headers, body, reset, frames = _h2_stream(c, c.request("/"))
            assert headers[":status"] == "200" and body == HEAD_PIECE + b"x" * 20_000 and not reset
            assert frames < 2_000, f"{frames} DATA frames for 20,000 one-byte yields"
        finally:
            c.close()


def test_a_slow_producer_is_not_held_back():
    """The joining never waits for more: each piece of a slow stream reaches the client before the next
    is made (PEP 3333: the server must not delay a block while the app produces the next one)."""
    gate = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        gate.wait(5)                              # only the client can open it, after it saw "first"
        yield b"second"

    with ServerThread(app=app, threads=2) as srv, \
            requests.get(srv.url + "/", stream=True, timeout=5) as r:
        it = r.iter_content(None)
        assert next(it) == b"first"
        gate.set()
        assert b"".join(it) == b"second"


# ---- Content-Length from the app that its body does not match -----------------------------------------
def _lengths(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/whole":                          # a finished answer: sent with its real length
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"abc"]
    if path == "/short":                          # a stream that ends before its length
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "200000")])
        return (b"s" * 70_000 for _ in range(2))
    if path == "/long":                           # a stream that goes past it
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100000")])
        return (b"l" * 70_000 for _ in range(2))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@THREADS
def test_content_length_mismatch_http1_is_framed_right_and_logged(threads, caplog):
    """HTTP/1.1 already framed these right (the real length for a whole answer; cut, then close, for a
    stream); before, nothing said that the app's Content-Length was wrong."""
    with ServerThread(app=_lengths, threads=threads) as srv, caplog.at_level(logging.ERROR, "skitai.app"):
        r = parse_responses(raw_request(srv.port, b"GET /whole HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        assert r[0].headers["content-length"] == "3" and r[0].body == b"abc" and r[0].complete
        assert _wait_for(lambda: _errors(caplog, "Content-Length 10"))

        data = raw_request(srv.port, b"GET /short HTTP/1.1\r\nHost: x\r\n\r\nGET /whole HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Content-Length: 200000" in head and body == b"s" * 140_000     # then closed: no 2nd answer
        assert _wait_for(lambda: _errors(caplog, "Content-Length 200000"))

        data = raw_request(srv.port, b"GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /whole HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Content-Length: 100000" in head and body == b"l" * 100_000
        assert _wait_for(lambda: _errors(caplog, "Content-Length 100000"))


@THREADS
def test_content_length_mismatch_http2_never_sends_a_malformed_stream(threads, caplog):
    """Before: HTTP/2 sent the app's content-length whatever the body (RFC 9113 8.1.1: a malformed answer;
    h2 clients end the whole connection on it)."""
    with h2_server(app=_lengths, threads=threads) as srv, caplog.at_level(logging.ERROR, "skitai.app"):
        c = H2Client(srv.port)
        try:
            headers, body, reset, _ = _h2_stream(c, c.request("/whole"))
            assert headers["content-length"] == "3" and body == b"abc" and not reset
            headers, body, reset, _ = _h2_stream(c, c.request("/short"))
            assert reset, "a stream shorter than its content-length must be reset, not ended"
            headers, body, reset, _ = _h2_stream(c, c.request("/long"))
            assert headers["content-length"] == "100000" and body == b"l" * 100_000 and not reset
            headers, body, reset, _ = _h2_stream(c, c.request("/"))           # the connection lives on
            assert headers[":status"] == "200" and body == b"ok" and not c.broken and c.goaway() is None
        finally:
            c.close()
        for declared in ("Content-Length 10", "Content-Length 200000", "Content-Length 100000"):
            assert _wait_for(lambda d=declared: _errors(caplog, d)), declared


# ---- no body for 204 and 304 on HTTP/2 -----------------------------------------------------------------
def _no_content(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/204":
        start_response("204 No Content", [("Content-Length", "5")])
        return (piece for piece in (b"abc", b"de"))
    if path == "/204list":
        start_response("204 No Content", [])
        return [b"abc"]
    start_response("304 Not Modified", [("ETag", '"v1"'), ("Content-Length", "5")])
    return (piece for piece in (b"abc", b"de"))


@THREADS
def test_204_and_304_carry_no_body_on_http2(threads):
    """Before: HTTP/2 sent the app's body as DATA after a 204 or 304, and the app's content-length with
    them (h2 clients end the whole connection on a 304's content-length that no DATA matches)."""
    with h2_server(app=_no_content, threads=threads) as srv:
        c = H2Client(srv.port)
        try:
            for path in ("/204", "/204list", "/304"):
                headers, body, reset, frames = _h2_stream(c, c.request(path))
                assert headers[":status"] == path[1:4] and body == b"" and frames == 0 and not reset, path
                assert "content-length" not in headers, headers
            assert not c.broken and c.goaway() is None
        finally:
            c.close()
        for path in ("/204", "/204list", "/304"):      # HTTP/1.1 on the same port: the same rule
            data = raw_request(srv.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert data.endswith(b"\r\n\r\n") and b"abc" not in data, data


# ---- what start_response accepts -----------------------------------------------------------------------
@THREADS
@pytest.mark.parametrize("value", [b"v", 5], ids=["bytes", "int"])
def test_a_header_value_that_is_not_str_is_refused(threads, value, caplog):
    """Before: HTTP/1.1 sent ``("X-A", b"v")`` as ``X-A: b'v'`` and 5 as "5"; HTTP/2 answered 500 with a
    puzzling log line. PEP 3333 wants str: both protocols now answer 500 and say which header."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-A", value)])
        if environ["PATH_INFO"] == "/stream":
            return (piece for piece in (b"a", b"b"))
        return [b"body"]

    with h2_server(app=app, threads=threads) as srv, caplog.at_level(logging.ERROR, "skitai.app"):
        for path in ("/", "/stream"):
            data = raw_request(srv.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert data.startswith(b"HTTP/1.1 500") and b"X-A" not in data, data[:200]
            c = H2Client(srv.port)
            try:
                headers, _, _, _ = _h2_stream(c, c.request(path))
                assert headers[":status"] == "500" and "x-a" not in headers
            finally:
                c.close()
        assert _errors(caplog, f"is {type(value).__name__}, not str")


@THREADS
def test_a_1xx_status_from_the_app_is_refused_on_http2(threads):
    """Before: HTTP/2 sent an app's ``100 Continue`` as the stream's headers (an interim answer), then the
    body and the end of the stream: the client never got an answer. HTTP/1.1 already answered 500."""
    def app(environ, start_response):
        start_response("100 Continue", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/stream":
            return (piece for piece in (b"a", b"b"))
        return [b"body"]

    with h2_server(app=app, threads=threads) as srv:
        c = H2Client(srv.port)
        try:
            for path in ("/", "/stream"):
                headers, _, _, _ = _h2_stream(c, c.request(path))
                assert headers.get(":status") == "500", headers
            assert not c.broken and c.goaway() is None
        finally:
            c.close()


@THREADS
def test_a_status_in_non_ascii_digits_is_refused(threads):
    """Before: ``"٢٠٠ OK"`` (Arabic-Indic digits pass ``str.isdigit``) went out as ``200 OK``."""
    def app(environ, start_response):
        start_response("\u0662\u0660\u0660 OK", [("Content-Type", "text/plain")])
        return [b"body"]

    with ServerThread(app=app, threads=threads) as srv:
        assert requests.get(srv.url + "/", timeout=5).status_code == 500


# ---- what the app returns ------------------------------------------------------------------------------
@THREADS
@pytest.mark.parametrize("body", [b"hello", "hello"], ids=["bytes", "str"])
def test_returning_bytes_or_str_instead_of_an_iterable_is_a_clear_error(threads, body, caplog):
    """Before: a bare bytes body failed on its first int with "must yield bytes, not int", and a bare str
    went out one character per chunk. Both are PEP 3333 mistakes: 500, and the log says what to do."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    with ServerThread(app=app, threads=threads) as srv, caplog.at_level(logging.ERROR, "skitai.app"):
        r = requests.get(srv.url + "/", timeout=5)
        assert r.status_code == 500 and "hello" not in r.text
        assert _wait_for(lambda: _errors(caplog, "return [body]"))
        assert requests.get(srv.url + "/", timeout=5).status_code == 500      # the server lives on
