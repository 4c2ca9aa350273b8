"""Robustness sweep of the reverse proxy over real sockets, both directions (SK-41).

Upstream side: one raw member (a thread per connection) answers ``/search/h/<name>`` with a hand-made
hostile script, ``/search/good`` with a clean answer (``Connection: close``, so every connection the
proxy keeps in its pool is one a script left open: reusing it would show as the good request arriving
on the script's connection), and ``/search/echo`` with what it received (head and body, as JSON).

Client side: raw sockets to the proxy, read with httptools, so the framing the client sees is checked
byte for byte (a chunked answer ending with its 0-chunk, a Content-Length answer closing short).

Invariants after every hostile answer: the client gets a well-formed answer (a 502/504 error page with
none of the member's bytes when nothing valid came, else the member's answer), a body that broke after
the head went out is a cut (no final chunk, no complete Content-Length), no hop-by-hop header reaches
the client, nothing is logged at ERROR, the spoilt member connection is never used again, and the next
good request succeeds.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.proxy_support import front
from tests.support.logs import catching_errors

TIMEOUT = 1.0                 # the proxy's member timeout in this module (504s take this long)
MARK = b"EVIL"                # in every hostile answer: must never reach the client in a proxy error
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
HOP = {"connection", "keep-alive", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-connection",
       "x-hop", "http2-settings"}
GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ngood"

Script = Callable[[socket.socket], object]   # returns "keep" to go on reading requests on the connection


# ---------------------------------------------------------------- the member

@dataclass
class Seen:
    conn: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


class RequestReader:
    """Reads whole requests (head and body) from a socket with httptools."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[Seen] = []
        self._headers: list[tuple[str, str]] = []
        self._body = bytearray()
        self._url = b""
        self.upgraded = b""      # bytes after an upgrade request's head

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append(Seen(0, self.parser.get_method().decode(), self._url.decode("latin-1"),
                              self._headers, bytes(self._body)))
        self._headers, self._body, self._url = [], bytearray(), b""

    def next(self) -> Seen | None:
        while not self.done:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as up:
                self.upgraded = data[up.args[0]:]
                self.on_message_complete()
        return self.done.pop(0)


class Member:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.scripts: dict[str, Script] = {}
        self.seen: list[Seen] = []
        self.early: bytes | None = None       # sent to the next new connection before reading anything
        self.hangups: set[int] = set()        # connections the proxy closed (EOF or reset seen here)
        self.socks: list[socket.socket] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.n = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.n += 1
                n = self.n
                self.socks.append(sock)
                early, self.early = self.early, None
            threading.Thread(target=self._serve, args=(sock, n, early), daemon=True).start()

    def _serve(self, sock: socket.socket, n: int, early: bytes | None) -> None:
        reader = RequestReader(sock)
        with contextlib.suppress(OSError):
            if early is not None:
                sock.sendall(early)
            while (req := reader.next()) is not None:
                req.conn = n
                req.upgraded = reader.upgraded
                self.seen.append(req)
                name = req.path.split("?")[0]
                if name.startswith("/h/"):
                    if self.scripts[name[3:]](sock) != "keep":
                        break
                elif name == "/echo":
                    data = json.dumps({"method": req.method, "path": req.path, "headers": req.headers,
                                       "body": req.body.decode("latin-1")}).encode()
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                                 b"Connection: close\r\n\r\n%s" % (len(data), data))
                    break
                else:
                    sock.sendall(GOOD)
                    break
            sock.shutdown(socket.SHUT_WR)             # FIN: the answer ends here
        self._until_hangup(sock, n)
        sock.close()

    def _until_hangup(self, sock: socket.socket, n: int) -> None:
        if sock.fileno() < 0:                     # a script closed it (a reset)
            return
        sock.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                if not sock.recv(65536):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        self.hangups.add(n)

    def conns_of(self, path: str) -> set[int]:
        return {s.conn for s in self.seen if s.path.startswith(path)}

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.close()


# ---------------------------------------------------------------- the client

@dataclass
class Reply:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False    # the answer ended by its own framing
    closed: bool = False      # the proxy closed the connection
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


class ReplyReader:
    def __init__(self, head_only: bool) -> None:
        self.reply = Reply()
        self.head_only = head_only
        self.parser = httptools.HttpResponseParser(self)
        self._body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.reply.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.reply.status = self.parser.get_status_code()
        if self.head_only:
            self.reply.complete = True

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.reply.complete = True


def read_reply(sock: socket.socket, head_only: bool = False, limit: float = 8.0,
               settle: float = 0.0) -> Reply:
    """Reads one answer: until it is complete (then ``settle`` seconds more, to see a close) or the
    connection closes."""
    r = ReplyReader(head_only)
    deadline = time.monotonic() + limit
    end_by = None
    while True:
        now = time.monotonic()
        stop = deadline if end_by is None else min(deadline, end_by)
        if now >= stop:
            break
        sock.settimeout(stop - now)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            r.reply.closed = True
            break
        if not data:
            r.reply.closed = True
            break
        r.reply.raw += data
        if not r.reply.complete:
            try:
                r.parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as e:
                if r.reply.status == 101:
                    r.reply.complete = True          # a 101: what follows is the tunnel's
                    continue
                raise AssertionError(f"the proxy's answer is not HTTP: {e}: {r.reply.raw[:300]!r}") from e
        if r.reply.complete and end_by is None:
            end_by = time.monotonic() + settle
    r.reply.body = bytes(r._body)
    return r.reply


def ask(f, raw: bytes, head_only: bool = False, settle: float = 0.0, limit: float = 8.0) -> Reply:
    with socket.create_connection(("127.0.0.1", f.port), timeout=5) as sock:
        sock.sendall(raw)
        return read_reply(sock, head_only, limit, settle)


def get(path: str, method: str = "GET", extra: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: front.test\r\n".encode() + extra + b"\r\n"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def env():
    member = Member()
    try:
        with catching_errors() as logged, front([member.address], timeout=TIMEOUT, replay_limit=64 * 1024) as f:
            f.member = member
            f.logged = logged
            yield f
    finally:
        member.stop()


@pytest.fixture
def f(env):
    env.cluster().revive(env.member.address)
    env.logged.take()
    yield env
    assert env.logged.take() == []


def wait_for(cond: Callable[[], bool], limit: float = 3.0) -> bool:
    deadline = time.monotonic() + limit
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def inflight(f) -> int:
    return f.cluster().status()["members"][0]["inflight"]


def pooled(f) -> int:
    from aquests.http import pool

    mgr = pool._per_loop.get(f.running._loop)
    return 0 if mgr is None else mgr.count()


# ---------------------------------------------------------------- checks

PROXY_ERROR = "proxy-error"
CUT = "cut"


def check_hostile(f, name: str, script: Script, expect: str | bytes | set, method: str = "GET") -> Reply:
    """Sends ``method /search/h/<name>`` with ``script`` as the member's answer and checks the invariants;
    ``expect``: PROXY_ERROR (502/504), CUT, the body of a whole answer, or a set of those."""
    member = f.member
    member.scripts[name] = script
    before = len(member.seen)
    reply = ask(f, get(f"/search/h/{name}", method), head_only=method == "HEAD", settle=0.1,
                limit=TIMEOUT * 3 + 3)
    assert reply.status, f"{name}: no answer at all: {reply.raw[:200]!r} closed={reply.closed}"
    hop = {k for k, _ in reply.headers if k in HOP - {"connection"}}
    assert not hop, f"{name}: hop-by-hop headers reached the client: {hop}"
    assert all(v.lower() in ("close", "keep-alive") for k, v in reply.headers if k == "connection"), reply.headers
    te = [v for k, v in reply.headers if k == "transfer-encoding"]
    assert te in ([], ["chunked"]), te
    expects = expect if isinstance(expect, set) else {expect}
    if reply.status in (502, 504) and (PROXY_ERROR in expects or ANY in expects) and \
            reply.header("content-type") == "text/html; charset=utf-8" and b"@mysearch" in reply.body:
        assert reply.complete, name
        assert MARK not in reply.raw, f"{name}: member bytes leaked: {reply.raw[:300]!r}"
        got = PROXY_ERROR
    elif not reply.complete:
        assert reply.closed, f"{name}: an unfinished answer left open (a hang, not a cut)"
        got = CUT
    else:
        got = reply.body
    assert got in expects or ANY in expects, f"{name}: got {got!r} (status {reply.status}), want {expects}: {reply.raw[:300]!r}"
    # the member connection of the script is never used again
    hostile = {s.conn for s in member.seen[before:] if s.path.startswith(f"/h/{name}")}
    good = ask(f, get("/search/good"))
    assert good.status == 200 and good.body == b"good" and good.complete, (name, good)
    last = member.seen[-1]
    assert last.path == "/good" and (last.conn not in hostile or got not in (PROXY_ERROR, CUT)), \
        f"{name}: the good request went on the spoilt connection {last.conn}"
    return reply


def send_then(data: bytes, then: str = "fin") -> Script:
    """A script sending ``data``, then closing (``fin``), resetting (``rst``), keeping the connection
    open for reuse (``keep``) or going silent until the proxy leaves (``hang``)."""
    def script(sock: socket.socket) -> object:
        sock.sendall(data)
        if then == "rst":
            time.sleep(0.05)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            return None
        if then == "hang":
            sock.settimeout(TIMEOUT * 4)
            with contextlib.suppress(OSError):
                sock.recv(1)
            return None
        return "keep" if then == "keep" else None
    return script


def endless(first: bytes, piece: bytes, seconds: float = 4.0) -> Script:
    def script(sock: socket.socket) -> object:
        sock.sendall(first)
        deadline = time.monotonic() + seconds
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                sock.sendall(piece)
        return None
    return script


GZ = gzip.compress(b"EVIL" * 0 + b"zipped body " * 100)
H2_SETTINGS = struct.pack(">I", 6)[1:] + b"\x04\x00" + b"\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64"

# (name, script, expected, method)
CASES = [
    # status lines that are not HTTP
    ("garbage", send_then(b"EVIL garbage\r\n\r\n"), PROXY_ERROR, "GET"),
    ("binary", send_then(b"\x00\x01\x02EVIL\xff\xfe"), PROXY_ERROR, "GET"),
    ("bad-code", send_then(b"HTTP/1.1 2x0 EVIL\r\nContent-Length: 0\r\n\r\n"), PROXY_ERROR, "GET"),
    ("code-1000", send_then(b"HTTP/1.1 1000 EVIL\r\nContent-Length: 0\r\n\r\n", "keep"), PROXY_ERROR, "GET"),
    ("code-700", send_then(b"HTTP/1.1 700 EVIL\r\nContent-Length: 0\r\n\r\n", "keep"), PROXY_ERROR, "GET"),
    ("code-99", send_then(b"HTTP/1.1 099 EVIL\r\nContent-Length: 0\r\n\r\n", "keep"), PROXY_ERROR, "GET"),
    ("http-9", send_then(b"HTTP/9.9 200 OK\r\nX: EVIL\r\nContent-Length: 0\r\n\r\n", "keep"), PROXY_ERROR, "GET"),
    ("http-2-text", send_then(b"HTTP/2 200\r\nX: EVIL\r\n\r\n", "keep"), PROXY_ERROR, "GET"),
    ("rtsp", send_then(b"RTSP/1.0 200 OK\r\nX: EVIL\r\nContent-Length: 0\r\n\r\n", "keep"), PROXY_ERROR, "GET"),
    ("h2-frames", send_then(H2_SETTINGS + b"EVIL", "keep"), PROXY_ERROR, "GET"),
    ("bare-lf", send_then(b"HTTP/1.1 200 OK\nX: EVIL\nContent-Length: 2\n\nok", "keep"), {PROXY_ERROR, b"ok"}, "GET"),
    ("head-then-fin", send_then(b"HTTP/1.1 200 OK\r\nX: EVIL\r\n"), PROXY_ERROR, "GET"),
    ("head-then-rst", send_then(b"HTTP/1.1 200 OK\r\nX: EVIL\r\n", "rst"), PROXY_ERROR, "GET"),
    ("nul-in-header", send_then(b"HTTP/1.1 200 OK\r\nX-A: a\x00EVIL\r\nContent-Length: 0\r\n\r\n", "keep"),
     {PROXY_ERROR, b""}, "GET"),
    ("space-before-colon", send_then(b"HTTP/1.1 200 OK\r\nX-A : EVIL\r\nContent-Length: 0\r\n\r\n", "keep"),
     PROXY_ERROR, "GET"),
    ("obs-fold", send_then(b"HTTP/1.1 200 OK\r\nX-A: a\r\n EVIL\r\nContent-Length: 2\r\n\r\nok", "keep"),
     {PROXY_ERROR, b"ok"}, "GET"),
    ("bad-header-name", send_then(b"HTTP/1.1 200 OK\r\nX(A): EVIL\r\nContent-Length: 2\r\n\r\nok", "keep"),
     PROXY_ERROR, "GET"),
    # heads too big or endless
    ("huge-head", send_then(b"HTTP/1.1 200 OK\r\n" + b"X-Big: EVIL" + b"a" * 70000 + b"\r\n\r\n", "keep"),
     PROXY_ERROR, "GET"),
    ("many-headers", send_then(b"HTTP/1.1 200 OK\r\n" + b"X-A: EVIL\r\n" * 300 + b"Content-Length: 0\r\n\r\n",
                               "keep"), PROXY_ERROR, "GET"),
    ("endless-headers", endless(b"HTTP/1.1 200 OK\r\n", b"X-A: EVIL\r\n" * 1000), PROXY_ERROR, "GET"),
    # framing
    ("two-lengths", send_then(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nEVIL!", "keep"),
     PROXY_ERROR, "GET"),
    ("length-list", send_then(b"HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n\r\nEVIL!", "keep"),
     PROXY_ERROR, "GET"),
    ("negative-length", send_then(b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nEVIL", "keep"),
     PROXY_ERROR, "GET"),
    ("length-and-chunked", send_then(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"4\r\nEVIL\r\n0\r\n\r\n", "keep"), {PROXY_ERROR, b"EVIL"}, "GET"),
    ("gzip-te", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nEVIL", "keep"), PROXY_ERROR, "GET"),
    ("chunked-not-last", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nEVIL", "keep"),
     PROXY_ERROR, "GET"),
    ("short-then-fin", send_then(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"), CUT, "GET"),
    ("short-then-rst", send_then(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", "rst"), CUT, "GET"),
    ("short-then-hang", send_then(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", "hang"), CUT, "GET"),
    ("chunk-then-fin", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"),
     CUT, "GET"),
    ("chunk-then-rst", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n", "rst"),
     CUT, "GET"),
    ("close-then-rst", send_then(b"HTTP/1.1 200 OK\r\n\r\n0123456789", "rst"), CUT, "GET"),
    ("close-then-fin", send_then(b"HTTP/1.1 200 OK\r\n\r\n0123456789"), b"0123456789", "GET"),
    ("bad-chunk-size", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nEVIL\r\n0\r\n\r\n",
                                 "keep"), {PROXY_ERROR, CUT}, "GET"),
    ("chunk-no-crlf", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nEVILxx0\r\n\r\n",
                                "keep"), {PROXY_ERROR, CUT}, "GET"),
    ("chunk-size-overflow", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      b"ffffffffffffffffff\r\nEVIL", "keep"), {PROXY_ERROR, CUT}, "GET"),
    ("endless-extension", endless(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=", b"EVIL" * 4096),
     {PROXY_ERROR, CUT}, "GET"),
    ("endless-trailer", endless(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: ",
                                b"EVIL" * 4096), CUT, "GET"),
    ("many-trailers", endless(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n",
                              b"X-T: EVIL\r\n" * 1000), CUT, "GET"),
    ("hop-trailers", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n"
                               b"0\r\nConnection: close\r\nTransfer-Encoding: gzip\r\nContent-Type: x/EVIL\r\n"
                               b"Keep-Alive: 1\r\nX-T: EVIL\r\n\r\n", "keep"), b"ok", "GET"),
    # a Content-Length among the trailers of a chunked answer: httptools takes it as a framing error
    ("length-trailer", send_then(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"
                                 b"0\r\nContent-Length: 99\r\n\r\n", "keep"), {b"ok", CUT}, "GET"),
    # interim answers
    ("100-storm", endless(b"", b"HTTP/1.1 100 Continue\r\nX: EVIL\r\n\r\n" * 200), PROXY_ERROR, "GET"),
    ("103-then-200", send_then(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 20
                               + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "keep"), b"ok", "GET"),
    ("101-to-get", send_then(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: EVIL\r\n\r\n"
                             b"EVIL EVIL", "keep"), PROXY_ERROR, "GET"),
    ("upgrade-on-200", send_then(b"HTTP/1.1 200 OK\r\nConnection: Upgrade, X-Hop\r\nUpgrade: EVIL\r\nX-Hop: EVIL\r\n"
                                 b"Keep-Alive: timeout=5\r\nProxy-Connection: EVIL\r\nContent-Length: 2\r\n\r\nok",
                                 "keep"), b"ok", "GET"),
    ("connection-names-length", send_then(b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n"
                                          b"\r\nok", "keep"), b"ok", "GET"),
    # bodies where there are none
    ("head-with-body", send_then(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL", "keep"), b"", "HEAD"),
    ("204-with-body", send_then(b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nEVIL", "keep"), b"", "GET"),
    ("204-chunked-body", send_then(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nEVIL\r\n"
                                   b"0\r\n\r\n", "keep"), b"", "GET"),
    ("304-with-body", send_then(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\nEVIL", "keep"), b"", "GET"),
    # silence
    ("silence", send_then(b"", "hang"), PROXY_ERROR, "GET"),
    ("silence-mid-head", send_then(b"HTTP/1.1 200 OK\r\nX: EVIL", "hang"), PROXY_ERROR, "GET"),
]


@pytest.mark.parametrize("name, script, expect, method", CASES, ids=[c[0] for c in CASES])
def test_hostile_member(f, name, script, expect, method):
    reply = check_hostile(f, name, script, expect, method)
    if name.startswith(("silence",)):
        assert reply.status == 504
    elif expect == PROXY_ERROR:
        assert reply.status == 502           # at once, not after the timeout (before: 504 for a status 099)
    if name == "hop-trailers":
        assert not {"x-t"} & {k for k, _ in reply.headers} and reply.header("content-type") is None
    if name.startswith(("204", "304")):
        assert reply.header("content-length") in (None, "4" if name.startswith("304") else None), reply.headers
    if name == "head-with-body":
        assert reply.header("content-length") == "4"


@pytest.mark.parametrize("chunked", [False, True])
def test_gzip_bodies_are_streamed_as_they_are(f, chunked):
    framing = (b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(GZ), GZ) if chunked
               else b"Content-Length: %d\r\n\r\n%s" % (len(GZ), GZ))
    name = f"gzip-{chunked}"
    reply = check_hostile(f, name, send_then(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n" + framing, "keep"),
                          GZ)
    assert reply.header("content-encoding") == "gzip"
    assert reply.header("content-length") == (None if chunked else str(len(GZ)))


def test_an_early_answer_is_not_taken_for_the_next_request(f):
    # the member answers a new connection before any request was read: either it is taken for the
    # answer (it came on the request's connection) or refused; never kept for a later request
    f.member.early = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
    reply = ask(f, get("/search/good"))
    assert reply.status in (200, 502), reply
    for _ in range(3):
        again = ask(f, get("/search/good"))
        assert again.status == 200 and again.body == b"good", again
    f.member.early = None


# -- generated answers ------------------------------------------------------------------------------

@st.composite
def answers(draw):
    """(bytes of an answer, how it ends, what the client must get)."""
    body = draw(st.binary(min_size=0, max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    extra = draw(st.lists(st.tuples(st.sampled_from(["X-A", "Keep-Alive", "Upgrade", "Trailer", "TE", "X-Hop",
                                                     "Proxy-Foo", "Server", "Date", "Set-Cookie"]),
                                    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=20)),
                          max_size=4))
    head = b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\n" + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in extra)
    if framing == "length":
        wire = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        sizes = draw(st.lists(st.integers(1, 64), max_size=8))
        pieces, at = [], 0
        for size in sizes:
            if at >= len(body):
                break
            pieces.append(body[at:at + size])
            at += size
        if at < len(body):
            pieces.append(body[at:])
        wire = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
            b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        wire = head + b"\r\n" + body
    head_len = wire.index(b"\r\n\r\n") + 4
    cut = draw(st.one_of(st.none(), st.integers(0, len(wire) - 1)))
    end = draw(st.sampled_from(["fin", "rst"]))
    if cut is None:
        want = body if (framing != "close" or end == "fin") else CUT
        return wire, end, want
    wire = wire[:cut]
    if cut < head_len:
        return wire, end, PROXY_ERROR
    if framing == "close" and end == "fin":
        return wire, end, body[:cut - head_len]       # a close-delimited body ends with the close
    if framing == "chunked" and end == "fin" and cut >= len(wire) and False:
        return wire, end, body
    return wire, end, CUT


@FUZZ
@given(answers())
def test_generated_answers(f, answer):
    wire, end, want = answer
    f.cluster().revive(f.member.address)
    n = len(f.member.seen)
    reply = check_hostile(f, f"gen{n}", send_then(wire, end), {want} if want != CUT else {CUT})
    if want not in (CUT, PROXY_ERROR):
        assert not {"x-hop", "keep-alive", "upgrade", "te", "trailer", "proxy-foo"} & {k for k, _ in reply.headers}
    assert f.logged.take() == []


ANY = "any"


@FUZZ
@given(answers(), st.lists(st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=6)), min_size=1,
                           max_size=3))
def test_mutated_answers(f, answer, edits):
    """Generated answers with bytes spliced in anywhere: the outcome is not predicted, only the invariants
    (a well-formed answer or a cut, no hop-by-hop header, no ERROR, no reuse of a spoilt connection)."""
    wire, end, _ = answer
    for at, data in edits:
        at = min(at, len(wire))
        wire = wire[:at] + data + wire[at:]
    f.cluster().revive(f.member.address)
    reply = check_hostile(f, f"mut{len(f.member.seen)}", send_then(wire, end), ANY)
    assert 100 <= reply.status <= 599
    assert f.logged.take() == []


@st.composite
def upgrade_answers(draw):
    status = draw(st.sampled_from([b"101", b"200", b"403", b"100", b"103", b"999", b"abc"]))
    headers = draw(st.lists(st.sampled_from([b"Upgrade: websocket", b"Connection: Upgrade", b"Content-Length: 3",
                                             b"Content-Length: 99", b"Transfer-Encoding: chunked", b"X-A: EVIL",
                                             b"Keep-Alive: 1", b"Connection: X-Hop", b"X-Hop: EVIL",
                                             b"X-Big: " + b"a" * 70000]),
                            max_size=4))
    tail = draw(st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"\x00\xff" * 10, b"zz\r\n"]))
    wire = b"HTTP/1.1 " + status + b" X\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + tail
    cut = draw(st.one_of(st.none(), st.integers(0, len(wire))))
    return wire if cut is None else wire[:cut]


@settings(FUZZ, max_examples=20)
@given(upgrade_answers())
def test_generated_answers_to_an_upgrade(f, wire):
    f.cluster().revive(f.member.address)
    name = f"up{len(f.member.seen)}"
    f.member.scripts[name] = send_then(wire)
    head = (f"GET /search/h/{name} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    reply = ask(f, head, head_only=True, settle=0.1, limit=TIMEOUT * 3 + 3)
    assert 100 <= reply.status <= 599, reply
    hop = HOP - {"connection", "upgrade"} - (set() if b"Connection: X-Hop" in wire else {"x-hop"})
    assert not {k for k, _ in reply.headers} & hop, reply.headers
    if reply.status == 101:
        assert reply.header("upgrade") == "websocket", reply.headers
    if reply.status in (502, 504):
        assert MARK not in reply.raw, reply.raw[:300]
    elif reply.status != 101:
        assert reply.closed, reply                  # a refused upgrade closes the connection
    assert f.logged.take() == []
    good = ask(f, get("/search/good"))
    assert good.status == 200 and good.body == b"good", good
    assert wait_for(lambda: inflight(f) == 0), inflight(f)


# ---------------------------------------------------------------- hostile clients

def echo(f, raw: bytes) -> tuple[Reply, dict]:
    reply = ask(f, raw)
    assert reply.status == 200 and reply.complete, reply
    return reply, json.loads(reply.body)


def test_connection_naming_end_to_end_headers(f):
    body = b"hello"
    _, got = echo(f, b"POST /search/echo HTTP/1.1\r\nHost: front.test\r\nConnection: Content-Length, Host, "
                     b"Content-Type\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n" + body)
    headers = dict(got["headers"])
    assert got["body"] == "hello" and headers["content-length"] == "5"
    assert headers["host"] == f.member.address
    assert "content-type" not in headers and "connection" not in {k for k, _ in got["headers"]} - {"connection"}


def test_hop_by_hop_smuggling_of_forwarding_headers(f):
    _, got = echo(f, get("/search/echo", extra=b"Connection: close, X-Forwarded-For, X-Forwarded-Proto, Via\r\n"
                                                b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
                                                b"Via: 1.1 evil\r\n"))
    headers = dict(got["headers"])
    # the proxy's own fields are there whatever the client named
    assert headers["x-forwarded-for"].endswith("127.0.0.1")
    assert headers["x-forwarded-proto"] == "http"
    assert headers["via"].endswith("1.1 skitai")


def test_spoofed_forwarding_headers(f):
    _, got = echo(f, get("/search/echo", extra=b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n"
                                                b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n"
                                                b"Forwarded: for=6.6.6.6;proto=https\r\n"))
    headers = dict(got["headers"])
    assert headers["x-forwarded-for"] == "6.6.6.6, 7.7.7.7, 127.0.0.1"      # appended: the last is ours
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "front.test"


def test_absolute_form_target_goes_to_the_cluster_only(f):
    other = socket.create_server(("127.0.0.1", 0))
    try:
        port = other.getsockname()[1]
        other.settimeout(0.3)
        _, got = echo(f, f"GET http://127.0.0.1:{port}/search/echo?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                      .encode())
        assert got["path"] == "/echo?x=1"
        with pytest.raises(TimeoutError):
            other.accept()
    finally:
        other.close()


@pytest.mark.parametrize("target", [b"127.0.0.1:22", b"PORT", b"/search/echo"])
def test_connect_is_refused(f, target):
    other = socket.create_server(("127.0.0.1", 0))
    try:
        port = str(other.getsockname()[1]).encode()
        target = target.replace(b"PORT", b"127.0.0.1:" + port)
        n = len(f.member.seen)
        reply = ask(f, b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target), settle=0.2)
        assert reply.status >= 400 and reply.complete, reply
        other.settimeout(0.2)
        with pytest.raises(TimeoutError):
            other.accept()
        assert all(s.method != "CONNECT" for s in f.member.seen[n:])
    finally:
        other.close()


def test_huge_declared_body_is_413_without_reading_it(f):
    n = len(f.member.seen)
    reply = ask(f, b"POST /search/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\nabc")
    assert reply.status == 413, reply
    assert len(f.member.seen) == n


def test_expect_100_continue(f):
    with socket.create_connection(("127.0.0.1", f.port), timeout=5) as sock:
        sock.sendall(b"POST /search/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100")
        sock.sendall(b"abc")
        reply = read_reply(sock)
    got = json.loads(reply.body)
    assert got["body"] == "abc" and "expect" not in dict(got["headers"])


def _slow_body(sock: socket.socket) -> object:
    return "keep"


def test_client_leaving_mid_upload_cancels_the_member_request(f):
    f.member.scripts["upload"] = _slow_body
    n = f.member.n
    with socket.create_connection(("127.0.0.1", f.port), timeout=5) as sock:
        sock.sendall(b"POST /search/h/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        sock.sendall(b"x" * 300_000)                 # over replay_limit: streamed to the member
        assert wait_for(lambda: f.member.n > n)
        time.sleep(0.1)
    assert wait_for(lambda: f.member.n in f.member.hangups), "the member connection was not closed"
    assert wait_for(lambda: inflight(f) == 0), inflight(f)
    assert wait_for(lambda: pooled(f) == 0), pooled(f)


def _endless_body(sock: socket.socket) -> object:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
    with contextlib.suppress(OSError):
        for _ in range(20000):
            sock.sendall(b"x" * 65536)
    return None


def test_client_leaving_mid_download_frees_the_member(f):
    f.member.scripts["download"] = _endless_body
    n = f.member.n
    with socket.create_connection(("127.0.0.1", f.port), timeout=5) as sock:
        sock.sendall(get("/search/h/download"))
        got = 0
        while got < 500_000:
            got += len(sock.recv(65536))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert wait_for(lambda: f.member.n > n and f.member.n in f.member.hangups)
    assert wait_for(lambda: inflight(f) == 0), inflight(f)
    assert wait_for(lambda: pooled(f) == 0), pooled(f)
    assert f.cluster().status()["members"][0]["fails"] == 0          # the client left: not the member's fault


def _ws_accept(sock: socket.socket) -> object:
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: x\r\n\r\nfrom-member")
    got = b""
    sock.settimeout(3)
    with contextlib.suppress(OSError):
        while b"END" not in got:
            data = sock.recv(65536)
            if not data:
                break
            got += data
    _ws_accept.got = got
    return None


@pytest.mark.parametrize("early", [False, True])
def test_websocket_tunnel_carries_garbage_untouched(f, early):
    f.member.scripts["ws"] = _ws_accept
    _ws_accept.got = None
    head = (b"GET /search/h/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    garbage = b"\x00\xffGET / HTTP/1.1\r\n\r\n\x88\x80" + bytes(range(256)) + b"END"
    with socket.create_connection(("127.0.0.1", f.port), timeout=5) as sock:
        sock.sendall(head + (garbage if early else b""))
        data = b""
        while b"from-member" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 101")
        if not early:
            sock.sendall(garbage)
        assert wait_for(lambda: _ws_accept.got is not None)
        sock.settimeout(3)
        assert sock.recv(100) == b""                 # the member closed: so does the tunnel
    assert _ws_accept.got == garbage
    assert wait_for(lambda: inflight(f) == 0)


# ---------------------------------------------------------------- regressions found by this sweep

def _upgrade(f, name: str, wire: bytes) -> Reply:
    f.member.scripts[name] = send_then(wire, "keep")
    head = (f"GET /search/h/{name} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    return ask(f, head, head_only=True, settle=0.2)


@pytest.mark.parametrize("wire", [b"HTTP/1.1 101 X\r\n\r\n", b"HTTP/1.1 101 X\r\nUpgrade: h2c\r\n\r\n",
                                  b"HTTP/1.1 999 X\r\nContent-Length: 0\r\n\r\n"])
def test_an_upgrade_answer_that_is_not_a_websocket_switch_or_http_is_502(f, wire):
    # before: a 101 without Upgrade (or to another protocol) opened the tunnel, and a status 999 was
    # passed on to the client as it was
    reply = _upgrade(f, "bad-up", wire)
    assert reply.status == 502 and reply.complete and MARK not in reply.raw, reply


def test_a_101_drops_the_headers_its_connection_names(f):
    reply = _upgrade(f, "hop-up", b"HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Hop\r\n"
                                  b"X-Hop: EVIL\r\n\r\n")
    assert reply.status == 101 and reply.header("x-hop") is None, reply.headers
    assert wait_for(lambda: inflight(f) == 0)
