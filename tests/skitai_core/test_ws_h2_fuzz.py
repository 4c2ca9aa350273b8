"""A robustness sweep of WebSocket over HTTP/2 (RFC 8441 extended CONNECT) over real sockets.

Hostile WebSocket frames inside the CONNECT stream's DATA (unmasked, bad opcodes, oversized or fragmented
control frames, invalid UTF-8, bad close frames, broken compression), the stream ended or reset at every
stage, DATA after END_STREAM, a client that never opens its window, WINDOW_UPDATE games, and many
WebSockets on one connection with one of them hostile.

Every case: the hostile stream gets a CLOSE with the right code (then END_STREAM), or an RST_STREAM/GOAWAY
with a meaningful code, or correct service; never a hang; nothing logged at ERROR by skitai or asyncio; the
connection's other streams and a fresh client are served; and connections, exchanges and WebSockets return
to the baseline.
"""
from __future__ import annotations

import asyncio
import os
import time
import zlib

import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import Opcode

import skitai
from skitai.http2.protocol import CONNECTIONS as H2_CONNECTIONS
from skitai.websocket.protocol import CONNECTIONS as WS_CONNECTIONS
from tests.skitai_core.h2ws_support import H2Client, WSStream, frames_of, h2_server, ws_app, ws_frame
from tests.support.logs import catching_errors
from tests.support.net import eventually

MAX = 1024                        # ws_max_message_size here
FUZZ = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
E = ErrorCodes
RST_OK = {E.NO_ERROR, E.PROTOCOL_ERROR, E.FLOW_CONTROL_ERROR, E.STREAM_CLOSED, E.CANCEL, E.FRAME_SIZE_ERROR}
DEFLATE = [("sec-websocket-extensions", "permessage-deflate")]


def plain(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine"]


def echo(environ, start_response):
    message = environ["websocket.message"]
    binary = isinstance(message, bytes)
    start_response("200 OK", [("Content-Type", "application/octet-stream" if binary else "text/plain")])
    return [message if binary else message.encode()]


@pytest.fixture(scope="module")
def srv():
    with catching_errors("skitai", "asyncio") as errors, \
            h2_server(app=ws_app(echo, (skitai.WS_SIMPLE, 60, ("m",)), plain=plain), threads=2,
                      ws_max_message_size=MAX, network_timeout=1.0, h2_max_concurrent_streams=20) as s:
        s.errors = errors
        yield s


@pytest.fixture(autouse=True)
def _fresh(srv):
    srv.errors.take()


# -- the invariants ---------------------------------------------------------------------------------------------
def server_state(srv) -> tuple[int, int, int]:
    """(live HTTP/2 connections, their exchanges, open WebSockets) on the server's loop."""
    def count():
        loop = asyncio.get_running_loop()
        live = [p for p in list(H2_CONNECTIONS) if p.loop is loop and p.transport is not None]
        return len(live), sum(len(p.exchanges) for p in live), sum(1 for w in list(WS_CONNECTIONS) if w.loop is loop)
    return srv.call(count)


def settle(srv) -> None:
    c = H2Client(srv.port)
    try:
        ws = WSStream(c)
        assert ws.answer()[":status"] == "200"
        ws.send("fresh")
        assert ws.recv() == (Opcode.TEXT, "fresh")
        ws.send(None, Opcode.CLOSE)
        assert ws.recv()[0] is Opcode.CLOSE and ws.ended()
    finally:
        c.close()
    assert eventually(lambda: srv.server.open_connections == 0, 5), f"{srv.server.open_connections} open"
    assert eventually(lambda: server_state(srv) == (0, 0, 0), 5), server_state(srv)
    errors = srv.errors.take()
    assert not errors, errors


def close_of(ws: WSStream, timeout: float = 3.0):
    """Read the server's frames on ``ws`` until its CLOSE: (code, [messages before it]); (None, ...) when the
    stream ended or was reset without one."""
    got = []
    while True:
        try:
            opcode, payload = ws.recv(timeout)
        except TimeoutError:
            return None, got
        if opcode is Opcode.CLOSE:
            return payload[0], got
        got.append((opcode, payload))


def reset_code(c: H2Client, sid: int):
    return next((e.error_code for e in c.events if isinstance(e, h2.events.StreamReset) and e.stream_id == sid), None)


def send_raw(ws: WSStream, data: bytes, end: bool = False) -> None:
    ws.client.conn.send_data(ws.sid, data, end_stream=end)
    ws.client.flush()


def opened(c: H2Client, headers=()) -> WSStream:
    ws = WSStream(c, headers=headers)
    assert ws.answer()[":status"] == "200"
    return ws


# -- hostile frames inside the DATA --------------------------------------------------------------------------
def deflated(data: bytes) -> bytes:
    co = zlib.compressobj(wbits=-15)
    out = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


HOSTILE = {
    "unmasked": (ws_frame(1, b"hi", mask=False), 1002, False),
    "opcode 3": (ws_frame(3, b"x"), 1002, False),
    "opcode 0xB": (ws_frame(0xB, b""), 1002, False),
    "continuation first": (ws_frame(0, b"x"), 1002, False),
    "ping of 126": (ws_frame(9, b"p" * 126), 1002, False),
    "fragmented ping": (ws_frame(9, b"p", fin=False), 1002, False),
    "rsv1 without deflate": (bytes([0xC1]) + ws_frame(1, b"x")[1:], 1002, False),
    "rsv2": (bytes([0xA1]) + ws_frame(1, b"x")[1:], 1002, False),
    "invalid utf-8": (ws_frame(1, b"\xff\xfe"), 1007, False),
    "utf-8 cut across fragments": (ws_frame(1, b"\xe2\x82", fin=False) + ws_frame(0, b"x"), 1007, False),
    "too big": (ws_frame(2, b"b" * (MAX + 1)), 1009, False),
    "too big in fragments": (ws_frame(2, b"b" * 600, fin=False) + ws_frame(0, b"b" * 600), 1009, False),
    "new message inside a fragmented one": (ws_frame(1, b"a", fin=False) + ws_frame(1, b"b"), 1002, False),
    "close of 1 byte": (ws_frame(8, b"\x03"), 1002, False),
    "close code 999": (ws_frame(8, (999).to_bytes(2, "big")), 1002, False),
    "close code 1005": (ws_frame(8, (1005).to_bytes(2, "big")), 1002, False),
    "close reason bad utf-8": (ws_frame(8, (1000).to_bytes(2, "big") + b"\xff"), 1007, False),
    "close 4000 echoed": (ws_frame(8, (4000).to_bytes(2, "big") + b"bye"), 4000, False),
    "huge declared length": (b"\x82\xff" + (2 ** 62).to_bytes(8, "big") + b"mask" + b"x" * (MAX + 10), 1009, False),
    # permessage-deflate negotiated
    "deflate garbage": (bytes([0xC2]) + ws_frame(2, b"\xff\xff\xff\xff\x00")[1:], 1007, True),
    "rsv1 on a continuation": (bytes([0xC1]) + ws_frame(1, deflated(b"ab"), fin=False)[1:]
                               + bytes([0xC0]) + ws_frame(0, deflated(b"c"))[1:], 1002, True),
    "rsv1 on a control frame": (bytes([0xC9]) + ws_frame(9, b"")[1:], 1002, True),
    "deflate bomb": (bytes([0xC2]) + ws_frame(2, deflated(b"\0" * 200_000))[1:], 1009, True),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_frames_in_the_stream(srv, name):
    raw, code, deflate = HOSTILE[name]
    c = H2Client(srv.port)
    try:
        ws = WSStream(c, headers=DEFLATE if deflate else ())
        head = ws.answer()
        assert head[":status"] == "200" and ("permessage-deflate" in head.get("sec-websocket-extensions", "")) == deflate
        if not deflate:                   # (our frame reader here does not inflate)
            ws.send("before")
            assert ws.recv() == (Opcode.TEXT, "before")
        send_raw(ws, raw)
        got, _ = close_of(ws)
        assert got == code, (got, reset_code(c, ws.sid))
        assert ws.ended(), "the stream was not ended after our CLOSE"
        stream = c.conn.streams.get(ws.sid)
        if stream is not None and stream.open:          # more from us after the server's CLOSE: ignored
            send_raw(ws, ws_frame(1, b"after the close"))
        other = opened(c)                 # the connection goes on
        other.send("other")
        assert other.recv() == (Opcode.TEXT, "other")
    finally:
        c.close()
    settle(srv)


def test_the_stream_ends_right_behind_a_failing_close(srv):
    """Regression: after a protocol error the server's CLOSE went out but the stream stayed open (its DATA
    drained, a stream slot and the WebSocket held) until the client answered or network_timeout passed;
    on TCP the socket is half-closed at once. Now END_STREAM follows the CLOSE frame."""
    c = H2Client(srv.port)
    try:
        ws = opened(c)
        send_raw(ws, ws_frame(1, b"hi", mask=False))
        assert close_of(ws)[0] == 1002
        assert ws.ended(timeout=0.5), "no END_STREAM behind the CLOSE"
        assert eventually(lambda: server_state(srv)[2] == 0, 0.5), "the WebSocket outlived its stream"
        other = opened(c)
        other.send("ok")
        assert other.recv() == (Opcode.TEXT, "ok")
    finally:
        c.close()
    settle(srv)


# -- the stream ended or reset at every stage ---------------------------------------------------------------------
def _stage_before_200(c: H2Client) -> None:
    ws = WSStream(c)
    c.conn.reset_stream(ws.sid, E.CANCEL)
    c.flush()


def _stage_end_before_200(c: H2Client) -> None:
    ws = WSStream(c)
    c.conn.end_stream(ws.sid)
    c.flush()


def _stage_after_200(c: H2Client) -> None:
    ws = opened(c)
    c.conn.reset_stream(ws.sid, E.CANCEL)
    c.flush()


def _stage_mid_message(c: H2Client) -> None:
    ws = opened(c)
    send_raw(ws, ws_frame(1, b"part", fin=False))
    c.conn.reset_stream(ws.sid, E.CANCEL)
    c.flush()


def _stage_mid_frame_end(c: H2Client) -> None:
    ws = opened(c)
    send_raw(ws, ws_frame(2, b"x" * 100)[:20], end=True)
    assert ws.ended()


def _stage_after_our_close(c: H2Client) -> None:
    ws = opened(c)
    ws.send(None, Opcode.CLOSE)
    c.conn.reset_stream(ws.sid, E.CANCEL)
    c.flush()


def _stage_after_their_close(c: H2Client) -> None:
    ws = opened(c)
    send_raw(ws, ws_frame(1, b"\xff"))           # the server closes 1007
    assert close_of(ws)[0] == 1007
    if c.conn.streams[ws.sid].open:
        c.conn.reset_stream(ws.sid, E.CANCEL)
        c.flush()


def _stage_end_with_a_message(c: H2Client) -> None:
    ws = opened(c)
    send_raw(ws, ws_frame(1, b"last"), end=True)
    # the message may be answered or not (the client has ended); the stream must end either way
    assert ws.ended()


def _stage_while_answer_blocked(c: H2Client) -> None:
    c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.flush()
    ws = opened(c)
    ws.send("x" * 900)
    c.read(timeout=0.2)
    c.conn.reset_stream(ws.sid, E.CANCEL)
    c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    c.flush()


STAGES = {n[len("_stage_"):]: f for n, f in dict(globals()).items() if n.startswith("_stage_")}


@pytest.mark.parametrize("stage", list(STAGES))
def test_stream_ended_or_reset_at_every_stage(srv, stage):
    c = H2Client(srv.port)
    try:
        STAGES[stage](c)
        c.read(timeout=0.2)
        assert c.goaway() is None, c.goaway()
        other = opened(c)
        other.send("still here")
        assert other.recv() == (Opcode.TEXT, "still here")
    finally:
        c.close()
    settle(srv)


def test_data_after_end_stream_on_a_websocket_stream(srv):
    c = H2Client(srv.port)
    try:
        ws = opened(c)
        send_raw(ws, ws_frame(1, b"x"), end=True)
        # h2 will not send DATA on a half-closed stream: write the frame by hand
        payload = ws_frame(1, b"late")
        c.sock.sendall(len(payload).to_bytes(3, "big") + b"\x00\x00" + ws.sid.to_bytes(4, "big") + payload)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not [f for f in frames_of(c.all_raw) if f.type == 3]:
            c.read(timeout=0.1)          # h2 hides a RST_STREAM on a stream it sees closed: read the frames
        codes = [(f.type, f.error_code) for f in frames_of(c.all_raw) if f.type in (3, 7)]
        assert codes == [(3, E.STREAM_CLOSED)], codes
    finally:
        c.close()
    settle(srv)


# -- flow control -----------------------------------------------------------------------------------------------
def buffered(srv) -> int:
    """Bytes the server holds for the peer: the exchanges' outboxes and the connections' transports."""
    def count():
        loop = asyncio.get_running_loop()
        live = [p for p in list(H2_CONNECTIONS) if p.loop is loop and p.transport is not None]
        return sum(ex.outbox.size for p in live for ex in p.exchanges.values()) + \
            sum(p.transport.get_write_buffer_size() for p in live)
    return srv.call(count)


def test_a_client_that_never_opens_its_window_is_not_buffered_without_bound(srv):
    """Window 0 and echoes asked for as fast as the server's window lets us send: the server stops reading
    (its WINDOW_UPDATEs stop), what it holds stays bounded, and the stream is reset after network_timeout."""
    c = H2Client(srv.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.auto_ack = True
    try:
        ws = opened(c)
        message = ws.frames.send_data(b"m" * 1000)
        sent = 0
        for _ in range(2000):               # up to 2 MB of requests for echoes
            if c.conn.local_flow_control_window(ws.sid) < len(message):
                c.read(lambda e: isinstance(e, (h2.events.WindowUpdated, h2.events.StreamReset)), timeout=0.3)
                if c.conn.local_flow_control_window(ws.sid) < len(message) or reset_code(c, ws.sid) is not None:
                    break
            send_raw(ws, bytes(ws.frames.send_data(b"m" * 1000)))
            sent += 1
        held = buffered(srv)
        assert sent * 1000 < 1_200_000, sent             # reading stopped well before 2 MB
        assert held < 700_000, held                       # ~ the stream window (256 KiB) + the high-water mark
        c.read(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == ws.sid, timeout=3)
        assert reset_code(c, ws.sid) == E.CANCEL
        assert c.goaway() is None
    finally:
        c.close()
    settle(srv)


@pytest.mark.parametrize("game", ["zero", "overflow", "dribble", "connection-zero-then-open"])
def test_window_update_games(srv, game):
    c = H2Client(srv.port)
    try:
        if game == "dribble":
            c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1})
            c.flush()
        ws = opened(c)
        if game == "zero":
            c.sock.sendall(b"\x00\x00\x04\x08\x00" + ws.sid.to_bytes(4, "big") + b"\x00\x00\x00\x00")
            c.read(lambda e: isinstance(e, h2.events.StreamReset), timeout=3)
            assert reset_code(c, ws.sid) == E.PROTOCOL_ERROR
        elif game == "overflow":
            c.sock.sendall(b"\x00\x00\x04\x08\x00" + ws.sid.to_bytes(4, "big") + (2 ** 31 - 1).to_bytes(4, "big"))
            c.read(lambda e: isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)), timeout=3)
            g = c.goaway()
            assert reset_code(c, ws.sid) == E.FLOW_CONTROL_ERROR or (g and g.error_code == E.FLOW_CONTROL_ERROR)
        elif game == "dribble":
            ws.send("abcdefgh")
            got = b""
            for _ in range(40):
                c.read(lambda e: isinstance(e, h2.events.DataReceived), timeout=1)
                got = b"".join(e.data for e in c.events if isinstance(e, h2.events.DataReceived)
                               and e.stream_id == ws.sid)
                if len(got) >= 10:
                    break
            assert got == b"\x81\x08abcdefgh"            # one byte per window of one, in order
        else:
            ws.send("z" * 500)
            assert ws.recv() == (Opcode.TEXT, "z" * 500)
            c.conn.increment_flow_control_window(100_000)
            c.flush()
            ws.send("again")
            assert ws.recv() == (Opcode.TEXT, "again")
    finally:
        c.close()
    settle(srv)


# -- many WebSockets on one connection, one of them hostile ----------------------------------------------------
@pytest.mark.parametrize("hostile", ["unmasked", "invalid utf-8", "too big", "reset"])
def test_many_streams_one_hostile(srv, hostile):
    c = H2Client(srv.port)
    try:
        streams = [opened(c) for _ in range(8)]
        bad = streams[3]
        if hostile == "reset":
            c.conn.reset_stream(bad.sid, E.CANCEL)
            c.flush()
        else:
            send_raw(bad, HOSTILE[hostile][0])
        for i, ws in enumerate(streams):
            if ws is not bad:
                ws.send(f"s{i}")
        for i, ws in enumerate(streams):
            if ws is not bad:
                assert ws.recv() == (Opcode.TEXT, f"s{i}")
        if hostile != "reset":
            assert close_of(bad)[0] == HOSTILE[hostile][1]
        for ws in streams:
            if ws is not bad:
                ws.send(None, Opcode.CLOSE)
                assert close_of(ws)[0] == 1000
        assert c.goaway() is None
    finally:
        c.close()
    settle(srv)


# -- hypothesis: frame sequences cut into DATA at random places, with an end or a reset anywhere -------------
@st.composite
def ws_frames(draw) -> bytes:
    kind = draw(st.sampled_from(["text", "binary", "ping", "pong", "frag", "close", "bad"]))
    if kind == "text":
        return ws_frame(1, draw(st.text(max_size=40)).encode())
    if kind == "binary":
        return ws_frame(2, draw(st.binary(max_size=1500)))
    if kind in ("ping", "pong"):
        return ws_frame(9 if kind == "ping" else 10, draw(st.binary(max_size=130)))
    if kind == "frag":
        return ws_frame(1, b"ab", fin=False) + ws_frame(draw(st.sampled_from([0, 1, 9])), b"cd")
    if kind == "close":
        return ws_frame(8, draw(st.sampled_from([b"", b"\x03\xe8", b"\x03\xe8ok", b"\x00\x01", b"\x0f\xa0"])))
    return draw(st.sampled_from([v[0] for v in HOSTILE.values() if not v[2]]))


@given(frames=st.lists(ws_frames(), min_size=1, max_size=6), cuts=st.lists(st.integers(0, 4000), max_size=4),
       ending=st.sampled_from(["none", "end", "reset", "close"]))
@FUZZ
def test_fuzz_frame_sequences(srv, frames, cuts, ending):
    c = H2Client(srv.port)
    try:
        ws = opened(c)
        stream = b"".join(frames)
        points = sorted({p for p in cuts if 0 < p < len(stream)}) + [len(stream)]
        start = 0
        for p in points:
            if not c.conn.streams.get(ws.sid) or not c.conn.streams[ws.sid].open or \
                    c.conn.local_flow_control_window(ws.sid) < p - start:
                break
            send_raw(ws, stream[start:p])
            start = p
        stream_open = c.conn.streams.get(ws.sid) is not None and c.conn.streams[ws.sid].open
        if stream_open and ending == "end":
            c.conn.end_stream(ws.sid)
        elif stream_open and ending == "reset":
            c.conn.reset_stream(ws.sid, E.CANCEL)
        elif stream_open and ending == "close":
            send_raw(ws, ws_frame(8, b"\x03\xe8"))
        c.flush()
        if ending in ("end", "close"):
            assert ws.ended(3), "the stream never ended"
        c.read(timeout=0.1)
        for sid, code in ((e.stream_id, e.error_code) for e in c.events if isinstance(e, h2.events.StreamReset)):
            assert code in RST_OK, (sid, code)
        assert c.goaway() is None, c.goaway()
        other = opened(c)
        other.send("alive")
        assert other.recv() == (Opcode.TEXT, "alive")
    finally:
        c.close()
    settle(srv)


def test_random_bytes_in_the_stream(srv):
    c = H2Client(srv.port)
    try:
        ws = opened(c)
        send_raw(ws, os.urandom(3000))
        ws.ended(3)
        assert c.goaway() is None
    finally:
        c.close()
    settle(srv)
