"""Reverse proxy mounts against members that misbehave on the wire (SK-41, SK-43).

Each member here is a raw socket server whose ``reply(member, sock, path)`` function answers by hand:
answers longer than they announce, heads that never end, answers that stall or break off, statuses
outside HTTP, kept-alive connections dropped under a request. The proxy must give the client a clear
answer (or a cut one), blame the member only when it failed, and close what it no longer reads.
"""
from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.integration.proxy_support import front

Reply = Callable[["RawMember", socket.socket, str], None]


class RawMember:
    """A member that accepts connections and runs ``reply`` on each request it reads (one thread per
    connection). ``seen`` lists ``(connection number, method)``; ``hangups`` the connections whose peer
    (the proxy) closed them."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.seen: list[tuple[int, str]] = []
        self.hangups: list[int] = []
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        n = 0
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            n += 1
            self.socks.append(sock)
            threading.Thread(target=self._serve, args=(sock, n), daemon=True).start()

    def _serve(self, sock: socket.socket, n: int) -> None:
        with contextlib.suppress(OSError):
            while head := self.read_head(sock):
                method, path = head.split(b" ", 2)[:2]
                self.seen.append((n, method.decode()))
                if self.reply(self, sock, path.decode()) is not True:    # True: keep the connection
                    break
        sock.close()

    @staticmethod
    def read_head(sock: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            data += chunk
        return data

    def wait_hangup(self, sock: socket.socket, n: int, limit: float) -> None:
        """Read until the proxy closes ``sock`` (recorded in ``hangups``) or ``limit`` seconds pass."""
        sock.settimeout(limit)
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass
            self.hangups.append(n)

    def stop(self) -> None:
        self.listener.close()
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def misbehaving(reply: Reply, **proxy: object) -> Iterator[tuple[RawMember, object]]:
    member = RawMember(reply)
    try:
        with front([member.address], **proxy) as f:
            yield member, f
    finally:
        member.stop()


def member_status(f) -> dict:
    return f.cluster().status()["members"][0]


def wait_for_hangup(member: RawMember, limit: float = 3.0) -> list[int]:
    """The member's ``hangups`` once there is one (or after ``limit`` s), taken while the front still
    runs: its shutdown closes every connection anyway."""
    deadline = time.monotonic() + limit
    while not member.hangups and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(member.hangups)


# -- answers longer than they say ---------------------------------------------------------------

@pytest.mark.parametrize("surplus", [
    b"HTTP/1.1 200 OK\r\nX-Injected: 1\r\nContent-Length: 4\r\n\r\nevil",     # looks like a second answer
    b"x" * 5000,                                                                # plain garbage
])
def test_bytes_after_the_announced_length_are_dropped_not_read_as_an_answer(surplus):
    def reply(member, sock, path):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + surplus)
        time.sleep(0.3)

    with misbehaving(reply) as (member, f), requests.Session() as s:
        first = s.get(f.url + "/search/a", timeout=5)
        second = s.get(f.url + "/search/b", timeout=5)       # the client's connection was kept
        status = member_status(f)
    for r in (first, second):
        assert r.status_code == 200 and r.content == b"hello", (r.status_code, r.content[:80])
        assert "X-Injected" not in r.headers
    assert not status["dead"] and status["failures"] == 0, status
    assert [n for n, _ in member.seen] == [1, 2]               # the spoilt connection was not used again


# -- heads that never end -----------------------------------------------------------------------

def _endless_head(member, sock, path):
    sock.sendall(b"HTTP/1.1 200 OK\r\nX-Long: ")
    deadline = time.monotonic() + 8
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            sock.sendall(b"a" * 65536)


def test_a_header_line_that_never_ends_is_cut_at_the_header_limit():
    # before: the line grew in the parser (memory, and CPU on the loop) until the timeout, then 504
    with misbehaving(_endless_head, timeout=6) as (member, f):
        t0 = time.monotonic()
        r = requests.get(f.url + "/search/x", timeout=10)
        elapsed = time.monotonic() - t0
        status = member_status(f)
    assert r.status_code == 502 and "not valid HTTP" in r.text, r.text
    assert elapsed < 4, elapsed
    assert status["dead"] and "exceed" in status["last_error"] and "limit" in status["last_error"]


def test_a_websocket_answer_head_that_never_ends_is_cut_too():
    with misbehaving(_endless_head, timeout=6) as (member, f):
        t0 = time.monotonic()
        r = requests.get(f.url + "/search/ws", timeout=10, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        elapsed = time.monotonic() - t0
    assert r.status_code == 502 and elapsed < 4, (r.status_code, elapsed)


# -- answers that stall or break off ------------------------------------------------------------

def test_a_member_stalling_mid_answer_has_its_connection_closed():
    # before: the client was cut after the timeout but the member's connection stayed open (and kept
    # its slot in the pool, MAX_PER_ORIGIN of them block the member for good)
    def reply(member, sock, path):
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        member.wait_hangup(sock, len(member.seen), 6)

    with misbehaving(reply, timeout=0.5) as (member, f):
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(f.url + "/search/x", timeout=5)           # reads the body: cut
        hangups = wait_for_hangup(member)
        status = member_status(f)
    assert hangups == [1]
    assert status["dead"] and status["last_error"] == "answer cut: nothing for 0.5 s", status


def test_a_client_leaving_while_the_member_is_quiet_does_not_blame_the_member():
    # before: the read timed out after the client had gone (reset), and the member was marked dead for it
    def reply(member, sock, path):
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        member.wait_hangup(sock, len(member.seen), 6)

    with misbehaving(reply, timeout=0.5) as (member, f):
        with socket.create_connection(("127.0.0.1", f.port), timeout=5) as client:
            client.sendall(b"GET /search/x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"hello" in client.recv(65536) or b"hello" in client.recv(65536)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # gone: RST
        hangups = wait_for_hangup(member)
        status = member_status(f)
    assert hangups == [1]
    assert not status["dead"], status


def test_a_status_outside_http_is_502_and_its_connection_closed():
    # 731 is also aquests' own "request failed" code: before, the answer was taken for a failure and
    # its never-read body kept the member's connection open
    def reply(member, sock, path):
        sock.sendall(b"HTTP/1.1 731 Odd\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        member.wait_hangup(sock, len(member.seen), 6)

    with misbehaving(reply) as (member, f):
        r = requests.get(f.url + "/search/x", timeout=5)
        hangups = wait_for_hangup(member)
        status = member_status(f)
    assert r.status_code == 502 and "not valid HTTP" in r.text, r.text
    assert hangups == [1] and status["dead"] and "invalid status code 731" in status["last_error"]


# -- kept-alive connections dropped under a request ---------------------------------------------

def test_a_dropped_keep_alive_connection_resends_a_get_but_never_a_post():
    # each connection answers its first request; the second one is read (the member may act on it),
    # then the connection drops without an answer, as when a keep-alive timeout races a request
    def reply(member, sock, path):
        if sum(1 for n, _ in member.seen if n == member.seen[-1][0]) > 1:
            return None
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    with misbehaving(reply) as (member, f), requests.Session() as s:
        assert s.get(f.url + "/search/1", timeout=5).status_code == 200
        get = s.get(f.url + "/search/2", timeout=5)           # on the kept connection: dropped, resent
        post = s.post(f.url + "/search/3", data=b"pay once", timeout=5)
    assert get.status_code == 200 and get.content == b"ok"
    assert post.status_code == 502, post.status_code
    assert [m for _, m in member.seen].count("POST") == 1, member.seen


# -- websocket upgrades refused badly ------------------------------------------------------------

@pytest.mark.parametrize(("answer", "status", "body", "blamed"), [
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!trailing junk", 403, b"nope!", False),
    (b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nnope", 502, None, True),
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 50\r\n\r\nnope", 502, None, True),
])
def test_a_refused_upgrade_is_passed_on_only_when_whole(answer, status, body, blamed):
    # before: bytes after a whole refusal made it a 502 (member blamed); a refusal cut short by the
    # close was passed on as if complete
    def reply(member, sock, path):
        sock.sendall(answer)
        time.sleep(0.2)

    with misbehaving(reply) as (member, f):
        r = requests.get(f.url + "/search/ws", timeout=5, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        st = member_status(f)
    assert r.status_code == status, (r.status_code, r.content[:200])
    if body is not None:
        assert r.content == body
    assert st["dead"] == blamed, st


@pytest.mark.parametrize("final, status", [
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno", 403),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", 101),
])
def test_an_interim_answer_to_an_upgrade_is_not_taken_for_the_answer(final, status):
    # before: a 103 Early Hints before the member's answer was passed on as the final answer
    def reply(member, sock, path):
        sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n")
        time.sleep(0.05)
        sock.sendall(final)
        time.sleep(0.3)

    with misbehaving(reply) as (member, f):
        with socket.create_connection(("127.0.0.1", f.port), timeout=5) as client:
            client.sendall(b"GET /search/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            head = RawMember.read_head(client)
    assert head.startswith(b"HTTP/1.1 %d " % status), head
