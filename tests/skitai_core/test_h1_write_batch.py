"""HTTP/1.1 answers of one loop turn leave together (skitai.http.writebatch): with many clients at once,
no answer is lost or reordered behind a pipelined one, a ``100 Continue``, a half-close or a close."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

from tests.support.server import ServerThread

CLIENTS = 24


def hello(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        time.sleep(0.3)          # threads=0: the loop is held, so the clients' requests arrive in one turn
    if environ["PATH_INFO"].startswith("/stream"):
        start_response("200 OK", [("Content-Type", "text/plain")])       # no length: streamed, chunked
        return iter([environ["PATH_INFO"].encode(), b" streamed"])
    body = environ["PATH_INFO"].encode()
    if environ.get("CONTENT_LENGTH"):
        body += b" " + environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def at_once(port: int, payload) -> list[bytes]:
    """Every client connects, then all send while the loop is held by a slow request (threads=0), so the
    server reads them all in one loop turn and its answers are batched; each one's bytes until the close."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CLIENTS)]
    hold = socket.create_connection(("127.0.0.1", port), timeout=10)
    hold.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(0.1)
    go = threading.Barrier(CLIENTS)
    out: list = [b""] * CLIENTS

    def run(i: int) -> None:
        go.wait()
        payload(socks[i], i)
        out[i] = read_all(socks[i])
        socks[i].close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert bodies(read_all(hold)) == [b"/hold"]
    hold.close()
    return out


def bodies(data: bytes) -> list[bytes]:
    """The bodies of the answers in ``data``, in order (a Content-Length or chunked)."""
    found = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        if head.startswith(b"HTTP/1.1 100"):
            found.append(b"<100>")
            data = rest
            continue
        lengths = [h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
        if lengths:
            found.append(rest[:int(lengths[0])])
            data = rest[int(lengths[0]):]
            continue
        assert b"transfer-encoding: chunked" in head.lower(), head
        body = b""
        while True:
            size, _, rest = rest.partition(b"\r\n")
            body, rest = body + rest[:int(size, 16)], rest[int(size, 16) + 2:]
            if size == b"0":
                break
        found.append(body)
        data = rest
    return found


def test_pipelined_answers_keep_their_order_then_the_close():
    def payload(sock, i):
        sock.sendall(b"".join(b"GET /c%d/r%d HTTP/1.1\r\nHost: x\r\n%s\r\n"
                              % (i, n, b"Connection: close\r\n" if n == 2 else b"") for n in range(3)))

    with ServerThread(app=hello, threads=0) as s:
        for i, data in enumerate(at_once(s.port, payload)):
            assert bodies(data) == [b"/c%d/r%d" % (i, n) for n in range(3)], data


def test_half_closed_clients_get_their_answer():
    """The client sends its request and shuts its side: the answer held for it is written before the
    transport closes itself at the end of input."""
    def payload(sock, i):
        sock.sendall(b"GET /half%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        sock.shutdown(socket.SHUT_WR)

    with ServerThread(app=hello, threads=0) as s:
        for i, data in enumerate(at_once(s.port, payload)):
            assert bodies(data) == [b"/half%d" % i], data


def test_a_streamed_answer_waits_for_the_held_one_before_it():
    """A plain answer (held in the batch) and then a streamed one, written straight to the transport:
    the held answer goes out first."""
    def payload(sock, i):
        sock.sendall(b"GET /first%d HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /stream%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (i, i))

    with ServerThread(app=hello, threads=0) as s:
        for i, data in enumerate(at_once(s.port, payload)):
            assert bodies(data) == [b"/first%d" % i, b"/stream%d streamed" % i], data


def test_a_bad_request_after_a_good_one_is_answered_after_it():
    """A good request and garbage in one segment: the good one's answer (held), then the 400, then the
    close; the 400 is written at once in the same loop turn, so the held answer must go before it."""
    def payload(sock, i):
        sock.sendall(b"GET /good%d HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n" % i)

    with ServerThread(app=hello, threads=0) as s:
        for i, data in enumerate(at_once(s.port, payload)):
            assert data.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 400 " in data, data
            assert data.index(b"/good%d" % i) < data.index(b"HTTP/1.1 400 "), data


def test_continue_follows_the_answer_before_it():
    """A GET and then a POST that expects ``100 Continue``, in one segment: the GET's answer, then the
    100, then the POST's answer."""
    def payload(sock, i):
        sock.sendall(b"GET /first%d HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /second%d HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n"
                     b"Connection: close\r\n\r\n" % (i, i))
        sock.settimeout(10)
        seen = b""
        while b"100 Continue" not in seen:
            chunk = sock.recv(65536)
            assert chunk, seen
            seen += chunk
        sock.sendall(b"body")
        payload.seen[i] = seen

    payload.seen = {}
    with ServerThread(app=hello, threads=0) as s:
        for i, data in enumerate(at_once(s.port, payload)):
            assert bodies(payload.seen[i] + data) == [b"/first%d" % i, b"<100>", b"/second%d body" % i]


def test_an_answer_held_when_the_server_stops_still_goes_out():
    """The server starts stopping in the same loop turn that held an answer: the idle-looking connection
    is closed only after that answer is written."""
    box = {}

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/stop":
            asyncio.get_running_loop().call_soon(box["server"].server.close)    # before the batch's flush
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    with ServerThread(app=app, threads=0) as s:
        box["server"] = s
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as first:
            first.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")       # another connection wrote last
            assert first.recv(4096).startswith(b"HTTP/1.1 200 ")
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as second:
                second.sendall(b"GET /stop HTTP/1.1\r\nHost: x\r\n\r\n")
                assert bodies(read_all(second)) == [b"ok"]
