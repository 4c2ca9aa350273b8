"""Robustness of the ``was`` services against hostile or unlucky inputs, over real servers and sockets.

cachefs must never hand one client's answer to another (``Set-Cookie``, ``private="..."``, ``Vary``) and must
stay inside its byte budget even for empty bodies; a failing cache write must not fail the call; the result
cache refuses huge results; a call after the server stopped, and a wait without a numeric timeout, are
clear errors.
"""
from __future__ import annotations

import json
import shutil
from urllib.parse import parse_qs, quote

import pytest

from skitai import was
from skitai.services import binding
from skitai.services.results import MAX_CACHED_BYTES
from skitai.services.task import ServerStoppedError
from tests.integration.was_support import front, get_json, query, routed
from tests.support.server import ServerThread

HITS: list[str] = []


def _upstream(exchange) -> None:
    """Answers by query: ``cc`` (Cache-Control), ``cookie`` (Set-Cookie), ``vary``, ``pad`` (bytes of an extra
    header), ``big`` (body bytes); the JSON body echoes the caller's Accept-Language."""
    req = exchange.request
    q = {k: v[0] for k, v in parse_qs(req.query).items()}
    HITS.append(req.query)
    lang = next((v for k, v in req.headers.items() if k.lower() == "accept-language"), None)
    body = b"" if "pad" in q else json.dumps({"lang": lang}).encode()
    if "big" in q:
        body = b"x" * int(q["big"])
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
               ("Cache-Control", q.get("cc", "max-age=60"))]
    if "cookie" in q:
        headers.append(("Set-Cookie", f"sid={q['cookie']}"))
    if "vary" in q:
        headers.append(("Vary", q["vary"]))
    if "pad" in q:
        headers.append(("X-Pad", "p" * int(q["pad"])))
    exchange.respond(200, headers, body)


@pytest.fixture(scope="module")
def upstream():
    srv = ServerThread(_upstream).start()
    try:
        yield srv.url
    finally:
        srv.stop()


def _fetch(upstream_url: str):
    def call(env):
        q = query(env)
        headers = {"Accept-Language": q["lang"]} if "lang" in q else None
        before = len(HITS)
        r = was.get(upstream_url + "/p?" + quote(q.get("uq", ""), safe="=&"), headers=headers).getwait(5)
        return {"network": len(HITS) - before, "lookup": r.get_header("X-Skitaid-Cache-Lookup"),
                "status": r.status, "lang": r.data["lang"] if r.data else None}
    return call


def test_cachefs_never_shares_an_answer_meant_for_one_client(upstream, tmp_path):
    with front(routed({"/c": _fetch(upstream)}), cachefs={"memmax": 1, "diskmax": 1, "path": str(tmp_path)}) as url:
        cookie = [get_json(url + "/c", params={"uq": "cookie=alice"}) for _ in range(2)]
        private = [get_json(url + "/c", params={"uq": 'cc=private="x", max-age=60'}) for _ in range(2)]
        nocache = [get_json(url + "/c", params={"uq": 'cc=max-age=60, no-cache="set-cookie"'}) for _ in range(2)]
        star = [get_json(url + "/c", params={"uq": "vary=*"}) for _ in range(2)]
    for pair in (cookie, private, nocache, star):
        assert [p["network"] for p in pair] == [1, 1] and pair[1]["lookup"] is None, pair


def test_cachefs_keeps_vary_variants_apart(upstream, tmp_path):
    with front(routed({"/c": _fetch(upstream)}), cachefs={"memmax": 1, "diskmax": 1, "path": str(tmp_path)}) as url:
        de = get_json(url + "/c", params={"uq": "vary=Accept-Language", "lang": "de"})
        de_again = get_json(url + "/c", params={"uq": "vary=Accept-Language", "lang": "de"})
        en = get_json(url + "/c", params={"uq": "vary=Accept-Language", "lang": "en"})
    assert (de["lang"], de["network"]) == ("de", 1)
    assert (de_again["lang"], de_again["lookup"]) == ("de", "MEM_HIT")
    assert (en["lang"], en["network"], en["lookup"]) == ("en", 1, None)     # never the German answer


def test_cachefs_memory_budget_counts_headers_so_empty_bodies_are_bounded(upstream, tmp_path):
    def flood(env):
        tasks = [was.get(f"{upstream}/e?pad=8000&k={i}") for i in range(200)]    # 200 distinct URLs
        codes = {t.getwait(10).status_code for t in tasks}
        return {"codes": sorted(codes), **binding.server_context().httpcache.stats()}

    with front(routed({"/f": flood}), cachefs={"memmax": 1, "diskmax": 0, "path": str(tmp_path)}) as url:
        stats = get_json(url + "/f", timeout=30)
    assert stats["codes"] == [200]
    assert 0 < stats["memory_bytes"] <= stats["memmax"]
    assert stats["memory_entries"] < 1024 * 1024 // 8000              # each one costs its 8 KB header


def test_cachefs_disk_write_failure_does_not_fail_the_call(upstream, tmp_path):
    cache_dir = tmp_path / "cachefs"
    with front(routed({"/c": _fetch(upstream)}), cachefs={"memmax": 0, "diskmax": 1, "path": str(cache_dir)}) as url:
        shutil.rmtree(cache_dir)                       # cleaned away by an operator while serving
        cache_dir.write_text("not a directory")        # and something else put in its place
        first = get_json(url + "/c", params={"uq": "k=disk"})
        again = get_json(url + "/c", params={"uq": "k=disk"})
    assert (first["status"], first["network"]) == (3, 1)
    assert (again["status"], again["network"]) == (3, 1)


def test_result_cache_refuses_huge_results(upstream):
    def big(env):
        n = int(query(env)["n"])
        r = was.get(f"{upstream}/big?big={n}&cc=no-store").getwait(10)
        return {"size": len(r.content), "stored": r.cache(60)}

    with front(routed({"/b": big})) as url:
        small = get_json(url + "/b?n=1000")
        huge = get_json(url + "/b", params={"n": str(MAX_CACHED_BYTES + 1)}, timeout=30)
    assert small == {"size": 1000, "stored": True}
    assert huge == {"size": MAX_CACHED_BYTES + 1, "stored": False}


def test_wait_timeout_must_be_a_number(upstream):
    def wait_none(env):
        task = was.get(upstream + "/w")
        try:
            task.getwait(None)
        except TypeError as exc:
            return {"error": str(exc), "then": task.getwait(5).status}
        return {"error": None}

    with front(routed({"/w": wait_none})) as url:
        d = get_json(url + "/w")
    assert "number of seconds" in d["error"] and d["then"] == 3


def test_was_call_after_the_server_stopped_is_a_clear_error(upstream):
    kept: dict = {}

    def keep(env):
        kept["was"] = env["skitai.was"]          # as a background thread started by the app would
        return {"ok": 1}

    with front(routed({"/k": keep})) as url:
        get_json(url + "/k")
    with pytest.raises(ServerStoppedError, match="server has stopped"):
        kept["was"].get(upstream + "/late")


def test_result_cache_keeps_callers_with_different_credentials_apart(upstream):
    # before: the result-cache key left the credentials out, so bob got the result cached for alice
    def per_user(env):
        user = query(env)["user"]
        before = len(HITS)
        r = was.get(upstream + "/u", headers={"Authorization": f"Bearer {user}", "Accept-Language": user}).getwait(5)
        r.cache(60)
        return {"lang": r.data["lang"], "network": len(HITS) - before}

    with front(routed({"/u": per_user})) as url:
        alice = get_json(url + "/u", params={"user": "alice"})
        alice_again = get_json(url + "/u", params={"user": "alice"})
        bob = get_json(url + "/u", params={"user": "bob"})
    assert alice == {"lang": "alice", "network": 1}
    assert alice_again == {"lang": "alice", "network": 0}        # still cached for the same caller
    assert bob == {"lang": "bob", "network": 1}
