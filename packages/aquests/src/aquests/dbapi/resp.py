"""RESP2, the Redis wire format: encode commands and read replies, sans-IO.

``encode_command(args)`` gives the bytes of one command. ``RespReader`` is fed whatever the socket
delivered and hands out complete replies: simple strings as ``str``, integers as ``int``, bulk strings
as ``bytes`` (``None`` for nil), arrays as ``list``, and error replies as ``ReplyError`` *values* (not
raised, so one failed command in a pipeline does not hide the others).
"""
from __future__ import annotations

from typing import Any, Iterable

# One reply may hold at most this many bytes on the wire (Redis' own proto-max-bulk-len default,
# so any single value Redis accepts can still be read back) ...
DEFAULT_MAX_REPLY_SIZE = 512 * 1024 * 1024
# ... and at most this many array elements, nested arrays included: a reply of tiny items costs
# far more memory as Python objects than on the wire (16 Mi small ints: a 128 MiB list).
DEFAULT_MAX_REPLY_ITEMS = 16 * 1024 * 1024
MAX_BULK = DEFAULT_MAX_REPLY_SIZE  # the old name of the limit on one bulk string
MAX_ARRAY = 2 ** 31 - 1
MAX_LINE = 64 * 1024  # a header line longer than this is not RESP
MAX_DEPTH = 64  # arrays inside arrays; Redis' own replies nest a few levels


class ProtocolError(Exception):
    """The bytes from the server are not RESP2."""


class ReplyTooLarge(ProtocolError):
    """A reply over the reader's ``max_size`` bytes or ``max_items`` elements: the connection
    must be dropped, since the rest of the reply is still on its way."""


class ReplyError(Exception):
    """An error reply (``-ERR ...``): returned as a value, raised only by the caller's choice."""

    @property
    def kind(self) -> str:
        """The first word of the message, e.g. ``ERR``, ``WRONGTYPE``, ``NOAUTH``."""
        return str(self).split(" ", 1)[0]


class _Incomplete(Exception):
    pass


NOT_READY = object()  # get() when no complete reply is buffered
_INCOMPLETE = _Incomplete()


def _encode_arg(arg: Any) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):
        raise TypeError("Redis has no boolean type: send 0/1 or a string")
    if isinstance(arg, (int, float)):
        return repr(arg).encode()
    if isinstance(arg, (bytearray, memoryview)):
        return bytes(arg)
    raise TypeError(f"cannot send {type(arg).__name__} to Redis: use bytes, str, int or float")


def encode_command(args: Iterable[Any]) -> bytes:
    parts = [a.encode() if type(a) is str else _encode_arg(a) for a in args]
    if not parts:
        raise ValueError("empty Redis command")
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


class RespReader:
    """Incremental RESP2 reply parser.

    It resumes where the last ``feed`` ran out instead of parsing a reply again from its start:
    a 300 000-item array arriving in 64 KiB reads would otherwise be parsed about 20 times over.
    Nested arrays are kept on an explicit stack (no recursion), at most ``MAX_DEPTH`` deep.

    One reply may take ``max_size`` bytes and declare ``max_items`` array elements; past either,
    ``get()`` raises ``ReplyTooLarge``. A header that alone is over a limit (``$<n>`` with n above
    ``max_size``, array lengths adding up past ``max_items``) is refused as soon as it is read;
    an array of many items fails once the bytes received for it pass ``max_size`` (checked each
    time the buffer runs out and when the reply is complete, so small replies pay nothing).
    """

    def __init__(self, max_size: int = DEFAULT_MAX_REPLY_SIZE, max_items: int = DEFAULT_MAX_REPLY_ITEMS) -> None:
        self.max_size = max_size
        self.max_items = max_items
        self._buf = bytearray()
        self._pos = 0
        self._dropped = 0  # bytes deleted from the front of _buf so far: _dropped + pos is a stream offset
        self._stack: list[list] = []  # [items so far, items still expected] per open array
        self._origin = 0  # stream offset where the array reply being read began
        self._items = 0  # elements its array headers have declared so far

    def feed(self, data: bytes) -> None:
        if self._pos and (self._pos == len(self._buf) or self._pos > 65536):
            del self._buf[:self._pos]  # bytes already parsed are never looked at again
            self._dropped += self._pos
            self._pos = 0
        self._buf += data

    @property
    def partial(self) -> bool:
        """Whether bytes of a reply not yet complete have been received (an open array included)."""
        return bool(self._stack) or self._pos < len(self._buf)

    def get(self) -> Any:
        """The next complete reply, or ``NOT_READY``."""
        if self._pos >= len(self._buf):
            return NOT_READY              # the usual second call after a reply: no exception raised
        stack = self._stack
        while True:
            pos = self._pos
            try:
                is_array, value, self._pos = self._item(pos)
            except _Incomplete:
                # the bytes of the unfinished reply received so far
                if len(self._buf) - (self._origin - self._dropped if stack else pos) > self.max_size:
                    raise self._too_large(f"more than {self.max_size} bytes", "max_reply_size") from None
                return NOT_READY
            if not is_array:
                if not stack:
                    return value          # the usual reply: one value, no array open
            elif value:
                if stack:
                    if len(stack) >= MAX_DEPTH:
                        raise ProtocolError(f"arrays nested more than {MAX_DEPTH} deep")
                    self._items += value
                else:
                    self._origin = self._dropped + pos
                    self._items = value
                if self._items > self.max_items:
                    raise self._too_large(f"more than {self.max_items} array elements", "max_reply_items")
                stack.append([[], value])
                continue
            else:
                value = []
                if not stack:
                    return value
            while stack:  # a complete value: hand it to the arrays it closes
                top = stack[-1]
                top[0].append(value)
                top[1] -= 1
                if top[1]:
                    break
                stack.pop()
                value = top[0]
            else:  # an array reply is complete
                if self._dropped + self._pos - self._origin > self.max_size:
                    raise self._too_large(f"more than {self.max_size} bytes", "max_reply_size")
                return value

    @staticmethod
    def _too_large(what: str, option: str) -> ReplyTooLarge:
        return ReplyTooLarge(f"the Redis reply exceeded the limit: {what} ({option})")

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            if len(self._buf) - pos > MAX_LINE:
                raise ProtocolError("reply line too long")
            raise _INCOMPLETE
        return bytes(self._buf[pos:end]), end + 2

    def _item(self, pos: int) -> tuple[bool, Any, int]:
        """(is an array header, value or item count, next position) of the item at ``pos``."""
        buf = self._buf
        if pos >= len(buf):
            raise _INCOMPLETE
        kind = buf[pos]
        line, pos = self._line(pos + 1)
        if kind == 36:  # $ bulk string
            n = self._int(line, b"$")
            if n < 0:
                if n != -1:
                    raise ProtocolError(f"bulk string length {n}: only -1 (nil) may be negative")
                return False, None, pos
            if n > self.max_size:
                raise self._too_large(f"a bulk string of {n} bytes, over {self.max_size}", "max_reply_size")
            end = pos + n
            if len(buf) < end + 2:
                raise _INCOMPLETE
            if buf[end:end + 2] != b"\r\n":
                raise ProtocolError("bulk string not terminated by CRLF")
            return False, bytes(buf[pos:end]), end + 2
        if kind == 43:  # + simple string
            return False, line.decode("utf-8", "replace"), pos
        if kind == 58:  # : integer
            return False, self._int(line, b":"), pos
        if kind == 42:  # * array
            n = self._int(line, b"*")
            if n < 0:
                if n != -1:
                    raise ProtocolError(f"array length {n}: only -1 (nil) may be negative")
                return False, None, pos
            if n > MAX_ARRAY:
                raise ProtocolError(f"array of {n} items is over the limit")
            return True, n, pos
        if kind == 45:  # - error
            return False, ReplyError(line.decode("utf-8", "replace")), pos
        raise ProtocolError(f"unknown RESP type byte {bytes([kind])!r}")

    @staticmethod
    def _int(line: bytes, kind: bytes) -> int:
        # RESP numbers are an optional "-" and ASCII digits (all bytes.isdigit() accepts);
        # int() alone would also take "1_0", " 7 " and "+2"
        if line.isdigit() or line[:1] == b"-" and line[1:].isdigit():
            return int(line)
        raise ProtocolError(f"bad integer in reply header {kind + line[:40]!r}: "
                            f"only an optional '-' and ASCII digits are allowed")
