"""What the per-request shortcuts of the WSGI bridge must not change: the environ prepared once per connection
follows the Host of each request, cached response heads follow the header list's content, and the
request's ``was`` is freed when the request ends (no reference cycle left for the garbage collector)."""
from __future__ import annotations

import gc
import socket
import weakref

import pytest

from skitai.config import Config
from skitai.runner import install_was
from tests.support.server import ServerThread, parse_responses


def _exchange_all(port: int, data: bytes, count: int) -> list:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            responses = parse_responses(buf)
            if len(responses) == count and responses[-1].complete:
                return responses
    return parse_responses(buf)


@pytest.mark.parametrize("threads", [0, 2])
def test_server_name_follows_each_requests_host_on_one_connection(threads):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['SERVER_NAME']} {environ['SERVER_PORT']}".encode()]

    with ServerThread(app=app, threads=threads) as srv:
        data = b"".join(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % h for h in (b"a.example:81", b"B.example",
                                                                         b"a.example:81"))
        got = [r.body.decode() for r in _exchange_all(srv.port, data, 3)]
    assert [g.split()[0] for g in got] == ["a.example", "b.example", "a.example"]
    assert len({g.split()[1] for g in got}) == 1


@pytest.mark.parametrize("threads", [0, 2])
def test_cached_heads_follow_the_header_lists_content(threads):
    headers = [("Content-Type", "text/plain"), ("X-Round", "0")]
    state = {"n": 0}

    def app(environ, start_response):
        state["n"] += 1
        headers[1] = ("X-Round", str(state["n"]))       # the same list object, new content
        status = "200 OK" if state["n"] % 2 else "201 Created"
        start_response(status, headers)
        return [b"x" * state["n"]]

    with ServerThread(app=app, threads=threads) as srv:
        data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4
        got = _exchange_all(srv.port, data, 4)
    assert [(r.status, r.headers["x-round"], r.body) for r in got] == [
        (200, "1", b"x"), (201, "2", b"xx"), (200, "3", b"xxx"), (201, "4", b"xxxx")]
    assert all(r.headers["content-length"] == str(len(r.body)) for r in got)


def test_head_and_connection_close_are_not_taken_from_the_cache():
    def app(environ, start_response):
        headers = [("Content-Type", "text/plain")]
        if environ["PATH_INFO"] == "/close":
            headers = headers + [("Connection", "close")]
        start_response("200 OK", headers)
        return [b"hello"]

    with ServerThread(app=app, threads=0) as srv:
        data = (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(data)
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
    assert raw.count(b"HTTP/1.1 200 OK") == 3          # the connection closes after /close
    first, rest = raw.split(b"\r\n\r\nhello", 1)
    head_answer, close_answer = rest.split(b"HTTP/1.1 200 OK")[1:3]
    assert b"Content-Length: 5" in head_answer and not head_answer.endswith(b"hello")
    assert b"Connection: close" in close_answer and close_answer.endswith(b"hello")


@pytest.mark.parametrize("threads", [0, 1])
def test_the_requests_was_is_freed_when_the_request_ends(threads):
    refs: list = []
    envs: list = []

    def app(environ, start_response):
        was = environ["skitai.was"]
        assert was.env is environ
        refs.append(weakref.ref(was))
        envs.append(environ)                 # the app keeps its environ: the was must still go
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    config = Config(threads=threads)
    with ServerThread(app=app, config=config) as srv:
        srv.call(install_was, config, srv.loop)
        try:
            gc.disable()
            got = _exchange_all(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3, 3)
            assert [r.status for r in got] == [200, 200, 200]
            # the last request's was stays bound to its thread until the next one; the others are gone
            assert [r() is None for r in refs[:-1]] == [True, True]
            assert all("skitai.was" not in env for env in envs[:-1])
        finally:
            gc.enable()
            srv.call(install_was, None, srv.loop)
