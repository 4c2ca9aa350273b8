"""The client's side of ending things on HTTP/2 (RFC 9113 6.8, 6.9), against a real server: after the
client's GOAWAY the streams it opened are still answered and the connection closes when they are done
(or after ``network_timeout``); a WINDOW_UPDATE of 0 on a stream costs that stream only."""
from __future__ import annotations

import threading
import time

import h2.events
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame, PingFrame, WindowUpdateFrame

from tests.skitai_core.h2ws_support import H2Client, h2_server
from tests.skitai_core.test_h2_hardening import GET, RawH2

BIG = 300_000                     # several times the client's 64 KiB window: WINDOW_UPDATEs must still flow


def make_app(gate: threading.Event, arrived: threading.Event):
    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/slow":
            arrived.set()
            gate.wait(5)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"late"]
        if path == "/big":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return [b"b" * BIG]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fine"]
    return app


def client_goaway(c: H2Client, last_stream_id: int = 0, code: int = 0, ping: bool = True) -> None:
    """A PING and the client's GOAWAY in one write, framed by hand: the client's h2 connection stays open,
    so it still acknowledges the DATA that comes after (as a client that went away may)."""
    frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=code)
    c.sock.sendall((PingFrame(0, opaque_data=b"goaway!!").serialize() if ping else b"") + frame.serialize())


def closed_by_server(c: H2Client, timeout: float = 2.0) -> bool:
    c.read(timeout=timeout)              # until the socket closes (or the time is up)
    c.sock.settimeout(0.2)
    try:
        return c.sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_streams_open_at_the_clients_goaway_are_answered_then_the_connection_closes():
    gate, arrived = threading.Event(), threading.Event()
    with h2_server(app=make_app(gate, arrived), threads=4) as s:
        c = H2Client(s.port)
        try:
            big, slow = c.request("/big"), c.request("/slow")
            assert arrived.wait(2)               # both streams are open on the server
            client_goaway(c)
            c.read(lambda e: isinstance(e, h2.events.PingAckReceived), 2)
            assert any(isinstance(e, h2.events.PingAckReceived) for e in c.events)   # not dropped with h2's buffer
            late = c.request("/new")              # a stream opened after our GOAWAY is refused
            c.read(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == late, 2)
            (reset,) = [e for e in c.events if isinstance(e, h2.events.StreamReset)]
            assert reset.stream_id == late and reset.error_code == ErrorCodes.REFUSED_STREAM
            gate.set()
            headers, body = c.response(big)
            assert headers[":status"] == "200" and body == b"b" * BIG     # a flow-controlled body, whole
            headers, body = c.response(slow)
            assert headers[":status"] == "200" and body == b"late"
            assert closed_by_server(c)
            assert c.goaway() is None            # closed without a GOAWAY of its own: the client left first
        finally:
            gate.set()
            c.close()


def test_clients_goaway_with_no_stream_open_closes_at_once_after_the_ping_ack():
    gate, arrived = threading.Event(), threading.Event()
    with h2_server(app=make_app(gate, arrived)) as s:
        c = H2Client(s.port)
        try:
            assert c.response(c.request("/x"))[1] == b"fine"
            client_goaway(c, last_stream_id=0)
            assert closed_by_server(c)
            assert any(isinstance(e, h2.events.PingAckReceived) for e in c.events)
        finally:
            c.close()


def test_streams_not_done_within_network_timeout_after_goaway_are_cut():
    gate, arrived = threading.Event(), threading.Event()
    with h2_server(app=make_app(gate, arrived), network_timeout=0.4) as s:
        c = H2Client(s.port)
        try:
            c.request("/slow")
            assert arrived.wait(2)
            t = time.monotonic()
            client_goaway(c, ping=False)
            assert closed_by_server(c, timeout=3)
            assert 0.3 < time.monotonic() - t < 2.5
        finally:
            gate.set()
            c.close()


# -- WINDOW_UPDATE with an increment of 0 (RFC 9113 6.9) ------------------------------------------------------
def test_zero_window_update_resets_its_stream_only_and_on_stream_0_the_connection():
    gate, arrived = threading.Event(), threading.Event()
    with h2_server(app=make_app(gate, arrived), threads=2) as s:
        c = RawH2(s.port)
        try:
            c.headers(1, [(n, "/slow" if n == ":path" else v) for n, v in GET])
            assert arrived.wait(2)
            c.sock.sendall(WindowUpdateFrame(1, 0).serialize())
            c.read_until(lambda: c.reset_of(1) is not None)
            rst = c.reset_of(1)
            assert rst is not None and rst.error_code == ErrorCodes.PROTOCOL_ERROR
            c.headers(3, GET)
            assert c.answer(3) == ("200", b"fine")          # the connection serves on
            assert c.goaway() is None
            c.sock.sendall(WindowUpdateFrame(0, 0).serialize())    # the connection's window: still fatal
            c.read_until(lambda: c.goaway() is not None)
            assert c.goaway() is not None and c.goaway().error_code == ErrorCodes.PROTOCOL_ERROR
        finally:
            gate.set()
            c.close()
