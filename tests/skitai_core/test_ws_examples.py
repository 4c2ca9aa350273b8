"""The spec's Flask websocket examples as a user runs them: ``python examples/websocket/app.py``."""
from __future__ import annotations

import pytest
import requests
import websockets.sync.client as wsc
from websockets.exceptions import ConnectionClosed

from tests.support.apps import app_process


@pytest.fixture(scope="module")
def example():
    with app_process("examples/websocket/app.py") as app:
        yield app


def ws_url(app, path: str) -> str:
    return f"ws://127.0.0.1:{app.port}{path}"


def test_chat_page_is_served(example):
    r = requests.get(example.url + "/", timeout=10)
    assert r.status_code == 200 and "new WebSocket(wsUri)" in r.text and "/websocket/chat?room_id=1" in r.text


def test_flask_echo(example):
    with wsc.connect(ws_url(example, "/websocket/echo")) as ws:
        assert ws.recv(timeout=10).startswith("Welcome ")
        ws.send("Hello")
        assert ws.recv(timeout=10) == "ECHO:Hello"


def test_send_directly_text_then_binary(example):
    with wsc.connect(ws_url(example, "/websocket/direct")) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "You said,hi"
        assert ws.recv(timeout=10) == b"You said, hi"          # bytes go out as a binary frame


def test_group_chat_room(example):
    url = ws_url(example, "/websocket/chat?room_id=7")
    with wsc.connect(url) as a:
        a_id = a.recv(timeout=10).split()[1]
        with wsc.connect(url) as b, wsc.connect(ws_url(example, "/websocket/chat?room_id=8")) as other:
            b_id = b.recv(timeout=10).split()[1]
            other.recv(timeout=10)
            assert a.recv(timeout=10) == f"Client {b_id} has entered"
            b.send("hello room")
            assert a.recv(timeout=10) == b.recv(timeout=10) == f"Client {b_id} Said: hello room"
            a.send("clients")                  # send('Hi', clients[0]): a joined first
            assert a.recv(timeout=10) == "Hi"
            with pytest.raises(TimeoutError):
                b.recv(timeout=0.3)                            # sent to one client only
            with pytest.raises(TimeoutError):
                other.recv(timeout=0.3)                        # room 8 hears nothing of room 7
        assert a.recv(timeout=10) == f"Client {b_id} has leaved"
        assert a_id != b_id


def test_dedicated_talk(example):
    with wsc.connect(ws_url(example, "/websocket/talk?name=jamesmilton")) as ws:
        assert ws.recv(timeout=10) == "Hello jamesmilton"
        ws.send("run 3")
        assert ws.recv(timeout=10) == "You said run 3 but I can't understatnd"
        ws.send("bye")
        assert ws.recv(timeout=10) == "Bye, have a nice day.bye"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.protocol.close_rcvd.code == 1000
