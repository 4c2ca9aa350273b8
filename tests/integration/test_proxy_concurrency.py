"""Many clients at once through a cluster mount: every answer belongs to its request, nothing is left in
flight. Also the aquests regression this found: a streamed response whose body came with its head must
not give its connection back to the pool before the response is built."""
from __future__ import annotations

import asyncio
import collections
import threading

import requests

from aquests.http.client import Client
from tests.integration.proxy_support import address, backends, front


def test_concurrent_clients_get_their_own_answers():
    with backends(2) as members, front([address(m) for m in members]) as f:
        errors: list = []
        ports: collections.Counter = collections.Counter()

        def client(n: int) -> None:
            with requests.Session() as s:
                for i in range(15):
                    try:
                        r = s.get(f"{f.url}/search/c{n}/r{i}", params={"n": n}, timeout=10)
                        d = r.json()
                        assert r.status_code == 200 and d["path"] == f"/c{n}/r{i}" and d["query"]["n"] == str(n)
                        ports[d["port"]] += 1
                    except Exception as e:  # noqa: BLE001 - collected for the assertion below
                        errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        status = f.cluster().status()
    assert not errors, errors[:3]
    assert sum(ports.values()) == 16 * 15 and len(ports) == 2
    assert all(m["inflight"] == 0 and m["failures"] == 0 for m in status["members"]), status


def test_aquests_streamed_responses_under_concurrency():
    async def main(url: str) -> collections.Counter:
        client = Client(timeout=5)
        seen: collections.Counter = collections.Counter()

        async def one(n: int) -> None:
            for i in range(20):
                r = await client.request("GET", f"{url}/s{n}-{i}", stream=True)
                body = await r.stream.read()
                seen[(r.status_code, f'"/s{n}-{i}"'.encode() in body)] += 1

        await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(16))), 30)
        return seen

    with backends(1) as (member,):
        seen = asyncio.run(main(member.url))
    assert seen == {(200, True): 16 * 20}, seen
