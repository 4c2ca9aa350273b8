"""Shared by the HTTP/2, TLS and WebSocket tests: a real server on 127.0.0.1 in a background loop thread."""
from __future__ import annotations

import socket

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

import skitai
from skitai.http2 import hooks
from tests.support.server import ServerThread


def h2_server(dispatch=None, **kw) -> ServerThread:
    """A ``ServerThread`` (not started) that speaks HTTP/2 too: prior knowledge, h2c upgrade, ALPN h2."""
    srv = ServerThread(dispatch, **kw)
    h = hooks(srv.config, srv.dispatch)
    srv.upgrades = {**h["upgrades"], **(srv.upgrades or {})}
    srv.h2_prior_knowledge = h["h2_prior_knowledge"]
    return srv


def ws_app(on_message, config=(skitai.WS_SIMPLE, 60, ("m",)), on_init=None, on_event=None, plain=None):
    """A WSGI app on the websocket environ protocol: INIT sets ``websocket.config`` (then
    ``on_init(environ)``); every event gets an empty answer (after ``on_event(environ, event)``); each
    message is ``on_message(environ, start_response)``. ``plain(environ, start_response)`` answers the
    requests that are not WebSockets (paths other than ``/ws*``) when given."""
    def app(environ, start_response):
        if plain is not None and not environ.get("PATH_INFO", "").startswith("/ws"):
            return plain(environ, start_response)
        event = environ.get("websocket.event")
        if event == skitai.WS_EVT_INIT:
            environ["websocket.config"] = config
            if on_init is not None:
                on_init(environ)
        if event is not None:
            if on_event is not None:
                on_event(environ, event)
            start_response("200 OK", [])
            return []
        return on_message(environ, start_response)
    return app


class H2Client:
    """A raw h2 client over a blocking socket: send frames, collect events."""

    def __init__(self, port: int, settings: dict | None = None, sock=None, conn=None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
        if conn is None:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
            conn.initiate_connection()
        self.conn = conn
        self.peer_closed = False
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.events: list = []
        self.auto_ack = True
        self.broken = False
        self.raw = b""
        self.all_raw = b""

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.peer_closed:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                # the server may close right after its GOAWAY; what it sent is still read and checked
                self.peer_closed = True

    def request(self, path: str, method: str = "GET", body: bytes = b"", headers=(), end=True) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "localhost")]
        self.conn.send_headers(sid, hdrs + list(headers), end_stream=end and not body)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def read(self, until=None, timeout: float = 5.0) -> list:
        """Read events until ``until(event)`` is true (or the socket closes)."""
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return self.events
            if not data:
                return self.events
            self.all_raw += data
            if self.broken:
                self.raw += data
                continue
            try:
                evs = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.broken = True          # h2 refuses frames after GOAWAY: keep the raw bytes
                self.raw += data
                continue
            self.events.extend(evs)
            if self.auto_ack:
                for e in evs:
                    if isinstance(e, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            self.flush()
            if until and any(until(e) for e in evs):
                return self.events

    def response(self, sid: int, timeout: float = 5.0) -> tuple[dict, bytes]:
        """Headers and body of stream ``sid`` (acknowledging received data as it comes)."""
        def ended(e):
            return isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == sid
        if not any(ended(e) for e in self.events):
            self.read(ended, timeout)
        headers, body = {}, b""
        for e in self.events:
            if getattr(e, "stream_id", None) != sid:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                headers = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
        return headers, body

    def goaway(self):
        return next((e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)), None)

    def frames(self) -> list:
        """Every frame the server sent, parsed from the raw bytes (h2 stops parsing after a GOAWAY)."""
        return frames_of(self.all_raw)

    def goaway_code(self):
        from hyperframe.frame import GoAwayFrame
        from h2.errors import ErrorCodes
        frame = next((f for f in self.frames() if isinstance(f, GoAwayFrame)), None)
        return None if frame is None else ErrorCodes(frame.error_code)

    def close(self) -> None:
        self.sock.close()


# ---- WebSocket over raw sockets (for what a well-behaved client library will not send) -------------------
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def ws_raw(port: int, path: str = "/ws", extra: str = "", timeout: float = 5.0):
    """Handshake by hand; returns (socket, status line + headers text, bytes after the head)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    head, _, rest = read_head(sock).partition(b"\r\n\r\n")
    return sock, head.decode("latin-1"), rest


def read_head(sock: socket.socket) -> bytes:
    """Bytes from ``sock`` until the end of an answer head (or the close); what followed it is included."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def ws_frame(opcode: int, payload: bytes, mask: bool = True, fin: bool = True) -> bytes:
    """One client frame, built by hand so tests can send what RFC 6455 forbids."""
    import os
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    length = bytes([n]) if n < 126 else (bytes([126]) + n.to_bytes(2, "big"))
    if not mask:
        return head + length + payload
    key = os.urandom(4)
    length = bytes([length[0] | 0x80]) + length[1:]
    return head + length + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_events(sock, rest: bytes = b"", timeout: float = 3.0, until=None) -> list:
    """Server frames as wsproto events, read until ``until(event)`` or the socket closes."""
    from wsproto.connection import Connection, ConnectionType
    conn = Connection(ConnectionType.CLIENT)
    conn.receive_data(rest)
    events = list(conn.events())
    sock.settimeout(timeout)
    while not (until and any(until(e) for e in events)):
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not data:
            break
        conn.receive_data(data)
        events.extend(conn.events())
    return events


class WSStream:
    """One WebSocket on one stream of an ``H2Client``."""

    def __init__(self, client: H2Client, path: str = "/ws", headers=()) -> None:
        self.client = client
        self.frames = FrameProtocol(client=True, extensions=[])
        self.sid = client.conn.get_next_available_stream_id()
        client.conn.send_headers(self.sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                            (":scheme", "http"), (":path", path), (":authority", "localhost"),
                                            ("sec-websocket-version", "13"), *headers])
        client.flush()
        self.seen = 0

    def answer(self) -> dict:
        def mine(e):
            return getattr(e, "stream_id", None) == self.sid and isinstance(
                e, (h2.events.ResponseReceived, h2.events.StreamReset))
        if not any(mine(e) for e in self.client.events):
            self.client.read(mine)
        for e in self.client.events:
            if mine(e):
                return dict(e.headers) if isinstance(e, h2.events.ResponseReceived) else {"reset": e.error_code}
        raise AssertionError("no answer")

    def send(self, message, opcode=None) -> None:
        data = self.frames.close(CloseReason.NORMAL_CLOSURE) if opcode is Opcode.CLOSE else \
            self.frames.ping(message) if opcode is Opcode.PING else self.frames.send_data(message)
        data, conn = bytes(data), self.client.conn
        while data:                         # as the windows allow: wait for WINDOW_UPDATEs when shut
            window = min(conn.local_flow_control_window(self.sid), conn.max_outbound_frame_size)
            if window <= 0:
                self.client.read(lambda e: isinstance(e, h2.events.WindowUpdated))
                continue
            conn.send_data(self.sid, data[:window])
            data = data[window:]
            self.client.flush()

    def recv(self, timeout: float = 5.0):
        """The next WebSocket message (or control frame) of this stream: (opcode, payload)."""
        parts: list = []
        while True:
            for frame in self.frames.received_frames():
                parts.append(frame.payload)
                if frame.message_finished:
                    payload = parts[0] if len(parts) == 1 else type(parts[0])().join(parts)
                    return frame.opcode, payload
            ev = self._next_data(timeout)
            if ev is None:
                raise TimeoutError("no frame")
            self.frames.receive_bytes(ev)

    def _next_data(self, timeout: float):
        def data_of_mine(e):
            return isinstance(e, h2.events.DataReceived) and e.stream_id == self.sid
        while True:
            mine = [e for e in self.client.events if data_of_mine(e)]
            if len(mine) > self.seen:
                self.seen += 1
                return mine[self.seen - 1].data
            before = len(self.client.events)
            self.client.read(data_of_mine, timeout)
            if len(self.client.events) == before:
                return None

    def ended(self, timeout: float = 5.0) -> bool:
        def end(e):
            return isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == self.sid
        if not any(end(e) for e in self.client.events):
            self.client.read(end, timeout)
        return any(end(e) for e in self.client.events)


def frames_of(data: bytes) -> list:
    """The complete HTTP/2 frames in ``data``, parsed by hyperframe (a partial last one is left out)."""
    from hyperframe.frame import Frame
    out = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + length:
            break
        frame.parse_body(memoryview(data[9:9 + length]))
        out.append(frame)
        data = data[9 + length:]
    return out
