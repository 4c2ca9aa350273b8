"""HTTP/1.1 and the WSGI bridge against hostile or broken peers, over real sockets: answers that pile up
for a client that does not read, bodies paused then dropped, chunked trailers without end, heads dripped
byte by byte, close-delimited answers cut too early, 1xx statuses and HEAD on endless app streams."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from skitai.config import Limits
from skitai.http.request import BODY_HIGH_WATER
from tests.support.server import ServerThread, parse_responses, raw_request
from tests.support.net import eventually

BLOCK = 128 * 1024


def sized(exchange):
    """``/<n>``: an answer of n fresh bytes (each answer its own object, as real apps make them)."""
    n = int(exchange.request.path[1:] or 0)
    exchange.respond(200, [("Content-Type", "application/octet-stream")], b"x" * n)


def connect(port: int, rcvbuf: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)   # before connect: keeps the window small
    s.connect(("127.0.0.1", port))
    return s


def read_all(s: socket.socket, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def unsent(srv: ServerThread) -> int:
    return srv.call(lambda: sum(c.transport.get_write_buffer_size() for c in srv.server.connections))


# ---- answers the client does not read ------------------------------------------------------------
def test_pipelined_answers_wait_while_the_client_does_not_read():
    # 100 pipelined requests for 128 KiB each, none read: the server must not produce all 12.5 MiB into
    # its buffer (a few requests' worth at most), and every answer still comes once the client reads
    with ServerThread(sized) as srv, connect(srv.port, rcvbuf=32 * 1024) as s:
        reqs = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % BLOCK * 99
        s.sendall(reqs + b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % BLOCK)
        time.sleep(0.5)
        assert unsent(srv) < 2 * 1024 * 1024
        answers = parse_responses(read_all(s))
    assert len(answers) == 100 and all(a.status == 200 and len(a.body) == BLOCK for a in answers)


def test_close_delimited_big_answer_is_not_cut_by_the_linger_timer():
    # Connection: close and an 8 MiB answer the client reads after 2.5 s: still whole (it used to be
    # aborted 2 s after it was written, the linger time meant for error pages)
    size = 8 * 1024 * 1024
    with ServerThread(sized, network_timeout=4.0) as srv, connect(srv.port, rcvbuf=64 * 1024) as s:
        s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % size)
        time.sleep(2.5)
        answers = parse_responses(read_all(s))
    assert len(answers) == 1 and answers[0].complete and len(answers[0].body) == size


def test_unread_answer_after_client_half_close_is_cut_after_network_timeout():
    # the client half-closes and never reads an answer that fits under the high-water mark: the closing
    # connection must not keep its socket and buffer forever
    with ServerThread(sized, network_timeout=0.5, keep_alive=30, write_buffer_high=16 * 1024 * 1024) as srv, \
            connect(srv.port, rcvbuf=32 * 1024) as s:
        s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % (4 * 1024 * 1024))
        s.shutdown(socket.SHUT_WR)
        assert eventually(lambda: unsent(srv) > 0, 2.0)
        assert eventually(lambda: srv.call(lambda: len(srv.server.connections)) == 0, 4.0)


# ---- request bodies ------------------------------------------------------------------------------
async def answer_early(exchange):
    """``/early``: answer once the body buffer is over its high-water mark (reading paused), unread."""
    if exchange.request.path == "/early":
        body = exchange.request.body
        for _ in range(300):
            if body.received > BODY_HIGH_WATER:
                break
            await asyncio.sleep(0.01)
        exchange.respond(200, [("Content-Type", "text/plain")], b"early")
        return
    data = await exchange.request.body.aread()
    exchange.respond(200, [("Content-Type", "text/plain")], b"ok:%d" % len(data))


def test_answer_before_a_paused_body_is_read_keeps_the_connection_going():
    # the rest of the body (small enough to read and drop) must be read: reading was paused on a full
    # buffer that nobody will ever read, and the next request used to hang until the network timeout
    first = BODY_HIGH_WATER + 1
    rest = 40 * 1024
    with ServerThread(answer_early, network_timeout=10) as srv, connect(srv.port) as s:
        s.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (first + rest) + b"a" * first)
        s.settimeout(3)
        got = b""
        while b"early" not in got:
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
        assert b"connection: close" not in got.lower()
        s.sendall(b"a" * rest + b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        got += read_all(s, timeout=3)
    assert [(a.status, a.body) for a in parse_responses(got)] == [(200, b"early"), (200, b"ok:2")]


@pytest.fixture(scope="module")
def small():
    with ServerThread(answer_early, max_request_line=1024, max_header_size=4096, max_headers=20,
                      max_body_size=100_000) as s:
        yield s


CHUNKED = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_trailer_that_never_ends_is_431(small):
    # one trailer line without end used to be buffered by the parser without limit (and re-copied on
    # every read: quadratic)
    data = raw_request(small.port, [CHUNKED + b"3\r\nabc\r\n0\r\nX-T: "] + [b"a" * 8192] * 20, pause=0.01)
    answer = parse_responses(data)[-1]
    assert answer.status == 431 and answer.headers["connection"] == "close"


def test_too_many_trailers_is_431(small):
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(25))
    data = raw_request(small.port, CHUNKED + b"3\r\nabc\r\n0\r\n" + trailers + b"\r\n")
    assert parse_responses(data)[-1].status == 431


def test_trailers_within_the_limits_and_slow_chunks_are_fine(small):
    # a body of 40 chunks arriving in 1000-byte pieces (chunk headers and data split apart), then a trailer
    chunks = b"".join(b"400\r\n" + b"b" * 1024 + b"\r\n" for _ in range(40))
    wire = CHUNKED + chunks + b"0\r\nX-Checksum: 1\r\n\r\n" + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    pieces = [wire[i:i + 1000] for i in range(0, len(wire), 1000)]
    data = raw_request(small.port, pieces, pause=0.002)
    assert [(a.status, a.body) for a in parse_responses(data)] == [(200, b"ok:40960"), (200, b"ok:0")]


def test_endless_chunk_extension_is_413_and_others_are_served():
    # llhttp skips chunk extensions without telling anyone: 1 MiB of them on one chunk-size line used to be
    # read for ever, counted by no limit. More than max_header_size bytes without a chunk header or body
    # byte coming out of the parser is a 413; the server goes on serving the others.
    assert Limits().max_header_size == 64 * 1024
    with ServerThread(answer_early) as srv:
        with connect(srv.port) as other:
            other.sendall(CHUNKED + b"3\r\nabc\r\n")          # a slow client, mid-body on its own connection
            wire = CHUNKED + b"5;name=" + b"v" * (1 << 20) + b"\r\nhello\r\n0\r\n\r\n"
            with connect(srv.port) as s:
                try:
                    s.sendall(wire)
                except OSError:
                    pass                               # the server may stop reading once it has answered
                got = read_all(s)
            answer = parse_responses(got)[-1]
            assert answer.status == 413 and answer.headers["connection"] == "close", got[:200]
            assert got.rstrip().endswith(b"</html>")   # then closed
            other.sendall(b"0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert [a.body for a in parse_responses(read_all(other))] == [b"ok:3", b"ok:0"]
        # after body bytes, on the last chunk's line, dripped in small pieces: the same
        wire = CHUNKED + b"3\r\nabc\r\n0;x=" + b"v" * (200 * 1024)
        data = raw_request(srv.port, [wire[i:i + 8192] for i in range(0, len(wire), 8192)], pause=0.001)
        assert parse_responses(data)[-1].status == 413
        ok = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert parse_responses(ok)[0].status == 200


def test_short_chunk_extensions_are_fine(small):
    # extensions are allowed and ignored; many chunks each with its own extension, split anywhere
    chunks = b"".join(b"400;sig=%s;n=%d\r\n" % (b"s" * 500, i) + b"c" * 1024 + b"\r\n" for i in range(30))
    wire = CHUNKED + chunks + b"0;last\r\n\r\n" + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    pieces = [wire[i:i + 700] for i in range(0, len(wire), 700)]
    data = raw_request(small.port, pieces, pause=0.002)
    assert [(a.status, a.body) for a in parse_responses(data)] == [(200, b"ok:30720"), (200, b"ok:0")]


# ---- heads -----------------------------------------------------------------------------------------
def test_head_dripped_byte_by_byte_gets_408_after_header_timeout():
    # slowloris: every byte arrives well within the network timeout, the whole head never does
    assert Limits().header_timeout == 30.0
    with ServerThread(sized, header_timeout=0.6, network_timeout=10, keep_alive=10) as srv, \
            connect(srv.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ")
        s.setblocking(False)
        got = b""
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not got:
            try:
                s.send(b"a")
                got = s.recv(65536)
            except BlockingIOError:
                pass
            except OSError:
                break
            time.sleep(0.05)
        got += read_all(s, timeout=1.0) if got else b""
    assert got.startswith(b"HTTP/1.1 408"), got[:200]


# ---- WSGI apps ------------------------------------------------------------------------------------
def interim_app(environ, start_response):
    if environ["PATH_INFO"] == "/interim":
        start_response("100 Continue", [])
        return [b"not an answer"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"after"]


@pytest.mark.parametrize("threads", [0, 2])
def test_wsgi_1xx_status_is_500_not_an_interim_answer(threads):
    # a 1xx is interim: sent as the answer, the client takes the NEXT answer for this request
    with ServerThread(app=interim_app, threads=threads) as srv:
        data = raw_request(srv.port, b"GET /interim HTTP/1.1\r\nHost: x\r\n\r\n"
                                     b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [(a.status, a.body) for a in parse_responses(data)][1:] == [(200, b"after")]
    assert parse_responses(data)[0].status == 500


@pytest.mark.parametrize("threads", [0, 2])
def test_head_to_a_streaming_wsgi_app_stops_the_stream(threads):
    # HEAD of an endless stream (server-sent events, say) must end after the head: the app is not run to
    # its end (it may never end) and its iterable is closed
    produced = []
    closed = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])

        class Stream:
            def __iter__(self):
                for _ in range(2000):
                    produced.append(1)
                    yield b"data: tick\n\n"

            def close(self):
                closed.set()
        return Stream()

    with ServerThread(app=app, threads=threads) as srv:
        data = raw_request(srv.port, b"HEAD /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert closed.wait(2.0)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\n") and b"tick" not in data
    assert len(produced) < 10


def test_connect_answered_without_a_tunnel_closes_the_connection():
    # an app that answers CONNECT itself (200 here): the bytes after it are the client's tunnel data and
    # must never be parsed as the next request
    with ServerThread(app=interim_app, threads=2) as srv:
        data = raw_request(srv.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
                                     b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    answers = parse_responses(data)
    assert [a.status for a in answers] == [200] and answers[0].headers["connection"] == "close"


def _echo_body(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode() + b" got " + body]


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("token", [b"h2c", b"websocket", b"foo"])
@pytest.mark.parametrize("chunked", [False, True])
def test_upgrade_request_with_a_body_is_plain_http_and_its_body_is_not_a_request(token, chunked):
    """llhttp stops at an Upgrade head even when a body follows; the body is the request's, never the next
    request (curl sends ``POST`` with ``Upgrade: h2c`` and a body). A real request pipelined after it runs."""
    if chunked:
        framing, body = b"Transfer-Encoding: chunked", b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    else:
        framing, body = b"Content-Length: %d" % len(SMUGGLED), SMUGGLED
    head = (b"POST /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: " + token +
            b"\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" + framing + b"\r\n\r\n")
    after = b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with ServerThread(app=_echo_body, threads=2) as srv:
        # the head alone first, so the body arrives after llhttp has stopped
        out = raw_request(srv.port, [head, body + after], pause=0.1)
    answers = [(r.status, r.body) for r in parse_responses(out)]
    assert answers == [(200, b"/a got " + SMUGGLED), (200, b"/next got ")]


@pytest.mark.parametrize("host, status", [
    (b"a b", 400), (b"user@example.com", 400), (b"example.com/admin", 400), (b"example.com:80:90", 400),
    (b"ex\xc3\xa4mple.com", 400),
    (b"example.com", 200), (b"EXAMPLE.com:8080", 200), (b"[::1]:5000", 200), (b"127.0.0.1", 200), (b"", 200),
])
def test_a_host_header_that_is_not_a_host_and_port_is_400(host, status):
    # RFC 9112 3.2: a server MUST answer 400 to an invalid Host; before, these reached the app (and vhosts)
    with ServerThread(app=_echo_body, threads=0) as srv:
        out = raw_request(srv.port, b"GET /h HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert [r.status for r in parse_responses(out)] == [status]


@pytest.mark.parametrize("authority, status", [
    (b"user@example.com", 400), (b"a b", 400), (b"example.com:80:90", 400), (b"example.com", 200),
])
def test_an_absolute_form_target_whose_host_is_not_a_host_is_400(authority, status):
    # the target's authority stands for the Host (RFC 9112 3.2.2): it gets the same check
    with ServerThread(app=_echo_body, threads=0) as srv:
        out = raw_request(srv.port, b"GET http://" + authority + b"/h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [r.status for r in parse_responses(out)] == [status]
