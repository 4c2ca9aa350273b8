"""The spec's chat page (``examples/websocket``, run as ``python app.py``) in headless Chromium: two tabs in one
WS_GROUPCHAT room exchange messages.

Driven over the Chrome DevTools protocol with the ``websockets`` client; skipped when no chromium is installed.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest
import websockets.sync.client as wsc

from tests.support.apps import app_process
from tests.support.net import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

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


@contextlib.contextmanager
def browser(*flags: str):
    """Headless Chromium with a fresh profile; yields its DevTools websocket URL."""
    port = free_port()
    profile = tempfile.mkdtemp(prefix="skitai-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", f"--remote-debugging-port={port}", *flags, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def version():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=1) as r:
                    return json.load(r)
            except OSError:
                return None
        info = wait_for(version, 20)
        assert info, "chromium did not open its DevTools port"
        yield info["webSocketDebuggerUrl"]
    finally:
        stop_browser(proc)
        remove_tree(profile)
        assert not os.path.exists(profile)


def test_two_tabs_chat():
    with browser() as devtools, app_process("examples/websocket/app.py") as srv:
        cdp = CDP(devtools)
        lines = "Array.from(document.querySelectorAll('#display li')).map(e => e.textContent)"

        def said(tab, text):
            return any(line.endswith(" Said: " + text) for line in cdp.js(tab, lines) or [])

        alice = cdp.tab(f"http://127.0.0.1:{srv.port}/?name=alice")
        bob = cdp.tab(f"http://127.0.0.1:{srv.port}/?name=bob")
        for tab in (alice, bob):
            assert wait_for(lambda t=tab: "CONNECTED" in (cdp.js(t, lines) or []))
        cdp.js(alice, "document.getElementById('mymsg').value = 'hello bob'; talk();")
        assert wait_for(lambda: said(bob, "alice: hello bob"))
        cdp.js(bob, "document.getElementById('mymsg').value = 'hi alice'; talk();")
        assert wait_for(lambda: said(alice, "bob: hi alice"))
        assert said(alice, "alice: hello bob")              # the sender sees the broadcast too
        cdp.ws.close()


PAGE = b"""<!doctype html><title>-</title><script>
const ws = new WebSocket("wss://" + location.host + "/ws", ["chat"]);
const got = [];
ws.onmessage = (e) => { got.push(e.data + " " + ws.protocol); document.title = got.join("|"); };
ws.onopen = () => { ws.send("one"); ws.send("two"); };
</script>"""


def page(environ, start_response):
    found = environ["PATH_INFO"] == "/"
    start_response("200 OK" if found else "404 Not Found", [("Content-Type", "text/html")])
    return [PAGE if found else b""]


def choose_chat(environ):
    if "chat" in environ["websocket.subprotocols"]:
        environ["websocket.subprotocol"] = "chat"     # the page asks for it: no answer, no socket


def tell_protocol(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['websocket.message']} over {environ['SERVER_PROTOCOL']}".encode()]


def test_websocket_over_http2_in_chromium(tmp_path):
    """Over https the page comes by HTTP/2, and Chromium opens its WebSocket on a stream of that same
    connection (RFC 8441) because our SETTINGS offer extended CONNECT; the subprotocol the page asks for
    is the app's answer."""
    trustme = pytest.importorskip("trustme")
    from skitai.config import Config
    from skitai.tls import make_ssl_context
    from tests.skitai_core.h2ws_support import h2_server, ws_app
    leaf = trustme.CA().issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    ctx = make_ssl_context(Config(certfile=str(cert), keyfile=str(key)))
    with browser("--ignore-certificate-errors") as devtools, \
            h2_server(app=ws_app(tell_protocol, on_init=choose_chat, plain=page), threads=2, ssl=ctx) as srv:
        cdp = CDP(devtools)
        tab = cdp.tab(f"https://127.0.0.1:{srv.port}/")
        title = wait_for(lambda: "|" in (cdp.js(tab, "document.title") or "") and cdp.js(tab, "document.title"))
        assert title == "one over HTTP/2 chat|two over HTTP/2 chat"
        cdp.ws.close()


def stop_browser(proc: subprocess.Popen) -> None:
    """End Chromium and its helper processes (its own session), so none writes into the profile later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:                                  # reap stragglers of the group the parent left behind
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return


def remove_tree(path: str, timeout: float = 10.0) -> None:
    """rmtree until the directory is gone: an exiting child may still create files in it for a moment."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        shutil.rmtree(path, ignore_errors=True)
        if os.path.exists(path):
            time.sleep(0.05)
