"""Files to an HTTP/1.1 connection: zero-copy ``os.sendfile`` on plain TCP, a bounded copy otherwise.

``send(proto, file, offset, count)`` is what ``H1Protocol.sendfile`` does; ``proto`` gives the transport,
``scheme``, ``limits`` and ``drain()`` (wait until the transport's buffer is below its low mark).
"""
from __future__ import annotations

import os
import socket

from .errors import ClientDisconnected

SENDFILE_BUFFER_MAX = 4 * 1024 * 1024


async def send(proto, file, offset: int, count: int) -> None:
    """Write ``count`` bytes of ``file`` from ``offset``; ``os.sendfile`` on plain TCP sockets."""
    t = proto.transport
    fd = None
    if proto.scheme == "http" and hasattr(os, "sendfile"):
        try:
            infd = file.fileno()
            sock = t.get_extra_info("socket")
            fd = sock.fileno() if sock is not None else None
        except (AttributeError, OSError, ValueError):
            fd = None
    if fd is None:
        await copy(proto, file, offset, count)
        return
    _grow_send_buffer(sock, count)
    # Only write with os.sendfile while the transport's buffer is empty (ordering); when the kernel
    # buffer is full, push one small chunk through the transport and wait until it has drained.
    t.set_write_buffer_limits(high=0, low=0)
    try:
        while count > 0:
            if t.is_closing():
                raise ClientDisconnected("the client went away")
            if t.get_write_buffer_size() == 0:
                try:
                    n = os.sendfile(fd, infd, offset, count)
                except BlockingIOError:
                    n = -1
                except OSError as exc:
                    t.abort()   # sendfile bypassed the transport, which must learn the peer is gone
                    raise ClientDisconnected(str(exc)) from exc
                if n == 0:
                    raise EOFError("file shorter than the announced length")
                if n > 0:
                    offset += n
                    count -= n
                    continue
            chunk = os.pread(infd, min(count, 16384), offset)
            if not chunk:
                raise EOFError("file shorter than the announced length")
            t.write(chunk)
            offset += len(chunk)
            count -= len(chunk)
            await proto.drain()
    finally:
        if not t.is_closing():
            t.set_write_buffer_limits(high=proto.limits.write_buffer_high)


async def copy(proto, file, offset: int, count: int) -> None:
    """The same bytes read and written through the transport (TLS, or no ``os.sendfile``)."""
    t = proto.transport
    file.seek(offset)
    while count > 0:
        if t.is_closing():
            raise ClientDisconnected("the client went away")
        chunk = file.read(min(count, 65536))
        if not chunk:
            raise EOFError("file shorter than the announced length")
        count -= len(chunk)
        t.write(chunk)
        await proto.drain()


def _grow_send_buffer(sock, count: int) -> None:
    """Let one ``os.sendfile`` call hand a large file to the kernel, instead of many small turns of the loop
    spent waiting for the default send buffer to drain; bounded by ``SENDFILE_BUFFER_MAX``."""
    try:
        want = min(count, SENDFILE_BUFFER_MAX)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < want:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, want)
    except OSError:
        pass
