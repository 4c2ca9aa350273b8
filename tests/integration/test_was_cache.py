"""The result cache (SK-55): ``result.cache(sec)`` / ``task.cache(sec)``, expiry, ``use_cache=False`` with
``Cache-Control: no-cache`` upstream, map results, and the ``set_max_rcache`` bound."""
from __future__ import annotations

import time

import pytest

import skitai
from skitai import launch, was
from skitai.runner import Running
from skitai.services import binding
from tests.integration.was_support import echo_backends, front, get_json, query, routed
from tests.support.net import free_port


@pytest.fixture(scope="module")
def setup():
    hits: list = []
    with echo_backends(2, hits=hits) as servers:
        url = servers[0].url

        def cached(env):
            q = query(env)
            before = len(hits)
            task = was.get(url + "/c/" + q["key"], use_cache=q.get("use_cache", "1") == "1")
            r = task.getwait(5)
            stored = r.cache(float(q["sec"])) if "sec" in q else None
            if "task_sec" in q:
                stored = task.cache(float(q["task_sec"]))
            seen = r.data["headers"].pop("x-mine", None)
            r.data["headers"]["x-mine"] = "changed by an earlier caller"
            return {"network": len(hits) - before, "stored": stored,
                    "cache_control": r.data["headers"].get("cache-control"), **({"seen": seen} if seen else {})}

        def mapped(env):
            before = len(hits)
            results = was.get.map("@both/m").getswait(5)
            stored = results.cache(60) if query(env).get("store") else None
            return {"network": len(hits) - before, "stored": stored, "codes": results.status_code}

        def failed(env):
            r = was.get(f"http://127.0.0.1:{free_port()}/x").getwait(5)
            return {"status": r.status, "stored": r.cache(60)}

        def stats(env):
            return binding.server_context().rcache.stats()

        app = routed({"/c": cached, "/m": mapped, "/f": failed, "/stats": stats})
        clusters = {"both": ("http", [s.url.split("//")[1] for s in servers])}
        with front(app, clusters) as base:
            yield base


def test_cached_result_answers_without_network(setup):
    assert get_json(setup + "/c?key=a&sec=60") == {"network": 1, "stored": True, "cache_control": None}
    assert get_json(setup + "/c?key=a") == {"network": 0, "stored": None, "cache_control": None}
    assert get_json(setup + "/c?key=a") == {"network": 0, "stored": None, "cache_control": None}   # a copy
    stats = get_json(setup + "/stats")
    assert stats["hits"] >= 2 and stats["current_cached"] >= 1


def test_expiry_and_cache_zero(setup):
    assert get_json(setup + "/c?key=b&sec=0.3")["stored"] is True
    assert get_json(setup + "/c?key=b")["network"] == 0
    time.sleep(0.4)
    assert get_json(setup + "/c?key=b&sec=60")["network"] == 1          # expired: fetched again, cached again
    assert get_json(setup + "/c?key=b&sec=0")["network"] == 0           # a hit; cache(0) expires it
    assert get_json(setup + "/c?key=b")["network"] == 1


def test_use_cache_false_skips_the_cache_and_says_no_cache_upstream(setup):
    get_json(setup + "/c?key=d&sec=60")
    d = get_json(setup + "/c?key=d&use_cache=0")
    assert d["network"] == 1 and d["cache_control"] == "no-cache"


def test_task_cache_after_a_wait(setup):
    assert get_json(setup + "/c?key=e&task_sec=60")["stored"] is True
    assert get_json(setup + "/c?key=e")["network"] == 0


def test_map_results_cache(setup):
    assert get_json(setup + "/m") == {"network": 2, "stored": None, "codes": [200, 200]}
    assert get_json(setup + "/m?store=1")["stored"] is True
    assert get_json(setup + "/m") == {"network": 0, "stored": None, "codes": [200, 200]}


def test_failures_are_never_cached(setup):
    assert get_json(setup + "/f") == {"status": 2, "stored": False}


def test_set_max_rcache_bounds_the_cache(tmp_path):
    launch.reset()
    launch.config.workdir = str(tmp_path)
    try:
        with echo_backends(1) as (backend,):
            def fill(env):
                for i in range(12):
                    was.get(f"{backend.url}/k{i}").getwait(5).cache(60)
                return binding.server_context().rcache.stats()

            skitai.set_max_rcache(5)
            skitai.mount("/", routed({"/fill": fill}))
            config = launch.apply_run(address="127.0.0.1", port=0, threads=2)
            assert config.rcache_objmax == 5
            with Running(config) as srv:
                stats = get_json(f"http://127.0.0.1:{srv.port}/fill")
    finally:
        launch.reset()
    assert stats["maxobj"] == 5 and 1 <= stats["current_cached"] <= 5


def _cachefs_front(tmp_path, memmax: int, hits: list, backend_url: str):
    def call(env):
        q = query(env)
        headers = {"Cache-Control": "no-cache"} if q.get("fresh") else None
        if q.get("cookie"):
            headers = {"Cookie": "sid=1"}
        before = len(hits)
        r = was.get(f"{backend_url}/page", {"max_age": q.get("max_age", "60")}, headers=headers,
                     use_cache=q.get("use_cache", "1") == "1").getwait(5)
        return {"network": len(hits) - before, "lookup": r.get_header("X-Skitaid-Cache-Lookup"),
                "code": r.status_code, "status": r.status, "path": r.data["path"]}

    return front(routed({"/p": call}), cachefs={"memmax": memmax, "diskmax": 1, "path": str(tmp_path)})


def test_cachefs_answers_cacheable_gets_from_memory_and_disk(tmp_path):
    hits: list = []
    with echo_backends(1, hits=hits) as (backend,):
        with _cachefs_front(tmp_path / "mem", 1, hits, backend.url) as url:          # sizes in MB
            first = get_json(url + "/p")
            again = get_json(url + "/p")
            fresh = get_json(url + "/p?fresh=1")
            nocache = get_json(url + "/p?use_cache=0")
            uncacheable = [get_json(url + "/p?max_age=0")["network"] for _ in range(2)]
            private = [get_json(url + "/p?max_age=20&cookie=1")["network"] for _ in range(2)]
        with _cachefs_front(tmp_path / "disk", 0, hits, backend.url) as url:    # disk only
            disk = [get_json(url + "/p?max_age=30") for _ in range(2)]
    assert first["network"] == 1 and first["lookup"] is None
    assert again == {"network": 0, "lookup": "MEM_HIT", "code": 200, "status": 3, "path": "/page"}
    assert fresh["network"] == 1 and nocache["network"] == 1
    assert uncacheable == [1, 1]
    assert private == [1, 1]                     # a request with a cookie: only a "public" answer is kept
    assert disk[0]["network"] == 1 and disk[1]["network"] == 0 and disk[1]["lookup"] == "HIT"
    assert list((tmp_path / "disk").glob("*.body"))


def test_a_cached_result_goes_to_a_callback_on_the_loop_thread():
    import threading

    got: list = []
    done = threading.Event()
    with echo_backends(1) as (backend,):
        def call(env):
            was.get(backend.url + "/cb").getwait(5).cache(60)
            was.get(backend.url + "/cb", callback=lambda r: (got.append(
                [r.status, r.data["path"], threading.current_thread().name]), done.set()))
            return {"worker": threading.current_thread().name}

        with front(routed({"/c": call})) as url:
            worker = get_json(url + "/c")["worker"]
            assert done.wait(5)
    assert got == [[3, "/cb", "skitai-server"]] and worker != "skitai-server"
