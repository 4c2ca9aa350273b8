"""The designs of the spec: WS_GROUPCHAT rooms, WS_DEDICATE threads, WS_THREADSAFE; JSON and XML-RPC."""
from __future__ import annotations

import json
import time
import xmlrpc.client

import pytest
import websockets.sync.client as wsc
from flask import Flask, request
from websockets.exceptions import ConnectionClosed

import skitai
from skitai.websocket.designs import DEFAULT_BROKER
from tests.support.server import ServerThread

app = Flask(__name__)
gone: list = []


@app.route("/chat")
def chat():
    env = request.environ
    event, client_id = env.get("websocket.event"), env.get("websocket.client")
    if event == skitai.WS_EVT_INIT:
        env["websocket.config"] = (skitai.WS_GROUPCHAT, 60, ("message", "room_id"))
        return ""
    if event == skitai.WS_EVT_OPEN:
        return "Client %s has entered" % client_id
    if event == skitai.WS_EVT_CLOSE:
        return "Client %s has left" % client_id
    message = request.args.get("message")
    if message == "who":
        return ",".join(str(c) for c in sorted(env["websocket"].clients))
    if message.startswith("to "):
        target = int(message.split()[1])
        env["websocket"].send("private from %s" % client_id, target)
        return ""
    return "Client %s Said: %s" % (client_id, message)


@app.route("/websocket/talk")
def talk():
    env = request.environ
    if env.get("websocket.event") == skitai.WS_EVT_INIT:
        env["websocket.config"] = (skitai.WS_DEDICATE, 60, None)
        return ""
    ws = env["websocket"]
    ws.send("hello %s" % request.args.get("name"))
    while True:
        m = ws.getwait()
        if m is None:
            gone.append(env["websocket.client"])
            break
        if m.lower() == "bye":
            ws.send("Bye, have a nice day." + m)
            ws.close()
            break
        ws.send("You said %s" % m)
    return ""


@app.route("/json")
def json_route():
    env = request.environ
    if env.get("websocket.event") == skitai.WS_EVT_INIT:
        env["websocket.config"] = (skitai.WS_THREADSAFE, 60, "message", skitai.WS_MSG_JSON)
        return ""
    if env.get("websocket.event"):
        return ""
    message = env["websocket.message"]            # already a Python object
    env["websocket"].send({"sum": message["a"] + message["b"], "raw": request.args.get("message")})
    return ""


@app.route("/xmlrpc")
def xmlrpc_route():
    env = request.environ
    if env.get("websocket.event") == skitai.WS_EVT_INIT:
        env["websocket.config"] = (skitai.WS_SIMPLE, 60, "message", skitai.WS_MSG_XMLRPC)
        return ""
    if env.get("websocket.event"):
        return ""
    env["websocket"].send([x * 2 for x in env["websocket.message"]])
    return ""


@pytest.fixture(scope="module", params=[8, 0], ids=["threads=8", "threads=0"])
def srv(request):
    """Every design with a worker pool and on the loop (threads=0: handlers run inline, no queue)."""
    with ServerThread(app=app, threads=request.param) as s:
        yield s


def recv_all(ws, n):
    return [ws.recv(timeout=10) for _ in range(n)]


def test_groupchat_rooms_broadcast_and_private(srv):
    url = f"ws://127.0.0.1:{srv.port}/chat?room_id="
    a = wsc.connect(url + "1")
    a_id = int(a.recv(timeout=10).split()[1])
    b = wsc.connect(url + "1")
    b_id = int(b.recv(timeout=10).split()[1])
    assert a.recv(timeout=10) == f"Client {b_id} has entered"
    c = wsc.connect(url + "2")
    c.recv(timeout=10)
    assert "/chat/1" in DEFAULT_BROKER.rooms and "/chat/2" in DEFAULT_BROKER.rooms
    a.send("hi all")
    assert a.recv(timeout=10) == b.recv(timeout=10) == f"Client {a_id} Said: hi all"
    b.send("who")
    assert a.recv(timeout=10) == f"{a_id},{b_id}"
    b.recv(timeout=10)
    a.send(f"to {b_id}")
    assert b.recv(timeout=10) == f"private from {a_id}"
    c.send("room two")
    assert c.recv(timeout=10).endswith("room two")
    with pytest.raises(TimeoutError):
        a.recv(timeout=0.2)                     # nothing from room 2, nor the private message
    b.close()
    assert a.recv(timeout=10) == f"Client {b_id} has left"
    a.close()
    c.close()
    deadline = time.monotonic() + 3
    mine = ("/chat/1", "/chat/2")
    while any(k in DEFAULT_BROKER.rooms for k in mine) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(k in DEFAULT_BROKER.rooms for k in mine)     # the last client out closes the room


def test_dedicate_getwait_loop_and_close(srv):
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/websocket/talk?name=jamesmilton") as ws:
        assert ws.recv(timeout=10) == "hello jamesmilton"
        ws.send("run 3")
        assert ws.recv(timeout=10) == "You said run 3"
        ws.send("bye")
        assert ws.recv(timeout=10) == "Bye, have a nice day.bye"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.protocol.close_rcvd.code == 1000


def test_dedicate_sees_none_on_disconnect(srv):
    ws = wsc.connect(f"ws://127.0.0.1:{srv.port}/websocket/talk?name=x")
    ws.recv(timeout=10)
    before = len(gone)
    ws.close()
    deadline = time.monotonic() + 3
    while len(gone) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(gone) == before + 1


def test_json_encoding(srv):
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/json") as ws:
        ws.send(json.dumps({"a": 1, "b": 2}))
        assert json.loads(ws.recv(timeout=10)) == {"sum": 3, "raw": '{"a": 1, "b": 2}'}
        ws.send("not json")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.protocol.close_rcvd.code == 1007


def test_xmlrpc_encoding(srv):
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/xmlrpc") as ws:
        ws.send(xmlrpc.client.dumps(([1, 2, 3],)))
        (result,), _ = xmlrpc.client.loads(ws.recv(timeout=10))
        assert result == [2, 4, 6]


def test_xmlrpc_entity_bomb_is_1007_at_once(srv):
    # any client can send one: 9 levels of 10x entities would be 10^9 characters once expanded
    bomb = ('<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
            + ']><methodCall><params><param><value><string>&i;</string></value></param></params></methodCall>')
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/xmlrpc") as ws:
        started = time.monotonic()
        ws.send(bomb)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.protocol.close_rcvd.code == 1007 and "DOCTYPE" in ws.protocol.close_rcvd.reason
        assert time.monotonic() - started < 1.0


def test_groupchat_and_dedicate_on_http2_streams():
    """The designs do not care how the WebSocket came: two group members on streams of one HTTP/2
    connection plus one on HTTP/1.1 share a room, and WS_DEDICATE's thread talks through a stream."""
    from wsproto.frame_protocol import Opcode

    from tests.skitai_core.h2ws_support import H2Client, WSStream, h2_server
    with h2_server(app=app, threads=8) as s:
        c = H2Client(s.port)
        a = WSStream(c, "/chat?room_id=h2")
        assert a.answer()[":status"] == "200"
        a_id = int(a.recv()[1].split()[1])
        b = WSStream(c, "/chat?room_id=h2")
        b.answer()
        b_id = int(b.recv()[1].split()[1])
        assert a.recv() == (Opcode.TEXT, f"Client {b_id} has entered")
        with wsc.connect(f"ws://127.0.0.1:{s.port}/chat?room_id=h2") as h1:
            h1_id = int(h1.recv(timeout=10).split()[1])
            assert a.recv()[1] == b.recv()[1] == f"Client {h1_id} has entered"
            h1.send("from http/1.1")
            assert a.recv()[1] == b.recv()[1] == h1.recv(timeout=10) == f"Client {h1_id} Said: from http/1.1"
            a.send(f"to {h1_id}")
            assert h1.recv(timeout=10) == f"private from {a_id}"
        talk = WSStream(c, "/websocket/talk?name=streamy")
        assert talk.answer()[":status"] == "200"
        assert talk.recv() == (Opcode.TEXT, "hello streamy")
        talk.send("bye")
        assert talk.recv() == (Opcode.TEXT, "Bye, have a nice day.bye")
        opcode, (code, _) = talk.recv()
        assert opcode is Opcode.CLOSE and code == 1000
