"""A robustness sweep of the TLS front door over real sockets.

Hostile clients at every stage: before the handshake (plain HTTP, an HTTP/2 preface, random bytes, real
ClientHellos cut short or mutated, ALPN and SNI extensions no client library would send), during it (a
client that stops, an alert), after it (close_notify then more data, an alert, KeyUpdates, a TLS 1.2
renegotiation, a TCP half-close), and the hostile HTTP/1.1 and HTTP/2 inputs the clear-text sweeps use,
sent over TLS, which must get the same answers.

Every case: the client gets a clear end (an alert or a close, a 4xx, a GOAWAY/RST_STREAM with a meaningful
code) or is served, within a short timeout; nothing is logged at ERROR by skitai or asyncio; a fresh client
is served right after; the server's open connections return to the baseline.
"""
from __future__ import annotations

import ctypes
import logging
import re
import socket
import ssl
import struct
import threading
import time

import pytest
import trustme
from hyperframe.frame import Frame, PingFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.skitai_core.h2ws_support import h2_server, ws_app
from tests.skitai_core.test_h1_fuzz import HIDDEN
from tests.skitai_core.test_h2_fuzz import HAND, PING, PREFACE, PROBE, SETTINGS, Outcome, complete, frame
from tests.support.logs import catching_errors
from tests.support.net import eventually
from tests.support.tls import server_context

FUZZ = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
HANDSHAKE_TIMEOUT = 0.5           # tls_handshake_timeout of the server here
CLOSE_WITHIN = HANDSHAKE_TIMEOUT + 2.0

SEEN: list[str] = []
_seen_lock = threading.Lock()


def plain(environ, start_response):
    with _seen_lock:
        SEEN.append(environ["PATH_INFO"])
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.2)                  # still running when the client's close_notify comes
    text = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {len(body)} {environ['wsgi.url_scheme']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]


def echo(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(environ["websocket.message"]).encode()]


APP = ws_app(echo, plain=plain)
LIMITS = dict(threads=2, keep_alive=2.0, header_timeout=2.0, network_timeout=2.0, max_body_size=64 * 1024,
              max_request_line=2048, max_header_size=4096)


# -- the servers: TLS (the one under test) and clear text (what the same input gets there) ----------------
@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def srv(ca, tmp_path_factory):
    ctx = server_context(ca, tmp_path_factory.mktemp("tls"))
    with catching_errors("skitai", "asyncio") as errors, \
            h2_server(app=APP, ssl=ctx, tls_handshake_timeout=HANDSHAKE_TIMEOUT, **LIMITS) as s, \
            h2_server(app=APP, **LIMITS) as clear:
        s.errors, s.clear, s.ca = errors, clear, ca
        yield s


@pytest.fixture(autouse=True)
def _fresh(srv):
    srv.errors.take()
    with _seen_lock:
        SEEN.clear()


def client_ctx(ca, alpn=None, version=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


# -- a TLS client on a MemoryBIO: every byte on the wire is ours to choose ----------------------------------
class TLS:
    def __init__(self, port: int, ctx: ssl.SSLContext, sni: str | None = "127.0.0.1", timeout: float = 5.0,
                 handshake: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=sni)
        self.closed = False            # the server closed (EOF, reset, or its close_notify)
        self.alert = None
        if handshake:
            self.handshake()

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def _pump(self, timeout: float) -> bool:
        """One socket read into the BIO; False when the server closed or nothing came in ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.incoming.write_eof()
            self.closed = True
            return False
        self.incoming.write(data)
        return True

    def handshake(self, timeout: float = 5.0) -> None:
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                if not self._pump(timeout) and self.closed:
                    raise ConnectionError("closed during the handshake") from None

    @property
    def alpn(self) -> str | None:
        return self.obj.selected_alpn_protocol()

    def send(self, data: bytes) -> None:
        self.obj.write(data)
        self.flush()

    def close_notify(self) -> None:
        try:
            self.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        self.flush()

    def read(self, timeout: float = 3.0, idle: float | None = None, until=None) -> bytes:
        """Plaintext until the server closes (or ``until(data)``, or ``idle`` s of silence); a hang past
        ``timeout`` fails."""
        out = b""
        deadline = time.monotonic() + timeout
        while True:
            while True:
                try:
                    chunk = self.obj.read(65536)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    self.closed = True
                    return out
                except ssl.SSLError as e:
                    self.alert, self.closed = e, True
                    return out
                if not chunk:
                    self.closed = True
                    return out
                out += chunk
            if until is not None and until(out):
                return out
            if self.closed:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                if idle is not None:
                    return out
                raise AssertionError(f"no close in {timeout}s; got {out[:200]!r}")
            if not self._pump(min(left, idle) if idle is not None else left) and not self.closed:
                if idle is not None:
                    return out

    def close(self) -> None:
        self.sock.close()


def raw_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    sock.settimeout(timeout)
    t0, data = time.monotonic(), b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server did not close in {timeout}s") from None
    return data, time.monotonic() - t0


def tls_records(data: bytes) -> list[int]:
    """Content types of the TLS records in ``data`` (the whole must be records: nothing in clear text)."""
    types, i = [], 0
    while i < len(data):
        assert i + 5 <= len(data) and data[i] in (20, 21, 22, 23) and data[i + 1] == 3, data[i:i + 16]
        types.append(data[i])
        i += 5 + int.from_bytes(data[i + 3:i + 5], "big")
    return types


def settle(srv) -> None:
    """The invariants after every case: a fresh client is served, no connection left, nothing logged."""
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"]))
    try:
        cl.send(b"GET /fresh HTTP/1.1\r\nHost: x\r\n\r\n")
        got = cl.read(until=lambda d: d.endswith(b"https"))
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"GET /fresh 0 https"), got
    finally:
        cl.close()
    assert eventually(lambda: srv.server.open_connections == 0, 5), f"{srv.server.open_connections} left open"
    errors = srv.errors.take()
    assert not errors, errors


# -- ClientHellos by hand ------------------------------------------------------------------------------------
def real_hello(ca, alpn=("h2", "http/1.1"), sni: str | None = "127.0.0.1") -> bytes:
    out = ssl.MemoryBIO()
    obj = client_ctx(ca, list(alpn) if alpn else None).wrap_bio(ssl.MemoryBIO(), out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def split_hello(record: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A ClientHello record as (the body up to the extensions, [(type, data), ...])."""
    body = record[5 + 4:]
    i = 2 + 32
    i += 1 + body[i]                                            # session id
    i += 2 + int.from_bytes(body[i:i + 2], "big")              # cipher suites
    i += 1 + body[i]                                            # compression methods
    head, ext_len, exts = body[:i], int.from_bytes(body[i:i + 2], "big"), []
    j, end = i + 2, i + 2 + ext_len
    while j < end:
        kind, n = struct.unpack("!HH", body[j:j + 4])
        exts.append((kind, body[j + 4:j + 4 + n]))
        j += 4 + n
    return head, exts


def join_hello(head: bytes, exts: list[tuple[int, bytes]]) -> bytes:
    """A ClientHello handshake message in as many records as it needs (16 KiB each at most)."""
    ext_bytes = b"".join(struct.pack("!HH", k, len(d)) + d for k, d in exts)
    body = head + struct.pack("!H", len(ext_bytes)) + ext_bytes
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"".join(b"\x16\x03\x01" + struct.pack("!H", len(msg[i:i + 16384])) + msg[i:i + 16384]
                    for i in range(0, len(msg), 16384))


def alpn_ext(names: list[bytes]) -> bytes:
    lst = b"".join(bytes([len(n)]) + n for n in names)
    return struct.pack("!H", len(lst)) + lst


def sni_ext(name: bytes) -> bytes:
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    return struct.pack("!H", len(entry)) + entry


def with_ext(ca, kind: int, data: bytes | None, twice: bool = False) -> bytes:
    head, exts = split_hello(real_hello(ca))
    exts = [(k, d) for k, d in exts if k != kind]
    if data is not None:
        exts.insert(0, (kind, data))
        if twice:
            exts.insert(1, (kind, data))
    return join_hello(head, exts)


def server_answer(port: int, payload: bytes, timeout: float = CLOSE_WITHIN) -> tuple[bytes, float]:
    """Send ``payload`` on a raw socket, read until the server closes (it must, in time)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(payload)
        except OSError:
            pass
        return raw_until_closed(sock, timeout)


ALPN, SNI = 16, 0
ALERT_HANDSHAKE_FAILURE = b"\x15\x03\x03\x00\x02\x02\x28"


# -- before the handshake --------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    PREFACE + frame(SETTINGS),
    b"\x00" * 64,
    b"\x16\x03\x01\x00\x00",                        # an empty handshake record
    b"\x16\x03\x01\xff\xff" + b"\x01" * 100,          # a record longer than the largest allowed
    b"\x17\x03\x03\x00\x05hello",                   # application data before any handshake
    ALERT_HANDSHAKE_FAILURE,
    b"\x80\x2e\x01\x00\x02\x00\x15",                  # an SSLv2-style hello
], ids=["http", "h2-preface", "zeros", "empty-record", "huge-record", "appdata-first", "alert-first", "sslv2"])
def test_not_a_client_hello_is_closed_at_once(srv, payload):
    data, took = server_answer(srv.port, payload)
    tls_records(data)
    assert took < HANDSHAKE_TIMEOUT + 0.4, took       # on the bytes, or at the latest on the handshake timer
    settle(srv)


@pytest.mark.parametrize("cut", [1, 9, -1])
def test_client_hello_cut_short_is_closed_after_the_handshake_timeout(srv, cut):
    hello = real_hello(srv.ca)
    data, took = server_answer(srv.port, hello[:cut])
    assert data == b"" and took < CLOSE_WITHIN, took
    settle(srv)


def test_client_that_stops_after_the_server_hello_is_cut(srv):
    cl = TLS(srv.port, client_ctx(srv.ca), handshake=False)
    try:
        with pytest.raises(ssl.SSLWantReadError):
            cl.obj.do_handshake()
        cl.flush()                                     # the ClientHello; then read the ServerHello and stop
        data, took = raw_until_closed(cl.sock, CLOSE_WITHIN)
        assert 22 in tls_records(data) and took < CLOSE_WITHIN
    finally:
        cl.close()
    settle(srv)


def test_alert_in_the_middle_of_the_handshake(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(real_hello(srv.ca))
        time.sleep(0.05)
        sock.sendall(ALERT_HANDSHAKE_FAILURE)
        data, took = raw_until_closed(sock, CLOSE_WITHIN)
        assert took < HANDSHAKE_TIMEOUT + 0.4, took
    settle(srv)


@given(data=st.data())
@FUZZ
def test_fuzz_mutated_client_hello(srv, data):
    hello = bytearray(real_hello(srv.ca))
    for _ in range(data.draw(st.integers(1, 6))):
        how = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, len(hello) - 1))
        if how == "flip":
            hello[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "set":
            hello[at] = data.draw(st.sampled_from([0, 0xff, 0x7f, 0x80]))
        elif how == "cut":
            del hello[at:]
        elif how == "insert":
            hello[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del hello[at:at + data.draw(st.integers(1, 8))]
        if not hello:
            hello = bytearray(b"\x16")
    answer, took = server_answer(srv.port, bytes(hello))
    assert took < CLOSE_WITHIN
    settle(srv)


# -- ALPN and SNI extensions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [
    alpn_ext([]),                                   # an empty protocol list
    alpn_ext([b""]),                                # an empty protocol name
    b"\x00\x05\x02h2",                              # a list longer than the extension
    b"\x00",                                        # shorter than its length field
    alpn_ext([b"h2"]) + b"junk",                    # trailing bytes
], ids=["empty-list", "empty-name", "long-list", "short", "trailing"])
def test_malformed_alpn_extension_is_refused(srv, ext):
    data, took = server_answer(srv.port, with_ext(srv.ca, ALPN, ext))
    assert set(tls_records(data)) <= {21} and took < HANDSHAKE_TIMEOUT + 0.4, (data, took)   # closed at once
    settle(srv)


def test_duplicated_alpn_extension_is_refused(srv):
    data, took = server_answer(srv.port, with_ext(srv.ca, ALPN, alpn_ext([b"h2"]), twice=True))
    assert set(tls_records(data)) <= {21} and took < HANDSHAKE_TIMEOUT + 0.4, (data, took)
    settle(srv)


NAMES = [b"h2", b"http/1.1", b"h2c", b"http/1.0", b"spdy/3", b"h3", b"H2", b"x" * 255, b"\x00", b"h2\x00"]


@given(names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=6))
@FUZZ
def test_fuzz_alpn_lists(srv, names):
    """Unknown, repeated, odd names: the server picks h2 or http/1.1 when offered (its preference), else none
    (HTTP/1.1), and serves the protocol it picked."""
    want = "h2" if b"h2" in names else "http/1.1" if b"http/1.1" in names else None
    ctx = client_ctx(srv.ca, [n.decode("latin-1") for n in names])
    cl = TLS(srv.port, ctx)
    try:
        assert cl.alpn == want, (names, cl.alpn)
        if want == "h2":
            cl.send(PREFACE + frame(SETTINGS) + frame(PING, 0, 0, PROBE))
            got = cl.read(until=lambda d: PROBE in d)
            assert PROBE in got
        else:
            cl.send(b"GET /alpn HTTP/1.1\r\nHost: x\r\n\r\n")
            got = cl.read(until=lambda d: d.endswith(b"https"))
            assert got.endswith(b"GET /alpn 0 https")
    finally:
        cl.close()
    settle(srv)


@pytest.mark.parametrize("name", [b"a" * 255, b"a." * 127 + b"b", b"x" * 16000, b"x" * 65000, b"bad\x00name", b""],
                         ids=["255", "dotted-255", "16k", "65k", "nul", "empty"])
def test_odd_sni_gets_a_clear_answer(srv, name):
    """An overlong SNI (up to a 64 KiB ClientHello, over several records) or a broken one: an alert or the
    ServerHello, then, for a hello we cannot finish, the handshake timeout; never a hang."""
    data, took = server_answer(srv.port, with_ext(srv.ca, SNI, sni_ext(name)))
    tls_records(data)
    assert took < CLOSE_WITHIN
    settle(srv)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_only_client_is_refused(srv, version):
    ctx = client_ctx(srv.ca, version=version)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        TLS(srv.port, ctx).close()
    settle(srv)


# -- after the handshake ---------------------------------------------------------------------------------------
def test_close_notify_then_more_data(srv):
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"]))
    try:
        cl.close_notify()
        cl.sock.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32 + b"GET / HTTP/1.1\r\n\r\n")
        data, took = raw_until_closed(cl.sock, 3)
        tls_records(data)
    finally:
        cl.close()
    settle(srv)


def test_request_then_close_notify_is_answered_then_closed(srv, caplog):
    """close_notify is the TLS FIN: a request sent before it is answered (as on clear text after a FIN)
    when it can be; asyncio's TLS transport closes at once, so the answer may be lost, but quietly (no
    "returning true from eof_received()" warning per connection for any client to cause)."""
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"]))
    try:
        with caplog.at_level(logging.WARNING, "asyncio"):
            cl.send(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            cl.close_notify()
            got = cl.read(timeout=3)
            assert got == b"" or got.endswith(b"POST /slow 3 https"), got
            assert cl.closed
            settle(srv)
        assert not [r for r in caplog.records if "eof_received" in r.getMessage()]
    finally:
        cl.close()


@pytest.mark.parametrize("when", ["idle", "mid-request", "after-request"])
def test_tcp_half_close_without_close_notify(srv, when):
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"]))
    try:
        if when == "mid-request":
            cl.send(b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        elif when == "after-request":
            cl.send(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
        cl.sock.shutdown(socket.SHUT_WR)
        got = cl.read(timeout=3)
        assert got == b"" or re.match(rb"HTTP/1\.1 (200|400|408) ", got), got
    finally:
        cl.close()
    settle(srv)


@pytest.mark.parametrize("alert", [b"\x15\x03\x03\x00\x02\x02\x0a", b"\x15\x03\x03\x00\x02\x01\x00",
                                   b"\x15\x03\x03\x00\x01\x02"], ids=["fatal-plain", "close-notify-plain", "short"])
def test_alert_records_in_clear_after_the_handshake(srv, alert):
    """TLS 1.3 alerts are encrypted: one in clear after the handshake is a broken record; closed at once."""
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"]))
    try:
        cl.sock.sendall(alert)
        data, took = raw_until_closed(cl.sock, 3)
        tls_records(data)
        assert took < 1.0, took
    finally:
        cl.close()
    settle(srv)


def test_close_notify_inside_a_request_head(srv):
    """A head left open, then close_notify: the request is abandoned and the connection closed."""
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"]))
    try:
        cl.send(b"GET /x HTTP/1.1\r\nHost: x\r\n")          # a head left open
        cl.close_notify()
        data, took = raw_until_closed(cl.sock, 3)
        assert took < 3
    finally:
        cl.close()
    settle(srv)


# -- KeyUpdate and renegotiation, through the client's own OpenSSL ----------------------------------------------
def _ssl_pointer(obj: ssl.SSLObject) -> int:
    """The ``SSL *`` of an ``SSLObject`` (CPython's PySSLSocket: the object head, the socket, then the SSL)."""
    return ctypes.c_void_p.from_address(id(obj._sslobj) + 3 * ctypes.sizeof(ctypes.c_void_p)).value


try:
    _LIBSSL = ctypes.CDLL("libssl.so.3")
    _LIBSSL.SSL_key_update.argtypes = [ctypes.c_void_p, ctypes.c_int]
    _LIBSSL.SSL_renegotiate.argtypes = [ctypes.c_void_p]
    _LIBSSL.SSL_version.argtypes = [ctypes.c_void_p]
except OSError:
    _LIBSSL = None
needs_libssl = pytest.mark.skipif(_LIBSSL is None, reason="needs libssl.so.3 for SSL_key_update")


@needs_libssl
@pytest.mark.parametrize("requested", [0, 1], ids=["not-requested", "requested"])
def test_keyupdate_flood(srv, requested):
    """KeyUpdates (TLS 1.3), a thousand in a row, each asking ours in return or not: the connection is served
    or closed; no hang, no error, and the server is fine."""
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"]))
    try:
        ptr = _ssl_pointer(cl.obj)
        assert _LIBSSL.SSL_version(ptr) == 0x0304
        for _ in range(1000):
            assert _LIBSSL.SSL_key_update(ptr, requested) == 1
            try:
                cl.obj.do_handshake()             # sends the pending KeyUpdate
            except ssl.SSLWantReadError:
                pass
            cl.flush()
            if cl.closed:
                break
        if not cl.closed:
            cl.send(b"GET /ku HTTP/1.1\r\nHost: x\r\n\r\n")
        got = cl.read(timeout=5, until=lambda d: d.endswith(b"https"))
        assert got.endswith(b"GET /ku 0 https"), got           # served after them
    finally:
        cl.close()
    settle(srv)


@needs_libssl
def test_tls12_renegotiation_is_refused(srv):
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"], version=ssl.TLSVersion.TLSv1_2))
    try:
        ptr = _ssl_pointer(cl.obj)
        assert _LIBSSL.SSL_version(ptr) == 0x0303
        assert _LIBSSL.SSL_renegotiate(ptr) == 1
        try:
            cl.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        cl.flush()
        got = cl.read(timeout=3)                        # the server's no_renegotiation alert, and its close
        assert cl.closed and got == b"", got
        assert "NO_RENEGOTIATION" in str(cl.alert).upper().replace(" ", "_"), cl.alert
    finally:
        cl.close()
    settle(srv)


# -- the clear-text sweeps' hostile inputs, over TLS: the same answers ----------------------------------------
_STATUS = re.compile(rb"HTTP/1\.1 (\d\d\d) ")


def h1_statuses_clear(port: int, data: bytes) -> list[bytes]:
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(0.3)
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return _STATUS.findall(got)


def h1_statuses_tls(port: int, ca, data: bytes) -> list[bytes]:
    """Read until the close or 0.4 s of silence, as on clear text. (Not close_notify behind the input:
    asyncio's TLS transport cannot half-close, so an answer still in the making is lost after it.)"""
    cl = TLS(port, client_ctx(ca, ["http/1.1"]))
    try:
        cl.send(data)
        return _STATUS.findall(cl.read(timeout=5, idle=0.3))
    finally:
        cl.close()


@pytest.mark.parametrize("data", HIDDEN[::6], ids=range(len(HIDDEN[::6])))
def test_h1_smuggling_over_tls_same_answers(srv, data):
    tls = h1_statuses_tls(srv.port, srv.ca, data)
    clear = h1_statuses_clear(srv.clear.port, data)
    assert tls == clear, (tls, clear)
    assert "/smuggled" not in SEEN
    assert not [s for s in tls if s.startswith(b"5") and s != b"505"]
    settle(srv)


H2_PICKS = [n for n in HAND if not isinstance(HAND[n][0], list)][::4]


def h2_over_tls(srv, payload: bytes, linger: float = 0.15, timeout: float = 5.0) -> Outcome:
    out = Outcome()
    cl = TLS(srv.port, client_ctx(srv.ca, ["h2"]))
    assert cl.alpn == "h2"
    buf = b""
    try:
        cl.send(PREFACE + frame(SETTINGS) + payload + complete(payload) + frame(PING, 0, 0, PROBE))
        deadline = time.monotonic() + timeout
        ack_at = None
        while not cl.closed:
            now = time.monotonic()
            if ack_at is not None and now > ack_at + linger:
                break
            assert now < deadline, "the server neither answered our PING nor closed"
            buf += cl.read(timeout=deadline - now, idle=0.05)
            while len(buf) >= 9:
                f, n = Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + n:
                    break
                f.parse_body(memoryview(buf[9:9 + n]))
                buf = buf[9 + n:]
                out.frames.append(f)
                if isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == PROBE and ack_at is None:
                    out.alive, ack_at = True, time.monotonic()
        out.closed = cl.closed
    finally:
        cl.close()
    return out


@pytest.mark.parametrize("name", H2_PICKS)
def test_h2_bad_frames_over_tls_same_answers(srv, name):
    payload, expect = HAND[name]
    expect(h2_over_tls(srv, payload))
    settle(srv)


def test_websocket_over_tls_http11_still_works(srv):
    """A wss:// handshake over ALPN http/1.1 and one message (the TLS path writes through the loop)."""
    import base64
    import os
    cl = TLS(srv.port, client_ctx(srv.ca, ["http/1.1"]))
    key = base64.b64encode(os.urandom(16)).decode()
    try:
        cl.send(f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = cl.read(until=lambda d: b"\r\n\r\n" in d)
        assert head.startswith(b"HTTP/1.1 101 ")
        cl.send(b"\x81\x82\x00\x00\x00\x00hi")           # masked (all-zero key) text "hi"
        got = cl.read(until=lambda d: d.endswith(b"hi"))
        assert got.endswith(b"\x81\x02hi")
        cl.send(b"\x81\x02hi")                           # unmasked: close 1002
        got = cl.read(timeout=3, until=lambda d: b"\x88" in d)
        assert got[got.index(b"\x88") + 2:][:2] == b"\x03\xea", got
    finally:
        cl.close()
    settle(srv)
