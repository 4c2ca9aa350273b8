"""``was`` utilities (SK-70..SK-75): converters, log and traceback, the ``app.start(wasc, point)`` hook with
``register/unregister``, ``ajob``, ``logger``, ``config``, ``numthreads``, and ``was.shutdown()`` /
``was.restart()`` of a real app process."""
from __future__ import annotations

import json
import logging
import sqlite3
import sys
import textwrap
import threading
import time

import pytest
import requests

from skitai import was
from skitai.services import binding, convert
from tests.integration.was_support import front, get_json, routed
from tests.support.apps import app_process


def test_converters():
    def conv(env):
        return {
            "tojson": was.tojson({"a": [1, 2]}),
            "fromjson": was.fromjson(b'{"b": 1}'),
            "fromjson_str": was.fromjson('[1, "x"]'),
            "toxml_roundtrip": was.fromxml(was.toxml(({"k": "v"}, 3)))[0],
            "fromxml_method": list(was.fromxml(
                "<?xml version='1.0'?><methodCall><methodName>m.n</methodName><params><param><value>"
                "<int>5</int></value></param></params></methodCall>")),
        }

    with front(routed({"/c": conv})) as url:
        d = get_json(url + "/c")
    assert d["tojson"] == '{"a": [1, 2]}' and d["fromjson"] == {"b": 1} and d["fromjson_str"] == [1, "x"]
    assert d["toxml_roundtrip"] == [{"k": "v"}, 3]
    assert d["fromxml_method"] == [[5], "m.n"]


def test_fromxml_refuses_entity_bombs_and_deep_nesting():
    # request bodies are anyone's: a DTD's entities would expand a few hundred bytes to gigabytes
    bomb = ('<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
            + ']><methodCall><methodName>x</methodName><params><param><value><string>&i;</string></value>'
            '</param></params></methodCall>')
    started = time.monotonic()
    with pytest.raises(ValueError, match="DOCTYPE"):
        convert.fromxml(bomb)
    assert time.monotonic() - started < 0.5
    inner = "<value><int>1</int></value>"
    for _ in range(100):
        inner = f"<value><array><data>{inner}</data></array></value>"
    deep = f"<?xml version='1.0'?><methodCall><methodName>x</methodName><params><param>{inner}</param></params></methodCall>"
    with pytest.raises(ValueError, match="nested deeper"):
        convert.fromxml(deep)
    assert convert.fromxml(deep.replace("<value><array><data>", "", 90).replace("</data></array></value>", "", 90))


def test_log_and_traceback_go_to_the_app_log_with_the_txnid(caplog):
    caplog.set_level(logging.INFO, logger="skitai.app")

    def logs(env):
        was.log("hello from the app", "note")
        try:
            {}["missing"]
        except KeyError:
            ident = was.traceback()
        return {"txnid": was.txnid(), "ident": ident}

    with front(routed({"/l": logs})) as url:
        d = get_json(url + "/l")
    messages = [r.getMessage() for r in caplog.records if r.name == "skitai.app"]
    assert f"[note:{d['txnid']}] hello from the app" in messages
    assert d["ident"] == d["txnid"]
    expt = [m for m in messages if m.startswith(f"[expt:{d['txnid']}]")]
    assert expt and "KeyError: 'missing'" in expt[0] and "Traceback" in expt[0]


class HookedApp:
    """A WSGI app with the 0.26 life-cycle hooks: ``start(wasc, point)`` and ``cleanup()``."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.seen: dict = {}
        self.job_done = threading.Event()
        self.cleaned = False

    def start(self, wasc, point):
        self.wasc = wasc
        self.seen = {"point": point, "numthreads": wasc.numthreads, "port_in_config": wasc.config.port,
                     "logger": type(wasc.logger.get("app")).__name__}
        wasc.logger("app started", "info")
        wasc.register("counter", Counter())
        try:
            wasc.register("counter", Counter())
        except AttributeError as exc:
            self.seen["dup"] = str(exc)
        try:
            wasc.register("get", object())       # a was verb cannot be shadowed
        except AttributeError as exc:
            self.seen["verb"] = str(exc)
        wasc.ajob("@lite", self.on_job).execute("SELECT count(*) FROM t")
        wasc.greeting = "shared"              # set outside a request: every request sees it

    def on_job(self, result):
        self.seen["job"] = [result.status, result.data[0][0]]
        self.job_done.set()

    def cleanup(self):
        self.cleaned = self.wasc.unregister("counter") is not None

    def __call__(self, env, start_response):
        n = was.counter.hit()
        was.mine = n                           # set inside a request: this request only
        body = f"{n} {was.greeting}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def hit(self) -> int:
        with self.lock:
            self.n += 1
            return self.n

    def status(self) -> dict:
        return {"hits": self.n}


def test_start_hook_register_ajob_and_cleanup(tmp_path):
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (v INTEGER)")
        c.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    app = HookedApp(str(db))
    with front(app, {"lite": ("*sqlite3", [str(db)])}, threads=3) as url:
        assert [requests.get(url + "/", timeout=10).text for _ in range(3)] == ["1 shared", "2 shared", "3 shared"]
        assert "mine" not in binding.server_context().objects
        assert app.job_done.wait(5)
    assert app.seen["point"] == "/" and app.seen["numthreads"] == 3 and app.seen["logger"] == "Logger"
    assert "already registered" in app.seen["dup"] and "already registered" in app.seen["verb"]
    assert app.seen["job"] == [3, 3]
    assert app.cleaned


SCRIPT = """
import os, uuid, skitai
from skitai import was

BOOT = uuid.uuid4().hex          # a new one each time the script starts

def app(env, start_response):
    path = env["PATH_INFO"]
    if path == "/shutdown":
        was.shutdown()
    elif path == "/restart" and not os.environ.get("RESTARTED"):
        os.environ["RESTARTED"] = "1"
        was.restart()
    body = f"{os.getpid()} {os.environ.get('RESTARTED', '0')} {BOOT}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

skitai.mount("/", app)
skitai.run(address="127.0.0.1", threads=2)
"""


def test_shutdown_stops_the_process_cleanly(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    with app_process(script, cwd=tmp_path) as proc:
        assert requests.get(proc.url + "/shutdown", timeout=10).status_code == 200
        assert proc.popen.wait(15) == 0
        out = proc.popen.stdout.read()
    assert "stopping" in out


def test_restart_runs_the_app_again_in_the_same_process(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    with app_process(script, cwd=tmp_path) as proc:
        pid, flag, boot = requests.get(proc.url + "/restart", timeout=10).text.split()
        assert flag == "1"
        deadline = time.monotonic() + 20
        answer = ["", "", boot]
        while time.monotonic() < deadline:        # the old server may answer while it drains: wait for the new one
            try:
                answer = requests.get(proc.url + "/", timeout=2).text.split()
                if answer[2] != boot:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        assert answer[:2] == [pid, "1"] and answer[2] != boot     # same pid (exec), new server, environment kept
        assert requests.get(proc.url + "/shutdown", timeout=10).status_code == 200
        assert proc.popen.wait(15) == 0


def test_the_was_example_app():
    with app_process("examples/was/app.py") as proc:
        d = requests.get(proc.url + "/", timeout=10).json()
        page = requests.get(proc.url + "/status", timeout=10).text
        moved = requests.get(proc.url + "/old", allow_redirects=False, timeout=10)
    assert d["status"] == [3] * 5 and d["elapsed"] < 1.0 and d["txnid"].endswith("/1000")
    assert moved.status_code == 302 and moved.headers["Location"] == "/"
    assert "@self" in page and "1/1 alive" in page


HOOK_SCRIPT = """
import skitai


class App:
    called = b"0"

    def start(self, wasc, point):
        task = wasc.get("http://127.0.0.1:1/")
        try:
            task.getwait(1)
        except RuntimeError as exc:
            print("HOOK-ERROR", exc, flush=True)
        wasc.get("http://127.0.0.1:1/", callback=self.done)

    def done(self, r):
        print("HOOK-CALLBACK", r.status, r.status_code, flush=True)
        self.called = b"1"

    def __call__(self, env, start_response):
        start_response("200 OK", [("Content-Length", "1")])
        return [self.called]


skitai.mount("/", App())
skitai.run(address="127.0.0.1", threads=2)
"""


def test_start_hook_calls_run_once_serving_starts(tmp_path):
    """In a served process the start hooks run before the loop: waits there are a clear error, callbacks work."""
    script = tmp_path / "hooked.py"
    script.write_text(HOOK_SCRIPT)
    with app_process(script, cwd=tmp_path) as proc:
        deadline = time.monotonic() + 10
        while requests.get(proc.url + "/", timeout=10).text != "1" and time.monotonic() < deadline:
            time.sleep(0.05)                     # serving already; the callback comes once its call fails
        out = proc.output()
    assert "HOOK-ERROR the server's event loop is not running yet" in out
    assert "HOOK-CALLBACK 2 732" in out


def test_redirect_and_render_ei_from_a_plain_wsgi_app():
    """``was.redirect`` answers a no-cache redirect in both plain-WSGI forms; ``was.render_ei`` renders the
    exception being handled as text, an escaped HTML box, or frames (SK-76)."""
    from email.utils import parsedate_to_datetime

    def app(env, start_response):
        path = env["PATH_INFO"]
        if path == "/go":
            return was.redirect("/there?a=1&b=<2>", start_response=start_response)
        if path == "/moved":
            reply = was.redirect("http://example.com/new", status=301, body="gone",
                                 headers={"X-Why": "moved", "Cache-Control": "no-store"})
            return reply(env, start_response)
        errors = {}
        for what, bad in (("status", lambda: was.redirect("/x", status="200 OK")),
                          ("crlf", lambda: was.redirect("/x\r\nSet-Cookie: a=1")),
                          ("no_exception", lambda: was.render_ei()),
                          ("format", lambda: was.render_ei((KeyError, KeyError("k"), None), 7))):
            try:
                bad()
            except ValueError as exc:
                errors[what] = str(exc)
        try:
            {}["<missing>"]
        except KeyError:
            text, box, frames = was.render_ei(), was.render_ei(format=1), was.render_ei(format=2)
        try:
            raise RuntimeError("explicit")
        except RuntimeError:
            explicit = was.render_ei(sys.exc_info(), 0)
        body = json.dumps({"text": text, "html": box, "frames": frames, "explicit": explicit,
                           "errors": errors}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    with front(app) as url:
        go = requests.get(url + "/go", allow_redirects=False, timeout=10)
        moved = requests.get(url + "/moved", allow_redirects=False, timeout=10)
        d = requests.get(url + "/ei", timeout=10).json()
    assert go.status_code == 302 and go.reason == "Found"
    assert go.headers["Location"] == "/there?a=1&b=<2>" and go.headers["Cache-Control"] == "max-age=0"
    assert abs(parsedate_to_datetime(go.headers["Expires"]).timestamp() - time.time()) < 60
    assert go.headers["Content-Type"].startswith("text/html")
    assert 'href="/there?a=1&amp;b=&lt;2&gt;"' in go.text and "<2>" not in go.text
    assert moved.status_code == 301 and moved.reason == "Moved Permanently" and moved.text == "gone"
    assert moved.headers["X-Why"] == "moved" and moved.headers["Cache-Control"] == "no-store"
    assert moved.headers["Location"] == "http://example.com/new"
    assert "3xx" in d["errors"]["status"] and "line breaks" in d["errors"]["crlf"]
    assert "needs an exception" in d["errors"]["no_exception"] and "not 7" in d["errors"]["format"]
    assert d["text"].startswith("Traceback") and "KeyError: '<missing>'" in d["text"]
    assert "<h3>KeyError</h3>" in d["html"] and "&lt;missing&gt;" in d["html"] and "<missing>" not in d["html"]
    assert d["frames"][-1][0].endswith("test_was_utilities.py") and d["frames"][-1][1] == "app"
    assert "RuntimeError: explicit" in d["explicit"]
