"""Third-party HTTP/2 clients against the server: ``curl --http2`` (Upgrade: h2c) and ``nghttp`` (prior
knowledge, server push). Skipped when the tools are missing (Debian: curl, nghttp2-client)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.skitai_core.h2ws_support import h2_server


def app(environ, start_response):
    if environ["PATH_INFO"] == "/promise":
        environ["skitai.exchange"].push("/images/A.png")
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b'Promise Sent<br><br><img src="/images/A.png">']
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['SERVER_PROTOCOL']} {environ['PATH_INFO']}".encode()]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_upgrades_from_http1():
    with h2_server(app=app) as s:
        out = subprocess.run(["curl", "-sv", "--http2", "--max-time", "20", f"{s.url}/up"],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout == "HTTP/2 /up"                  # answered on stream 1 after the 101
        assert "101 Switching Protocols" in out.stderr and "HTTP/2 200" in out.stderr


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp is not installed (nghttp2-client)")
def test_nghttp_prior_knowledge_and_push():
    with h2_server(app=app) as s:
        out = subprocess.run(["nghttp", "-nv", "-t", "20", f"{s.url}/promise"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "recv PUSH_PROMISE frame" in out.stdout and ":path: /images/A.png" in out.stdout
        out = subprocess.run(["nghttp", "-t", "20", f"{s.url}/hello"], capture_output=True, text=True, timeout=30)
        assert out.stdout == "HTTP/2 /hello"
