"""The standalone API of the spec: configure(), verbs, callbacks, meta, fetchall()."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest

import aquests
from aquests import codes
from aquests.response import Response
from tests.support.net import free_port



def test_spec_usage(app):
    got = []
    aquests.configure(callback=lambda r: got.append(r), timeout=3)
    m1 = aquests.get(f"{app.url}/echo")
    m2 = aquests.post(f"{app.url}/echo", {"user": "Hans Roh", "comment": "Hello"})
    assert m1["req_id"] == 1 and m2 == {"req_id": 2, "req_method": "POST"}
    assert aquests.qsize() == 2
    aquests.fetchall()
    assert aquests.qsize() == 0 and aquests.countfin() == 2 and aquests.countreq() == 2
    by_method = {r.data["method"]: r for r in got}
    assert by_method["POST"].data["body"] == '{"user": "Hans Roh", "comment": "Hello"}'
    assert by_method["POST"].meta == {"req_id": 2, "req_method": "POST"}
    assert by_method["GET"].meta["req_method"] == "GET"


def test_per_request_callback_meta_and_extra_args(app):
    default, special = [], []
    aquests.configure(workers=2, callback=default.append)
    aquests.get(f"{app.url}/echo", meta={"tag": "a"})
    cb = (lambda r, x, y: special.append((r.meta["tag"], x, y, r.meta["req_callback"])), (1, 2))
    caller_meta = {"tag": "b"}
    aquests.get(f"{app.url}/echo", callback=cb, meta=caller_meta)
    aquests.putform(f"{app.url}/echo", {"k": "v"}, callback=special.append)
    aquests.fetchall()
    assert [r.meta for r in default] == [{"tag": "a", "req_id": 1, "req_method": "GET"}]
    assert ("b", 1, 2, cb) in special and caller_meta == {"tag": "b"}  # the caller's dict is copied
    form = [r for r in special if isinstance(r, Response)][0]
    assert form.data["body"] == "k=v" and form.meta["req_method"] == "PUT"


def test_callback_exception_is_logged_and_run_continues(app, caplog):
    seen = []

    def boom(r):
        seen.append(r.status_code)
        raise RuntimeError("callback bug")
    aquests.configure(workers=1, callback=boom)
    for _ in range(3):
        aquests.get(f"{app.url}/echo")
    with caplog.at_level(logging.ERROR, logger="aquests"):
        aquests.fetchall()
    assert seen == [200, 200, 200]
    assert "callback bug" in caplog.text


def test_callbacks_can_queue_more_work(app):
    done = []

    def crawl(r):
        depth = r.meta["depth"]
        done.append(depth)
        if depth < 3:
            for _ in range(2):
                aquests.get(f"{app.url}/echo", meta={"depth": depth + 1})
    aquests.configure(workers=3, callback=crawl, qrandom=True)
    aquests.get(f"{app.url}/echo", meta={"depth": 0})
    aquests.fetchall()
    assert sorted(done) == [0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3]


def test_failures_reach_the_callback(app):
    got = []
    aquests.configure(workers=4, callback=got.append, timeout=0.3)
    aquests.get(f"http://127.0.0.1:{free_port()}/")
    aquests.get(f"{app.url}/slow", params={"s": 1})
    aquests.get("http://no-such-host.invalid/")
    aquests.get(f"{app.url}/echo")
    aquests.fetchall()
    assert sorted(r.status_code for r in got) == [200, codes.TIMEOUT, codes.CONNECTION_REFUSED, codes.DNS_FAILED]


def test_default_callback_logs_one_line(app, caplog):
    aquests.configure()
    aquests.get(f"{app.url}/echo")
    with caplog.at_level(logging.INFO, logger="aquests"):
        aquests.fetchall()
    assert "REQ 1" in caplog.text and "tasks during" in caplog.text


def test_cookie_jar_and_upload_and_options(app, tmp_path):
    got = []
    aquests.configure(workers=1, callback=got.append, cookie=True, headers={"X-Everywhere": "1"})
    aquests.get(f"{app.url}/setcookie")
    aquests.fetchall()
    p = tmp_path / "f.txt"
    p.write_text("uploaded")
    aquests.get(f"{app.url}/echo")
    aquests.upload(f"{app.url}/echo", {"f": str(p)})
    aquests.fetchall()
    echo, up = got[1], got[2]
    assert "sid=abc123" in echo.data["headers"]["cookie"]
    assert echo.data["headers"]["x-everywhere"] == "1"
    assert "uploaded" in up.data["body"]


def test_submit_contract_for_other_protocols():
    got = []
    aquests.configure(workers=2, callback=got.append)

    async def ok():
        await asyncio.sleep(0)
        return Response(200, "OK", content=b"x", meta={"from": "factory"})

    async def broken():
        raise KeyError("oops")

    async def not_a_response():
        return 42
    m = aquests.queue.submit(ok, meta={"mine": 1})
    aquests.queue.submit(broken, callback=(lambda r, tag: got.append((tag, r)), ("t",)))
    aquests.queue.submit(not_a_response, method="QUERY")
    aquests.fetchall()
    okr = [r for r in got if isinstance(r, Response) and r.status_code == 200][0]
    assert okr.meta is m  # submit returns the dict the response will carry
    assert okr.meta == {"mine": 1, "req_id": 1, "from": "factory", "req_method": "GET"}
    tag, bad = [x for x in got if isinstance(x, tuple)][0]
    assert tag == "t" and bad.status_code == codes.REQUEST_FAILED and "KeyError" in bad.reason
    odd = [r for r in got if isinstance(r, Response) and r.meta.get("req_method") == "QUERY"][0]
    assert odd.status_code == codes.REQUEST_FAILED and "not a Response" in odd.reason


def test_bad_configuration_and_arguments():
    with pytest.raises(ValueError, match="workers"):
        aquests.configure(workers=0)
    with pytest.raises(TypeError, match="callback"):
        aquests.configure(callback=42)
    with pytest.raises(TypeError):
        aquests.configure(no_such_option=1)
    aquests.configure()
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        aquests.get("gopher://x/")
    with pytest.raises(TypeError, match="meta"):
        aquests.get("http://127.0.0.1/", meta=[1])
    with pytest.raises(TypeError, match="callback"):
        aquests.get("http://127.0.0.1/", callback="nope")
    assert aquests.qsize() == 0


async def test_awaitable_form_inside_a_loop(app):
    aquests.configure()
    r = await aquests.get(f"{app.url}/echo")
    assert r.status_code == 200 and r.meta["req_method"] == "GET"
    r = await aquests.postjson(f"{app.url}/echo", [1])
    assert r.data["body"] == "[1]"
    with pytest.raises(RuntimeError, match="inside a running event loop"):
        aquests.fetchall()


async def test_drain_on_a_running_loop(app):
    got = []
    aquests.configure(workers=2, callback=got.append)

    def first(r):
        got.append(r)
        aquests.get(f"{app.url}/echo?second=1")  # queues: the queue is running
    aquests.queue.submit(lambda: aquests.client().request("GET", f"{app.url}/echo"), callback=first)
    n = await aquests.queue.drain()
    assert n == 2 and len(got) == 2


def test_suspend_and_countcli(app):
    seen = []
    aquests.configure(workers=2, callback=lambda r: seen.append(aquests.countcli()))
    aquests.get(f"{app.url}/echo")
    aquests.suspend(0.2)
    t0 = time.monotonic()
    aquests.fetchall()
    assert time.monotonic() - t0 >= 0.19
    assert seen == [1]  # inside the loop: the kept-alive connection


def test_fetchall_closes_its_connections():
    """The server sees the kept-alive connection closed when fetchall() returns."""
    import socket
    import threading

    eof = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        def serve():
            conn, _ = lsock.accept()
            with conn:
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # keep-alive
                if conn.recv(4096) == b"":
                    eof.set()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        got = []
        aquests.configure(callback=got.append)
        aquests.get(f"http://127.0.0.1:{lsock.getsockname()[1]}/")
        aquests.fetchall()
        assert got[0].content == b"ok"
        assert eof.wait(10)  # closed by fetchall's cleanup, not left to the garbage collector
        t.join(5)
