"""SK-23 logging of an app started as ``python app.py`` with a ``logpath``: the request line field by field,
transaction IDs taken from the request or minted, app tracebacks tagged ``[expt]``, a malformed request
logged with its 400, and SIGUSR1 rotating every file into a dated copy."""
from __future__ import annotations

import re
import signal
import socket
import textwrap
import time

import requests

from tests.support.apps import app_process

SCRIPT = """
import time

import skitai

def app(env, start_response):
    if env["PATH_INFO"] == "/boom":
        raise ValueError("the app failed")
    if env["PATH_INFO"] == "/slow":
        time.sleep(0.3)
    body = env["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got " + body]

if __name__ == "__main__":
    skitai.mount("/", app)
    skitai.run(address="127.0.0.1", logpath=skitai.joinpath("logs"), varpath=skitai.joinpath("var"))
"""

# client:port host method uri version status in out gtxnid ltxnid "user" token "agent" Nms Nms
LINE = re.compile(r'^(\d{4}\.\d\d\.\d\d \d\d:\d\d:\d\d) (127\.0\.0\.1):(\d+) (\S+) (\S+) (\S+) HTTP/(\S+) (\d{3}) '
                  r'(\d+) (\d+) (\S+) (\d+) (-|"[^"]*") (\S+) (-|"[^"]*") (\d+)ms (\d+)ms$')


def wait_file_lines(path, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            break
        time.sleep(0.05)
    return path.read_text().splitlines() if path.exists() else []


def test_request_app_and_server_logs_of_a_running_app(tmp_path):
    script = tmp_path / "logged.py"
    script.write_text(textwrap.dedent(SCRIPT))
    logs = tmp_path / "logs"
    with app_process(script, cwd=tmp_path) as app:
        ua = {"User-Agent": "log-tester/1"}
        assert requests.post(app.url + "/echo?x=1", data=b"12345", headers=ua, timeout=10).text == "got 12345"
        requests.get(app.url + "/slow", headers={"X-Gtxn-Id": "GTID-C7-R3", "X-Ltxn-Id": "1001"}, timeout=10)
        assert requests.get(app.url + "/boom", timeout=10).status_code == 500
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:
            s.sendall(b"GET /bad HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 400")
        request_lines = wait_file_lines(logs / "request.log", 4)
        app.popen.send_signal(signal.SIGUSR1)                       # rotate now
        deadline = time.monotonic() + 10
        while not list(logs.glob("request.log.*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert requests.get(app.url + "/after", timeout=10).text == "got "
        wait_file_lines(logs / "request.log", 1)
        console = app.output()
    assert len(request_lines) == 4, request_lines
    parsed = [LINE.match(line) for line in request_lines]
    assert all(parsed), request_lines
    post, slow, boom, bad = (m.groups() for m in parsed)
    # the POST: fields in order, bytes in = the body, a minted transaction id, the agent quoted
    assert post[3:9] == (f"127.0.0.1:{app.port}", "POST", "/echo?x=1", "1.1", "200", "5")
    assert int(post[9]) > len("got 12345") and re.fullmatch(r"GTID-C\d+-R1", post[10]) and post[11] == "1000"
    assert post[12:15] == ("-", "-", '"log-tester/1"')
    # IDs from the request: the global one kept, the local one + 1000; handling time covers the app's sleep
    assert slow[10:12] == ("GTID-C7-R3", "2001") and int(slow[15]) >= 250
    assert boom[7] == "500" and bad[4:7] == ("GET", "/bad", "1.1") and bad[7] == "400"
    assert len({post[10], boom[10], bad[10]}) == 3
    # rotation kept a dated copy and the new file has the later request
    dated = sorted(p.name for p in logs.glob("request.log.*"))
    assert dated and re.fullmatch(r"request\.log\.\d{8}", dated[0])
    assert " /after " in (logs / "request.log").read_text()
    # the app's traceback, each line tagged; the server log; nothing on the console without -v
    app_log = "".join(p.read_text() for p in logs.glob("app.log*"))
    assert re.search(r"\[error\] app error on GET /boom", app_log)
    assert re.search(r"\[expt\] ValueError: the app failed", app_log)
    server_log = "".join(p.read_text() for p in logs.glob("server.log*"))
    assert "[info] serving http://127.0.0.1:" in server_log
    assert " /echo" not in console and "ValueError" not in console
