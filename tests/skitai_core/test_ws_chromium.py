"""The spec's chat page in headless Chromium: two tabs in one WS_GROUPCHAT room exchange messages.

Driven over the Chrome DevTools protocol with the ``websockets`` client; skipped when no chromium is installed.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
import websockets.sync.client as wsc

import skitai
from tests.support.net import free_port
from tests.support.server import ServerThread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

PAGE = """<!DOCTYPE html><html><body>
<ul id="display"></ul><input id="mymsg" type="text"><button id="send" onclick="talk();">Submit</button>
<script>
var name = new URLSearchParams(location.search).get("name");
var websocket = new WebSocket("ws://" + location.host + "/websocket/chat?room_id=1");
websocket.onopen = function (evt) { log_info("CONNECTED"); };
websocket.onclose = function (evt) { log_info("DISCONNECTED"); };
websocket.onmessage = function (evt) { log_info(evt.data); };
websocket.onerror = function (evt) { log_info("ERROR"); };
function doSend(message) { websocket.send(message); }
function talk() { var box = document.getElementById("mymsg"); doSend(name + ": " + box.value); box.value = ""; }
function log_info(message) {
  var li = document.createElement("li"); li.textContent = message;
  document.getElementById("display").appendChild(li);
}
</script></body></html>"""


def app(environ, start_response):
    if environ["PATH_INFO"] == "/":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [PAGE.encode()]
    event = environ.get("websocket.event")
    if event == skitai.WS_EVT_INIT:
        environ["websocket.config"] = (skitai.WS_GROUPCHAT, 60, ("message", "room_id"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    if event:
        return []
    return [environ["websocket.message"].encode()]


class CDP:
    """The few DevTools calls the test needs, over the browser's websocket endpoint."""

    def __init__(self, url: str) -> None:
        self.ws = wsc.connect(url, max_size=None, compression=None)
        self.ids = itertools.count(1)

    def call(self, method: str, session: str | None = None, **params):
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv(timeout=10))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply["result"]

    def tab(self, url: str) -> str:
        target = self.call("Target.createTarget", url=url)["targetId"]
        return self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def js(self, session: str, expression: str):
        return self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)["result"].get("value")


def wait_for(fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    return fn()


def test_two_tabs_chat():
    port = free_port()
    profile = tempfile.mkdtemp(prefix="skitai-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def version():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=1) as r:
                    return json.load(r)
            except OSError:
                return None
        info = wait_for(version, 20)
        assert info, "chromium did not open its DevTools port"
        with ServerThread(app=app, threads=4) as srv:
            cdp = CDP(info["webSocketDebuggerUrl"])
            lines = "Array.from(document.querySelectorAll('#display li')).map(e => e.textContent)"
            alice = cdp.tab(f"http://127.0.0.1:{srv.port}/?name=alice")
            bob = cdp.tab(f"http://127.0.0.1:{srv.port}/?name=bob")
            for tab in (alice, bob):
                assert wait_for(lambda t=tab: "CONNECTED" in (cdp.js(t, lines) or []))
            cdp.js(alice, "document.getElementById('mymsg').value = 'hello bob'; talk();")
            assert wait_for(lambda: "alice: hello bob" in (cdp.js(bob, lines) or []))
            cdp.js(bob, "document.getElementById('mymsg').value = 'hi alice'; talk();")
            assert wait_for(lambda: "bob: hi alice" in (cdp.js(alice, lines) or []))
            assert "alice: hello bob" in cdp.js(alice, lines)      # the sender sees the broadcast too
            cdp.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
        assert not os.path.exists(profile)
