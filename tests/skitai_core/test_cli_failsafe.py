"""``python app.py -f``: a supervisor starts the app again when it dies, and stops it on SIGTERM (SK-20)."""
import signal
import textwrap
import time

import requests

from tests.support.apps import app_process
from tests.support.net import wait_port

SCRIPT = """
import os

import skitai

def app(env, start_response):
    if env["PATH_INFO"] == "/crash":
        os._exit(7)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]

if __name__ == "__main__":
    skitai.mount("/", app)
    skitai.run(address="127.0.0.1", varpath=skitai.joinpath("var"))
"""


def pid_of(app) -> int:
    deadline = time.monotonic() + 20
    while True:
        try:
            return int(requests.get(app.url + "/", timeout=5).text)
        except (requests.ConnectionError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_crashed_app_is_started_again_and_sigterm_stops_it(tmp_path):
    script = tmp_path / "fragile.py"
    script.write_text(textwrap.dedent(SCRIPT))
    with app_process(script, "-f", cwd=tmp_path) as app:
        first = pid_of(app)
        assert first != app.pid                               # the supervisor serves nothing itself
        try:
            requests.get(app.url + "/crash", timeout=5)
        except requests.ConnectionError:
            pass
        wait_port(app.port, timeout=20)
        second = pid_of(app)
        assert second not in (first, app.pid)
        assert app.stop(signal.SIGTERM, timeout=20) == 0
        out = app.popen.stdout.read()
    assert "exited with 7: starting it again" in out
    try:
        requests.get(app.url + "/", timeout=2)
        raise AssertionError("the app still answers after the supervisor stopped")
    except requests.ConnectionError:
        pass


def test_the_app_stops_when_its_supervisor_is_killed(tmp_path):
    # before: a supervisor killed with SIGKILL (nothing passed on) left the app serving as an orphan
    import os

    from skitai import daemon

    script = tmp_path / "fragile.py"
    script.write_text(textwrap.dedent(SCRIPT))
    with app_process(script, "-f", cwd=tmp_path) as app:
        child = pid_of(app)
        os.kill(app.pid, signal.SIGKILL)
        app.popen.wait(5)
        try:
            deadline = time.monotonic() + 10
            while daemon.alive(child) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not daemon.alive(child), "the app serves on without its supervisor"
        finally:
            if daemon.alive(child):
                os.kill(child, signal.SIGKILL)
