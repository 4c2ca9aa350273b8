"""HTTP/2 flow control: a tiny client window, and a producer that waits instead of buffering."""
from __future__ import annotations

import asyncio
import time

import h2.events
import h2.settings

from skitai.http2.flow import HIGH_WATER
from tests.skitai_core.h2ws_support import H2Client, h2_server


def test_tiny_window_still_delivers_everything():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [bytes(range(256)) * 400]          # 100 KB

    with h2_server(app=app) as s:
        c = H2Client(s.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
        try:
            headers, body = c.response(c.request("/"), timeout=10)
            assert body == bytes(range(256)) * 400
            sizes = [len(e.data) for e in c.events if isinstance(e, h2.events.DataReceived)]
            assert max(sizes) <= 1024 and len(sizes) >= 100
        finally:
            c.close()


def test_streaming_producer_waits_for_the_window():
    state = {"max": 0, "written": 0}

    def dispatch(ex):
        async def run():
            ex.start(200, [])
            for _ in range(48):                    # 3 MB if nothing stopped it
                await ex.write(b"q" * 65536)
                state["written"] += 65536
                state["max"] = max(state["max"], ex.outbox.size)
            ex.end()
        return run()

    with h2_server(dispatch) as s:
        c = H2Client(s.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        try:
            sid = c.request("/")
            c.read(timeout=0.5)
            assert state["written"] <= HIGH_WATER + 65536      # the handler is parked, not buffering
            c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
            c.flush()
            headers, body = c.response(sid, timeout=20)
            assert len(body) == 48 * 65536 and state["max"] <= HIGH_WATER + 65536
        finally:
            c.close()


def test_reset_stops_the_producer():
    done = {}

    def dispatch(ex):
        async def run():
            ex.start(200, [])
            try:
                while True:
                    await ex.write(b"r" * 65536)
            except ConnectionError:
                done["stopped"] = True
            ex.end()
        return run()

    with h2_server(dispatch) as s:
        c = H2Client(s.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        try:
            sid = c.request("/")
            c.read(timeout=0.3)
            c.conn.reset_stream(sid)
            c.flush()
            deadline = time.monotonic() + 5
            while not done.get("stopped") and time.monotonic() < deadline:
                c.read(timeout=0.1)
                s.call(asyncio.sleep, 0.01)
            assert done.get("stopped")
            assert c.response(c.request("/x"), timeout=0.5) is not None
        finally:
            c.close()


def test_streams_waiting_together_for_a_full_connection_all_resume():
    """Three worker threads stream on one connection whose client stops reading: each waits for the
    transport to take more. They used to share one waiter slot, each replacing the last one's, so only the
    last was woken when the client read again; the others stalled until their wait timed out."""
    piece, pieces = b"z" * 65536, 64

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (piece for _ in range(pieces))

    big = 2 ** 31 - 1
    with h2_server(app=app, threads=3) as srv:
        c = H2Client(srv.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: big})
        c.conn.increment_flow_control_window(big - 65535)
        sids = [c.request(f"/s{i}") for i in range(3)]
        time.sleep(1.0)                                   # read nothing: the server's transport fills up
        t0 = time.monotonic()
        bodies = [len(c.response(sid, timeout=15)[1]) for sid in sids]
        assert bodies == [len(piece) * pieces] * 3 and time.monotonic() - t0 < 10
