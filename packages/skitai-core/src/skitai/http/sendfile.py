"""Files to an HTTP/1.1 connection: zero-copy ``os.sendfile`` on plain TCP, a bounded copy otherwise.

``send(proto, file, offset, count, head)`` is what ``H1Protocol.sendfile`` does; ``proto`` gives the
transport, ``scheme``, ``limits`` and ``drain()`` (wait until the transport's buffer is below its low mark).

Why it looks the way it does (1 MiB answers at nginx's pace):

- The response head leaves in the same TCP segment as the file's first bytes, as nginx's ``tcp_nopush``
  does: it is written straight to the socket with ``MSG_MORE`` (no extra system call, no lone small
  segment waking the client once for the head and once for the body) and ``sendfile`` pushes both.
- One ``os.sendfile`` call usually takes the whole file: the send buffer is raised once per connection
  (up to ``SENDFILE_BUFFER_MAX``), and what we learned about the socket is kept per connection, since
  uvloop's pseudo-socket makes a system call or two for every option read.
- Only when the kernel buffer is full (``EAGAIN``) does the send wait: one small chunk goes through the
  transport, whose drain tells us the socket is writable again (uvloop keeps its socket to itself, so
  ``add_writer`` is not available); writing through the transport also keeps the bytes in order.
"""
from __future__ import annotations

import os
import socket
import weakref

from .errors import ClientDisconnected

SENDFILE_BUFFER_MAX = 4 * 1024 * 1024
WAIT_CHUNK = 16384          # what goes through the transport when the kernel buffer is full
_MSG_MORE = getattr(socket, "MSG_MORE", 0)

# per connection: [socket fd, socket family, send buffer size we made sure of]
_sockets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def send(proto, file, offset: int, count: int, head: bytes = b"") -> None:
    """Write ``head`` then ``count`` bytes of ``file`` from ``offset``; ``os.sendfile`` on plain TCP."""
    t = proto.transport
    info = _socket_info(proto, t) if proto.scheme == "http" else None
    if info is not None:
        try:
            infd = file.fileno()
        except (AttributeError, OSError, ValueError):
            info = None
    if info is None or count <= 0:
        if head:
            t.write(head)
        if count > 0:
            await copy(proto, file, offset, count)
        return
    fd = info[0]
    _lead_in(info, t, head, count)
    slow = False
    try:
        while count > 0:
            if t.is_closing():
                raise ClientDisconnected("the client went away")
            if t.get_write_buffer_size() == 0:
                n = _push(t, fd, infd, offset, count)
                offset += n
                count -= n
                if not count:
                    break
            if not slow:
                # from now on, drain() means "the transport's buffer is empty": sendfile may go on
                slow = True
                t.set_write_buffer_limits(high=0, low=0)
            chunk = os.pread(infd, min(count, WAIT_CHUNK), offset)
            if not chunk:
                raise EOFError("file shorter than the announced length")
            t.write(chunk)
            offset += len(chunk)
            count -= len(chunk)
            await proto.drain()
    finally:
        if slow and not t.is_closing():
            t.set_write_buffer_limits(high=proto.limits.write_buffer_high)


def offer(proto, file, offset: int, count: int, head: bytes = b"") -> int | None:
    """Without waiting: ``head``, then as much of the file as the kernel takes now; the bytes of the file
    sent. None (and nothing written) when this connection cannot do it now: not plain TCP, or earlier
    bytes still in the transport. Most large answers are complete after this one call, so the caller
    need not start a task for them."""
    t = proto.transport
    if count <= 0 or proto.scheme != "http" or t.is_closing() or t.get_write_buffer_size():
        return None
    info = _socket_info(proto, t)
    if info is None:
        return None
    try:
        infd = file.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    fd = info[0]
    if not _lead_in(info, t, head, count):
        return 0
    return _push(t, fd, infd, offset, count)


def _push(t, fd: int, infd: int, offset: int, count: int) -> int:
    """``os.sendfile`` until ``count`` bytes went or the kernel buffer is full; the bytes sent."""
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(fd, infd, offset + sent, count - sent)
        except BlockingIOError:
            break
        except OSError as exc:
            t.abort()   # sendfile bypassed the transport, which must learn the peer is gone
            raise ClientDisconnected(str(exc)) from exc
        if n == 0:
            raise EOFError("file shorter than the announced length")
        sent += n
    return sent


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


def _socket_info(proto, t) -> list | None:
    """``[fd, family, send buffer]`` of the connection's TCP socket, looked up once per connection."""
    info = _sockets.get(proto)
    if info is None:
        if not hasattr(os, "sendfile"):
            return None
        try:
            sock = t.get_extra_info("socket")
            info = [sock.fileno(), sock.family, 0] if sock is not None else None
        except (AttributeError, OSError, ValueError):
            info = None
        if info is None or info[0] < 0:
            return None
        _sockets[proto] = info
    return info


def _lead_in(info: list, t, head: bytes, count: int) -> bool:
    """Make sure of the send buffer for ``count`` bytes and hand ``head`` to the kernel; False when part
    of the head had to wait in the transport (then the file must wait too)."""
    if info[2] < count and info[2] < SENDFILE_BUFFER_MAX:
        info[2] = _grow_send_buffer(info[0], info[1], count)
    if head:
        rest = _send_head(info[0], info[1], t, head)
        if rest:
            t.write(rest)
            return False
    return True


def _send_head(fd: int, family: int, t, head: bytes) -> bytes:
    """Hand ``head`` to the kernel with ``MSG_MORE`` (held back until the file's bytes follow); what it
    did not take is returned. Only while the transport holds nothing, or the bytes would overtake it."""
    if not _MSG_MORE or t.get_write_buffer_size():
        return head
    sock = socket.socket(family, socket.SOCK_STREAM, 0, fd)    # a borrowed view: detached, never closed
    try:
        n = sock.send(head, _MSG_MORE)
    except (BlockingIOError, InterruptedError):
        n = 0
    except OSError:
        n = 0           # the transport's own write will see the error and close the connection
    finally:
        sock.detach()
    return head[n:]


def _grow_send_buffer(fd: int, family: int, count: int) -> int:
    """Let one ``os.sendfile`` call hand a large file to the kernel, instead of many small turns of the loop
    spent waiting for the default send buffer to drain; bounded by ``SENDFILE_BUFFER_MAX``. Returns the
    size now made sure of."""
    want = min(count, SENDFILE_BUFFER_MAX)
    sock = socket.socket(family, socket.SOCK_STREAM, 0, fd)
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < want:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, want)
    except OSError:
        pass
    finally:
        sock.detach()
    return want
