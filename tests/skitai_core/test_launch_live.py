"""The launch API in apps started as ``python app.py``, answered over real sockets: every mount target
kind with ``pref`` and ``bootstrap``, the working directory, the timeouts set by the API, and a graceful
SIGTERM that finishes the request in flight and runs the apps' stop hooks."""
from __future__ import annotations

import json
import signal
import socket
import textwrap
import threading
import time

import requests

from tests.support.apps import app_process

HELLO = """
def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s " + env["SCRIPT_NAME"] + "|" + env["PATH_INFO"]).encode()]
"""

CONFIGURED = """
import json


def app(env, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"name": "%s", "debug": getattr(app, "debug", False),
                        "word": app.config.get("word"), "calls": app.config.get("calls")}).encode()]
"""

BOOTSTRAP = """
from . import helper          # a relative import: the package is imported as a package


def bootstrap(pref):
    pref.config.word = helper.WORD
    pref.config.calls = pref.config.get("calls", 0) + 1
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def get(app, path, **kw):
    kw.setdefault("allow_redirects", False)
    kw.setdefault("timeout", 10)
    return requests.get(app.url + path, **kw)


def test_every_mount_target_kind(tmp_path):
    """SK-01 (a) app object, (b) file paths, (c) directory, (e) (module, 'app_v1.py'), (f) a bare module
    (PK-02), each with pref and the package's bootstrap (PK-03)."""
    pkg = tmp_path / "wissen"
    write(pkg / "__init__.py", "")
    write(pkg / "export" / "skitai" / "__init__.py", BOOTSTRAP)
    write(pkg / "export" / "skitai" / "helper.py", "WORD = 'from wissen'\n")
    write(pkg / "export" / "skitai" / "app.py", CONFIGURED % "wissen app")
    write(pkg / "export" / "skitai" / "app_v1.py", CONFIGURED % "wissen app_v1")
    write(tmp_path / "booted" / "__init__.py", BOOTSTRAP)
    write(tmp_path / "booted" / "helper.py", "WORD = 'from booted'\n")
    write(tmp_path / "booted" / "app.py", CONFIGURED % "booted")
    write(tmp_path / "app_dir" / "app.py", HELLO % "app_dir")
    write(tmp_path / "app_file.py", HELLO % "app_file")
    write(tmp_path / "multi.py", (HELLO % "multi") + "\nsecond = app\n")
    write(tmp_path / "files" / "note.txt", "a static file\n")
    script = tmp_path / "service.py"
    write(script, """
        import skitai
        import wissen

        def inline(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"inline " + env["SCRIPT_NAME"].encode()]

        if __name__ == "__main__":
            pref = skitai.pref()
            pref.debug = True
            skitai.mount("/", wissen, "app", pref)                  # the module's export/skitai/app.py
            skitai.mount("/v1", (wissen, "app_v1.py"), "app", skitai.pref())
            skitai.mount("/booted", "booted/app.py")                # a file in a package: bootstrap runs
            skitai.mount("/dir", "app_dir")                         # a directory holding app.py
            skitai.mount("/file", "app_file")                       # a sibling .py file
            skitai.mount("/second", "multi.py", "second")           # another name in a file
            skitai.mount("/inline", inline)                         # an app object
            skitai.mount("/files", "files")                         # static files
            skitai.run(address="127.0.0.1", varpath=skitai.joinpath("var"))
        """)
    with app_process(script, cwd=tmp_path) as app:
        assert get(app, "/").json() == {"name": "wissen app", "debug": True, "word": "from wissen", "calls": 1}
        assert get(app, "/v1/").json() == {"name": "wissen app_v1", "debug": False, "word": "from wissen",
                                           "calls": 1}
        assert get(app, "/booted/").json() == {"name": "booted", "debug": False, "word": "from booted",
                                               "calls": 1}
        assert get(app, "/dir/x").text == "app_dir /dir|/x"
        assert get(app, "/file/").text == "app_file /file|/"
        assert get(app, "/second/y").text == "multi /second|/y"
        assert get(app, "/inline/").text == "inline /inline"
        assert get(app, "/files/note.txt").text == "a static file\n"
        assert get(app, "/dir").headers["Location"] == "/dir/"


def test_run_chdirs_to_the_script_directory(tmp_path):
    """'Accessing File Resources On Startup': getswd(), joinpath() and relative paths, from any cwd."""
    home = tmp_path / "svc"
    write(home / "data.txt", "relative data")
    write(home / "svc.py", """
        import json
        import os

        import skitai

        def app(env, start_response):
            with open("data.txt") as f:                      # relative to the script, not the shell
                data = f.read()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"cwd": os.getcwd(), "swd": skitai.getswd(), "data": data,
                                "joined": skitai.joinpath("a", "b.txt")}).encode()]

        if __name__ == "__main__":
            skitai.mount("/", app)
            skitai.run(address="127.0.0.1", varpath=skitai.joinpath("var"))
        """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with app_process(home / "svc.py", cwd=elsewhere) as app:
        got = get(app, "/").json()
    assert got == {"cwd": str(home), "swd": str(home), "data": "relative data",
                   "joined": str(home / "a" / "b.txt")}


def test_sigterm_finishes_the_request_in_flight_and_runs_stop_hooks(tmp_path):
    script = tmp_path / "hooked.py"
    write(script, """
        import time

        import skitai

        class App:
            def __call__(self, env, start_response):
                if env["PATH_INFO"] == "/slow":
                    open("in-flight", "w").close()
                    time.sleep(1.0)
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"done " + env["PATH_INFO"].encode()]

            def start(self, was, point):             # @app.startup
                with open("events", "a") as f:
                    f.write("start %s\\n" % point)

            def cleanup(self):                       # @app.shutdown: runs on SIGTERM too
                with open("events", "a") as f:
                    f.write("cleanup\\n")

        app = App()

        if __name__ == "__main__":
            skitai.mount("/h", app)
            skitai.run(address="127.0.0.1", varpath=skitai.joinpath("var"), threads=2)
        """)
    with app_process(script, cwd=tmp_path) as app:
        assert get(app, "/h/").text == "done /"
        result = {}
        slow = threading.Thread(target=lambda: result.update(r=get(app, "/h/slow", timeout=20)))
        slow.start()
        deadline = time.monotonic() + 10
        while not (tmp_path / "in-flight").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / "in-flight").exists()
        assert app.stop(signal.SIGTERM, timeout=20) == 0
        slow.join(20)
    assert result["r"].status_code == 200 and result["r"].text == "done /slow"
    assert (tmp_path / "events").read_text().splitlines() == ["start /h", "cleanup"]


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data + b"<still open>"
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_keep_alive_and_network_timeouts_from_the_launch_api(tmp_path):
    script = tmp_path / "timeouts.py"
    write(script, """
        import skitai

        def app(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        if __name__ == "__main__":
            skitai.mount("/", app)
            skitai.set_keep_alive(1)
            skitai.set_network_timeout(1)
            skitai.run(address="127.0.0.1", varpath=skitai.joinpath("var"))
        """)
    with app_process(script, cwd=tmp_path) as app:
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as idle:
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            started = time.monotonic()
            data = read_until_closed(idle, 15)
            assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")    # then closed by the server
            assert time.monotonic() - started < 12
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")          # the head never ends
            data = read_until_closed(slow, 15)
            assert data.startswith(b"HTTP/1.1 408")
        assert get(app, "/").text == "ok"


def test_every_run_keyword_of_the_spec_starts_a_server(tmp_path):
    """SK-04's keywords as the spec writes them; the answer proves the server took them."""
    script = tmp_path / "allkeys.py"
    write(script, """
        import json

        import skitai

        def app(env, start_response):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"multithread": env["wsgi.multithread"], "point": env["SCRIPT_NAME"]}).encode()]

        if __name__ == "__main__":
            skitai.run(address="127.0.0.1", port=5000, threads=0, workers=1, logpath=skitai.joinpath("logs"),
                       varpath=skitai.joinpath("var"), keep_alive=10, network_timeout=10, rcache_objmax=50,
                       max_ages={"/": 60}, verbose=False, mount=[("/api", app, skitai.pref(debug=True))],
                       clusters={"@up": ("http", ["127.0.0.1:9 2"])})
        """)
    with app_process(script, cwd=tmp_path) as app:
        assert json.loads(get(app, "/api/").text) == {"multithread": False, "point": "/api"}
    assert (tmp_path / "logs" / "server.log").exists() and (tmp_path / "var").is_dir()


def test_larger_app_layout_of_the_spec(tmp_path):
    """'Mount Multiple Microservices': run(mount=[('/service', ('<dir>/app', 'app')), ..., ('/', static)])."""
    service = tmp_path / "service"
    for sub in ("", "trade", "admin"):
        write(service / sub / "app.py", HELLO % (sub or "service"))
    write(service / "static" / "css" / "site.css", "body {}\n")
    script = tmp_path / "larger.py"
    write(script, f"""
        import skitai

        if __name__ == "__main__":
            S = {str(service)!r}
            skitai.run(address="127.0.0.1", varpath=skitai.joinpath("var"), mount=[
                ("/service", (S + "/app", "app")),
                ("/service/trade", (S + "/trade/app", "app")),
                ("/service/admin", (S + "/admin/app", "app")),
                ("/", S + "/static"),
            ])
        """)
    with app_process(script, cwd=tmp_path) as app:
        assert get(app, "/service/x").text == "service /service|/x"
        assert get(app, "/service/trade/").text == "trade /service/trade|/"
        assert get(app, "/service/admin/y").text == "admin /service/admin|/y"
        assert get(app, "/service/tradex").text == "service /service|/tradex"
        assert get(app, "/css/site.css").text == "body {}\n"
