"""Replies of many connections in one loop turn leave together (skitai.http.writebatch), without losing
order or bytes: the batch itself on a real event loop, then WebSocket clients over real sockets."""
from __future__ import annotations

import asyncio
import socket

from wsproto.events import CloseConnection, TextMessage

from skitai.http.writebatch import SAME_TURN, WriteBatch
from tests.skitai_core.h2ws_support import ws_app, ws_events, ws_frame, ws_raw
from tests.support.server import ServerThread


class Sink:
    """A transport that keeps what it is given, one entry per write call."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append([data])

    def writelines(self, data: list[bytes]) -> None:
        self.calls.append(list(data))

    def is_closing(self) -> bool:
        return self.closing

    @property
    def received(self) -> bytes:
        return b"".join(b"".join(c) for c in self.calls)


async def _next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def test_a_lone_connection_writes_at_once():
    async def main():
        batch, a = WriteBatch(asyncio.get_running_loop()), Sink()
        for i in range(3):
            batch.write(a, b"%d" % i)
            assert a.received == b"012"[:i + 1]          # no loop hop for a single connection
            await _next_turn()
        assert not batch.batching
    asyncio.run(main())


def test_connections_answered_a_while_apart_each_write_at_once():
    # two clients taking turns at a low rate (one request each, some time apart): neither is batching
    # company for the other, so no answer waits for a loop hop
    async def main():
        batch, a, b = WriteBatch(asyncio.get_running_loop()), Sink(), Sink()
        for i in range(3):
            for sink in (a, b):
                await asyncio.sleep(SAME_TURN * 5)
                batch.write(sink, b"%d" % i)
                assert sink.received.endswith(b"%d" % i)
                assert not batch.batching
    asyncio.run(main())


def test_two_connections_in_one_turn_leave_together_in_order():
    async def main():
        batch, a, b = WriteBatch(asyncio.get_running_loop()), Sink(), Sink()
        batch.write(a, b"a1")                            # first of the turn: at once
        batch.write(b, b"b1")                            # a second connection: batching starts
        batch.write(a, b"a2")
        batch.write(b, b"b2")
        assert a.received == b"a1" and b.received == b""
        await _next_turn()
        assert a.calls == [[b"a1"], [b"a2"]] and b.calls == [[b"b1", b"b2"]]   # one write call each
        assert batch.batching                            # the turn had two connections: keep batching
        batch.write(a, b"a3")
        assert a.received == b"a1a2"                     # held to the end of this turn too
        await _next_turn()
        assert a.received == b"a1a2a3" and not batch.batching   # one connection that turn: stop
        batch.write(b, b"b3")
        assert b.received == b"b1b2b3"
    asyncio.run(main())


def test_drain_discard_and_closing_transports():
    async def main():
        batch, a, b, c = WriteBatch(asyncio.get_running_loop()), Sink(), Sink(), Sink()
        batch.write(a, b"a")
        batch.write(b, b"b1")
        batch.write(b, b"b2")
        batch.write(c, b"c")
        batch.drain(b)                                   # about to close b: its bytes go now, in order
        assert b.received == b"b1b2"
        batch.discard(c)                                 # c is gone
        c.closing = True
        batch.write(b, b"b3")
        b.closing = True                                 # closed before the turn ended: nothing more
        await _next_turn()
        assert b.received == b"b1b2" and c.received == b""
    asyncio.run(main())


def _echo(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["websocket.message"].encode()]


def test_many_clients_at_once_get_every_reply_then_the_close():
    """Twenty clients send three messages and a CLOSE in one segment, all at the same moment: the replies
    of a turn are held together, and the close echo must still follow them (held bytes are written before
    the transport is closed). threads=0: the replies are made on the loop, before the CLOSE is read."""
    with ServerThread(app=ws_app(_echo), threads=0) as s:
        socks = []
        for _ in range(20):
            sock, head, rest = ws_raw(s.port)
            assert head.startswith("HTTP/1.1 101") and rest == b""
            socks.append(sock)
        for i, sock in enumerate(socks):
            sock.sendall(b"".join(ws_frame(1, f"c{i} m{n}".encode()) for n in range(3))
                         + ws_frame(8, (1000).to_bytes(2, "big")))
        for i, sock in enumerate(socks):
            events = ws_events(sock, timeout=10, until=lambda e: isinstance(e, CloseConnection))
            texts = [e.data for e in events if isinstance(e, TextMessage)]
            closes = [e.code for e in events if isinstance(e, CloseConnection)]
            assert texts == [f"c{i} m{n}" for n in range(3)] and closes == [1000], (i, events)
            sock.settimeout(5)
            assert sock.recv(100) == b""                 # then the server closed the TCP connection
            sock.close()


def test_server_initiated_close_follows_the_held_replies():
    """The app sends two messages and closes the connection (code 4001) while other clients keep the
    batch busy; each client sees both messages, then the close with its code."""
    def talk_then_close(environ, start_response):
        sender = environ["websocket"]
        sender.send("one " + environ["websocket.message"])
        sender.send("two")
        sender.close(4001, "done")
        start_response("200 OK", [])
        return []

    with ServerThread(app=ws_app(talk_then_close), threads=0) as s:
        socks = [ws_raw(s.port)[0] for _ in range(10)]
        for i, sock in enumerate(socks):
            sock.sendall(ws_frame(1, b"%d" % i))
        for i, sock in enumerate(socks):
            events = ws_events(sock, timeout=10, until=lambda e: isinstance(e, CloseConnection))
            assert [e.data for e in events if isinstance(e, TextMessage)] == [f"one {i}", "two"], events
            assert [e.code for e in events if isinstance(e, CloseConnection)] == [4001]
            try:
                sock.sendall(ws_frame(8, (4001).to_bytes(2, "big")))
            except OSError:
                pass
            sock.close()
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as probe:   # still serving
            probe.sendall(b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert probe.recv(100).startswith(b"HTTP/1.1 ")
