"""WebSocket through the WSGI environ (the spec's Flask section): handshake, events, replies, sends."""
from __future__ import annotations

import logging
import random
import threading
import time

import pytest
import websockets.sync.client as wsc
from flask import Flask, request
from websockets.exceptions import InvalidStatus

import skitai
from tests.skitai_core.h2ws_support import ws_app, ws_raw
from tests.support.server import ServerThread

flask_app = Flask(__name__)
closed: list = []


@flask_app.route("/websocket/echo")
def echo():
    event = request.environ.get("websocket.event")
    client_id = request.environ.get("websocket.client")
    if event == skitai.WS_EVT_INIT:
        request.environ["websocket.config"] = (skitai.WS_SIMPLE, 60, ("message",))
        return ""
    elif event == skitai.WS_EVT_OPEN:
        return "Welcome %d" % client_id
    elif event == skitai.WS_EVT_CLOSE:
        closed.append(client_id)
        return ""
    elif event:
        return ""
    return "ECHO:" + request.args.get("message")


@flask_app.route("/websocket/direct")
def direct():
    env = request.environ
    if env.get("websocket.event") == skitai.WS_EVT_INIT:
        env["websocket.config"] = (skitai.WS_SIMPLE, 60, "message")
        return ""
    elif env.get("websocket.event"):
        return ""
    message = request.args.get("message")
    env["websocket"].send("You said, " + message)
    env["websocket"].send(("bytes " + message).encode("iso8859-1"))
    sender = env["websocket"]
    threading.Thread(target=lambda: (time.sleep(0.05), sender.send("from a thread"))).start()
    return ""


def reverse_or_echo(environ, start_response):
    """Random delays must not reorder the replies of one connection."""
    message = environ["websocket.message"]
    if isinstance(message, bytes):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [message[::-1]]
    time.sleep(random.random() / 100)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [message.encode()]


raw_app = ws_app(reverse_or_echo)       # a plain WSGI app


@pytest.fixture(scope="module")
def srv():
    with ServerThread(app=flask_app, threads=4) as s:
        yield s


def test_spec_flask_echo(srv):
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/websocket/echo") as ws:
        welcome = ws.recv(timeout=10)
        assert welcome.startswith("Welcome ")
        ws.send("Hello")
        assert ws.recv(timeout=10) == "ECHO:Hello"
        headers = ws.response.headers
        assert headers["Upgrade"].lower() == "websocket" and "Sec-WebSocket-Accept" in headers
        assert "WebSocket-Location" not in headers and "WebSocket-Protocol" not in headers
        assert "permessage-deflate" in headers.get("Sec-WebSocket-Extensions", "")
        ws.ping().wait(3)
    deadline = time.monotonic() + 3
    while int(welcome.split()[1]) not in closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert int(welcome.split()[1]) in closed         # WS_EVT_CLOSE reached the app


def test_no_origin_needed_and_no_deflate_when_not_offered(srv):
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/websocket/echo", compression=None, origin=None) as ws:
        ws.recv(timeout=10)
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("x" * 100_000)
        assert ws.recv(timeout=10) == "ECHO:" + "x" * 100_000


def test_send_directly_and_from_another_thread(srv):
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/websocket/direct") as ws:
        ws.send("hi")
        got = [ws.recv(timeout=10) for _ in range(3)]
        assert got == ["You said, hi", b"bytes hi", "from a thread"]


def test_not_a_websocket_route_keeps_its_http_answer(srv):
    with pytest.raises(InvalidStatus) as e:
        wsc.connect(f"ws://127.0.0.1:{srv.port}/nowhere")
    assert e.value.response.status_code == 404


@pytest.mark.parametrize("extra,status", [
    ("", 101),
    ("Sec-WebSocket-Version: 8\r\n", 426),
    ("Sec-WebSocket-Extensions: permessage-deflate\u00e9\r\n", 400),      # not ASCII: a 400, not a crash
])
def test_handshake_checks(srv, extra, status):
    sock, head, _ = ws_raw(srv.port, "/websocket/echo", extra)
    sock.close()
    if status == 101:
        assert head.startswith("HTTP/1.1 101") and "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    else:
        assert head.startswith(f"HTTP/1.1 {status}")


def test_missing_key_is_400(srv):
    import socket
    with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as s:
        s.sendall(b"GET /websocket/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400")


def test_replies_keep_message_order_and_type():
    with ServerThread(app=raw_app, threads=4) as s, wsc.connect(f"ws://127.0.0.1:{s.port}/") as ws:
        for i in range(30):
            ws.send(f"m{i}")
        assert [ws.recv(timeout=10) for _ in range(30)] == [f"m{i}" for i in range(30)]
        ws.send(b"\x00\x01\x02")
        assert ws.recv(timeout=10) == b"\x02\x01\x00"


def test_origin_policy():
    with ServerThread(app=raw_app, ws_origins=("https://ok.example",)) as s:
        with pytest.raises(InvalidStatus) as e:
            wsc.connect(f"ws://127.0.0.1:{s.port}/", origin="https://evil.example")
        assert e.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            wsc.connect(f"ws://127.0.0.1:{s.port}/")                   # no Origin with a policy on
        with wsc.connect(f"ws://127.0.0.1:{s.port}/", origin="https://ok.example") as ws:
            ws.send("ok")
            assert ws.recv(timeout=10) == "ok"


def test_bad_config_is_500():
    def bad(environ, start_response):
        environ["websocket.config"] = (99, 60, "m")
        start_response("200 OK", [])
        return []

    with ServerThread(app=bad) as s:
        with pytest.raises(InvalidStatus) as e:
            wsc.connect(f"ws://127.0.0.1:{s.port}/")
        assert e.value.response.status_code == 500


def test_threads_zero_runs_on_the_loop():
    with ServerThread(app=raw_app, threads=0) as s, wsc.connect(f"ws://127.0.0.1:{s.port}/") as ws:
        for i in range(5):
            ws.send(f"q{i}")
        assert [ws.recv(timeout=10) for _ in range(5)] == [f"q{i}" for i in range(5)]


@pytest.mark.parametrize("message", ["a b&c=d+e%f", "héllo wörld ✓", "~._-AZaz09", "?/#[]@!$'()*,;", ""])
def test_message_reaches_request_args_unchanged(srv, message):
    """The message travels percent-encoded in QUERY_STRING: Flask's request.args gets it back exactly."""
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/websocket/echo") as ws:
        ws.recv(timeout=10)
        ws.send(message)
        assert ws.recv(timeout=10) == "ECHO:" + message


def test_form_quote_is_quote_plus():
    from urllib.parse import quote_plus

    from skitai.websocket.wsgi import form_quote
    rnd = random.Random(5)
    samples = ["", "plain", "a b", "+%&=", "ü€𝄞", "\x00\x7f"] + \
        ["".join(chr(rnd.randrange(0, 0x2FF)) for _ in range(rnd.randrange(30))) for _ in range(300)]
    for text in samples:
        assert form_quote(text) == quote_plus(text)
        raw = text.encode("utf-8")
        assert form_quote(raw) == quote_plus(raw)
    assert form_quote(bytes(range(256))) == quote_plus(bytes(range(256)))


def test_threads_zero_handler_error_keeps_the_connection():
    def boom_or_echo(environ, start_response):
        if environ["websocket.message"] == "boom":
            raise RuntimeError("the app failed")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["websocket.message"].encode()]
    app = ws_app(boom_or_echo)

    with ServerThread(app=app, threads=0) as s, wsc.connect(f"ws://127.0.0.1:{s.port}/") as ws:
        ws.send("boom")
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"


def test_reply_type_follows_the_answer():
    """One bytes item: text frame for text types (and no type), binary otherwise; str items are text."""
    def by_kind(environ, start_response):
        kind = environ["websocket.message"]
        headers = {"json": [("Content-Type", "application/json")], "none": [],
                   "bin": [("content-type", "image/png")]}.get(kind, [("Content-Type", "text/plain")])
        start_response("200 OK", headers)
        if kind == "str":
            return ["s", "tr"]
        if kind == "parts":
            return [b"pa", "rts"]
        if kind == "empty":
            return [b""]
        if kind == "latin":                       # a text type but not UTF-8: sent as it is, binary
            return [b"\xff\xfe"]
        return [b'{"a": 1}' if kind == "json" else kind.encode()]
    app = ws_app(by_kind)

    for threads in (0, 2):
        with ServerThread(app=app, threads=threads) as s, wsc.connect(f"ws://127.0.0.1:{s.port}/") as ws:
            for kind, want in [("json", '{"a": 1}'), ("none", "none"), ("bin", b"bin"), ("str", "str"),
                               ("parts", "parts"), ("empty", None), ("text", "text"),
                               ("latin", b"\xff\xfe")]:
                ws.send(kind)
                if want is None:
                    with pytest.raises(TimeoutError):
                        ws.recv(timeout=0.3)
                else:
                    assert ws.recv(timeout=10) == want


def choose_subprotocol(environ):
    offered = environ["websocket.subprotocols"]
    wanted = {"/pick": "v1.chat" if "v1.chat" in offered else None, "/wrong": "v9.chat"}.get(environ["PATH_INFO"])
    if wanted:
        environ["websocket.subprotocol"] = wanted


def tell_subprotocol(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['websocket.subprotocol']} {environ['websocket.subprotocols']}".encode()]


subprotocol_app = ws_app(tell_subprotocol, on_init=choose_subprotocol)


def test_subprotocol_is_the_apps_choice():
    with ServerThread(app=subprotocol_app, threads=2) as s:
        url = f"ws://127.0.0.1:{s.port}"
        with wsc.connect(url + "/pick", subprotocols=["v2.chat", "v1.chat"]) as ws:
            assert ws.subprotocol == "v1.chat"
            ws.send("?")
            assert ws.recv(timeout=10) == "v1.chat ['v2.chat', 'v1.chat']"
        with wsc.connect(url + "/none", subprotocols=["v2.chat"]) as ws:
            assert ws.subprotocol is None                  # none chosen: no header (a browser would fail it)
            ws.send("?")
            assert ws.recv(timeout=10) == "None ['v2.chat']"
        with pytest.raises(InvalidStatus) as e:           # the app chose one the client did not offer
            wsc.connect(url + "/wrong", subprotocols=["v1.chat"])
        assert e.value.response.status_code == 500


@pytest.mark.parametrize("threads", [0, 2])
def test_a_handler_failing_on_every_message_does_not_flood_the_log(threads, caplog):
    """The first failure is logged with its traceback; the next ones are counted, not each logged."""
    def always_boom(environ, start_response):
        if environ["websocket.message"] == "ping":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"pong"]
        raise RuntimeError("the app failed")
    app = ws_app(always_boom)

    with caplog.at_level(logging.ERROR, logger="skitai.websocket"):
        with ServerThread(app=app, threads=threads) as s, wsc.connect(f"ws://127.0.0.1:{s.port}/") as ws:
            for _ in range(50):
                ws.send("boom")
            ws.send("ping")
            assert ws.recv(timeout=10) == "pong"           # the connection still serves
    failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
