"""SK-20/SK-21 as a user runs them: start/status/stop a daemon, prefork workers, graceful stop hooks."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from tests.support.apps import app_process
from tests.support.net import free_port, wait_port

APP = """
import os
import skitai

def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]

def start(was, point):
    with open(os.path.join(os.path.dirname(__file__), "events.txt"), "a") as f:
        f.write(f"start {os.getpid()} {point}\\n")

def cleanup():
    with open(os.path.join(os.path.dirname(__file__), "events.txt"), "a") as f:
        f.write(f"cleanup {os.getpid()}\\n")

app.start = start
app.cleanup = cleanup

if __name__ == "__main__":
    skitai.mount("/", app)
    skitai.run(address="127.0.0.1", varpath=os.path.join(os.path.dirname(__file__), "var"),
               logpath=os.path.join(os.path.dirname(__file__), "logs"), workers=WORKERS)
"""


def make_app(tmp_path, workers=1):
    script = tmp_path / "daemon_app.py"
    script.write_text(textwrap.dedent(APP).replace("WORKERS", str(workers)))
    return script


def cli(script, *args, port=None):
    env = dict(os.environ)
    if port:
        env["SKITAI_PORT"] = str(port)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_start_status_stop(tmp_path):
    script, port = make_app(tmp_path), free_port()
    try:
        started = cli(script, "start", port=port)
        assert started.returncode == 0 and "started" in started.stdout, started.stdout + started.stderr
        pid = int((tmp_path / "var" / "skitai.pid").read_text())
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text == str(pid)
        status = cli(script, "status")
        assert status.returncode == 0 and f"running (pid {pid})" in status.stdout
        again = cli(script, "-d", port=port)
        assert again.returncode == 1 and "already running" in again.stdout
        stopped = cli(script, "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert not (tmp_path / "var" / "skitai.pid").exists()
        assert cli(script, "status").returncode == 3
        events = (tmp_path / "events.txt").read_text().split("\n")
        assert f"start {pid} /" in events and f"cleanup {pid}" in events
        request_log = (tmp_path / "logs" / "request.log").read_text()
        assert " GET / HTTP/1.1 200 " in request_log
    finally:
        cli(script, "stop")


def test_restart_gives_a_new_process(tmp_path):
    script, port = make_app(tmp_path), free_port()
    try:
        assert cli(script, "start", port=port).returncode == 0
        first = requests.get(f"http://127.0.0.1:{port}/", timeout=10).text
        restarted = cli(script, "restart", port=port)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text != first
    finally:
        cli(script, "stop")


def test_start_reports_a_port_in_use(tmp_path):
    script = make_app(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = cli(script, "start", port=busy.getsockname()[1])
    assert result.returncode == 1 and "cannot listen" in result.stdout
    assert not (tmp_path / "var" / "skitai.pid").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_foreground_port_in_use_is_one_clear_line(tmp_path, workers):
    script = make_app(tmp_path, workers)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = cli(script, port=busy.getsockname()[1])
    assert result.returncode == 1 and "skitai: cannot listen on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr


def pids_serving(url, tries=60):
    """Worker pids answering ``tries`` fresh connections (the kernel picks a worker per connection).

    A connection queued on a worker that is being replaced may be reset (a limit of SO_REUSEPORT): skipped.
    """
    seen = set()
    for _ in range(tries):
        try:
            with requests.Session() as s:
                seen.add(s.get(url, timeout=10).text)
        except requests.ConnectionError:
            continue
    return seen


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_prefork_workers_share_the_port_and_are_restarted(tmp_path):
    script = make_app(tmp_path, workers=2)
    with app_process(script) as app:
        url = app.url + "/"
        deadline = time.monotonic() + 15              # the port answers once the FIRST worker listens
        while time.monotonic() < deadline:
            pids = pids_serving(url)
            if len(pids) == 2:
                break
            time.sleep(0.2)
        assert len(pids) == 2 and str(app.pid) not in pids
        victim = int(sorted(pids)[0])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = pids_serving(url, 20)
            if len(now) == 2 and str(victim) not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and str(victim) not in now
        os.kill(app.pid, signal.SIGHUP)                 # replace every worker
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            fresh = pids_serving(url, 20)
            if len(fresh) == 2 and not fresh & now:
                break
            time.sleep(0.2)
        assert len(fresh) == 2 and not fresh & now
        now = fresh
        assert app.stop(signal.SIGTERM) == 0
    events = (tmp_path / "events.txt").read_text()
    for pid in now:
        assert f"cleanup {pid}" in events
    with pytest.raises(OSError):
        wait_port(app.port, timeout=0.5)


def test_a_pid_file_naming_a_reused_pid_is_stale(tmp_path):
    """The daemon died and its pid went to a newer, unrelated process: status says not running, stop leaves
    that process alone, and start goes ahead."""
    script, port = make_app(tmp_path), free_port()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = tmp_path / "var" / "skitai.pid"
        pidfile.parent.mkdir()
        pidfile.write_text(f"{stranger.pid}\n")
        an_hour_ago = time.time() - 3600
        os.utime(pidfile, (an_hour_ago, an_hour_ago))
        status = cli(script, "status")
        assert status.returncode == 3, status.stdout
        assert not pidfile.exists()
        pidfile.write_text(f"{stranger.pid}\n")
        os.utime(pidfile, (an_hour_ago, an_hour_ago))
        cli(script, "stop")
        assert stranger.poll() is None, "stop killed a process that is not the daemon"
        started = cli(script, "start", port=port)
        assert started.returncode == 0 and "started" in started.stdout, started.stdout + started.stderr
        assert int(pidfile.read_text()) != stranger.pid
        assert cli(script, "status").returncode == 0
    finally:
        cli(script, "stop")
        stranger.kill()
        stranger.wait()
