"""Routing and logging against hostile input, over real sockets: encoded paths, forged log lines, rotation."""
import logging
import os
import socket

import pytest

from skitai import logs, runner
from skitai.config import Config, Mount
from tests.support.net import eventually


def named(name):
    def app(env, start_response):
        if env["PATH_INFO"] == "/echo-log":
            body = env["wsgi.input"].read().decode("latin-1")
            logging.getLogger("skitai.app").error("bad body %s", body)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{name} {env['SCRIPT_NAME']}|{env['PATH_INFO']}".encode("latin-1")]
    return app


def raw(port, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.fixture
def site(tmp_path):
    logs.setup(str(tmp_path / "logs"))
    config = Config(address="127.0.0.1", port=0, mounts=[
        Mount("/", named("root")), Mount("/app", named("app")), Mount("/app/admin", named("admin"))])
    try:
        with runner.Running(config) as running:
            yield running.port, tmp_path / "logs"
    finally:
        logs.reset()


def test_encoded_path_never_reaches_another_mount(site):
    port, _ = site
    for target in (b"/app%2Fadmin/x", b"/ap%70/admin/x", b"/ap%70/x"):
        assert raw(port, b"GET " + target + b" HTTP/1.1\r\nHost: x").startswith(b"HTTP/1.1 400"), target
    # encoded characters that stay inside the mount are fine; PATH_INFO is decoded (PEP 3333)
    assert raw(port, b"GET /app/x%2Fy%20z HTTP/1.1\r\nHost: x").endswith(b"app /app|/x/y z")


def test_client_text_cannot_forge_request_or_app_log_lines(site):
    port, logdir = site
    forged = b"x\n2026.01.01 00:00:00 [info] forged\x1b[2J\r\x85"
    raw(port, b"POST /echo-log HTTP/1.1\r\nHost: x\r\nUser-Agent: ua\\\" forged", forged)
    request_log, app_log = logdir / "request.log", logdir / "app.log"
    assert eventually(lambda: request_log.exists() and app_log.exists() and " /echo-log " in request_log.read_text())
    line, = request_log.read_text().splitlines()
    assert " x POST /echo-log " in line and '"ua\\\\\\" forged"' in line    # (a Host "a b" is a 400)
    text = app_log.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 1 and "\x1b" not in text and "\x85" not in text, text
    assert "bad body x\\x0a2026.01.01 00:00:00 [info] forged\\x1b[2J\\x0d\\x85" in text


def test_second_rotation_of_a_day_keeps_the_first_copy(tmp_path):
    logs.setup(str(tmp_path))
    try:
        log = logging.getLogger("skitai.request")
        for n in range(3):
            log.info("line %d", n)
            logs.rotate()
        log.info("line 3")
    finally:
        logs.reset()
    text = "".join(p.read_text() for p in tmp_path.glob("request.log*"))
    assert all(f"line {n}\n" in text for n in range(4)), sorted(p.name for p in tmp_path.iterdir())


def test_old_dated_copies_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "BACKUPS", 2)
    logs.setup(str(tmp_path))
    try:
        for n in range(5):
            logging.getLogger("skitai.request").info("line %d", n)
            logs.rotate()
    finally:
        logs.reset()
    assert len(list(tmp_path.glob("request.log.*"))) == 2


def test_removed_log_file_is_recreated(site):
    port, logdir = site
    request_log = logdir / "request.log"
    raw(port, b"GET /one HTTP/1.1\r\nHost: x")
    assert eventually(lambda: request_log.exists() and " /one " in request_log.read_text())
    os.remove(request_log)

    def logged_again():
        raw(port, b"GET /two HTTP/1.1\r\nHost: x")
        return request_log.exists() and " /two " in request_log.read_text()
    assert eventually(logged_again)


def test_pruning_keeps_the_newest_copies_past_ten_a_day(tmp_path, monkeypatch):
    """Copies .1 ... .12 of one day: the oldest go first, not '.10' (which sorts before '.2' as text)."""
    monkeypatch.setattr(logs, "BACKUPS", 3)
    logs.setup(str(tmp_path))
    try:
        for n in range(13):
            logging.getLogger("skitai.request").info("line %d", n)
            logs.rotate()
    finally:
        logs.reset()
    kept = sorted(p.read_text().split(" line ")[-1] for p in tmp_path.glob("request.log.*"))
    assert kept == ["10\n", "11\n", "12\n"], kept


def test_midnight_rollover_keeps_the_copy_a_signal_made_that_day(tmp_path):
    logs.setup(str(tmp_path))
    try:
        log = logging.getLogger("skitai.request")
        log.info("morning")
        logs.rotate()                                   # SIGUSR1 in the afternoon
        log.info("evening")
        handler = next(h for lg, h in logs._installed if lg is log)
        handler.acquire()
        try:
            handler.doRollover()                        # what emit() does when midnight has passed
        finally:
            handler.release()
    finally:
        logs.reset()
    text = "".join(p.read_text() for p in tmp_path.glob("request.log.*"))
    assert "morning" in text and "evening" in text, sorted(p.name for p in tmp_path.iterdir())
