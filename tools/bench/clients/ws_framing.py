"""Issue 5: the CPU cost of WebSocket framing alone, no sockets and no app: how many 16-byte masked text
frames one CPU-second parses, UTF-8 checks and answers with an unmasked text frame.

``--lib wsproto``: wsproto's frame layer (``FrameProtocol``), what skitai runs on every message.
``--lib websockets``: the `websockets` library's sans-IO ``Protocol``, what its own server runs.
Set beside the whole servers' messages per CPU-second (ws.py), this says how much of a server's budget
framing takes before any I/O or app code runs.
Usage (peer venv): python ws_framing.py --lib wsproto --seconds 2
"""
from __future__ import annotations

import argparse
import json
import time

PAYLOAD = b"hello websocket!"
MASK = b"\x11\x22\x33\x44"
FRAME = bytes([0x81, 0x80 | len(PAYLOAD)]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(PAYLOAD))
BATCH = 2000


def wsproto_round():
    from wsproto.frame_protocol import FrameProtocol

    proto = FrameProtocol(client=False, extensions=[])

    def one() -> bytes:
        proto.receive_bytes(FRAME)
        out = b""
        for frame in proto.received_frames():
            out = proto.send_data(frame.payload)
        return out
    return one


def websockets_round():
    from websockets.protocol import Protocol, Side, State

    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=2**20)

    def one() -> bytes:
        proto.receive_data(FRAME)
        for frame in proto.events_received():
            proto.send_text(frame.data)
        return b"".join(proto.data_to_send())
    return one


def frames_per_cpu_second(one, seconds: float) -> tuple[float, int]:
    expected = b"\x81" + bytes([len(PAYLOAD)]) + PAYLOAD
    if bytes(one()) != expected:
        raise SystemExit(json.dumps({"unavailable": "framing round trip gave an unexpected frame"}))
    done = 0
    start = time.process_time()
    while True:
        for _ in range(BATCH):
            one()
        done += BATCH
        spent = time.process_time() - start
        if spent >= seconds:
            return done / spent, done


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", choices=("wsproto", "websockets"), required=True)
    p.add_argument("--seconds", type=float, default=2.0)
    a = p.parse_args()
    one = wsproto_round() if a.lib == "wsproto" else websockets_round()
    rate, frames = frames_per_cpu_second(one, a.seconds)
    print(json.dumps({"rps": rate, "errors": 0, "messages": frames}))


if __name__ == "__main__":
    main()
