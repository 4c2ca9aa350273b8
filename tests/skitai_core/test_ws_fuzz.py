"""Fuzzing the WebSocket server after the handshake, over real sockets.

Hostile frame streams (hypothesis-made and hand-picked) go to a raw socket after a good handshake, with and
without permessage-deflate, against WS_SIMPLE (threads=0 and worker threads), WS_GROUPCHAT, WS_DEDICATE and
the JSON / XML-RPC encodings. A small independent model of RFC 6455 (+ RFC 7692) says what the server must
answer; every example then checks:

- the server answers every valid message and PING, then sends a CLOSE with the right code (1002, 1007, 1009,
  or the client's own code echoed) and closes, within a short timeout;
- nothing is logged at ERROR (skitai's and asyncio's loggers, uncaught thread exceptions), except the one
  handler failure the app raises on purpose;
- a fresh ``websockets`` client is served right after; a group's other member keeps receiving;
- the open connections (``CONNECTIONS``) and WS_DEDICATE slots and threads return to their baseline.
"""
from __future__ import annotations

import codecs
import json
import logging
import os
import random
import select
import socket
import threading
import time
import xmlrpc.client
import zlib
from dataclasses import dataclass, field

import pytest
import websockets.sync.client as wsc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import CloseReason

import skitai
from skitai.websocket.designs import DEDICATED
from skitai.websocket.protocol import CONNECTIONS
from tests.skitai_core.h2ws_support import ws_raw
from tests.support.server import ServerThread
from tests.support.logs import ErrorRecords, catching_errors

MAX = 1024                       # ws_max_message_size of the servers here
DEFLATE = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
KNOWN_CODES = {int(c) for c in CloseReason}
SCALE = float(os.environ.get("WS_FUZZ_SCALE", "1"))     # more examples for a longer sweep (not in CI)
FUZZ = settings(max_examples=int(40 * SCALE), deadline=None, derandomize=SCALE == 1, database=None,
                suppress_health_check=list(HealthCheck))


# ---- the app: one route per design -----------------------------------------------------------------------
CONFIGS = {
    "/ws/echo": (skitai.WS_SIMPLE, 60, ("m",)),
    "/ws/group": (skitai.WS_GROUPCHAT, 60, ("m", "room")),
    "/ws/dedicate": (skitai.WS_DEDICATE, 60, None),
    "/ws/json": (skitai.WS_SIMPLE, 60, ("m",), skitai.WS_MSG_JSON),
    "/ws/xmlrpc": (skitai.WS_SIMPLE, 60, ("m",), skitai.WS_MSG_XMLRPC),
    "/ws/dedjson": (skitai.WS_DEDICATE, 60, None, skitai.WS_MSG_JSON),
    "/ws/closer": (skitai.WS_SIMPLE, 60, ("m",)),
}


class AskedToFail(Exception):
    """Raised by the app on purpose: logged once by FailureLog, by design."""


def app(environ, start_response):
    path, event = environ["PATH_INFO"], environ.get("websocket.event")
    if event == skitai.WS_EVT_INIT:
        environ["websocket.config"] = CONFIGS[path]
    if event is not None:
        start_response("200 OK", [])
        return []
    ws, message = environ["websocket"], environ["websocket.message"]
    if path.startswith("/ws/ded"):          # WS_DEDICATE: this thread runs the whole connection
        while True:
            message = ws.getwait(5)
            if message is None and ws.closed:   # gone (a JSON null is None too, on an open connection)
                break
            ws.send(message)                # empty ones too
        return []
    if path == "/ws/closer" and message.startswith("close "):    # the app closes, with the code it is sent
        code = message.split()[1]
        try:
            ws.close(1000, b"bytes") if code == "bytes-reason" else ws.close(int(code), "bye")
        except (ValueError, TypeError) as e:        # a code or reason no close frame may carry
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"refused: {e}".encode()]
        start_response("200 OK", [])
        return []
    if path in ("/ws/json", "/ws/xmlrpc"):
        if isinstance(message, dict) and message.get("raise"):
            raise AskedToFail("asked to")
        ws.send(message)
        start_response("200 OK", [])
        return []
    binary = isinstance(message, bytes)
    start_response("200 OK", [("Content-Type", "application/octet-stream" if binary else "text/plain")])
    return [message if binary else message.encode()]


# ---- what must not happen: logged errors, leaks -----------------------------------------------------------


@pytest.fixture(scope="module")
def logged():
    old_hook = threading.excepthook
    with catching_errors("skitai", "asyncio") as handler:
        def hook(args):                      # an exception nobody caught in a thread
            handler.records.append(logging.LogRecord("thread", logging.ERROR, "", 0, f"uncaught {args.exc_type!r}: "
                                                     f"{args.exc_value}", None, None))
        threading.excepthook = hook
        try:
            yield handler
        finally:
            threading.excepthook = old_hook


def start(threads: int) -> ServerThread:
    return ServerThread(app=app, threads=threads, ws_max_message_size=MAX, network_timeout=2).start()


@pytest.fixture(scope="module")
def srv0(logged):
    s = start(0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def srv2(logged):
    s = start(2)
    yield s
    s.stop()


def open_count(srv: ServerThread) -> int:
    loop = srv.loop
    return srv.call(lambda: sum(1 for ws in list(CONNECTIONS) if ws.loop is loop))


def dedicated_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("ws-dedicate-"))


def settle(srv: ServerThread, logged: ErrorRecords, open_: int = 0, slots: int = 0, threads: int = 0,
           expected_errors: tuple[str, ...] = ()) -> None:
    """Connections, dedicated slots and threads back to the baseline; nothing unexpected logged; a fresh
    ``websockets`` client served."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        state = (open_count(srv), DEDICATED.used, dedicated_threads())
        if state == (open_, slots, threads):
            break
        time.sleep(0.01)
    assert state == (open_, slots, threads), f"(open websockets, dedicated slots, threads) {state} leaked"
    errors = [e for e in logged.take() if not any(x in e for x in expected_errors)]
    assert not errors, errors
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/ws/echo", open_timeout=3) as ws:
        ws.send("fresh")
        assert ws.recv(timeout=3) == "fresh"


# ---- frames as the client sends them --------------------------------------------------------------------
@dataclass
class Wire:
    """One client frame; ``rsv`` bits: 4 = RSV1, 2 = RSV2, 1 = RSV3; ``length``: how the length is written
    ("min", "16" / "64": that many bits even where fewer would do, "top": 64 bits with the top bit set)."""
    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    mask: bool = True
    length: str = "min"

    def encode(self) -> bytes:
        n = len(self.payload)
        mode = self.length
        if mode == "min":
            mode = "7" if n < 126 else "16" if n < 65536 else "64"
        head = bytes([(0x80 if self.fin else 0) | self.rsv << 4 | self.opcode])
        m = 0x80 if self.mask else 0
        if mode == "7":
            head += bytes([m | n])
        elif mode == "16":
            head += bytes([m | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([m | 127]) + ((n | 1 << 63) if mode == "top" else n).to_bytes(8, "big")
        if not self.mask:
            return head + self.payload
        key = bytes([n & 0xFF, 0x5A, 0xA5, 0x3C])
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(self.payload))


def close_frame(code: int | None = 1000, reason: bytes = b"") -> Wire:
    return Wire(8, b"" if code is None else code.to_bytes(2, "big") + reason)


class Compressor:
    """The client's side of permessage-deflate (context takeover, as the server's inflater expects)."""

    def __init__(self) -> None:
        self.z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)

    def piece(self, data: bytes, fin: bool) -> bytes:
        out = self.z.compress(data)
        return out + self.z.flush(zlib.Z_SYNC_FLUSH)[:-4] if fin else out


def message(opcode: int, pieces: list[bytes], comp: Compressor | None = None,
            between: dict[int, list[Wire]] | None = None) -> list[Wire]:
    """A data message in fragments (compressed with ``comp``), control frames ``between`` fragments."""
    frames = []
    for i, piece in enumerate(pieces):
        fin = i == len(pieces) - 1
        payload = comp.piece(piece, fin) if comp else piece
        frames.append(Wire(opcode if i == 0 else 0, payload, fin, 4 if comp and i == 0 else 0))
        frames.extend((between or {}).get(i, []) if not fin else [])
    return frames


# ---- what the server must answer: an independent model of RFC 6455 / 7692 ------------------------------
@dataclass
class Expect:
    out: list = field(default_factory=list)     # ("text", str) / ("binary", bytes) / ("pong", bytes), in order
    codes: set = field(default_factory=set)     # acceptable codes of the server's CLOSE (None: no code)
    reason: str | None = None                   # the client's reason, echoed with its code


def close_error(payload: bytes) -> int | None:
    if len(payload) == 1:
        return 1002
    if not payload:
        return None
    code = int.from_bytes(payload[:2], "big")
    if not 1000 <= code <= 4999 or code in (1005, 1006, 1015) or (code <= 2999 and code not in KNOWN_CODES):
        return 1002
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return 1007
    return None


def model(frames: list[Wire], deflate: bool, echo_empty: bool = False) -> Expect:
    """Walk the frames as RFC 6455 says a server must; where the order of two failures in one frame depends
    on how TCP cut it (inflate/UTF-8 vs size), both codes are accepted."""
    out: list = []
    inflater = zlib.decompressobj(-15)
    msg = None                    # opcode of the message in progress
    compressed = False
    decoder = None
    size = 0
    parts: list = []

    def fail(*codes: int) -> Expect:
        return Expect(out, set(codes))

    for f in frames:
        op, n = f.opcode, len(f.payload)
        control = op >= 8
        rsv1 = bool(f.rsv & 4)
        if op not in (0, 1, 2, 8, 9, 10) or (control and (not f.fin or n > 125 or f.length != "min")):
            return fail(1002)
        if f.length == "top" or (f.length == "16" and n < 126) or (f.length == "64" and n < 65536):
            return fail(1002)
        if f.rsv & 3 or (rsv1 and (not deflate or control or op == 0)) or not f.mask:
            return fail(1002)
        if op == 8:
            error = close_error(f.payload)
            if error:
                return fail(error)
            if not f.payload:
                return Expect(out, {None}, "")
            return Expect(out, {int.from_bytes(f.payload[:2], "big")}, f.payload[2:].decode())
        if op == 9:
            out.append(("pong", f.payload))
        if control:
            continue
        if op == 0 and msg is None:
            return fail(1002)
        if op != 0 and msg is not None:     # the server may inflate it (as the message's part) first
            return fail(1002, 1007) if compressed else fail(1002)
        if msg is None:
            msg, compressed, size, parts = op, rsv1, 0, []
            decoder = codecs.getincrementaldecoder("utf-8")() if op == 1 else None
        data = f.payload
        if compressed:
            try:
                data = inflater.decompress(data)
                if f.fin:
                    data += inflater.decompress(b"\x00\x00\xff\xff") + inflater.flush()
            except zlib.error:
                return fail(1007, 1009)
        if decoder is not None:
            try:
                data = decoder.decode(data, f.fin)
            except UnicodeDecodeError:
                return fail(1007, 1009) if size + len(data) > MAX else fail(1007)
        size += len(data)
        if size > MAX:
            return fail(1009)
        parts.append(data)
        if f.fin:
            whole = ("" if msg == 1 else b"").join(parts)
            if whole or echo_empty:
                out.append(("text" if msg == 1 else "binary", whole))
            msg = None
    raise AssertionError("the streams here end with a CLOSE")


# ---- the raw client -------------------------------------------------------------------------------------
@dataclass
class Answer:
    events: list                  # ("text", str) / ("binary", bytes) / ("pong", bytes) / ("close", code, reason)
    eof: bool                     # the server closed (FIN or RST) within the timeout


def server_events(data: bytes, inflater) -> list:
    """The server's frames (unmasked) as events; compressed messages inflated (context takeover)."""
    events, i, parts, first = [], 0, [], None
    while len(data) - i >= 2:
        b0, b1 = data[i], data[i + 1]
        assert not b1 & 0x80, "a masked server frame"
        n, j = b1 & 0x7F, i + 2
        if n >= 126:
            w = 2 if n == 126 else 8
            n, j = int.from_bytes(data[j:j + w], "big"), j + w
        payload, i = data[j:j + n], j + n
        assert len(payload) == n, "a truncated server frame"
        op = b0 & 0x0F
        if op == 8:
            code = int.from_bytes(payload[:2], "big") if payload else None
            events.append(("close", code, payload[2:].decode()))
        elif op in (9, 10):
            events.append(("ping" if op == 9 else "pong", payload))
        else:
            if op:
                first = b0
            parts.append(payload)
            if b0 & 0x80:
                whole = b"".join(parts)
                if first & 0x40:
                    whole = inflater.decompress(whole + b"\x00\x00\xff\xff")
                opcode = first & 0x0F
                events.append(("text", whole.decode()) if opcode == 1 else ("binary", whole))
                parts = []
    assert i == len(data), "bytes after the last whole server frame"
    return events


def connect(port: int, path: str = "/ws/echo", deflate: bool = False) -> tuple[socket.socket, bytes]:
    sock, head, rest = ws_raw(port, path, DEFLATE if deflate else "")
    assert head.startswith("HTTP/1.1 101"), head
    assert ("permessage-deflate" in head) == deflate
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, rest


def talk(sock: socket.socket, rest: bytes, chunks: list[bytes], timeout: float = 4.0,
         reply_close: bool = False) -> Answer:
    """Send ``chunks`` (reading what comes meanwhile), then read until the server closes. ``reply_close``:
    answer the server's CLOSE with ours (when it started the close handshake and waits for it)."""
    got = [rest]
    sock.settimeout(timeout)
    for chunk in chunks:
        try:
            sock.sendall(chunk)
        except OSError:                       # the server closed already
            break
        try:
            while select.select([sock], [], [], 0)[0] and (data := sock.recv(65536)):
                got.append(data)
        except OSError:
            pass
    deadline, eof, replied = time.monotonic() + timeout, False, False
    while time.monotonic() < deadline:
        if reply_close and not replied and _has_close(b"".join(got)):
            replied = True
            try:
                sock.sendall(close_frame(1000).encode())
            except OSError:
                pass
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:                       # a reset: the server closed too
            eof = True
            break
        if not data:
            eof = True
            break
        got.append(data)
    sock.close()
    return Answer(server_events(b"".join(got), zlib.decompressobj(-15)), eof)


def _has_close(data: bytes) -> bool:
    try:
        return any(e[0] == "close" for e in server_events(data, zlib.decompressobj(-15)))
    except AssertionError:
        return False                          # a frame still on its way


def split(data: bytes, how: str, seed: int) -> list[bytes]:
    if how == "whole":
        return [data]
    if how == "bytes" and len(data) <= 3000:
        return [data[i:i + 1] for i in range(len(data))]
    rnd, out, i = random.Random(seed), [], 0
    while i < len(data):
        n = rnd.randint(1, 40)
        out.append(data[i:i + n])
        i += n
    return out


def check(answer: Answer, expect: Expect, exact: bool) -> None:
    """The server's answer against the model: ``exact`` for threads=0 (every reply, in order, before the
    CLOSE); with worker threads the replies may be cut short by the close (a prefix), PONGs stay exact."""
    events = answer.events
    assert answer.eof, f"no close within the timeout: {events!r}"
    closes = [e for e in events if e[0] == "close"]
    assert len(closes) == 1 and events[-1] is closes[0], f"not one CLOSE at the end: {events!r}"
    code, reason = closes[0][1], closes[0][2]
    assert code in expect.codes, f"close code {code}, expected {expect.codes}; {events!r}"
    if expect.reason is not None:
        assert reason == expect.reason
    body = events[:-1]
    if exact:
        assert body == expect.out
        return
    pongs = [e for e in expect.out if e[0] == "pong"]
    assert [e for e in body if e[0] == "pong"] == pongs
    messages = [e for e in expect.out if e[0] != "pong"]
    got = [e for e in body if e[0] != "pong"]
    assert got == messages[:len(got)], f"replies {got!r} are not a prefix of {messages!r}"


# ---- hypothesis: streams of frames -----------------------------------------------------------------------
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
small = st.binary(max_size=40)


@st.composite
def data_message(draw, deflate: bool, comp: Compressor):
    opcode = draw(st.sampled_from([1, 1, 2]))
    data = draw(text).encode() if opcode == 1 and draw(st.integers(0, 4)) else draw(small)
    if draw(st.integers(0, 9)) == 0:                              # near or over the size limit
        data = (data or b"x") * (MAX // max(len(data), 1) + draw(st.integers(0, 2)))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    controls = st.lists(st.builds(Wire, st.sampled_from([9, 10]), st.binary(max_size=20)), max_size=1)
    between = {i: draw(controls) for i in range(len(pieces) - 1)}
    use = comp if deflate and draw(st.booleans()) else None
    return lambda: message(opcode, pieces, use, between)


hostile_frame = st.builds(
    Wire, st.integers(0, 15), st.binary(max_size=130), st.booleans(), st.sampled_from([0, 0, 0, 4, 2, 1, 7]),
    st.sampled_from([True] * 5 + [False]), st.sampled_from(["min"] * 6 + ["16", "64", "top"]))
close_codes = st.sampled_from([1000, 1001, 1003, 1004, 1005, 1006, 1007, 1011, 1012, 1014, 1015, 1016, 2999,
                               3000, 4999, 999, 5000, 0, 65535])
close_op = st.one_of(
    st.just(Wire(8)), st.binary(min_size=1, max_size=1).map(lambda b: Wire(8, b)),
    st.builds(lambda c, r: close_frame(c, r), close_codes,
              st.one_of(text.map(lambda t: t.encode()[:100]), st.just(b"\xff\xfe"), st.just(b"ok\xc3"))))


@st.composite
def stream(draw, deflate: bool):
    """Ops rendered in order (compressed messages share one compressor), ending with a valid CLOSE."""
    comp = Compressor()
    makers = draw(st.lists(st.one_of(
        data_message(deflate, comp), data_message(deflate, comp),
        st.builds(lambda w: (lambda: [w]), hostile_frame),
        st.builds(lambda p: (lambda: [Wire(9, p)]), st.binary(max_size=125)),
        st.builds(lambda w: (lambda: [w]), close_op)), min_size=1, max_size=6))
    frames = [w for make in makers for w in make()] + [close_frame(1000)]
    return frames, draw(st.sampled_from(["whole", "chunks", "bytes"])), draw(st.integers(0, 1 << 30))


def run_stream(srv, logged, path, frames, how, seed, deflate, exact, echo_empty=False):
    expect = model(frames, deflate, echo_empty)
    sock, rest = connect(srv.port, path, deflate)
    answer = talk(sock, rest, split(b"".join(f.encode() for f in frames), how, seed))
    check(answer, expect, exact)
    return expect, answer


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_fuzz_simple_on_the_loop(srv0, logged, deflate):
    @FUZZ
    @given(stream(deflate))
    def run(case):
        run_stream(srv0, logged, "/ws/echo", *case, deflate, exact=True)
        settle(srv0, logged)
    run()


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_fuzz_simple_with_workers(srv2, logged, deflate):
    @settings(FUZZ, max_examples=int(25 * SCALE))
    @given(stream(deflate))
    def run(case):
        run_stream(srv2, logged, "/ws/echo", *case, deflate, exact=False)
        settle(srv2, logged)
    run()


@pytest.mark.parametrize("threads", [0, 2])
def test_fuzz_group_member_does_not_stop_the_room(srv0, srv2, logged, threads):
    srv = srv0 if threads == 0 else srv2
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/ws/group?room=fuzz", open_timeout=3) as member:
        counter = iter(range(10**6))

        @settings(FUZZ, max_examples=int(20 * SCALE))
        @given(stream(True))
        def run(case):
            expect, _ = run_stream(srv, logged, "/ws/group?room=fuzz", *case, True, exact=threads == 0)
            marker = f"marker {next(counter)}"
            member.send(marker)
            seen, deadline = [], time.monotonic() + 4
            wanted = [e[1] for e in expect.out if e[0] != "pong"]
            while time.monotonic() < deadline and (marker not in seen or len(seen) <= len(wanted)):
                seen.append(member.recv(timeout=4))
            assert [m for m in seen if m != marker] == wanted      # the hostile member's messages, all of them
            settle(srv, logged, open_=1)
        run()
    settle(srv, logged)


def test_fuzz_dedicate(srv0, logged):
    @settings(FUZZ, max_examples=int(25 * SCALE))
    @given(stream(True))
    def run(case):
        run_stream(srv0, logged, "/ws/dedicate", *case, True, exact=False, echo_empty=True)
        settle(srv0, logged)
    run()


# ---- encodings: bad payloads close with 1007, nothing else ---------------------------------------------
def expect_encoded(decode, dump, payload) -> Expect:
    try:
        obj = decode(payload)
    except Exception:
        return Expect([], {1007})
    return Expect([("text", dump(obj))], {1000})


def _xml_decode(payload):
    if b"<!DOCTYPE" in (payload.encode() if isinstance(payload, str) else payload):
        raise ValueError("a DTD is refused (its entities are how a small message expands to gigabytes)")
    params, _ = xmlrpc.client.loads(payload)
    return params[0] if len(params) == 1 else params


def _xml_dump(obj):
    return xmlrpc.client.dumps((obj,), methodresponse=True, allow_none=True)


JSON_CASES = ['{"a": 1}', "[1, 2, 3]", "null", '"x"', "{", "", "nul", "[" * 500, "1" * 900, "NaN", '{"a":}',
              b'{"a": 2}', b"\xff\xfe{}", b"\x00"]
XML_CASES = [
    "<?xml version='1.0'?><methodCall><methodName>m</methodName><params><param><value><int>7</int></value>"
    "</param></params></methodCall>",
    "<methodCall><methodName>m</methodName><params></params></methodCall>",
    "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member>"
    "<member><name>faultString</name><value><string>no</string></value></member></struct></value></fault>"
    "</methodResponse>",
    "<", "", "not xml", "<params><param><value><base64>!!!</base64></value></param></params>",
    "<params><param><value><int>x</int></value></param></params>",
    "<params><param><value><double>1e5000</double></value></param></params>",
    '<!DOCTYPE a [<!ENTITY e "xxxxxxxxxx"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
    '<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">]><params><param><value><string>&g;&g;&g;</string></value>'
    "</param></params>",
    b"\xff<params/>",
]


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("path,payload", [("/ws/json", p) for p in JSON_CASES] +
                         [("/ws/dedjson", p) for p in JSON_CASES[:6] + JSON_CASES[-3:]] +
                         [("/ws/xmlrpc", p) for p in XML_CASES])
def test_encodings_bad_payloads(srv0, srv2, logged, threads, path, payload):
    srv = srv0 if threads == 0 else srv2
    if path != "/ws/xmlrpc":
        expect = expect_encoded(json.loads, lambda o: json.dumps(o, ensure_ascii=False), payload)
    else:
        expect = expect_encoded(_xml_decode, _xml_dump, payload)
    encoded_round(srv, path, payload, expect, exact=threads == 0 and path != "/ws/dedjson")
    settle(srv, logged)


def encoded_round(srv, path: str, payload: str | bytes, expect: Expect, exact: bool) -> None:
    """One message; a valid one is answered and we close (1000), a bad one gets 1007 and we answer it."""
    sock, rest = connect(srv.port, path)
    frames = [Wire(1 if isinstance(payload, str) else 2, payload.encode() if isinstance(payload, str) else payload)]
    if 1000 in expect.codes:
        frames.append(close_frame(1000))
    check(talk(sock, rest, [b"".join(f.encode() for f in frames)], reply_close=True), expect, exact)


@FUZZ
@given(st.one_of(text, st.from_regex(r'\A[\[\]{}":,0-9a-z \\.eE+-]{0,30}\Z')))
def test_fuzz_json_text(srv0, logged, payload):
    expect = expect_encoded(json.loads, lambda o: json.dumps(o, ensure_ascii=False), payload)
    encoded_round(srv0, "/ws/json", payload, expect, exact=True)
    settle(srv0, logged)


@pytest.mark.parametrize("path", ["/ws/json", "/ws/dedjson"])
def test_json_null_is_a_message(srv0, logged, path):
    """JSON ``null`` is a message like any other; in WS_DEDICATE it used to read as "the client is gone" for
    good (``getwait()`` gave None from then on, to a client still connected)."""
    with wsc.connect(f"ws://127.0.0.1:{srv0.port}{path}", open_timeout=3) as ws:
        for message in ("null", "[1]", "null", "2"):
            ws.send(message)
            assert ws.recv(timeout=3) == message
    settle(srv0, logged)


@pytest.mark.parametrize("threads", [0, 2])
def test_app_failures_are_logged_once_and_the_connection_goes_on(srv0, srv2, logged, threads):
    srv = srv0 if threads == 0 else srv2
    sock, rest = connect(srv.port, "/ws/json")
    frames = [Wire(1, b'{"raise": true}')] * 30 + [Wire(1, b'{"ok": 1}'), close_frame(1000)]
    answer = talk(sock, rest, [b"".join(f.encode() for f in frames)])
    check(answer, Expect([("text", '{"ok": 1}')], {1000}), exact=threads == 0)
    failures = [r for r in logged.records if "handler failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info[0] is AskedToFail
    settle(srv, logged, expected_errors=("handler failed",))


# ---- hand-picked: each hostile input once, on both designs of threads ----------------------------------
def _frag_ping(comp: Compressor | None) -> list[Wire]:
    return message(1, [b"hello ", b"wor", b"ld"], comp, {0: [Wire(9, b"p1")], 1: [Wire(9, b"p2"), Wire(10)]})


HAND = {
    "reserved opcodes": lambda c: [Wire(3, b"x"), Wire(0xB, b"")],
    "rsv2": lambda c: [Wire(1, b"x", rsv=2)],
    "rsv3": lambda c: [Wire(2, b"x", rsv=1)],
    "rsv1 on a control frame": lambda c: [Wire(9, b"x", rsv=4)],
    "unmasked": lambda c: [Wire(1, b"x", mask=False)],
    "64-bit length, top bit": lambda c: [Wire(2, b"x" * 10, length="top")],
    "64-bit length, not minimal": lambda c: [Wire(2, b"x" * 10, length="64")],
    "ping over 125": lambda c: [Wire(9, b"x" * 126)],
    "fragmented ping": lambda c: [Wire(9, b"x", fin=False), Wire(0, b"y")],
    "close, one byte": lambda c: [Wire(8, b"\x03")],
    "close 1005": lambda c: [close_frame(1005)],
    "close 1006": lambda c: [close_frame(1006)],
    "close 999": lambda c: [close_frame(999)],
    "close 5000": lambda c: [close_frame(5000)],
    "close, bad UTF-8 reason": lambda c: [close_frame(1000, b"\xff")],
    "close 4999 echoed": lambda c: [close_frame(4999, b"bye")],
    "close without a code": lambda c: [Wire(8)],
    "continuation without start": lambda c: [Wire(0, b"x")],
    "new message inside a fragmented one": lambda c: [Wire(1, b"a", fin=False), Wire(1, b"b")],
    "pings inside fragments": _frag_ping,
    "bad UTF-8 split across fragments": lambda c: message(1, [b"ok \xe2\x82", b"\x28 x"]),
    "UTF-8 char split across fragments": lambda c: message(1, [b"euro \xe2\x82", b"\xac"]),
    "truncated UTF-8 at the end": lambda c: message(1, [b"ab\xe2\x82"]),
    "too big in fragments": lambda c: message(2, [b"x" * 600, b"y" * 600]),
    "exactly the limit": lambda c: message(1, [b"z" * MAX]),
    "frames after CLOSE": lambda c: [close_frame(1000), Wire(1, b"ignored"), Wire(3, b"bad")],
    "many messages, then a bad frame": lambda c: [Wire(1, b"m%d" % i) for i in range(300)] + [Wire(3)],
    "deflate: not deflate data": lambda c: [Wire(1, b"\xff\xff\xff\xff", rsv=4)],
    "deflate: compressed control frame": lambda c: [Wire(9, b"x", rsv=4)],
    "deflate: rsv1 on a continuation": lambda c: [Wire(1, b"", fin=False, rsv=4), Wire(0, b"x", rsv=4)],
    "deflate: a bomb": lambda c: message(1, [b"a" * 50_000], c),
    "deflate: pings inside compressed fragments": _frag_ping,
    "deflate: compressed then plain": lambda c: message(1, [b"one"], c) + message(1, [b"two"]) +
        message(2, [b"three", b"four"], c, {0: [Wire(9)]}),
}


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("name", list(HAND))
@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_hand_picked(srv0, srv2, logged, threads, name, how):
    srv = srv0 if threads == 0 else srv2
    deflate = name.startswith("deflate")
    comp = Compressor() if deflate else None
    frames = HAND[name](comp) + [close_frame(1000)]
    run_stream(srv, logged, "/ws/echo", frames, how, 0, deflate, exact=threads == 0)
    settle(srv, logged)


@pytest.mark.parametrize("name", ["many messages, then a bad frame", "pings inside fragments", "too big in fragments",
                                  "deflate: a bomb", "deflate: pings inside compressed fragments"])
@pytest.mark.parametrize("path", ["/ws/dedicate", "/ws/group"])
def test_hand_picked_other_designs(srv2, logged, name, path):
    deflate = name.startswith("deflate")
    frames = HAND[name](Compressor() if deflate else None) + [close_frame(1000)]
    run_stream(srv2, logged, path, frames, "whole", 0, deflate, exact=False, echo_empty=path == "/ws/dedicate")
    settle(srv2, logged)


@pytest.mark.parametrize("path", ["/ws/echo", "/ws/dedicate", "/ws/group"])
@pytest.mark.parametrize("cut", ["fin", "rst"])
def test_abrupt_end_mid_frame(srv2, logged, path, cut):
    """The client vanishes in the middle of a frame (and of a fragmented message): no leak, no log."""
    sock, rest = connect(srv2.port, path, deflate=True)
    data = Wire(1, b"part", fin=False).encode() + Wire(0, b"x" * 300).encode()[:50]
    sock.sendall(data)
    time.sleep(0.05)
    if cut == "rst":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    settle(srv2, logged)


def test_a_huge_declared_length_is_1009_at_once(srv2, logged):
    """A frame that says it carries 2**40 bytes: 1009 as soon as the limit is passed, not when it ends."""
    sock, rest = connect(srv2.port)
    head = bytes([0x82, 0x80 | 127]) + (1 << 40).to_bytes(8, "big") + b"\0\0\0\0"
    t = time.monotonic()
    answer = talk(sock, rest, [head + b"x" * (MAX + 10)])
    check(answer, Expect([], {1009}), exact=True)
    assert time.monotonic() - t < 1.5
    settle(srv2, logged)


AFTER_CLOSE = {   # what the client sends after the server started the close handshake
    "a protocol error": [Wire(3, b"x")],
    "messages and pings, then its CLOSE": [Wire(1, b"more"), Wire(9, b"p"), close_frame(1000)],
    "a bad CLOSE": [Wire(8, b"\x03")],
    "nothing (network_timeout)": [],
}


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("name", list(AFTER_CLOSE))
def test_after_the_server_closes(srv0, srv2, logged, threads, name):
    """The app closes (4000); whatever the client sends then, only its CLOSE matters and the socket is
    closed at the latest network_timeout (2 s here) later."""
    srv = srv0 if threads == 0 else srv2
    sock, rest = connect(srv.port, "/ws/closer")
    sock.sendall(Wire(1, b"close 4000").encode())
    got = rest
    while not _has_close(got):                # the server's CLOSE first, then the rest
        data = sock.recv(65536)
        assert data, "closed without a CLOSE frame"
        got += data
    answer = talk(sock, got, [b"".join(f.encode() for f in AFTER_CLOSE[name])])
    assert answer.eof and answer.events == [("close", 4000, "bye")]     # no echo, no PONG: closing
    settle(srv, logged)


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("code", ["70000", "-1", "999", "1005", "1015", "5000", "bytes-reason"])
def test_app_close_that_cannot_be_framed(srv0, srv2, logged, threads, code):
    """``websocket.close(70000)`` (or 1005, 5000, a bytes reason): a clear exception at the app's call, the
    connection untouched. It used to raise deep in the frame layer (a logged traceback) and leave the
    connection marked closed but open for good; codes like 999 or 5000 went on the wire for the client to
    reject."""
    srv = srv0 if threads == 0 else srv2
    sock, rest = connect(srv.port, "/ws/closer")
    answer = talk(sock, rest, [Wire(1, b"close " + code.encode()).encode(), Wire(1, b"close 1000").encode()],
                  timeout=3, reply_close=True)
    assert answer.eof
    (kind, text), close = answer.events
    assert kind == "text" and text.startswith("refused: websocket close ")
    assert ("code" in text) if code != "bytes-reason" else ("reason must be a str" in text)
    assert close == ("close", 1000, "bye")
    settle(srv, logged)
