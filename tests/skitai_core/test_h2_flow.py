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
