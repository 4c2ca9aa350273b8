"""Fuzz sweep, part 2: the WebSocket, gRPC, XML-RPC and MongoDB clients against hostile servers.

The harness is test_client_fuzz.py's (``fuzz_support``): a fresh loop per example, raw servers on
127.0.0.1 whose first connection (or first call) is hostile and whose later ones are served well,
and a check that no exception reached the loop's handler. Per example:

(a) the call ends within its timeout with a 200 or a 7xx naming the problem (or the documented
    exception of a stream: ClientError, GrpcError, TimeoutError), never a raw parser exception;
(b) nothing reaches the loop's exception handler;
(c) a following good call to the same server succeeds (nothing poisoned is reused).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import socket
import struct
import time
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (AcceptConnection, CloseConnection, Message, Ping, Request,
                            TextMessage)

import aquests
from aquests import codes, websocket
from aquests.http.errors import ClientError

from .fuzz_support import FUZZ, GOOD_TIMEOUT, SLACK, TIMEOUT, Server, run, shut

FAILURES = (codes.TIMEOUT, codes.REQUEST_FAILED, codes.PROTOCOL_ERROR, codes.CONNECTION_CLOSED)


def check_response(r: Any, elapsed: float, timeout: float = TIMEOUT, errors: tuple = (), http: bool = False) -> None:
    """Invariant (a) for one response of any of these clients."""
    assert elapsed <= timeout + SLACK, f"took {elapsed:.2f}s ({r.status_code} {r.reason})"
    if codes.is_failure(r.status_code):
        assert r.status_code in FAILURES, (r.status_code, r.reason)
        assert r.reason, r
        assert r.error is None or isinstance(r.error, (ClientError, TimeoutError, OSError, *errors)), repr(r.error)
    elif http:
        assert 100 <= r.status_code <= 599, (r.status_code, r.reason)
    else:
        assert r.status_code == 200, (r.status_code, r.reason)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.fileno() >= 0:
        with contextlib.suppress(OSError):   # the client may have closed first
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def finish(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, server: Server, after: str) -> None:
    """What a hostile connection does once its bytes are out: close, reset, hang or flood."""
    if after == "flood":   # endless bytes (inside a frame that declared a huge length, or garbage)
        with contextlib.suppress(ConnectionError):
            while not server.stop.is_set() and not writer.transport.is_closing():
                writer.write(b"x" * 65536)
                await writer.drain()
    elif after == "rst":
        reset(writer)
    elif after == "hang":
        with contextlib.suppress(ConnectionError):
            stop = asyncio.ensure_future(server.stop.wait())
            more = asyncio.ensure_future(reader.read(1 << 20))
            await asyncio.wait([stop, more], timeout=TIMEOUT + SLACK, return_when=asyncio.FIRST_COMPLETED)
            for f in (stop, more):
                f.cancel()
            await asyncio.gather(stop, more, return_exceptions=True)


# -- WebSocket --------------------------------------------------------------------------------
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_MAX = 4096   # max_size of the hostile calls


async def serve_ws(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A well-behaved WebSocket server (wsproto): answers each message with "GOOD " + it."""
    conn = WSConnection(ConnectionType.SERVER)
    while True:
        data = await reader.read(65536)
        if not data:
            return
        conn.receive_data(data)
        for ev in conn.events():
            if isinstance(ev, Request):
                writer.write(conn.send(AcceptConnection()))
            elif isinstance(ev, Message) and ev.message_finished:
                writer.write(conn.send(TextMessage(data="GOOD " + ev.data)))
            elif isinstance(ev, Ping):
                writer.write(conn.send(ev.response()))
            elif isinstance(ev, CloseConnection):
                if conn.state is ConnectionState.REMOTE_CLOSING:
                    writer.write(conn.send(ev.response()))
                await writer.drain()
                return
        await writer.drain()


def wsframe(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = False,
            length: int | None = None) -> bytes:
    """One raw frame as a server would send it (``length`` may lie about the payload)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if mask:
        key = b"\x01\x02\x03\x04"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    return wsframe(8, (b"" if code is None else code.to_bytes(2, "big")) + reason)


WS_FRAMES = st.sampled_from([
    wsframe(1, b"REPLY"), wsframe(2, b"\x00\x01"), wsframe(1, b""), wsframe(1, b"MASKED", mask=True),
    wsframe(3, b"x"), wsframe(7, b""), wsframe(0xB, b"x"), wsframe(0xF, b""),
    wsframe(9, b"p" * 126), wsframe(9, b"frag", fin=False), wsframe(8, b"c" * 130), wsframe(10, b"pong"),
    wsframe(1, b"\xff\xfe bad utf-8"), wsframe(1, b"ok \xe2\x82", fin=False) + wsframe(0, b"\xac end"),
    wsframe(1, b"\xe2\x82", fin=False) + wsframe(0, b"\xff"), wsframe(0, b"continuation first"),
    wsframe(1, b"start", fin=False) + wsframe(1, b"restart"), wsframe(1, b"part", fin=False),
    wsframe(1, b"", fin=False) + wsframe(2, b"mixed"), wsframe(1, b"", fin=False) + wsframe(0, b"x" * 5000),
    wsframe(2, b"y" * 3000, fin=False) + wsframe(0, b"y" * 3000),
    wsframe(2, b"big", length=1 << 62), wsframe(2, b"msb", length=(1 << 63) + 5),
    wsframe(2, b"x" * 10, length=WS_MAX * 4), wsframe(1, b"x" * (WS_MAX + 1)),
    wsframe(1, b"x", length=200) + b"short", bytes([0x81, 126, 0, 5]) + b"short",  # non-minimal length
    close_frame(1000), close_frame(999), close_frame(1005), close_frame(1006), close_frame(1004),
    close_frame(5000), close_frame(4000, b"app"), close_frame(1000, b"\xff\xfe"), wsframe(8, b"\x03"),
    close_frame(None), wsframe(1, b"rsv1", rsv=4), wsframe(2, b"\xff\x00garbage", rsv=4), wsframe(1, b"rsv3", rsv=1),
    wsframe(9, b"") * 2000, b"\x81", b"\x82\xff", b"\x00" * 7,
])

WS_HANDSHAKES = st.sampled_from([
    "ok", "ok", "ok", "ok", "no101", "400", "noaccept", "wrongaccept", "ext", "deflate", "proto",
    "body", "noupgrade", "badline", "cut", "bighead", "1xx-then-101", "101-twice",
])


def ws_head(kind: str, accept: bytes) -> bytes:
    good = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: " + accept]
    if kind == "no101":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    if kind == "400":
        return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 999\r\n\r\nnope"
    if kind == "noaccept":
        good = good[:3]
    elif kind == "wrongaccept":
        good[3] = b"Sec-WebSocket-Accept: " + base64.b64encode(b"x" * 20)
    elif kind == "ext":
        good.append(b"Sec-WebSocket-Extensions: x-unknown-ext")
    elif kind == "deflate":
        good.append(b"Sec-WebSocket-Extensions: permessage-deflate")
    elif kind == "proto":
        good.append(b"Sec-WebSocket-Protocol: not-offered")
    elif kind == "body":
        good.append(b"Content-Length: 5")
        return b"\r\n".join(good) + b"\r\n\r\nhello"
    elif kind == "noupgrade":
        good = [good[0], good[3]]
    elif kind == "badline":
        return b"HTTP/1.1 1O1 Switching\r\n\r\n"
    elif kind == "cut":
        return b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs"
    elif kind == "bighead":
        good.append(b"X-Big: " + b"v" * 200_000)
    elif kind == "1xx-then-101":
        return b"HTTP/1.1 100 Continue\r\n\r\n" + b"\r\n".join(good) + b"\r\n\r\n"
    elif kind == "101-twice":
        return (b"\r\n".join(good) + b"\r\n\r\n") * 2
    return b"\r\n".join(good) + b"\r\n\r\n"


def accept_for(head: bytes) -> bytes:
    key = next((ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
                if ln.lower().startswith(b"sec-websocket-key")), b"")
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


@st.composite
def ws_answers(draw: st.DrawFn) -> dict:
    return {
        "handshake": draw(WS_HANDSHAKES),
        "frames": draw(st.lists(WS_FRAMES, min_size=0, max_size=4)),
        "wait_message": draw(st.booleans()),   # read the client's message before the frames
        "after": draw(st.sampled_from(["close", "rst", "hang", "flood"])),
        "binary": draw(st.booleans()),
    }


def ws_hostile(answer: dict) -> Callable:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(ws_head(answer["handshake"], accept_for(head)))
        await writer.drain()
        if answer["wait_message"]:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(1), TIMEOUT + SLACK)
        with contextlib.suppress(ConnectionError):
            for f in answer["frames"]:
                writer.write(f)
                await writer.drain()
        server.sent.set()
        await finish(writer, reader, server, answer["after"])
        return False
    return hostile


async def good_ws(url: str) -> None:
    r = await websocket.request(url, "after", timeout=GOOD_TIMEOUT)
    assert (r.status_code, r.content) == (200, (1, "GOOD after")), (r.status_code, r.reason)


async def ws_example(answer: dict) -> None:
    async with Server(ws_hostile(answer), serve_ws) as bad:
        url = f"ws://127.0.0.1:{bad.port}/chat"
        message = b"\x00hi" if answer["binary"] else "hi"
        t0 = time.monotonic()
        r = await websocket.request(url, message, timeout=TIMEOUT, max_size=WS_MAX)
        check_response(r, time.monotonic() - t0)
        if r.status_code == 200:
            opcode, payload = r.content
            assert (opcode, type(payload)) in ((1, str), (2, bytes)) and len(payload) <= WS_MAX
        await good_ws(url)


@settings(FUZZ, max_examples=100)
@given(ws_answers())
def test_ws_hostile_servers(answer: dict) -> None:
    run(lambda: ws_example(answer))


# -- gRPC -------------------------------------------------------------------------------------
pb = pytest.importorskip("tests.aquests.protos.routeguide_pb2")


def grpc_msg(msg: Any) -> bytes:
    data = msg.SerializeToString()
    return b"\0" + len(data).to_bytes(4, "big") + data


FEATURE = grpc_msg(pb.Feature(name="f", location=pb.Point(latitude=1)))

GRPC_HEADS = st.sampled_from([
    [(":status", "200"), ("content-type", "application/grpc")],
    [(":status", "200"), ("content-type", "application/grpc")],
    [(":status", "200"), ("content-type", "application/grpc+proto")],
    [(":status", "200")], [(":status", "200"), ("content-type", "text/html")],
    [(":status", "404"), ("content-type", "application/grpc")], [(":status", "500")],
    [(":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "gzip")],
    [(":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "snappy")],
])
GRPC_BODIES = st.sampled_from([
    FEATURE, FEATURE, b"\0\0\0\0\0", b"\0\0\0\0\x10" + FEATURE[5:], b"\0\0\0\0\x01" + FEATURE[5:],
    b"\1" + FEATURE[1:], b"\2" + FEATURE[1:], b"\x80" + FEATURE[1:], b"\0\xff\xff\xff\xff" + b"x" * 100,
    b"\0" + (4 * 1024 * 1024 + 1).to_bytes(4, "big") + b"y" * 1000, b"\0\0\0\0\x05\xff\xff\xff\xff\xff",
    b"\0\0\0", FEATURE[:7], b"\0\0\0\x10\x00" + b"z" * 4096, FEATURE * 50,
])
GRPC_STATUS = st.sampled_from([
    [("grpc-status", "0")], [("grpc-status", "0")], [("grpc-status", "5"), ("grpc-message", "no%20such")],
    [], [("grpc-status", "abc")], [("grpc-status", "")], [("grpc-status", "-1")], [("grpc-status", "99")],
    [("grpc-status", "1e3")], [("grpc-status", "0"), ("grpc-status", "13")], [("grpc-status", "٣")],
    [("grpc-status", "3"), ("grpc-message", "%zz%")], [("grpc-status", "3"), ("grpc-message", "\u00ff")],
    [("grpc-status", "99999999999999999999999")], [("grpc-message", "status missing")],
])


@st.composite
def grpc_answers(draw: st.DrawFn) -> dict:
    return {
        "head": draw(GRPC_HEADS),
        "trailers_only": draw(st.integers(0, 3)) == 0,
        "bodies": draw(st.lists(GRPC_BODIES, max_size=3)),
        "status": draw(GRPC_STATUS),
        "end": draw(st.sampled_from(["trailers", "trailers", "data", "reset", "close", "hang"])),
        "method": draw(st.sampled_from(["GetFeature", "ListFeatures", "RecordRoute", "stream"])),
    }


class GrpcServer(asyncio.Protocol):
    """An h2c server answering the first gRPC call of the server with ``answer`` and later ones well."""

    def __init__(self, state: dict) -> None:
        import h2.config
        import h2.connection
        self.state = state
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False,
            validate_inbound_headers=False))
        self.hostile: set[int] = set()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.state["transports"].append(transport)
        self.h2.initiate_connection()
        self.flush()

    def data_received(self, data: bytes) -> None:
        import h2.events
        import h2.exceptions
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                if self.state["answer"] is not None:
                    answer, self.state["answer"] = self.state["answer"], None
                    self.hostile.add(ev.stream_id)
                    self.misbehave(ev.stream_id, answer)
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id not in self.hostile:
                self.behave(ev.stream_id)
        self.flush()

    def flush(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self.h2.data_to_send())

    def behave(self, sid: int) -> None:
        with contextlib.suppress(Exception):
            self.h2.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
            self.h2.send_data(sid, FEATURE)
            self.h2.send_headers(sid, [("grpc-status", "0")], end_stream=True)

    def misbehave(self, sid: int, answer: dict) -> None:
        h = self.h2
        if answer["trailers_only"]:
            h.send_headers(sid, answer["head"] + answer["status"], end_stream=answer["end"] != "hang")
            self.flush()
            return
        h.send_headers(sid, answer["head"])
        bodies = answer["bodies"]
        for i, body in enumerate(bodies):
            last = i == len(bodies) - 1 and answer["end"] == "data"
            while len(body) > 16384 and h.local_flow_control_window(sid) > 16384:
                h.send_data(sid, body[:16384])
                body = body[16384:]
            h.send_data(sid, body[:min(len(body), h.local_flow_control_window(sid))], end_stream=last)
        if answer["end"] == "data" and not bodies:
            h.send_data(sid, b"", end_stream=True)
        elif answer["end"] == "trailers":
            h.send_headers(sid, answer["status"] or [("x-none", "1")], end_stream=True)
        elif answer["end"] == "reset":
            h.reset_stream(sid, 2)
        self.flush()
        if answer["end"] == "close":
            self.transport.close()


async def grpc_call(stub: Any, method: str, timeout: float) -> Any:
    """One call of ``method``; a ``stream`` call is read into a list (its errors are raised)."""
    if method == "GetFeature":
        return await stub.GetFeature(pb.Point(latitude=1), timeout=timeout)
    if method == "ListFeatures":
        return await stub.ListFeatures(pb.Rectangle(), timeout=timeout)
    if method == "RecordRoute":
        return await stub.RecordRoute([pb.Point(latitude=i) for i in range(3)], timeout=timeout)
    return [f async for f in stub.ListFeatures.stream(pb.Rectangle(), timeout=timeout)]


async def grpc_example(answer: dict) -> None:
    from aquests.rpc.grpc import GrpcError
    loop = asyncio.get_running_loop()
    state = {"answer": answer, "transports": []}
    srv = await loop.create_server(lambda: GrpcServer(state), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    try:
        async with aquests.Session(max_body_size=8 * 1024 * 1024) as s:
            stub = s.grpc(url, service=pb)
            t0 = time.monotonic()
            if answer["method"] == "stream":
                try:
                    async with asyncio.timeout(TIMEOUT + SLACK + 1):
                        await grpc_call(stub, "stream", TIMEOUT)
                except (ClientError, GrpcError, TimeoutError):
                    pass
                assert time.monotonic() - t0 <= TIMEOUT + SLACK
            else:
                r = await grpc_call(stub, answer["method"], TIMEOUT)
                check_response(r, time.monotonic() - t0)
                if r.status_code == 200:
                    assert (r.grpc_status == 0) == (r.error is None), (r.grpc_status, r.error)
                    assert r.error is None or isinstance(r.error, GrpcError)
                    assert isinstance(r.grpc_status, int)
            await asyncio.sleep(0.02)   # a close right after the answer has come in (no race with it)
            for method in ("GetFeature", "stream"):
                good = await grpc_call(stub, method, GOOD_TIMEOUT)
                if method == "stream":
                    assert [f.name for f in good] == ["f"]
                else:
                    assert good.status_code == 200, (good.status_code, good.reason)
                    assert (good.grpc_status, good.data.name) == (0, "f")
    finally:
        srv.close()
        for t in state["transports"]:
            t.abort()


@settings(FUZZ, max_examples=60)
@given(grpc_answers())
def test_grpc_hostile_servers(answer: dict) -> None:
    run(lambda: grpc_example(answer))


# -- XML-RPC ----------------------------------------------------------------------------------
def xml_value(inner: str) -> str:
    return f"<?xml version='1.0'?><methodResponse><params><param><value>{inner}</value></param></params></methodResponse>"


LAUGHS = ("<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a0 'lol'>"
          + "".join(f"<!ENTITY a{i} '{('&a' + str(i - 1) + ';') * 10}'>" for i in range(1, 10))
          + "]><methodResponse><params><param><value><string>&a9;</string></value></param></params></methodResponse>")
QUADRATIC = ("<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a '" + "x" * 50_000 + "'>]><methodResponse><params>"
             "<param><value><string>" + "&a;" * 20_000 + "</string></value></param></params></methodResponse>")
EXTERNAL = ("<?xml version='1.0'?><!DOCTYPE r [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><methodResponse>"
            "<params><param><value><string>&e;</string></value></param></params></methodResponse>")

XML_BODIES = st.sampled_from([
    xml_value("<int>3</int>"), xml_value("<string>ok</string>"), xml_value("<int>x</int>"),
    xml_value("<int>" + "9" * 5000 + "</int>"), xml_value("<i8>99999999999999999999999</i8>"),
    xml_value("<double>1e99999</double>"), xml_value("<double>nan-ish</double>"),
    xml_value("<boolean>2</boolean>"), xml_value("<dateTime.iso8601>garbage</dateTime.iso8601>"),
    xml_value("<base64>!!!not base64</base64>"), xml_value("<nil/>"), xml_value("<unknowntype>1</unknowntype>"),
    xml_value("<struct><member><value><int>1</int></value></member></struct>"),
    xml_value("<struct><member><name>a</name></member></struct>"), xml_value("<array><value>1</value></array>"),
    xml_value("<array><data>" * 3000 + "</data></array>" * 3000),
    xml_value("<array><data><value>" * 2000 + "<int>1</int>" + "</value></data></array>" * 2000),
    "<?xml version='1.0'?><methodResponse><fault><value><int>1</int></value></fault></methodResponse>",
    "<?xml version='1.0'?><methodResponse><fault><value><struct><member><name>faultCode</name><value>"
    "<int>4</int></value></member></struct></value></fault></methodResponse>",
    "<?xml version='1.0'?><methodResponse><fault><value><struct><member><name>faultCode</name><value>"
    "<string>x</string></value></member><member><name>faultString</name><value><array><data/></array>"
    "</value></member><member><name>extra</name><value><int>1</int></value></member></struct></value></fault>"
    "</methodResponse>",
    "<?xml version='1.0'?><methodResponse><fault></fault></methodResponse>",
    "<?xml version='1.0'?><methodResponse><params></params></methodResponse>",
    "<?xml version='1.0'?><methodResponse>", "<methodResponse><params><param><value><int>1",
    "not xml at all", "", "<html><body>502</body></html>", "\x00\xff\xfe",
    LAUGHS, QUADRATIC, EXTERNAL, "<?xml version='1.0' encoding='no-such'?><methodResponse/>",
])


@st.composite
def xml_answers(draw: st.DrawFn) -> dict:
    body = draw(XML_BODIES).encode("utf-8", "surrogatepass")
    status = draw(st.sampled_from([b"200 OK", b"200 OK", b"200 OK", b"500 Oops", b"404 No"]))
    ctype = draw(st.sampled_from([b"text/xml", b"text/xml", b"application/json", b"text/html"]))
    length = draw(st.sampled_from(["exact", "exact", "exact", "more", "none"]))
    n = len(body) + (10 if length == "more" else 0)
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\n" % (status, ctype)
    head += b"Connection: close\r\n\r\n" if length == "none" else b"Content-Length: %d\r\n\r\n" % n
    after = draw(st.sampled_from(["close", "rst", "hang", "serve"]))
    if after == "hang" and length != "more":
        # a complete answer on a held connection is a keep-alive one: a POST reusing it when the
        # server then drops it is a 736 by design, which is no finding
        after = "serve"
    return {"payload": head + body, "after": after}


async def serve_xmlrpc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A keep-alive XML-RPC server answering every call with the int 42."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        n = next((int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")), 0)
        await reader.readexactly(n)
        body = xml_value("<int>42</int>").encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()


def xml_hostile(answer: dict) -> Callable:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        n = next(int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length"))
        await reader.readexactly(n)
        writer.write(answer["payload"])
        await writer.drain()
        server.sent.set()
        if answer["after"] == "serve":
            return True
        await finish(writer, reader, server, answer["after"])
        return False
    return hostile


async def xml_example(answer: dict) -> None:
    async with Server(xml_hostile(answer), serve_xmlrpc) as bad:
        async with aquests.Session(timeout=TIMEOUT) as s:
            t0 = time.monotonic()
            r = await s.rpc(bad.url + "/rpc2").add(1, 2)
            # error: the parser's exception (the reason names it: "malformed XML-RPC response: ...")
            check_response(r, time.monotonic() - t0, errors=(Exception,), http=True)
            if r.status_code == 200 and r.error is not None:
                import xmlrpc.client
                assert isinstance(r.error, xmlrpc.client.Fault) and r.reason.startswith("XML-RPC Fault")
            r.data, r.text, r.ok  # noqa: B018
            await asyncio.wait_for(bad.sent.wait(), GOOD_TIMEOUT)
            await asyncio.sleep(0.02)   # a close right after the answer has come in
            good = await s.rpc(bad.url + "/rpc2", timeout=GOOD_TIMEOUT).add(1, 2)
            assert (good.status_code, good.data) == (200, 42), (good.status_code, good.reason)


@settings(FUZZ, max_examples=50)
@given(xml_answers())
def test_xmlrpc_hostile_servers(answer: dict) -> None:
    run(lambda: xml_example(answer))


# -- MongoDB (the wire protocol under pymongo's async client) ---------------------------------
bson = pytest.importorskip("bson")
pytest.importorskip("pymongo")

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
HELLO = {"ismaster": True, "isWritablePrimary": True, "helloOk": True, "maxWireVersion": 21,
         "minWireVersion": 0, "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
         "maxWriteBatchSize": 100_000, "ok": 1.0}
FOUND = {"cursor": {"firstBatch": [{"_id": 1, "name": "good"}], "id": 0, "ns": "db.c"}, "ok": 1.0}


def mongo_msg(request_id: int, response_to: int, opcode: int, body: bytes, length: int | None = None) -> bytes:
    n = 16 + len(body) if length is None else length
    return struct.pack("<iiii", n, request_id, response_to, opcode) + body


def op_msg_body(doc: dict | bytes, flags: int = 0, kind: int = 0) -> bytes:
    raw = doc if isinstance(doc, bytes) else bson.encode(doc)
    return struct.pack("<I", flags) + bytes([kind]) + raw


def mongo_reply(kind: str, rid: int) -> bytes:
    """The hostile answer of ``kind`` to the request ``rid``."""
    good = op_msg_body(FOUND)
    if kind == "short-length":
        return mongo_msg(7, rid, OP_MSG, b"x" * 20, length=8)
    if kind == "negative-length":
        return mongo_msg(7, rid, OP_MSG, b"x" * 20, length=-5)
    if kind == "huge-length":
        return mongo_msg(7, rid, OP_MSG, good, length=0x7FFFFFFF)
    if kind == "length-lies-more":
        return mongo_msg(7, rid, OP_MSG, good, length=16 + len(good) + 100)
    if kind == "length-lies-less":
        return mongo_msg(7, rid, OP_MSG, good, length=16 + 6)
    if kind == "response-to":
        return mongo_msg(7, rid + 1000, OP_MSG, good)
    if kind == "opcode":
        return mongo_msg(7, rid, 9999, good)
    if kind == "op-reply":
        return mongo_msg(7, rid, OP_REPLY, struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(FOUND))
    if kind == "bad-bson":
        return mongo_msg(7, rid, OP_MSG, op_msg_body(b"\x30\x00\x00\x00\x02zz\x00\xff\xff\xff\x7fab\x00" + b"\0" * 32))
    if kind == "bson-length-lies":
        raw = bytearray(bson.encode(FOUND))
        raw[0:4] = struct.pack("<i", len(raw) + 50)
        return mongo_msg(7, rid, OP_MSG, op_msg_body(bytes(raw)))
    if kind == "bson-garbage":
        return mongo_msg(7, rid, OP_MSG, op_msg_body(b"\x07\x00\x00\x00\x99\x00\x00"))
    if kind == "checksum-flag":
        return mongo_msg(7, rid, OP_MSG, op_msg_body(FOUND, flags=1))
    if kind == "more-to-come":
        return mongo_msg(7, rid, OP_MSG, op_msg_body(FOUND, flags=2))
    if kind == "section-kind":
        return mongo_msg(7, rid, OP_MSG, op_msg_body(FOUND, kind=5))
    if kind == "no-section":
        return mongo_msg(7, rid, OP_MSG, struct.pack("<I", 0))
    if kind == "not-ok":
        return mongo_msg(7, rid, OP_MSG, op_msg_body({"ok": 0.0, "errmsg": "boom", "code": 2}))
    if kind == "no-cursor":
        return mongo_msg(7, rid, OP_MSG, op_msg_body({"ok": 1.0}))
    if kind == "cursor-wrong-type":
        return mongo_msg(7, rid, OP_MSG, op_msg_body({"cursor": "nope", "ok": 1.0}))
    if kind == "batch-wrong-type":
        return mongo_msg(7, rid, OP_MSG, op_msg_body({"cursor": {"firstBatch": 5, "id": 0, "ns": "db.c"}, "ok": 1}))
    if kind == "empty-doc":
        return mongo_msg(7, rid, OP_MSG, op_msg_body({}))
    if kind == "ok-string":
        return mongo_msg(7, rid, OP_MSG, op_msg_body({"ok": "yes", "cursor": FOUND["cursor"]}))
    if kind == "half-header":
        return struct.pack("<ii", 100, 7)
    raise AssertionError(kind)


MONGO_KINDS = ["short-length", "negative-length", "huge-length", "length-lies-more", "length-lies-less",
               "response-to", "opcode", "op-reply", "bad-bson", "bson-length-lies", "bson-garbage",
               "checksum-flag", "more-to-come", "section-kind", "no-section", "not-ok", "no-cursor",
               "cursor-wrong-type", "batch-wrong-type", "empty-doc", "ok-string", "half-header",
               "silence", "close", "rst"]


class MongoServer:
    """A MongoDB wire server: hello is always answered well; the first other command gets ``kind``."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task] = set()
        self.stop = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readexactly(16)
                n, rid, _to, opcode = struct.unpack("<iiii", head)
                body = await reader.readexactly(n - 16)
                if opcode == OP_QUERY:
                    end = body.index(b"\0", 4) + 1 + 8
                    doc = bson.decode(body[end:end + struct.unpack("<i", body[end:end + 4])[0]])
                else:
                    doc = bson.decode(body[5:5 + struct.unpack("<i", body[5:9])[0]])
                name = next(iter(doc)).lower()
                if name in ("hello", "ismaster"):
                    if opcode == OP_QUERY:
                        writer.write(mongo_msg(1, rid, OP_REPLY, struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(HELLO)))
                    else:
                        writer.write(mongo_msg(1, rid, OP_MSG, op_msg_body(HELLO)))
                elif self.kind is not None and name == "find":
                    kind, self.kind = self.kind, None
                    if kind == "rst":
                        reset(writer)
                        return
                    if kind == "close":
                        return
                    if kind == "silence":
                        await asyncio.wait_for(self.stop.wait(), 5)
                        return
                    # then serve well: a client that kept this connection must not read the bad
                    # bytes as the answer to its next command
                    writer.write(mongo_reply(kind, rid))
                else:
                    writer.write(mongo_msg(1, rid, OP_MSG, op_msg_body(FOUND if name == "find" else {"ok": 1.0})))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> "MongoServer":
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.addr = f"127.0.0.1:{self.srv.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await shut(self)


MONGO_TIMEOUT = 0.5


async def mongo_example(kind: str) -> Any:
    async with MongoServer(kind) as srv:
        db = aquests.aio.mongodb(srv.addr, "db", timeout=MONGO_TIMEOUT)
        t0 = time.monotonic()
        r = await db.findone("c", {})
        elapsed = time.monotonic() - t0
        assert elapsed <= MONGO_TIMEOUT + SLACK, f"took {elapsed:.2f}s ({r.status_code} {r.reason})"
        if kind in ("not-ok", "empty-doc"):      # the server said no (an answer without "ok": 1)
            assert r.status_code == codes.DB_ERROR, (r.status_code, r.reason)
        elif kind in ("more-to-come", "ok-string"):   # odd but readable
            assert r.status_code in (200, *FAILURES), (r.status_code, r.reason)
        else:
            assert r.status_code in FAILURES, (kind, r.status_code, r.reason, r.expt_class)
            assert r.reason, (kind, r.expt_class)
        good = await db.findone("c", {}, timeout=GOOD_TIMEOUT)
        assert (good.status_code, good.data and good.data.name) == (200, "good"), (good.status_code, good.reason)
        return r


@pytest.mark.parametrize("kind", MONGO_KINDS)
def test_mongo_hostile_replies(kind: str) -> None:
    run(lambda: mongo_example(kind))


# -- regressions: each failed before its fix ---------------------------------------------------
class FloodingGrpc(GrpcServer):
    """Answers every call with small messages, as many as flow control lets through, without end."""

    def __init__(self, state: dict) -> None:
        super().__init__(state)
        self.open: set[int] = set()

    def data_received(self, data: bytes) -> None:
        import h2.events
        for ev in self.h2.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                self.h2.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                self.open.add(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamReset, h2.events.StreamEnded)) and ev.stream_id in self.open:
                if isinstance(ev, h2.events.StreamReset):
                    self.open.discard(ev.stream_id)
        for sid in list(self.open):
            with contextlib.suppress(Exception):
                while self.h2.local_flow_control_window(sid) >= len(FEATURE) * 100:
                    self.h2.send_data(sid, FEATURE * 100)
        self.flush()


def test_grpc_whole_call_replies_are_bound_by_max_body_size() -> None:
    """A whole server-streaming call kept every reply (and a raw copy) until the server ended: a
    server sending small messages without end grew memory for the whole timeout."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        state: dict = {"answer": None, "transports": []}
        srv = await loop.create_server(lambda: FloodingGrpc(state), "127.0.0.1", 0)
        try:
            async with aquests.Session(max_body_size=256 * 1024) as s:
                stub = s.grpc(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", service=pb)
                t0 = time.monotonic()
                r = await stub.ListFeatures(pb.Rectangle(), timeout=3)
                assert r.status_code == codes.PROTOCOL_ERROR, (r.status_code, r.reason)
                assert "max_body_size=262144" in r.reason and time.monotonic() - t0 < 2
        finally:
            srv.close()
            for t in state["transports"]:
                t.abort()
    run(main)


def xml_answer(body: str) -> dict:
    raw = body.encode()
    return {"payload": b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s" % (len(raw), raw),
            "after": "serve"}


@pytest.mark.parametrize("body", [LAUGHS, QUADRATIC, EXTERNAL], ids=["billion-laughs", "quadratic", "external"])
def test_xmlrpc_dtd_and_entities_are_refused_at_once(body: str) -> None:
    """Entity declarations were expanded by expat: 650 bytes of "billion laughs" held the loop for
    ~2 s and ~70 MB before expat's amplification limit stopped it (``response.data`` of a plain
    text/xml GET too); an external entity was silently dropped from a 200."""
    import tracemalloc

    async def main() -> None:
        async with Server(xml_hostile(xml_answer(body)), serve_xmlrpc) as bad:
            async with aquests.Session(timeout=3) as s:
                t0 = time.monotonic()
                r = await s.rpc(bad.url + "/rpc2").add(1, 2)
                assert r.status_code == codes.PROTOCOL_ERROR and "DOCTYPE is not allowed" in r.reason, r.reason
        async with Server(xml_hostile(xml_answer(body)), serve_xmlrpc) as bad:
            async with aquests.Session(timeout=3) as s:   # a plain request: data is the bytes
                r = await s.request("POST", bad.url + "/doc", data=b"x")
                assert r.status_code == 200 and r.data == body.encode()
        assert time.monotonic() - t0 < 0.5
    tracemalloc.start()
    try:
        run(main)
        assert tracemalloc.get_traced_memory()[1] < 16 * 1024 * 1024
    finally:
        tracemalloc.stop()


def test_xmlrpc_nesting_is_bounded() -> None:
    """3000 nested arrays made a result whose repr/pickle/json raised RecursionError."""
    from aquests.rpc.xmlrpc import MAX_DEPTH

    def nested(depth: int) -> str:
        return xml_value("<array><data><value>" * depth + "<int>1</int>" + "</value></data></array>" * depth)

    async def main() -> None:
        for depth, ok in ((MAX_DEPTH, True), (3000, False)):
            async with Server(xml_hostile(xml_answer(nested(depth))), serve_xmlrpc) as bad:
                r = await aquests.aio.rpc(bad.url + "/rpc2", timeout=3).add(1, 2)
                if ok:
                    assert r.status_code == 200 and repr(r.data).count("[") == MAX_DEPTH
                else:
                    assert r.status_code == codes.PROTOCOL_ERROR and f"deeper than {MAX_DEPTH}" in r.reason, r.reason
    run(main)


@pytest.mark.parametrize("kind", ["length-lies-less", "no-section", "bson-garbage", "no-cursor",
                                  "cursor-wrong-type", "batch-wrong-type"])
def test_mongo_malformed_reply_is_a_protocol_error(kind: str) -> None:
    """pymongo tripping over a reply (struct.error, InvalidBSON, a find answer without a usable
    ``cursor``: KeyError/TypeError) came back as a 740 "Database Error" with the bare message."""

    async def main() -> None:
        async with MongoServer(kind) as srv:
            db = aquests.aio.mongodb(srv.addr, "db", timeout=3)
            r = await db.findone("c", {})
            assert r.status_code == codes.PROTOCOL_ERROR, (r.status_code, r.reason)
            assert "malformed MongoDB reply" in r.reason or "BSON" in r.reason, r.reason
            # a bad argument is still the caller's error, not the server's bytes
            r = await db.find("c", {}, sort=5)
            assert r.status_code == codes.DB_ERROR, (r.status_code, r.reason)
    run(main)


@pytest.mark.parametrize("status", ["1_0", " 5", "+3", "-1", "0x1"])
def test_grpc_status_must_be_digits(status: str) -> None:
    """``int()`` read "1_0" as 10, " 5" as 5, "+3" as 3 and "-1" as -1: a grpc-status that is not
    ASCII digits is now a 735 naming it, like a RESP number that is not one."""
    answer = {"head": [(":status", "200"), ("content-type", "application/grpc")], "trailers_only": False,
              "bodies": [FEATURE], "status": [("grpc-status", status)], "end": "trailers", "method": "GetFeature"}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        state = {"answer": answer, "transports": []}
        srv = await loop.create_server(lambda: GrpcServer(state), "127.0.0.1", 0)
        try:
            async with aquests.Session() as s:
                stub = s.grpc(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", service=pb)
                r = await stub.GetFeature(pb.Point(), timeout=3)
                assert r.status_code == codes.PROTOCOL_ERROR and "bad grpc-status" in r.reason, (r.status_code, r.reason)
                good = await stub.GetFeature(pb.Point(), timeout=3)
                assert (good.status_code, good.grpc_status) == (200, 0), good.reason
        finally:
            srv.close()
            for t in state["transports"]:
                t.abort()
    run(main)
