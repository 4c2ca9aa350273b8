"""Issue 5: WebSocket echo load, the same lean client for every server.

Each connection does sequential round trips: send one 16-byte masked text frame, wait for the echo,
send the next, until the time is up. The client does no more work per message than parsing one frame
header, so the server is what gets measured. Prints msg/s over all connections.
Usage (peer venv): python ws_client.py --url ws://127.0.0.1:P/path --clients 50 --seconds 5 [--pause]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import time
from urllib.parse import urlsplit

PAYLOAD = b"hello websocket!"
MASK = b"\x11\x22\x33\x44"
FRAME = bytes([0x81, 0x80 | len(PAYLOAD)]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(PAYLOAD))
CLOSE = bytes([0x88, 0x82]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(struct.pack(">H", 1000)))


def _masked(opcode: int, payload: bytes) -> bytes:
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + MASK + bytes(
        b ^ MASK[i % 4] for i, b in enumerate(payload))


class EchoClient(asyncio.Protocol):
    """One connection: handshake, then ping-pong FRAME until ``stop_at``."""

    def __init__(self, host: str, port: int, path: str) -> None:
        loop = asyncio.get_running_loop()
        key = base64.b64encode(os.urandom(16)).decode()
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"Origin: http://{host}:{port}\r\n\r\n").encode()
        self.opened: asyncio.Future = loop.create_future()
        self.finished: asyncio.Future = loop.create_future()
        self.buf = bytearray()
        self.handshaken = False
        self.count = self.unexpected = 0
        self.stop_at = float("inf")
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def start(self, stop_at: float) -> None:
        self.stop_at = stop_at
        self.transport.write(FRAME)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[:end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(f"handshake refused: {head.splitlines()[0].decode(errors='replace')}")
                return
            self.handshaken = True
            self.opened.set_result(True)
        while len(buf) >= 2:
            size, start = buf[1] & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, start = struct.unpack_from(">H", buf, 2)[0], 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, start = struct.unpack_from(">Q", buf, 2)[0], 10
            if len(buf) < start + size:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[start:start + size])
            del buf[:start + size]
            if opcode in (1, 2):
                if payload != PAYLOAD:
                    self.unexpected += 1  # e.g. a welcome message: not an echo, send nothing
                    continue
                self.count += 1
                if time.monotonic() < self.stop_at:
                    self.transport.write(FRAME)
                elif not self.finished.done():
                    self.finished.set_result(True)
            elif opcode == 9:
                self.transport.write(_masked(10, payload))
            elif opcode == 8:
                self._fail("server closed the connection")

    def _fail(self, reason: str) -> None:
        for fut in (self.opened, self.finished):
            if not fut.done():
                fut.set_exception(ConnectionError(reason))

    def connection_lost(self, exc) -> None:
        self._fail(f"connection lost: {exc}")


async def run(url: str, clients: int, seconds: float, pause: bool = False) -> dict:
    u = urlsplit(url)
    host, port = u.hostname, u.port or 80
    path = u.path + (f"?{u.query}" if u.query else "") or "/"
    loop = asyncio.get_running_loop()
    conns: list[EchoClient] = []
    for _ in range(clients):
        _, proto = await loop.create_connection(lambda: EchoClient(host, port, path), host, port)
        conns.append(proto)
    opened = await asyncio.gather(*(asyncio.wait_for(c.opened, 10) for c in conns), return_exceptions=True)
    failures = [r for r in opened if isinstance(r, BaseException)]
    if failures:
        return {"unavailable": f"{len(failures)}/{clients} handshakes failed: {failures[0]}"}
    if pause:                     # cg_ws.py zeroes the server's counters here: handshakes left out
        print("READY", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
    started = time.monotonic()
    stop_at = started + seconds
    for c in conns:
        c.start(stop_at)
    done = await asyncio.gather(*(asyncio.wait_for(c.finished, seconds + 10) for c in conns),
                                return_exceptions=True)
    elapsed = time.monotonic() - started
    errors = sum(isinstance(r, BaseException) for r in done)
    total = sum(c.count for c in conns)
    if pause:                     # ... and takes them here, before the closes
        print(json.dumps({"messages": total, "rps": total / elapsed}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
    for c in conns:
        if c.transport and not c.transport.is_closing():
            c.transport.write(CLOSE)
            c.transport.close()
    return {"rps": total / elapsed, "errors": errors, "messages": total, "seconds": round(elapsed, 3),
            "unexpected": sum(c.unexpected for c in conns), "clients": clients}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--pause", action="store_true", help="wait for a line on stdin after the handshakes and "
                   "after the run (for tools/bench/cg_ws.py)")
    a = p.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        result = asyncio.run(run(a.url, a.clients, a.seconds, a.pause))
    except OSError as exc:
        result = {"unavailable": f"cannot connect: {exc}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
