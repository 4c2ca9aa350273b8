"""How the process model takes an operator's mistakes and a crashing app: real processes, real sockets.

Covers what the CLI, launch and reloader tests do not: an app file that fails to import, an encrypted key
without its pass phrase, a pid file that cannot be written, a request that kills its worker, a master
killed with SIGKILL, and a replaced worker that never finishes its cleanup.
"""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from skitai import daemon
from tests.support.apps import app_process
from tests.support.net import eventually, free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prefork and /proc: Linux")

APP = """
import os, sys, time
import skitai

def app(env, start_response):
    if env["PATH_INFO"] == "/crash":
        os._exit(7)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]

if os.environ.get("STUCK_CLEANUP"):
    app.cleanup = lambda: time.sleep(60)

if __name__ == "__main__":
    skitai.mount("/", os.environ.get("TARGET") or app)
    if os.environ.get("SSL"):
        skitai.enable_ssl(*os.environ["SSL"].split(","))
    here = os.path.dirname(os.path.abspath(__file__))
    skitai.run(address="127.0.0.1", varpath=os.path.join(here, "var"), workers=int(os.environ.get("W", "1")),
               stop_timeout=1, pidfile=os.environ.get("PIDFILE"))
"""


def write_app(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP))
    return script


def run_cli(script, *args, **env):
    environ = dict(os.environ, SKITAI_PORT=str(free_port()), **env)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=60,
                          env=environ, stdin=subprocess.DEVNULL)


def children(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return kids


def serves(url):
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_app_that_fails_to_import_is_one_line_naming_the_file_and_line(tmp_path, workers):
    write_app(tmp_path)
    (tmp_path / "broken.py").write_text("import os\nimport no_such_module_for_skitai\napp = None\n")
    result = run_cli(tmp_path / "app.py", TARGET="broken.py", W=workers)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "No module named 'no_such_module_for_skitai'" in result.stderr
    assert f"{tmp_path / 'broken.py'}, line 2" in result.stderr


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_an_encrypted_key_without_its_passphrase_is_a_clear_error_at_start(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"),
                    "-passout", "pass:secret"], check=True, capture_output=True)
    result = run_cli(write_app(tmp_path), SSL="cert.pem,key.pem")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the private key is encrypted" in result.stderr and "passphrase" in result.stderr


def test_a_pid_file_that_cannot_be_written_is_named_when_the_daemon_starts(tmp_path):
    script = write_app(tmp_path)
    pidfile = tmp_path / "app.py" / "skitai.pid"          # under a file: never writable
    result = run_cli(script, "start", PIDFILE=str(pidfile))
    assert result.returncode == 1
    assert f"cannot write the pid file {pidfile}" in result.stdout


def test_requests_that_crash_their_worker_do_not_take_the_server_down(tmp_path):
    with app_process(write_app(tmp_path), env={"W": "2"}) as proc:
        assert eventually(lambda: serves(proc.url + "/"), 15)
        deaths = 0
        deadline = time.monotonic() + 15
        while deaths < 14 and time.monotonic() < deadline:     # more than CRASH_LIMIT per worker
            try:
                requests.get(proc.url + "/crash", timeout=3)
            except requests.ConnectionError as e:
                deaths += "refused" not in str(e).lower()
                time.sleep(0.05)
        assert deaths >= 11
        assert proc.popen.poll() is None, proc.output()
        assert eventually(lambda: serves(proc.url + "/"), 10), proc.output()


def test_workers_stop_when_their_master_is_killed(tmp_path):
    with app_process(write_app(tmp_path), env={"W": "2"}) as proc:
        assert eventually(lambda: len(children(proc.pid)) == 2 and serves(proc.url + "/"), 15)
        workers = children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(5)
        try:
            assert eventually(lambda: not any(daemon.alive(pid) for pid in workers), 10), "orphans keep serving"
            assert not serves(proc.url + "/")
        finally:
            for pid in workers:                  # never leave an orphan behind, even when this fails
                if daemon.alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_a_replaced_worker_stuck_in_cleanup_is_killed_after_the_grace(tmp_path):
    """SIGHUP: the old workers get stop_timeout (1 s) + 2 s; the master's own SIGTERM stop likewise."""
    with app_process(write_app(tmp_path), env={"W": "2", "STUCK_CLEANUP": "1"}) as proc:
        assert eventually(lambda: len(children(proc.pid)) == 2 and serves(proc.url + "/"), 15)
        old = set(children(proc.pid))
        os.kill(proc.pid, signal.SIGHUP)
        assert eventually(lambda: len(set(children(proc.pid)) - old) == 2, 15)
        assert eventually(lambda: not set(children(proc.pid)) & old, 8), "replaced workers never killed"
        assert serves(proc.url + "/")
        started = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(10) == 0
        assert 2.5 < time.monotonic() - started < 8
