"""Shared by the HTTP/2, TLS and WebSocket tests: a real server on 127.0.0.1 in a background loop thread."""
from __future__ import annotations

import asyncio
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import h2.config
import h2.connection
import h2.events

from skitai.config import Config, Limits
from skitai.http.server import serve
from skitai.http2 import hooks


@contextmanager
def running(dispatch, *, limits: Limits | None = None, ssl=None, threads: int = 4, upgrades=None, h2=True):
    """Serve ``dispatch`` (HTTP/1.1 + h2c + prior knowledge) and yield ``(port, loop, executor)``."""
    config = Config(address="127.0.0.1", port=0, threads=threads, limits=limits or Limits())
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(threads) if threads else None
    started = threading.Event()
    box: dict = {}

    async def main():
        kw = hooks(config, dispatch) if h2 else {"upgrades": {}, "h2_prior_knowledge": None}
        kw["upgrades"].update(upgrades or {})
        box["server"] = await serve(config, dispatch, ssl=ssl, **kw)
        started.set()

    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    asyncio.run_coroutine_threadsafe(main(), loop).result(10)
    started.wait(10)
    server = box["server"]
    try:
        yield server.port, loop, executor
    finally:
        asyncio.run_coroutine_threadsafe(server.wait_closed(2.0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
        loop.close()
        if executor:
            executor.shutdown(wait=False, cancel_futures=True)


class H2Client:
    """A raw h2 client over a blocking socket: send frames, collect events."""

    def __init__(self, port: int, settings: dict | None = None, sock=None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                          header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.events: list = []
        self.auto_ack = True

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", body: bytes = b"", headers=(), end=True) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "localhost")]
        self.conn.send_headers(sid, hdrs + list(headers), end_stream=end and not body)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def read(self, until=None, timeout: float = 5.0) -> list:
        """Read events until ``until(event)`` is true (or the socket closes)."""
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return self.events
            if not data:
                return self.events
            try:
                evs = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                return self.events
            self.events.extend(evs)
            if self.auto_ack:
                for e in evs:
                    if isinstance(e, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            self.flush()
            if until and any(until(e) for e in evs):
                return self.events

    def response(self, sid: int, timeout: float = 5.0) -> tuple[dict, bytes]:
        """Headers and body of stream ``sid`` (acknowledging received data as it comes)."""
        def ended(e):
            return isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == sid
        if not any(ended(e) for e in self.events):
            self.read(ended, timeout)
        headers, body = {}, b""
        for e in self.events:
            if getattr(e, "stream_id", None) != sid:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                headers = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
        return headers, body

    def goaway(self):
        return next((e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)), None)

    def close(self) -> None:
        self.sock.close()
