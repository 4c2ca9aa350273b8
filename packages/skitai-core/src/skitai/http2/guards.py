"""Abuse limits the h2 library does not enforce by itself.

``FrameGuard`` reads only the 9-byte frame headers of the inbound byte stream (before h2 sees the bytes)
and counts what floods are made of: RST_STREAM (rapid reset, CVE-2023-44487), SETTINGS, PING, and the
frames and bytes of one header block (CONTINUATION floods). A breach returns an ``Abuse`` naming the
GOAWAY error code; the protocol then sends GOAWAY and closes this connection only.
``NoopFrames`` counts the frames that do nothing for a request (CVE-2019-9518 and its kin); the protocol
feeds it, since only h2's stream states tell which those are. ``FrameGuard`` also notes since when a frame
or a header block has been left unfinished, for the protocol's timer.
HPACK bombs are stopped by h2's own decoder limit (``max_header_list_size``), set from our Limits.
``FrameGuard`` also bounds the frames that are useful but carry next to no payload (DATA and CONTINUATION of
a byte or so): each costs us a parse and an event whatever it carries, so past an allowance they must carry
``SMALL_FLOOR`` bytes on average (``FrameGuard._small_frame``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from h2.errors import ErrorCodes

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST, _SETTINGS, _PING, _CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x6, 0x9
_ACK, _END_HEADERS = 0x1, 0x4


@dataclass(frozen=True)
class Abuse:
    code: ErrorCodes
    reason: str
    parse: int = 0      # bytes of the chunk (the frames before the breach) to parse before the GOAWAY


class _Window:
    """Counts events in a sliding-by-reset time window."""

    __slots__ = ("limit", "span", "count", "since")

    def __init__(self, limit: int, span: float) -> None:
        self.limit, self.span, self.count, self.since = limit, span, 0, time.monotonic()

    def hit(self) -> bool:
        now = time.monotonic()
        if now - self.since > self.span:
            self.count, self.since = 0, now
        self.count += 1
        return self.count > self.limit


class NoopFrames:
    """Frames that cost a parse (and often an answer) but carry no request, no progress of an answer and no
    payload for the app: DATA on a closed or reset stream, DATA with no payload and no END_STREAM, HEADERS
    h2 drops (a closed stream), PRIORITY, PING and SETTINGS acknowledgements we did not ask for, GOAWAY,
    frame types we do not know, refused streams. Counted per window like the floods of ``FrameGuard``.

    WINDOW_UPDATE is what a client sends as it reads our DATA, so it counts only past an allowance: each
    DATA frame we send earns ``PER_DATA_FRAME`` of them and each stream the client opens one (a client
    widening the stream's window at once); the unused allowance is kept up to the limit itself."""

    __slots__ = ("window", "credit", "earned", "cap")
    PER_DATA_FRAME = 4          # a stream and a connection update, twice over for clients acking in parts

    def __init__(self, limit: int, span: float) -> None:
        self.window = _Window(limit, span)
        self.credit = self.earned = 0
        self.cap = limit

    def hit(self) -> bool:
        return self.window.hit()

    def window_update(self, data_frames_sent: int, streams: int) -> bool:
        earned = self.PER_DATA_FRAME * data_frames_sent + streams
        if earned != self.earned:
            self.credit, self.earned = min(self.cap, self.credit + earned - self.earned), earned
        if self.credit > 0:
            self.credit -= 1
            return False
        return self.window.hit()


class FrameGuard:
    """Feed it every inbound chunk; ``feed`` returns an ``Abuse`` on the first breach, else None.

    Small frames (``h2_max_small_frames``): DATA and CONTINUATION frames are counted with their length
    (padding included: what the client had to send). Each counted frame owes ``SMALL_FLOOR`` bytes and pays
    with its length; the balance owed may reach ``h2_max_small_frames`` frames' worth within a flood window.
    Free of it: the first ``SMALL_PER_READ`` such frames of each read (frames that come as they are written,
    a few to a read, cost what the read costs anyway: only frames in bulk are counted), and
    ``SMALL_PER_BLOCK`` frames per header block (a request's body in one frame and an empty END_STREAM DATA).
    Large frames earn a credit, kept up to a quarter of the limit. The balance owed is dropped (the credit kept)
    when a window is over."""

    SMALL_FLOOR = 64            # bytes a frame must carry, on average, past the allowance
    SMALL_PER_READ = 8          # DATA/CONTINUATION frames of a read that are not counted
    SMALL_PER_BLOCK = 2         # frames' worth of credit each header block (a request, trailers) earns

    def __init__(self, limits) -> None:
        span = limits.h2_flood_window
        self.span = span
        small = limits.h2_max_small_frames * self.SMALL_FLOOR
        self.small_max = small or float("inf")              # 0: no limit
        self.small_credit = small // 4 or float("inf")      # the credit kept at most
        self.small_owed = 0         # bytes owed by the counted frames of this window (< 0: a credit)
        self._block_credit = self.SMALL_PER_BLOCK * self.SMALL_FLOOR
        self.small_since = time.monotonic()
        self.resets = _Window(limits.h2_max_resets, span)
        self.settings = _Window(limits.h2_max_settings, span)
        self.pings = _Window(limits.h2_max_pings, span)
        self.max_block_frames = limits.h2_max_header_frames
        self.max_block_bytes = limits.h2_max_header_list_size
        self._head = b""            # partial frame header
        self._skip = 0              # payload bytes of the current frame still to pass
        self._preface = len(PREFACE)
        self._block_frames = 0      # frames of the header block in progress (0: none)
        self._block_bytes = 0
        self.noop = NoopFrames(limits.h2_max_noop_frames, span)
        self.frame_since = 0.0      # when the frame now unfinished began (0: none), for network_timeout
        self.block_since = 0.0      # when the unfinished header block began (0: none), for header_timeout

    def feed(self, data: bytes) -> Abuse | None:
        view = memoryview(data)
        if self._preface:
            n = min(self._preface, len(view))
            self._preface -= n
            view = view[n:]
        ended = False               # a frame ended in this chunk: an unfinished one began in it too
        small = 0                   # DATA/CONTINUATION frames of this chunk
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                ended = ended or not self._skip
                continue
            need = 9 - len(self._head)
            self._head += bytes(view[:need])
            view = view[need:]
            if len(self._head) < 9:
                break
            head, self._head = self._head, b""
            length = int.from_bytes(head[:3], "big")
            self._skip = length
            ended = ended or not length
            ftype = head[3]
            if ftype == _DATA or ftype == _CONTINUATION:
                small += 1
                if small > self.SMALL_PER_READ and self._small_frame(length):
                    # the frames before this one are parsed first: those a limit of their own counts
                    # (DATA on a closed stream, empty DATA) are answered as such
                    return Abuse(ErrorCodes.ENHANCE_YOUR_CALM, "flood of small frames (frame overhead over "
                                 "payload)", max(0, len(data) - len(view) - need))
                if ftype == _DATA:
                    continue
            abuse = self._frame(ftype, head[4], length)
            if abuse:
                return abuse
        if not (self._head or self._skip):
            self.frame_since = 0.0
        elif ended or not self.frame_since:
            self.frame_since = time.monotonic()
        return None

    def _frame(self, ftype: int, flags: int, length: int) -> Abuse | None:
        if ftype in (_HEADERS, _CONTINUATION):
            return self._header_block(flags, length)
        if ftype == _RST and self.resets.hit():
            return Abuse(ErrorCodes.ENHANCE_YOUR_CALM, "too many stream resets (rapid reset)")
        if ftype == _SETTINGS and not flags & _ACK and self.settings.hit():
            return Abuse(ErrorCodes.ENHANCE_YOUR_CALM, "SETTINGS flood")
        if ftype == _PING and not flags & _ACK and self.pings.hit():
            return Abuse(ErrorCodes.ENHANCE_YOUR_CALM, "PING flood")
        return None

    def _small_frame(self, length: int) -> bool:
        """Counts a DATA or CONTINUATION frame of ``length`` bytes; True past the limit."""
        now = time.monotonic()
        if now - self.small_since > self.span:
            self.small_since = now
            if self.small_owed > 0:
                self.small_owed = 0
        owed = max(self.small_owed, -self.small_credit) + self.SMALL_FLOOR - length
        if owed > self.small_max:
            return True
        self.small_owed = owed
        return False

    def _header_block(self, flags: int, length: int) -> Abuse | None:
        if not self._block_frames:      # a new block (a request, trailers) earns credit, capped where it is used
            self.small_owed -= self._block_credit
        self._block_frames += 1
        self._block_bytes += length
        if self._block_frames > self.max_block_frames:
            return Abuse(ErrorCodes.ENHANCE_YOUR_CALM, "CONTINUATION flood")
        if self._block_bytes > self.max_block_bytes:
            return Abuse(ErrorCodes.ENHANCE_YOUR_CALM, "header block too large")
        if flags & _END_HEADERS:
            self._block_frames = self._block_bytes = 0
            self.block_since = 0.0
        elif self._block_frames == 1:
            self.block_since = time.monotonic()
        return None
