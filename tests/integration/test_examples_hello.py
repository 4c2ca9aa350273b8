"""The spec's first example, started as a user starts it: ``python app.py``."""
import signal
import time

import requests

import skitai

from tests.support.apps import app_process


def test_hello_answers_and_stops_on_sigterm():
    with app_process("examples/hello/app.py") as app:
        r = requests.get(app.url + "/")
        assert (r.status_code, r.text, r.headers["Content-Type"]) == (200, "Hello World", "text/plain")
        assert r.headers["Server"] == skitai.NAME
        started = time.monotonic()
        assert app.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
        log = app.popen.stdout.read()
    assert "[info] serving http://127.0.0.1:" in log
    assert " GET / HTTP/1.1 200 " in log          # the request log line goes to the console without logpath


def test_port_from_the_environment():
    with app_process("examples/hello/app.py", port_by_env=True) as app:
        assert requests.get(app.url + "/").text == "Hello World"


def test_sigint_stops_too():
    with app_process("examples/hello/app.py") as app:
        assert requests.get(app.url + "/").ok
        assert app.stop(signal.SIGINT) == 0


def test_bad_command_line_is_a_usage_error():
    with app_process("examples/hello/app.py", "--bogus", wait=False) as app:
        assert app.popen.wait(20) == 2
        assert "usage:" in app.popen.stdout.read()
