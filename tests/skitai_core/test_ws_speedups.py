"""wsproto's unmasking in C (skitai.websocket.speedups): the same bytes as wsproto's own masker however the
payload is cut, and masked messages arriving in odd pieces over a real socket come back intact."""
from __future__ import annotations

import os
import time

import pytest
import wsproto.frame_protocol as frames
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.events import BytesMessage, TextMessage

from skitai.websocket import speedups
from tests.skitai_core.h2ws_support import ws_app, ws_events, ws_raw
from tests.support.server import ServerThread

pytest.importorskip("wsaccel")


def test_the_c_masker_is_the_one_wsproto_uses():
    assert speedups.ACTIVE
    assert frames.XorMaskerSimple is not speedups.PURE_MASKER


@settings(max_examples=200, deadline=None, derandomize=True)
@given(key=st.binary(min_size=4, max_size=4), data=st.binary(max_size=300),
       cuts=st.lists(st.integers(0, 300), max_size=6))
def test_same_bytes_as_wsproto_however_the_payload_is_cut(key, data, cuts):
    # wsproto unmasks a payload piece by piece as it arrives: the key's position must carry over
    fast, pure = frames.XorMaskerSimple(bytearray(key)), speedups.PURE_MASKER(bytearray(key))
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in zip(bounds, bounds[1:]):
        piece = bytearray(data[start:end])
        assert bytes(fast.process(piece)) == bytes(pure.process(piece))


def _frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536
                                                 else bytes([0x80 | 127]) + n.to_bytes(8, "big"))
    return bytes([0x80 | opcode]) + length + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def echo(environ, start_response):
    message = environ["websocket.message"]
    start_response("200 OK", [("Content-Type", "text/plain" if isinstance(message, str) else
                               "application/octet-stream")])
    return [message.encode() if isinstance(message, str) else message]


@pytest.mark.parametrize("size", [1, 125, 126, 4099, 70000])
def test_masked_messages_in_odd_pieces_come_back_intact(size):
    binary = os.urandom(size)
    text = ("é€" * size)[:size]
    with ServerThread(app=ws_app(echo)) as srv:
        sock, head, rest = ws_raw(srv.port)
        assert " 101 " in head
        with sock:
            wire = _frame(0x2, binary, b"\x9a\x01\xfe\x37") + _frame(0x1, text.encode(), b"\x00\xff\x10\x81")
            step = 7 if size < 200 else 4093          # pieces that never line up with the 4-byte key
            for i in range(0, len(wire), step):
                sock.sendall(wire[i:i + step])
                if i % (step * 16) == 0:
                    time.sleep(0.002)                 # let the server parse a partial payload
            events = ws_events(sock, rest, until=lambda e: isinstance(e, TextMessage) and e.message_finished)
    data = b"".join(e.data for e in events if isinstance(e, BytesMessage))
    message = "".join(e.data for e in events if isinstance(e, TextMessage))
    assert data == binary and message == text
