"""The DB connection pool: bound, hand-off, idle expiry, broken connections, per-loop registry."""
from __future__ import annotations

import asyncio

import pytest

from aquests.dbapi import pool as poolmod
from aquests.dbapi.pool import Pool, PoolClosed, get_pool


class Conn:
    """A stand-in connection: the pool only needs ``closed`` and ``close()``."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False

    def close(self) -> None:
        self.closed = True


def counter_pool(**kw) -> Pool:
    made = []

    async def connect() -> Conn:
        await asyncio.sleep(0)
        made.append(Conn(len(made)))
        return made[-1]
    p = Pool(connect, **kw)
    p.made = made
    return p


async def test_bound_and_handoff_in_order():
    p = counter_pool(maxsize=2)
    a, b = await p.acquire(), await p.acquire()
    order = []

    async def waiter(tag):
        c = await p.acquire()
        order.append((tag, c.n))
        p.release(c)
    tasks = [asyncio.create_task(waiter(i)) for i in range(4)]
    await asyncio.sleep(0.01)
    assert order == [] and p.size == 2
    p.release(a)
    p.release(b)
    await asyncio.gather(*tasks)
    assert [t for t, _ in order] == [0, 1, 2, 3]  # first come, first served
    assert len(p.made) == 2 and p.idle == 2


async def test_broken_connection_frees_its_slot():
    p = counter_pool(maxsize=1)
    a = await p.acquire()
    w = asyncio.create_task(p.acquire())
    await asyncio.sleep(0)
    p.release(a, broken=True)
    b = await w
    assert a.closed and b is not a and p.opened == 2


async def test_closed_idle_connection_is_skipped():
    p = counter_pool(maxsize=2)
    a = await p.acquire()
    p.release(a)
    a.closed = True  # e.g. the server went away while it sat idle
    assert p.try_acquire() is None
    assert (await p.acquire()) is not a


async def test_idle_expiry_and_sweeper():
    p = counter_pool(maxsize=3, idle_timeout=0.05)
    conns = [await p.acquire() for _ in range(3)]
    for c in conns:
        p.release(c)
    assert p.idle == 3
    await asyncio.sleep(0.15)
    assert p.idle == 0 and all(c.closed for c in conns)


async def test_connect_failure_wakes_a_waiter():
    calls = 0

    async def flaky():
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.01)
            raise ConnectionRefusedError("nope")
        return Conn(calls)
    p = Pool(flaky, maxsize=1)
    first = asyncio.create_task(p.acquire())
    second = asyncio.create_task(p.acquire())
    with pytest.raises(ConnectionRefusedError):
        await first
    c = await asyncio.wait_for(second, 1)
    assert c.n == 2 and p.size == 1


async def test_cancelled_waiter_does_not_leak():
    p = counter_pool(maxsize=1)
    a = await p.acquire()
    w = asyncio.create_task(p.acquire())
    await asyncio.sleep(0)
    w.cancel()
    with pytest.raises(asyncio.CancelledError):
        await w
    p.release(a)
    assert p.idle == 1 and p.busy == 0


async def test_close_and_limits():
    p = counter_pool(maxsize=1)
    a = await p.acquire()
    w = asyncio.create_task(p.acquire())
    await asyncio.sleep(0)
    await p.close()
    with pytest.raises(PoolClosed):
        await w
    p.release(a)
    assert a.closed
    with pytest.raises(ValueError):
        Pool(lambda: None, maxsize=0)
    with pytest.raises(ValueError):
        Pool(lambda: None, idle_timeout=0)


def test_pools_are_per_loop():
    async def grab():
        return get_pool(("k",), lambda: counter_pool())
    p1 = asyncio.run(grab())
    p2 = asyncio.run(grab())
    assert p1 is not p2

    async def same():
        return get_pool(("k",), lambda: counter_pool()) is get_pool(("k",), lambda: counter_pool())
    assert asyncio.run(same())

    async def cleanup():
        get_pool(("k",), lambda: counter_pool())
        await poolmod.close_all()
        return poolmod.pools_of_loop()
    assert asyncio.run(cleanup()) == {}
