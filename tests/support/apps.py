"""Start an app the way a user does (``python app.py --port N``) and stop it by its pid.

    with app_process("examples/hello/app.py") as proc:
        requests.get(proc.url + "/")
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from .net import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]


class AppProcess:
    def __init__(self, popen: subprocess.Popen, port: int) -> None:
        self.popen = popen
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the app and wait for it; returns its exit code (kills it if it hangs)."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def output(self) -> str:
        self.stop()
        return self.popen.stdout.read() if self.popen.stdout else ""


@contextlib.contextmanager
def app_process(script: str | Path, *args: str, port: int | None = None, env: dict | None = None,
                cwd: str | Path | None = None, wait: bool = True, port_by_env: bool = False):
    """Run ``python script --port N *args`` (or ``SKITAI_PORT=N``) and stop it when the block ends."""
    script = Path(script)
    if not script.is_absolute():
        script = ROOT / script
    port = port or free_port()
    environ = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    argv = [sys.executable, str(script), *args]
    if port_by_env:
        environ["SKITAI_PORT"] = str(port)
    else:
        argv += ["--port", str(port)]
    popen = subprocess.Popen(argv, cwd=str(cwd or ROOT), env=environ, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc = AppProcess(popen, port)
    try:
        if wait:
            try:
                wait_port(port, timeout=20)
            except TimeoutError:
                raise AssertionError(f"{script.name} did not listen:\n{proc.output()}") from None
        yield proc
    finally:
        proc.stop()
        if popen.stdout:
            popen.stdout.close()
