"""``threads=0``: apps run on the event loop thread, so ``was`` calls take callbacks (SK-22, SK-58), and a
blocking wait there is a clear error instead of a stalled server."""
from __future__ import annotations

import threading
import time

from skitai import was
from skitai.services.task import WaitOnLoopError
from tests.integration.was_support import echo_backends, front, get_json, query, routed

DELAY = 0.8     # the backend's answer time: a handler that waited for it could not return sooner


def test_callbacks_on_the_loop_and_the_blocking_wait_error():
    got: dict[str, object] = {}
    done = threading.Event()
    with echo_backends(2) as servers:
        u0 = servers[0].url

        def on_one(result, tag=None):
            path = result.data["path"] if result.status == 3 else f"failed: {result.status_code} {result.reason}"
            got["one"] = [result.status, path, tag, was.txnid(), threading.current_thread().name]
            if len(got) >= 3:
                done.set()

        def on_map(results):
            got["map"] = [results.status, sorted(r.data["port"] if r.status == 3 else f"failed: {r.status_code} {r.reason}"
                                                 for r in results)]
            if len(got) >= 3:
                done.set()

        def start(env):
            got["txnid"] = was.txnid()
            t0 = time.monotonic()
            was.get(u0 + f"/cb?delay={DELAY}", callback=(on_one, ("tagged",)))
            was.get.map("@pair/m", callback=on_map)
            return {"returned_in": time.monotonic() - t0, "thread": threading.current_thread().name}

        def blocking(env):
            task = was.get(u0 + "/x")
            try:
                task.getwait(1)
            except WaitOnLoopError as exc:
                return {"error": str(exc), "is_runtime": isinstance(exc, RuntimeError)}
            return {"error": None}

        def db_map(env):
            try:
                was.sqlite3.map("@lite", callback=print)
            except RuntimeError as exc:
                return {"error": str(exc)}
            return {"error": None}

        def alive(env):
            return {"ok": True, "n": query(env).get("n")}

        clusters = {"pair": ("http", [s.url.split("//")[1] for s in servers]), "lite": ("*sqlite3", ["/tmp/x.db"])}
        app = routed({"/start": start, "/blocking": blocking, "/dbmap": db_map, "/alive": alive})
        with front(app, clusters, threads=0) as url:
            d = get_json(url + "/start")
            assert d["returned_in"] < DELAY and d["thread"] == "skitai-server"   # not waiting for the call
            assert get_json(url + "/alive?n=1") == {"ok": True, "n": "1"}      # the loop serves meanwhile
            assert done.wait(5), got
            b = get_json(url + "/blocking")
            m = get_json(url + "/dbmap")
    assert got["one"][:3] == [3, "/cb", "tagged"], got
    assert got["one"][3] == got["txnid"]                # the callback sees its own request's was
    assert got["one"][4] == "skitai-server"             # and runs on the loop thread
    assert got["map"] == [[3, 3], sorted([servers[0].port, servers[1].port])]
    assert b["is_runtime"] and "callback" in b["error"] and "threads=0" in b["error"]
    assert "callback" in m["error"]
