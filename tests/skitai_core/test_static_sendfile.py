"""Large static files through zero-copy sendfile (skitai.http.sendfile) on real sockets: the head leaving
with the file, order under pipelining, clients that stop reading, files that shrink while sent."""
import os
import socket
import struct
import sys
import time

import pytest
import requests

from skitai.handlers.static import StaticHandler
from tests.support.server import ServerThread

HUGE = os.urandom(12 * 1024 * 1024 + 5)      # more than the send buffer sendfile may use (4 MiB, doubled)
SMALL = os.urandom(3000)
RCVBUF = 256 * 1024     # small enough to stall the sender, large enough for loopback window updates


@pytest.fixture()
def site(tmp_path):
    (tmp_path / "huge.bin").write_bytes(HUGE)
    (tmp_path / "small.bin").write_bytes(SMALL)
    return tmp_path


def read_response(sock, buf: bytearray) -> tuple[bytes, bytes]:
    """One response (head, body by Content-Length) from ``sock``; ``buf`` keeps what belongs to the next."""
    while b"\r\n\r\n" not in buf:
        got = sock.recv(65536)
        assert got, "connection closed before the head"
        buf += got
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        got = sock.recv(1 << 20)
        assert got, "connection closed inside the body"
        buf += got
    body = bytes(buf[:length])
    buf[:] = buf[length:]
    return head, body


@pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO layout and MSG_MORE are Linux's")
def test_head_and_file_leave_in_one_segment(site):
    """The head is not a lone segment of its own (nginx's tcp_nopush): the client gets one data segment."""
    handler = StaticHandler(str(site), "/", None, None, cache_max_file=0)    # even small files by sendfile
    with ServerThread(dispatch=handler) as srv:
        for _ in range(2):          # the first request on a connection, and the next ones
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buf = bytearray()
                s.sendall(b"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                head, body = read_response(s, buf)
                assert head.startswith(b"HTTP/1.1 200") and body == SMALL
                info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
                data_segs_in = struct.unpack_from("I", info, 152)[0]    # struct tcp_info: tcpi_data_segs_in
                assert data_segs_in == 1
    handler.close()


def test_pipelined_order_with_a_slow_reader(site):
    """Heads and files of pipelined answers stay in order while the kernel buffer fills up and drains."""
    handler = StaticHandler(str(site), "/", None, None)
    with ServerThread(dispatch=handler) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /huge.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=7-\r\n\r\n"
                      b"HEAD /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            time.sleep(0.3)          # let the server run into a full buffer before anything is read
            buf = bytearray()
            answers = [read_response(s, buf) for _ in range(3)]
            assert [h.split(b"\r\n")[0] for h, _ in answers] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK",
                                                                 b"HTTP/1.1 206 Partial Content"]
            assert answers[0][1] == HUGE and answers[1][1] == SMALL and answers[2][1] == HUGE[7:]
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, _, rest = bytes(buf).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % len(HUGE) in head
            buf[:] = rest                                            # the HEAD answer has no body
            assert read_response(s, buf)[1] == HUGE
    handler.close()


def test_client_that_stops_reading_is_cut_and_blocks_nobody(site, caplog):
    handler = StaticHandler(str(site), "/", None, None)
    with ServerThread(dispatch=handler, network_timeout=1.0) as srv:
        stalled = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        stalled.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stalled.recv(1024).startswith(b"HTTP/1.1 200")    # then it reads no more
        for _ in range(3):
            assert requests.get(srv.url + "/huge.bin").content == HUGE    # others are served meanwhile
        deadline = time.monotonic() + 10
        while srv.call(lambda: len(srv.server.connections)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.call(lambda: len(srv.server.connections)) == 0        # the stalled one was cut
        stalled.close()
    handler.close()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_file_that_shrinks_while_sent_ends_the_connection(site):
    """A file cut short under a send: the client sees the connection close before Content-Length, never a
    hang; the server goes on."""
    handler = StaticHandler(str(site), "/", None, None)
    with ServerThread(dispatch=handler, network_timeout=5.0) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            first = s.recv(65536)
            assert first.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % len(HUGE) in first
            time.sleep(0.2)
            os.truncate(site / "huge.bin", 1024 * 1024)
            got = len(first.partition(b"\r\n\r\n")[2])
            started = time.monotonic()
            while chunk := s.recv(1 << 20):
                got += len(chunk)
            assert got < len(HUGE) and time.monotonic() - started < 5
        (site / "huge.bin").write_bytes(HUGE)
        r = requests.get(srv.url + "/huge.bin")
        assert r.status_code == 200 and r.content == HUGE
    handler.close()
