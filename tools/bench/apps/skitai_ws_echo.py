"""WebSocket echo on our skitai: a plain WSGI app using the websocket environ protocol (spec, "For Flask
Users"): INIT sets ``websocket.config``; each message is then in ``environ["websocket.message"]`` (and, as
the spec shows for Flask, percent-encoded in the ``message`` query argument); the returned text goes back
as a text frame. WS_SIMPLE keeps one connection's messages in order.

The other servers' echo handlers get the message object straight from their API (``async for message in
ws``, ``receive()["text"]``), so by default this one reads ``websocket.message``, its direct equivalent.
BENCH_WS_QUERY=1 reads the query string with ``parse_qs`` instead, as a Flask app's ``request.args`` would.

Environment: BENCH_PORT, BENCH_THREADS (default 4), BENCH_WS_QUERY (default 0).
"""
import logging
import os
from urllib.parse import parse_qs

import skitai


def _direct(environ):
    return environ["websocket.message"]


def _from_query(environ):
    return parse_qs(environ.get("QUERY_STRING", "")).get("message", [""])[0]


message_of = _from_query if os.environ.get("BENCH_WS_QUERY") == "1" else _direct


def app(environ, start_response):
    event = environ.get("websocket.event")
    if event == skitai.WS_EVT_INIT:
        environ["websocket.config"] = (skitai.WS_SIMPLE, 60, ("message",))
    if event:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [message_of(environ).encode()]


skitai.mount("/", app)
# No request log, as for every other server here (stdlib logger switched off; skitai checks it).
logging.getLogger("skitai.request").disabled = True
skitai.run(address="127.0.0.1", port=int(os.environ["BENCH_PORT"]),
           threads=int(os.environ.get("BENCH_THREADS", "4")))
