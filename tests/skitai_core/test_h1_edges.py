"""Edges of the HTTP/1.1 server: malformed input still gets a request log line, and a stop does not wait
for idle TLS clients that keep their connection open."""
from __future__ import annotations

import logging
import socket
import ssl
import time

import pytest
import requests

from skitai import runner
from skitai.config import Config, Mount
from skitai.http import accesslog
from tests.support.server import ServerThread, raw_request


def hello(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi"]


def request_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "skitai.request"]


def wait_lines(caplog, count: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(request_lines(caplog)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return request_lines(caplog)


def test_malformed_requests_are_logged_with_their_status(caplog):
    caplog.set_level(logging.INFO, logger="skitai.request")
    with ServerThread(app=hello, max_headers=5) as srv:
        accesslog.refresh()
        assert raw_request(srv.port, b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert raw_request(srv.port, b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
        too_many = b"GET /many HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 10 + b"\r\n"
        assert raw_request(srv.port, too_many).startswith(b"HTTP/1.1 431")
        smuggle = (b"POST /cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert raw_request(srv.port, smuggle).startswith(b"HTTP/1.1 400")
        lines = wait_lines(caplog, 4)
    assert len(lines) == 4, lines
    for line, status in zip(lines, ["400", "400", "431", "400"], strict=True):
        f = line.split()
        assert len(f) == 15, line                      # every SK-23 field is there, "-" where unknown
        assert f[0].startswith("127.0.0.1:") and f[5] == status and f[6] == "0" and int(f[7]) > 0
        assert f[8].startswith("GTID-C") and f[9] == "1000" and f[13].endswith("ms")
    assert lines[1].split()[2:5] == ["-", "-", "HTTP/-"]         # not even a request line
    assert lines[2].split()[2:5] == ["GET", "/many", "HTTP/1.1"]
    assert lines[3].split()[2:5] == ["POST", "/cl-te", "HTTP/1.1"]


def test_a_good_request_before_a_bad_one_logs_both(caplog):
    caplog.set_level(logging.INFO, logger="skitai.request")
    with ServerThread(app=hello) as srv:
        accesslog.refresh()
        data = raw_request(srv.port, b"GET /good HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 400" in data
        lines = wait_lines(caplog, 2)
    assert [(ln.split()[3], ln.split()[5]) for ln in lines] == [("/good", "200"), ("/", "400")]
    assert lines[0].split()[8] != lines[1].split()[8]            # each has its own transaction id


def test_stop_does_not_wait_for_idle_tls_clients(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path), certfile=str(pem), stop_timeout=30,
                    mounts=[Mount("/", hello)])
    server = runner.Running(config)
    idle = []
    try:
        context = ssl.create_default_context(cafile=str(cafile))
        for _ in range(3):             # keep-alive clients that got their answer and then just sit there
            sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10),
                                       server_hostname="127.0.0.1")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            idle.append(sock)
        plain_ok = requests.get(f"https://127.0.0.1:{server.port}/", verify=str(cafile), timeout=10)
        assert plain_ok.text == "hi"
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
    finally:
        server.stop()
        for sock in idle:
            sock.close()
    assert took < 15, f"stop waited {took:.1f}s for idle TLS connections (stop_timeout 30)"
