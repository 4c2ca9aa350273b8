"""The spec's "HTML5 Websocket" examples for Flask users, on http://127.0.0.1:5000/ (port: --port N or SKITAI_PORT).

- ``/``                   the spec's chat page (open it in two tabs, each joins room 1 of ``/websocket/chat``)
- ``/websocket/echo``     "For Flask Users": WS_SIMPLE, "Welcome <id>" on open, "ECHO:<message>" back
- ``/websocket/direct``   "Send Messages Through Websocket Directly": two sends, the second one binary
- ``/websocket/chat``     "Group Chat Websocket": WS_GROUPCHAT, rooms by ``room_id``
- ``/websocket/talk``     "Threadsafe-Dedicated Websocket": WS_DEDICATE, a ``getwait()`` loop per client

The spec's snippets are kept as written except their typos (``retrurn``, an undefined ``message``, and the
dedicated example's Flask config that names WS_GROUPCHAT).
"""
import os

from flask import Flask, request

import skitai

app = Flask(__name__)
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat.html")


@app.route("/")
def index():
    with open(PAGE, encoding="utf-8") as f:
        return f.read()


@app.route("/websocket/echo")
def echo():
    event = request.environ.get("websocket.event")
    client_id = request.environ.get("websocket.client")

    if event == skitai.WS_EVT_INIT:
        request.environ["websocket.config"] = (skitai.WS_SIMPLE, 60, ("message",))
        return ""
    elif event == skitai.WS_EVT_OPEN:
        return "Welcome %d" % client_id
    elif event:
        return ""
    return "ECHO:" + request.args.get("message")


@app.route("/websocket/direct")
def direct():
    event = request.environ.get("websocket.event")
    if event == skitai.WS_EVT_INIT:
        request.environ["websocket.config"] = (skitai.WS_SIMPLE, 60, ("message",))
        return ""
    elif event:
        return ""
    message = request.args.get("message")
    request.environ["websocket"].send("You said," + message)
    request.environ["websocket"].send(("You said, %s" % message).encode("iso8859-1"))
    return ""


@app.route("/websocket/chat")
def chat():
    event = request.environ.get("websocket.event")
    client_id = request.environ.get("websocket.client")
    if event == skitai.WS_EVT_INIT:
        request.environ["websocket.config"] = (skitai.WS_GROUPCHAT, 60, ("message", "room_id"))
        return ""
    elif event == skitai.WS_EVT_OPEN:
        return "Client %s has entered" % client_id
    elif event == skitai.WS_EVT_CLOSE:
        return "Client %s has leaved" % client_id
    message = request.args.get("message")
    if message == "clients":                         # the spec's "send to a specific client_id"
        clients = list(request.environ["websocket"].clients.keys())
        request.environ["websocket"].send("Hi", clients[0])     # (Flask reads a returned tuple as a status)
        return ""
    return "Client %s Said: %s" % (client_id, message)


@app.route("/websocket/talk")
def talk():
    if request.environ.get("websocket.event") == skitai.WS_EVT_INIT:
        request.environ["websocket.config"] = (skitai.WS_DEDICATE, 60, None)
        return ""
    ws = request.environ["websocket"]
    ws.send("Hello %s" % request.args.get("name"))
    while 1:
        m = ws.getwait()
        if m is None:                                # client disconnected
            break
        if m.lower() == "bye":
            ws.send("Bye, have a nice day." + m)
            ws.close()
            break
        ws.send("You said %s but I can't understatnd" % m)
    return ""


if __name__ == "__main__":
    skitai.mount("/", app)
    skitai.run(address="127.0.0.1", port=5000)
