"""The WSGI bridge with raw PEP 3333 apps, in the thread pool (threads=2) and on the loop (threads=0)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time

import pytest
import requests

from tests.support.server import ServerThread, parse_responses, raw_request

THREADS = pytest.mark.parametrize("threads", [0, 2], ids=["threads0", "threads2"])


def environ_app(environ, start_response):
    keys = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
            "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_X_TWICE",
            "HTTP_X_ONE", "HTTP_X_UNDER", "HTTP_X_UNDER_SCORE", "HTTP_HOST", "wsgi.url_scheme",
            "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.version", "REQUEST_URI"]
    out = {k: environ.get(k) for k in keys}
    out["has_exchange"] = environ["skitai.exchange"] is not None
    out["was"] = "skitai.was" in environ
    out["file_wrapper"] = callable(environ["wsgi.file_wrapper"])
    out["input"] = environ["wsgi.input"].read().decode()
    environ["wsgi.errors"].write("a line for the app log\n")
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@THREADS
def test_environ_under_a_mount_point(threads, caplog):
    with ServerThread(app=environ_app, mount="/app", threads=threads) as srv, \
            caplog.at_level(logging.ERROR, logger="skitai.app"):
        r = requests.post(srv.url + "/app/a%20b/%C3%A9?x=1&y=%20", data=b"hello",
                          headers={"Content-Type": "text/x-test", "X-One": "1", "X-Under": "good",
                                   "X-Under_Score": "spoof"})
        env = r.json()
        assert env["REQUEST_METHOD"] == "POST"
        assert env["SCRIPT_NAME"] == "/app"
        assert env["PATH_INFO"] == "/a b/" + "é".encode().decode("latin-1")
        assert env["QUERY_STRING"] == "x=1&y=%20"
        assert env["REQUEST_URI"] == "/app/a%20b/%C3%A9?x=1&y=%20"
        assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(srv.port)
        assert env["SERVER_PROTOCOL"] == "HTTP/1.1" and env["REMOTE_ADDR"] == "127.0.0.1"
        assert int(env["REMOTE_PORT"]) > 0
        assert env["CONTENT_TYPE"] == "text/x-test" and env["CONTENT_LENGTH"] == "5"
        assert env["HTTP_X_ONE"] == "1" and env["HTTP_X_UNDER"] == "good"
        assert env["HTTP_X_UNDER_SCORE"] is None          # "_" in a name: dropped
        assert env["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
        assert env["wsgi.url_scheme"] == "http" and env["wsgi.version"] == [1, 0]
        assert env["wsgi.multithread"] is (threads > 0) and env["wsgi.multiprocess"] is False
        assert env["wsgi.run_once"] is False and env["has_exchange"] and env["was"] and env["file_wrapper"]
        assert env["input"] == "hello"
        # repeated headers are comma-joined
        raw = raw_request(srv.port, b"GET /app/ HTTP/1.1\r\nHost: h\r\nX-Twice: a\r\nX-Twice: b\r\n"
                                    b"Connection: close\r\n\r\n")
        assert json.loads(parse_responses(raw)[0].body)["HTTP_X_TWICE"] == "a, b"
        # outside the mount
        assert requests.get(srv.url + "/other").status_code == 404
    assert any("a line for the app log" in rec.getMessage() for rec in caplog.records)


@THREADS
def test_str_items_are_utf8_and_lists_get_content_length(threads):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return ["héllo ", b"w", "örld"]

    with ServerThread(app=app, threads=threads) as srv:
        r = requests.get(srv.url + "/")
        assert r.content == "héllo wörld".encode()
        assert r.headers["Content-Length"] == str(len(r.content))


@THREADS
def test_write_callable(threads):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one ")
        write(b"two ")
        return [b"three"]

    with ServerThread(app=app, threads=threads) as srv:
        r = requests.get(srv.url + "/")
        assert r.text == "one two three"


@THREADS
def test_iterable_close_is_always_called(threads):
    closed = []

    class Body:
        def __init__(self, fail):
            self.fail = fail

        def __iter__(self):
            yield b"a"
            if self.fail:
                raise RuntimeError("broken iterable")
            yield b"b"

        def close(self):
            closed.append(self.fail)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body(environ["PATH_INFO"] == "/fail")

    with ServerThread(app=app, threads=threads) as srv:
        assert requests.get(srv.url + "/").text == "ab"
        with pytest.raises(requests.RequestException):
            r = requests.get(srv.url + "/fail")
            r.raise_for_status()
        deadline = time.monotonic() + 3
        while len(closed) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sorted(closed) == [False, True]


@THREADS
def test_generator_streams_chunked(threads):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(100):
            yield b"line %d\n" % i

    with ServerThread(app=app, threads=threads) as srv:
        r = requests.get(srv.url + "/")
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert r.text == "".join(f"line {i}\n" for i in range(100))


@THREADS
def test_file_wrapper(threads, tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 3)
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        f = open(path, "rb")
        if environ["PATH_INFO"] == "/offset":
            f.seek(10)
        return environ["wsgi.file_wrapper"](f, 65536)

    with ServerThread(app=app, threads=threads) as srv:
        r = requests.get(srv.url + "/")
        assert r.content == data and r.headers["Content-Length"] == str(len(data))
        assert requests.get(srv.url + "/offset").content == data[10:]


@THREADS
def test_exc_info_before_headers_replaces_the_answer(threads):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("503 Busy Now", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"sorry"]

    with ServerThread(app=app, threads=threads) as srv:
        r = requests.get(srv.url + "/")
        assert r.status_code == 503 and r.reason == "Busy Now" and r.text == "sorry"


@THREADS
def test_exc_info_after_headers_reraises_and_cuts_the_answer(threads, caplog):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())   # must re-raise
        return [b"never"]

    with ServerThread(app=app, threads=threads) as srv, caplog.at_level(logging.ERROR, logger="skitai.app"):
        data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200") and b"partial" in data and b"never" not in data
        assert not data.endswith(b"0\r\n\r\n")              # no clean end of the chunked body
    assert any("late failure" in str(rec.exc_info) for rec in caplog.records if rec.exc_info)


@THREADS
def test_start_response_twice_without_exc_info_is_500(threads):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b""]

    with ServerThread(app=app, threads=threads) as srv:
        assert requests.get(srv.url + "/").status_code == 500


class DebugApp:
    def __init__(self, debug):
        self.debug = debug

    def __call__(self, environ, start_response):
        raise KeyError("secret-detail")


@THREADS
@pytest.mark.parametrize("debug", [True, False])
def test_app_exception_is_500_with_traceback_only_in_debug(threads, debug, caplog):
    with ServerThread(app=DebugApp(debug), threads=threads) as srv, \
            caplog.at_level(logging.ERROR, logger="skitai.app"):
        r = requests.get(srv.url + "/")
        assert r.status_code == 500
        assert ("secret-detail" in r.text) is debug
        assert ("Traceback" in r.text) is debug
        assert requests.get(srv.url + "/again").status_code == 500     # the server lives on
    assert any(rec.exc_info and "secret-detail" in str(rec.exc_info[1]) for rec in caplog.records)


@THREADS
@pytest.mark.parametrize("headers", [
    [("X-Evil", "a\r\nSet-Cookie: pwned=1")],
    [("X-Evil", "a\nSet-Cookie: pwned=1")],
    [("X-Evil", "a\rSet-Cookie: pwned=1")],
    [("X-Evil\r\nSet-Cookie", "pwned=1")],
    [("X-Evil", "nul\x00byte")],
    [("X-Evil", "not latin-1: \u20ac")],
    [("Content-Length", "5\r\nSet-Cookie: pwned=1")],
], ids=["crlf", "lf", "cr", "name", "nul", "unicode", "framing"])
def test_header_injection_is_refused_with_500(threads, headers):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), *headers])
        if environ["PATH_INFO"] == "/stream":
            yield b"a"
            yield b"b"
        else:
            yield b"hello"

    with ServerThread(app=app, threads=threads) as srv:
        for path in ("/", "/stream"):
            data = raw_request(srv.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert data.startswith(b"HTTP/1.1 500"), data[:100]
            assert b"pwned" not in data and b"Set-Cookie" not in data


@THREADS
def test_bad_status_is_500(threads):
    def app(environ, start_response):
        start_response("2xx Nope", [])
        return [b""]

    with ServerThread(app=app, threads=threads) as srv:
        assert requests.get(srv.url + "/").status_code == 500


@THREADS
def test_big_chunked_upload_streams_through_wsgi_input(threads):
    def app(environ, start_response):
        h = hashlib.sha256()
        inp = environ["wsgi.input"]
        n = 0
        while True:
            block = inp.read(65536)
            if not block:
                break
            n += len(block)
            h.update(block)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{n} {h.hexdigest()}".encode()]

    block = os.urandom(1 << 20)
    total = 32
    expected = hashlib.sha256(block * total).hexdigest()
    with ServerThread(app=app, threads=threads, max_body_size=64 << 20) as srv:
        r = requests.post(srv.url + "/", data=(block for _ in range(total)))
        assert r.text == f"{total << 20} {expected}"


@THREADS
def test_readline_and_iteration_of_wsgi_input(threads):
    def app(environ, start_response):
        inp = environ["wsgi.input"]
        first = inp.readline()
        second = inp.readline(3)
        rest = list(inp)
        start_response("200 OK", [])
        return [json.dumps([first.decode(), second.decode(), [x.decode() for x in rest]]).encode()]

    with ServerThread(app=app, threads=threads) as srv:
        r = requests.post(srv.url + "/", data=b"line1\nline2\nline3\nlast")
        assert r.json() == ["line1\n", "lin", ["e2\n", "line3\n", "last"]]


@THREADS
def test_body_over_limit_while_app_reads_is_413(threads):
    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"read it all"]

    with ServerThread(app=app, threads=threads, max_body_size=100_000) as srv:
        r = requests.post(srv.url + "/", data=(b"x" * 10_000 for _ in range(50)))
        assert r.status_code == 413


def test_streaming_respects_back_pressure():
    """A client that does not read: the worker thread stops producing after a bounded amount."""
    produced = []
    done = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def gen():
            try:
                for _ in range(10_000):
                    produced.append(1)
                    yield b"x" * 65536
            finally:
                done.set()
        return gen()

    with ServerThread(app=app, threads=2, network_timeout=1.0) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.5)
            held = len(produced) * 65536
            assert held < 32 << 20, f"{held} bytes produced for a client that reads nothing"
            assert requests.get(srv.url + "/x", stream=True, timeout=2).status_code == 200
            assert done.wait(5), "the generator was not closed after the network timeout"
            assert len(produced) < 10_000
        finally:
            s.close()


def test_threads_run_in_parallel():
    barrier = threading.Barrier(2, timeout=5)

    def app(environ, start_response):
        barrier.wait()          # only returns if two requests run at the same time
        start_response("200 OK", [])
        return [b"ok"]

    with ServerThread(app=app, threads=2) as srv:
        results = []
        ts = [threading.Thread(target=lambda: results.append(requests.get(srv.url + "/").status_code))
              for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert results == [200, 200]


def test_threads0_runs_on_the_loop_thread():
    seen = []

    def app(environ, start_response):
        seen.append(threading.current_thread().name)
        start_response("200 OK", [])
        return [b"ok"]

    with ServerThread(app=app, threads=0) as srv:
        requests.get(srv.url + "/")
        assert seen == [srv._thread.name]


@THREADS
def test_head_request_to_wsgi_app(threads):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"abc"
        yield b"def"

    with ServerThread(app=app, threads=threads) as srv:
        data = raw_request(srv.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                                     b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and rest.startswith(b"HTTP/1.1 200")
        assert parse_responses(rest)[0].body == b"abcdef"


@THREADS
def test_expect_100_continue_through_wsgi_input(threads):
    def app(environ, start_response):
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [data.upper()]

    with ServerThread(app=app, threads=threads) as srv, socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.settimeout(5)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(1024)
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        got = got[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while not got.endswith(b"HELLO"):
            chunk = s.recv(1024)
            assert chunk
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 OK")


@THREADS
def test_iterable_longer_than_its_content_length_is_cut(threads):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")])
        for _ in range(100):
            yield b"x" * 10_000

    with ServerThread(app=app, threads=threads) as srv:
        data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.endswith(b"Content-Length: 10") and body == b"x" * 10


def test_a_small_finished_answer_crosses_to_the_loop_in_one_hop(monkeypatch):
    """The worker hands a whole small answer to the loop in ONE call (head and body together); a stream
    takes several. Observed by counting what workers post to the loop, over a real request."""
    from skitai.wsgi.threadpool import LoopInbox

    posts = []
    real_post = LoopInbox.post

    def counting_post(self, fn, *args):
        posts.append(getattr(fn, "__name__", repr(fn)))
        return real_post(self, fn, *args)

    monkeypatch.setattr(LoopInbox, "post", counting_post)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/stream":
            return (b"x" * 40_000 for _ in range(4))
        if environ["PATH_INFO"] == "/two":
            return [b"a", "b"]
        return [b"small"]

    with ServerThread(app=app, threads=2) as srv, requests.Session() as s:
        for path, body in (("/", b"small"), ("/two", b"ab")):
            posts.clear()
            assert s.get(srv.url + path, timeout=10).content == body
            assert posts == ["_l_respond"], (path, posts)
        posts.clear()
        assert len(s.get(srv.url + "/stream", timeout=10).content) == 160_000
        assert posts[0] == "_l_start" and posts.count("_l_send") >= 4 and "_l_end" in posts
