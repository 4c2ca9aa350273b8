"""WebSocket over HTTP/2 (RFC 8441): extended CONNECT on a stream, the same WSGI environ protocol and designs.

A raw ``h2`` client opens the stream; wsproto's client-side frame layer builds and reads the WebSocket
frames carried as DATA.
"""
from __future__ import annotations

import threading

import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from wsproto.frame_protocol import CloseReason, Opcode

import skitai
from tests.skitai_core.h2ws_support import H2Client, WSStream, h2_server, ws_app

events: list = []
events_lock = threading.Lock()


def plain(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain " + environ["REQUEST_METHOD"].encode()]


def choose_chat(environ):
    if "chat" in environ["websocket.subprotocols"]:
        environ["websocket.subprotocol"] = "chat"


def record(environ, event):
    with events_lock:
        events.append((event, environ["websocket.client"], environ["REQUEST_METHOD"]))


def echo(environ, start_response):
    message = environ["websocket.message"]
    if isinstance(message, bytes):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [message[::-1]]
    start_response("200 OK", [("Content-Type", "text/plain")])
    if message == "two":
        environ["websocket"].send("first")
    return [("echo:" + message).encode()]


app = ws_app(echo, (skitai.WS_SIMPLE, 60, ("message",)), on_init=choose_chat, on_event=record, plain=plain)


@pytest.fixture(params=[0, 4], ids=["threads=0", "threads=4"])
def srv(request):
    with h2_server(app=app, threads=request.param) as s:
        yield s


def test_settings_offer_extended_connect(srv):
    c = H2Client(srv.port)
    c.read(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
    assert c.conn.remote_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1


def test_echo_text_binary_ping_and_close(srv):
    c = H2Client(srv.port)
    ws = WSStream(c)
    head = ws.answer()
    assert head[":status"] == "200"
    assert "sec-websocket-accept" not in head and "upgrade" not in head and "connection" not in head
    ws.send("hello")
    assert ws.recv() == (Opcode.TEXT, "echo:hello")
    ws.send(b"\x01\x02\x03")
    assert ws.recv() == (Opcode.BINARY, b"\x03\x02\x01")
    ws.send("two")                      # a direct send, then the returned answer, in order
    assert [ws.recv(), ws.recv()] == [(Opcode.TEXT, "first"), (Opcode.TEXT, "echo:two")]
    ws.send(b"are you there", Opcode.PING)
    assert ws.recv() == (Opcode.PONG, b"are you there")
    ws.send(None, Opcode.CLOSE)
    opcode, (code, _reason) = ws.recv()
    assert opcode is Opcode.CLOSE and code == CloseReason.NORMAL_CLOSURE
    assert ws.ended()                   # the server ends its side of the stream after the close


def test_streams_share_one_connection(srv):
    """Two WebSockets and plain requests multiplexed on one connection, each answered on its own stream."""
    c = H2Client(srv.port)
    a, b = WSStream(c), WSStream(c)
    assert a.answer()[":status"] == "200" and b.answer()[":status"] == "200"
    plain = c.request("/plain")
    for i in range(20):
        a.send(f"a{i}")
        b.send(f"b{i}")
    assert [a.recv()[1] for _ in range(20)] == [f"echo:a{i}" for i in range(20)]
    assert [b.recv()[1] for _ in range(20)] == [f"echo:b{i}" for i in range(20)]
    headers, body = c.response(plain)
    assert headers[":status"] == "200" and body == b"plain GET"


def test_the_app_sees_a_get_and_every_event(srv):
    with events_lock:
        events.clear()
    c = H2Client(srv.port)
    ws = WSStream(c)
    ws.answer()
    ws.send("x")
    ws.recv()
    c.conn.reset_stream(ws.sid, ErrorCodes.CANCEL)     # the client drops the stream: CLOSE event
    c.flush()
    for _ in range(100):
        with events_lock:
            if any(e[0] == skitai.WS_EVT_CLOSE for e in events):
                break
        threading.Event().wait(0.05)
    with events_lock:
        kinds = [e[0] for e in events]
        methods = {e[2] for e in events}
    assert kinds == [skitai.WS_EVT_INIT, skitai.WS_EVT_OPEN, skitai.WS_EVT_CLOSE]
    assert methods == {"GET"}
    assert c.response(c.request("/plain"))[0][":status"] == "200"   # the connection lives on


def test_client_end_stream_closes_the_websocket(srv):
    c = H2Client(srv.port)
    ws = WSStream(c)
    ws.answer()
    c.conn.end_stream(ws.sid)
    c.flush()
    assert ws.ended()


def test_deflate_is_negotiated_on_a_stream(srv):
    c = H2Client(srv.port)
    ws = WSStream(c, headers=[("sec-websocket-extensions", "permessage-deflate")])
    assert ws.answer()["sec-websocket-extensions"].startswith("permessage-deflate")


def test_subprotocol_on_a_stream(srv):
    c = H2Client(srv.port)
    ws = WSStream(c, headers=[("sec-websocket-protocol", "superchat, chat")])
    assert ws.answer()["sec-websocket-protocol"] == "chat"


def test_handshake_errors_are_answers(srv):
    c = H2Client(srv.port)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                              (":path", "/ws"), (":authority", "localhost"), ("sec-websocket-version", "8")])
    c.flush()
    headers, _ = c.response(sid)
    assert headers[":status"] == "426" and headers["sec-websocket-version"] == "13"


def test_unknown_protocol_is_501(srv):
    c = H2Client(srv.port)
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "chat-v9"), (":scheme", "http"),
                              (":path", "/ws"), (":authority", "localhost")])
    c.flush()
    assert c.response(sid)[0][":status"] == "501"


def test_switched_off_it_is_not_offered_and_refused():
    with h2_server(app=app, h2_websocket=False) as s:
        c = H2Client(s.port)
        c.read(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
        assert c.conn.remote_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] == 0
        # h2 (the client library) would refuse to send :protocol now; write the HEADERS ourselves
        from hpack import Encoder
        from hyperframe.frame import HeadersFrame
        frame = HeadersFrame(1)
        frame.flags.add("END_HEADERS")
        frame.data = Encoder().encode([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                       (":path", "/ws"), (":authority", "localhost")])
        c.sock.sendall(frame.serialize())
        from hyperframe.frame import RstStreamFrame
        for _ in range(50):
            resets = [f for f in c.frames() if isinstance(f, RstStreamFrame) and f.stream_id == 1]
            if resets:
                break
            c.read(lambda e: True, timeout=0.1)
        assert resets and resets[0].error_code == ErrorCodes.PROTOCOL_ERROR


def sized(environ, start_response):
    message = environ["websocket.message"]           # "N": answer N bytes; bytes: answer their length
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    if isinstance(message, str):
        return [b"x" * int(message)]
    return [str(len(message)).encode()]


big_app = ws_app(sized, plain=plain)


@pytest.mark.parametrize("threads", [0, 4])
def test_big_messages_both_ways_under_flow_control(threads):
    """3 MiB out through 64 KiB client windows (granted as the client reads), 2 MiB in through the
    server's 256 KiB stream window: nothing is lost or reordered, nothing waits forever."""
    with h2_server(app=big_app, threads=threads) as s:
        c = H2Client(s.port)
        ws = WSStream(c)
        assert ws.answer()[":status"] == "200"
        ws.send(str(3 * 1024 * 1024))
        ws.send(b"y" * (2 * 1024 * 1024))
        opcode, payload = ws.recv(timeout=20)
        assert opcode is Opcode.BINARY and payload == b"x" * (3 * 1024 * 1024)
        assert ws.recv(timeout=20) == (Opcode.BINARY, b"2097152")


def test_over_tls_with_alpn_h2(tmp_path):
    trustme = pytest.importorskip("trustme")
    import socket
    import ssl

    from skitai.config import Config
    from skitai.tls import make_ssl_context
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2"])
    with h2_server(app=app, threads=4, ssl=make_ssl_context(Config(certfile=str(cert), keyfile=str(key)))) as s:
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        assert tls.selected_alpn_protocol() == "h2"
        ws = WSStream(H2Client(s.port, sock=tls))
        assert ws.answer()[":status"] == "200"
        for i in range(10):
            ws.send(f"t{i}")
        assert [ws.recv()[1] for _ in range(10)] == [f"echo:t{i}" for i in range(10)]


def test_a_stream_that_never_opens_its_window_is_reset():
    """A client that grants no window stalls only its own stream: it is reset after network_timeout and
    the connection keeps serving."""
    with h2_server(app=big_app, threads=0, network_timeout=1.0) as s:
        c = H2Client(s.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        ws = WSStream(c)
        assert ws.answer()[":status"] == "200"
        ws.send("1000")
        c.read(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == ws.sid, timeout=10)
        reset = [e for e in c.events if isinstance(e, h2.events.StreamReset) and e.stream_id == ws.sid]
        assert reset and reset[0].error_code == ErrorCodes.CANCEL
        c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        c.flush()
        headers, body = c.response(c.request("/plain"))
        assert headers[":status"] == "200"


def test_server_shutdown_goaway_then_1001_on_the_stream(srv):
    """As ``run()`` stops: GOAWAY (the connection takes no new streams), then every WebSocket closes with
    1001; once the client answers the close, the stream ends and the connection closes."""
    from skitai.http2 import goaway_all
    from skitai.websocket.protocol import close_all

    c = H2Client(srv.port)
    ws = WSStream(c)
    assert ws.answer()[":status"] == "200"
    ws.send("still open")
    assert ws.recv() == (Opcode.TEXT, "echo:still open")

    def stop():
        goaway_all()
        close_all()
    srv.call(stop)
    # h2 (the client library) stops parsing at GOAWAY, though the streams below it go on (RFC 9113 6.8):
    # read the raw frames from here
    from hyperframe.frame import DataFrame, GoAwayFrame

    def frames_of_stream():
        return [f for f in c.frames() if isinstance(f, DataFrame) and f.stream_id == ws.sid]
    before = len(frames_of_stream())
    for _ in range(50):
        if len(frames_of_stream()) > before:
            break
        c.read(lambda e: True, timeout=0.1)
    goaway = [f for f in c.frames() if isinstance(f, GoAwayFrame)]
    assert goaway and goaway[0].error_code == ErrorCodes.NO_ERROR
    for f in frames_of_stream()[before:]:
        ws.frames.receive_bytes(f.data)
    close = next(iter(ws.frames.received_frames()))
    assert close.opcode is Opcode.CLOSE and close.payload[0] == CloseReason.GOING_AWAY
    answer = DataFrame(ws.sid, data=bytes(ws.frames.close(CloseReason.GOING_AWAY)))
    answer.flags.add("END_STREAM")
    c.sock.sendall(answer.serialize())
    c.sock.settimeout(5)
    while c.sock.recv(65536):              # the server closes the connection once the stream is done
        pass


def test_limits_hold_on_a_stream():
    """The WebSocket limits are the same over HTTP/2: a message over ws_max_message_size closes with 1009,
    a bad UTF-8 text with 1007; each ends only its own stream."""
    with h2_server(app=app, threads=0, ws_max_message_size=1000) as s:
        c = H2Client(s.port)
        big, bad, fine = WSStream(c), WSStream(c), WSStream(c)
        for ws in (big, bad, fine):
            assert ws.answer()[":status"] == "200"
        big.send(b"z" * 2000)
        opcode, (code, _) = big.recv()
        assert opcode is Opcode.CLOSE and code == CloseReason.MESSAGE_TOO_BIG
        bad.client.conn.send_data(bad.sid, bytes([0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28]))  # masked, invalid UTF-8
        bad.client.flush()
        opcode, (code, _) = bad.recv()
        assert opcode is Opcode.CLOSE and code == CloseReason.INVALID_FRAME_PAYLOAD_DATA
        fine.send("ok")
        assert fine.recv() == (Opcode.TEXT, "echo:ok")
