"""aquests.rcache: TTL, size bound with eviction by remaining lifetime, byte budget with LRU eviction,
hits that are copies, normal results only, stats."""
from __future__ import annotations

import threading

import pytest

import aquests
from aquests import codes
from aquests.dbapi.pool import close_all
from aquests.rcache import DEFAULT_MAX_BYTES, ResultCache, is_normal, make_ident
from aquests.response import Response


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ok(body: bytes = b"x") -> Response:
    return Response(200, "OK", content=body)


def test_ident_forms():
    assert make_ident("@mysearch", "/rpc2", "rpc", "search", ("Mozart",)) == "mysearch//rpc2/rpc/search/('Mozart',)"
    assert make_ident(None, "http://h/x", "http", "GET") == "http://h/x/http/GET/"
    assert make_ident("db", "", "postgresql", "execute", "SELECT 1", mapped=True).endswith("/M")
    assert make_ident("db", "u", "t", "m", mapped=True) != make_ident("db", "u", "t", "m")


def test_hit_until_timeout_then_gone():
    clock = Clock()
    c = ResultCache(clock=clock)
    r = ok(b"body")
    assert c.get("a") is None
    assert c.put("a", r, 60) is True
    assert c.get("a").content == b"body"
    clock.now += 59.9
    assert c.get("a").content == b"body" and "a" in c
    clock.now += 0.2
    assert c.get("a") is None and "a" not in c
    assert len(c) == 0
    assert c.stats() == {"current_cached": 0, "maxobj": 2000, "bytes": 0, "max_bytes": DEFAULT_MAX_BYTES,
                         "hits": 2, "requests": 4, "ratio": 50.0}


def test_zero_or_negative_timeout_expires():
    c = ResultCache()
    c.put("a", ok(), 60)
    assert c.put("a", ok(), 0) is False
    assert c.get("a") is None
    c.put("b", ok(), 60)
    c.put("b", ok(), -1)
    assert "b" not in c
    with pytest.raises(TypeError):
        c.put("c", ok(), "60")


def test_only_normal_results_are_cached():
    c = ResultCache()
    assert c.put("fail", Response.failed(codes.TIMEOUT, "slow"), 60) is False
    assert c.put("refused", Response.failed(codes.CONNECTION_REFUSED), 60) is False
    assert c.put("server-error", Response(500, "Internal Server Error"), 60) is True  # an answer, status 3

    class DbErr:
        status_code = 200
        expt_class = "ProgrammingError"

    assert c.put("dberr", DbErr(), 60) is False
    assert c.put("map", [ok(), ok()], 60) is True
    assert c.put("map-partial", [ok(), Response.failed(codes.TIMEOUT)], 60) is False
    assert c.put("map-empty", [], 60) is False

    class Result:
        def __init__(self, normal):
            self.normal = normal

        def is_normal(self):
            return self.normal

    assert is_normal(Result(True)) and not is_normal(Result(False))
    assert c.put("res", Result(False), 60) is False


def test_full_cache_evicts_entries_closest_to_expiry():
    clock = Clock()
    c = ResultCache(maxobj=10, clock=clock)
    for i in range(10):
        c.put(f"k{i}", ok(), 100 + i)  # k0 expires first
    c.put("new", ok(), 50)
    assert len(c) == 9  # 2 evicted (20 % of 10), one added
    assert "k0" not in c and "k1" not in c
    assert all(f"k{i}" in c for i in range(2, 10)) and "new" in c
    # replacing an existing key never evicts
    c.put("k5", ok(), 500)
    assert len(c) == 9


def test_expired_entries_go_first_when_full():
    clock = Clock()
    c = ResultCache(maxobj=5, clock=clock)
    c.put("old", ok(), 1)
    for i in range(4):
        c.put(f"k{i}", ok(), 100)
    clock.now += 2
    c.put("new", ok(), 100)
    assert "old" not in c and len(c) == 5


def test_maxobj_validation_and_clear():
    with pytest.raises(ValueError):
        ResultCache(maxobj=0)
    c = ResultCache(maxobj=3)
    c.maxobj = 5
    c.put("a", ok(), 10)
    c.clear()
    assert len(c) == 0


def test_threads_share_one_cache():
    c = ResultCache(maxobj=50)
    errors = []

    def work(n):
        try:
            for i in range(500):
                c.put(f"{n}-{i}", ok(), 10 + i % 7)
                c.get(f"{n}-{i - 1}")
                c.stats()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(c) <= 50
    assert c.stats()["requests"] == 2000


class Wrapper:
    """Shaped like the server's result: slots, every other attribute read from the response (but no
    dunder: pickle asks for its hooks before a slot is set), and a reference to the cache that keeps it."""

    __slots__ = ("response", "cache")

    def __init__(self, response, cache) -> None:
        self.response = response
        self.cache = cache

    def __getattr__(self, name):
        if name[:2] == "__":
            raise AttributeError(name)
        return getattr(self.response, name)


async def test_hits_are_copies_a_caller_may_change(app, redis_server):
    """A caller appending to ``data`` of a hit changed it for every later caller."""
    c = ResultCache()
    try:
        async with aquests.Session() as s:
            page = await s.get(f"{app.url}/echo?q=1")
        assert page.data["query"] == {"q": "1"}
        rows = await aquests.aio.redis(redis_server.server).lrange("aq:rc-none", 0, -1)
        assert rows.ok and rows.data == []
        assert c.put("page", page, 60) and c.put("rows", rows, 60)
        assert c.put("wrapped", Wrapper(page, c), 60)

        hit = c.get("page")
        hit.data["query"]["q"] = "changed"
        hit.data["mine"] = True
        hit.headers.add("X-Mine", "1")
        c.get("rows").data.append(b"mine")
        wrapped = c.get("wrapped")
        wrapped.data.clear()
        assert wrapped.cache is c and wrapped.status_code == 200

        again = c.get("page")
        assert again.data["query"] == {"q": "1"} and "mine" not in again.data
        assert "x-mine" not in again.headers and again.json() == page.json()
        assert c.get("rows").data == []
        assert c.get("wrapped").data["query"] == {"q": "1"}
        assert page.data["query"] == {"q": "1"}  # nor the caller's own object, after put
    finally:
        await close_all()


async def test_byte_budget_evicts_least_recently_used(app):
    """The cache held ``maxobj`` results of any size; now their bytes are bounded too."""
    c = ResultCache(max_bytes=1_000_000)
    async with aquests.Session() as s:
        bodies = {i: await s.get(f"{app.url}/big?size={300_000 + i}") for i in range(5)}
    assert all(len(r.content) == 300_000 + i for i, r in bodies.items())
    for i in range(3):
        assert c.put(f"k{i}", bodies[i], 60)
    assert 900_000 < c.bytes <= 1_000_000 and c.stats()["max_bytes"] == 1_000_000
    assert c.get("k0").content == bodies[0].content  # k0 used last: k1 is now the oldest
    assert c.put("k3", bodies[3], 60)
    assert "k1" not in c and all(k in c for k in ("k0", "k2", "k3"))
    assert c.put("k4", bodies[4], 60)
    assert "k2" not in c and len(c) == 3 and c.bytes <= 1_000_000
    assert c.put("k3", bodies[3], 60) and len(c) == 3  # replacing an entry counts its bytes once
    c.max_bytes = 700_000  # lowering the budget evicts at once
    assert len(c) == 2 and "k0" not in c and c.bytes <= 700_000
    too_big = Response(200, content=b"x" * 800_000)
    assert c.put("k3", too_big, 60) is False and "k3" not in c  # larger than the budget: not kept
    assert c.put("lambda", Response(200, meta={"f": lambda: 1}), 60) is False  # cannot be copied
    c.clear()
    assert c.bytes == 0
    with pytest.raises(ValueError):
        ResultCache(max_bytes=0)
