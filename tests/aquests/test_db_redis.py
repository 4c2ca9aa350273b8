"""Redis with our RESP2 client, against a real redis-server."""
from __future__ import annotations

import asyncio
import time

import pytest

import aquests
from aquests import codes
from aquests.dbapi.resp import (DEFAULT_MAX_REPLY_ITEMS, NOT_READY, ProtocolError, ReplyError, ReplyTooLarge,
                                RespReader, encode_command)
from tests.support import services
from tests.support.net import free_port

pytestmark = pytest.mark.usefixtures("close_pools")


# -- the RESP reader, sans-IO

def test_encode_command():
    assert encode_command(["SET", "k", b"v\r\n", 12, 1.5]) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n$3\r\n1.5\r\n")
    with pytest.raises(TypeError, match="boolean"):
        encode_command(["SET", "k", True])
    with pytest.raises(TypeError, match="dict"):
        encode_command(["SET", "k", {}])
    with pytest.raises(ValueError):
        encode_command([])


def test_reader_handles_every_type_and_any_split():
    wire = (b"+OK\r\n-ERR wrong\r\n:42\r\n$5\r\nhel\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
            b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n")
    expected = ["OK", "ERR wrong", 42, b"hel\r\n", None, None, [], [1, [b"a", None], "x"]]
    for step in (1, 2, 3, 7, len(wire)):
        reader, got = RespReader(), []
        for i in range(0, len(wire), step):
            reader.feed(wire[i:i + step])
            while (reply := reader.get()) is not NOT_READY:
                got.append(reply)
        assert isinstance(got[1], ReplyError) and got[1].kind == "ERR"
        got[1] = str(got[1])
        assert got == expected


@pytest.mark.parametrize("wire, match", [
    (b"?what\r\n", "unknown RESP type"),
    (b":12x\r\n", "bad integer"),
    (b"$3\r\nabcd\r\n", "CRLF"),
    (b"$999999999999\r\n", "limit"),
    (b"$-5\r\n", "only -1"),
    (b"*-2\r\n", "only -1"),
    (b"+" + b"x" * 70000, "too long"),
])
def test_reader_rejects_garbage(wire, match):
    reader = RespReader()
    reader.feed(wire)
    with pytest.raises(ProtocolError, match=match):
        reader.get()


def test_reply_limits_refuse_oversized_headers_at_once():
    """An array header declaring 2**31-1 items, or a bulk header over the byte limit, fails as soon
    as the header is read: nothing waits for (or buffers) the items or bytes it announces."""
    reader = RespReader()
    reader.feed(b"*2147483647\r\n")
    with pytest.raises(ReplyTooLarge, match=r"exceeded the limit.*max_reply_items"):
        reader.get()
    reader = RespReader(max_size=1000)
    reader.feed(b"$1001\r\n")
    with pytest.raises(ReplyTooLarge, match=r"exceeded the limit.*1001 bytes.*max_reply_size"):
        reader.get()
    nested = RespReader(max_items=10)  # elements of nested arrays count too
    nested.feed(b"*2\r\n*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n*6\r\n")
    with pytest.raises(ReplyTooLarge, match="more than 10 array elements"):
        nested.get()
    assert DEFAULT_MAX_REPLY_ITEMS < 2 ** 31 - 1


def test_reply_of_endless_tiny_items_is_bounded_by_bytes():
    """``*<n>`` then ``:1`` after ``:1``: the reply fails once its bytes pass ``max_size``, whether
    it arrives in small reads or in one piece; replies within the limits are untouched."""
    limit = 10_000
    reader = RespReader(max_size=limit)
    reader.feed(b"*1000000\r\n")
    fed = 0
    with pytest.raises(ReplyTooLarge, match="more than 10000 bytes"):
        while fed < 10 * limit:
            reader.feed(b":1\r\n" * 1000)
            fed += 4000
            assert reader.get() is NOT_READY
    assert fed <= limit + 4000
    whole = b"*3000\r\n" + b":1\r\n" * 3000  # 12 007 bytes, complete in one read
    reader = RespReader(max_size=limit)
    reader.feed(whole)
    with pytest.raises(ReplyTooLarge):
        reader.get()
    reader = RespReader(max_size=len(whole), max_items=3000)
    for _ in range(3):  # the limits are per reply, not per connection
        reader.feed(whole)
        assert reader.get() == [1] * 3000


# -- against redis-server

def make(redis_server, **kw):
    return aquests.aio.redis(redis_server.server, **kw)


async def test_commands_by_attribute(redis_server):
    r = make(redis_server)
    assert (await r.set("aq:k", "v")).data == "OK"
    got = await r.get("aq:k")
    assert got.ok and got.data == b"v" and got.method == "GET"
    assert (await r.get("aq:missing")).data is None
    assert (await r.delete("aq:n")).ok
    assert [(await r.incr("aq:n")).data for _ in range(3)] == [1, 2, 3]
    await r.rpush("aq:l", "a", "b", 3)
    assert (await r.lrange("aq:l", 0, -1)).data == [b"a", b"b", b"3"]
    assert (await r.execute("EXISTS", "aq:k")).data == 1
    dec = make(redis_server, decode_responses=True)
    assert (await dec.lrange("aq:l", 0, -1)).data == ["a", "b", "3"]


async def test_error_reply_is_a_db_error(redis_server):
    r = make(redis_server, pool_size=1)
    await r.set("aq:str", "x")
    res = await r.lpush("aq:str", "y")
    assert res.status_code == codes.DB_ERROR and res.expt_class is ReplyError
    assert res.expt_str.startswith("WRONGTYPE") and res.data is None
    bad = await r.nosuchcommand("x")
    assert bad.status_code == codes.DB_ERROR and "unknown command" in bad.expt_str
    assert (await r.get("aq:str")).data == b"x"  # same connection, still in step
    assert r.pool.opened == 1


async def test_pipelining(redis_server):
    r = make(redis_server)
    res = await r.pipeline([("SET", "aq:p", 1), ("INCR", "aq:p"), ("INCRBY", "aq:p", 5), ("GET", "aq:p")])
    assert res.ok and res.data == ["OK", 2, 7, b"7"]
    res = await r.pipeline([("SET", "aq:p", "x"), ("INCR", "aq:p"), ("GET", "aq:p")])
    assert res.status_code == codes.DB_ERROR
    assert res.data[0] == "OK" and isinstance(res.data[1], ReplyError) and res.data[2] == b"x"
    big = await r.pipeline([("INCR", "aq:cnt")] * 500)
    assert big.ok and len(big.data) == 500 and big.data[-1] - big.data[0] == 499
    assert (await r.pipeline([("PING",)])).data == ["PONG"]
    with pytest.raises(ValueError):
        await r.pipeline([])


async def test_large_values_cross_many_reads(redis_server):
    r = make(redis_server)
    blob = bytes(range(256)) * 4096  # 1 MiB with CR/LF bytes inside
    assert (await r.set("aq:blob", blob)).ok
    assert (await r.get("aq:blob")).data == blob


async def test_refused_connection():
    r = aquests.aio.redis(f"127.0.0.1:{free_port()}", timeout=2)
    res = await r.get("x")
    assert res.status_code == codes.CONNECTION_REFUSED


async def test_timeout_and_recovery(redis_server):
    r = make(redis_server, pool_size=1)
    t0 = time.monotonic()
    res = await r.blpop("aq:never", 5, timeout=0.3)
    assert res.status_code == codes.TIMEOUT and time.monotonic() - t0 < 2
    assert (await r.ping()).data == "PONG"  # a fresh connection, not the one owed a late reply
    assert r.pool.opened == 2


async def test_concurrency_one_command_per_connection(redis_server):
    r = make(redis_server, pool_size=4)
    res = await asyncio.gather(*(r.incr("aq:c4") for _ in range(200)))
    assert sorted(x.data for x in res)[-1] - sorted(x.data for x in res)[0] == 199
    assert r.pool.opened <= 4
    clients = await r.client("list")
    assert clients.ok


async def test_auth_and_database_selection():
    with services.redis(password="pw") as srv:
        good = aquests.aio.redis(srv.server, 2, "pw")
        assert (await good.set("k", "in-db-2")).ok
        assert (await aquests.aio.redis(srv.server, 0, "pw").get("k")).data is None
        assert (await aquests.aio.redis(srv.server, 2, ("default", "pw")).get("k")).data == b"in-db-2"
        bad = await aquests.aio.redis(srv.server, 0, "nope").get("k")
        assert bad.status_code == codes.DB_ERROR and "WRONGPASS" in bad.expt_str
        none = await aquests.aio.redis(srv.server).get("k")
        assert none.status_code == codes.DB_ERROR and "NOAUTH" in none.expt_str
    with pytest.raises(ValueError, match="number"):
        aquests.aio.redis("127.0.0.1", "db-name")


async def test_server_killed_then_pool_recovers(redis_server):
    r = make(redis_server, pool_size=3)
    await asyncio.gather(*(r.ping() for _ in range(3)))
    try:
        redis_server.kill()
        res = await r.ping()
        assert res.status_code in (codes.CONNECTION_CLOSED, codes.CONNECTION_REFUSED), res.reason
    finally:
        redis_server.restart()
    assert (await r.ping()).data == "PONG"
    assert all(x.ok for x in await asyncio.gather(*(r.ping() for _ in range(5))))


def test_fetchall_path(redis_server):
    got = []
    aquests.configure(workers=3, callback=got.append)
    stub = aquests.redis(redis_server.server, meta={"who": "me"})
    stub.set("aq:f", "1")
    stub.pipeline([("INCR", "aq:f"), ("INCR", "aq:f")])
    with pytest.raises(TypeError):
        stub.set("aq:f", object())
    aquests.fetchall()
    assert {x.method for x in got} == {"SET", "PIPELINE"}
    assert all(x.ok and x.meta["who"] == "me" for x in got)


async def test_stub_awaitable_in_loop(redis_server):
    res = await aquests.redis(redis_server.server).echo("hi")
    assert res.data == b"hi"


async def test_commands_that_would_spoil_a_pooled_connection_are_refused(redis_server):
    r = make(redis_server)
    for name in ("select", "subscribe", "monitor", "auth"):
        with pytest.raises(ValueError, match=name.upper()):
            await getattr(r, name)("x")
    with pytest.raises(ValueError, match="SELECT"):
        aquests.redis(redis_server.server).execute("SELECT", 1)
    multi = await r.pipeline([("MULTI",), ("SET", "aq:m", 1), ("INCR", "aq:m"), ("EXEC",)])
    assert multi.data == ["OK", "QUEUED", "QUEUED", ["OK", 2]]


async def test_malformed_and_cut_replies_drop_the_connection():
    """A peer that answers garbage, then one that hangs up mid-reply, then a good answer."""
    answers = [b"?garbage\r\n", b"$10\r\nabc", b"+PONG\r\n"]
    conns = 0

    async def handle(reader, writer):  # one answer per connection, then hang up
        nonlocal conns
        conns += 1
        if await reader.read(1024):
            writer.write(answers.pop(0))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        r = aquests.aio.redis(f"127.0.0.1:{port}", pool_size=1, timeout=3)
        bad = await r.ping()
        assert bad.status_code == codes.PROTOCOL_ERROR and "unknown RESP type" in bad.reason
        cut = await r.ping()
        assert cut.status_code == codes.CONNECTION_CLOSED, cut.reason
        good = await r.ping()
        assert good.ok and good.data == "PONG"
        assert conns == 3 and r.pool.opened == 3
    finally:
        server.close()
        await server.wait_closed()


async def test_reply_limits_against_redis(redis_server):
    r = make(redis_server, pool_size=1, max_reply_size=1000, max_reply_items=100)
    assert (await r.set("aq:limit", b"v" * 2000)).ok
    assert (await r.delete("aq:limit-l")).ok
    assert (await r.rpush("aq:limit-l", *range(150))).data == 150
    big = await r.get("aq:limit")
    assert big.status_code == codes.PROTOCOL_ERROR and "exceeded the limit" in big.reason, big.reason
    many = await r.lrange("aq:limit-l", 0, -1)
    assert many.status_code == codes.PROTOCOL_ERROR and "max_reply_items" in many.reason, many.reason
    assert (await r.lrange("aq:limit-l", 0, 99)).data[-1] == b"99"  # within both limits
    assert (await r.ping()).data == "PONG"
    assert r.pool.opened == 3  # each failed call dropped its connection
    with pytest.raises(ValueError, match="max_reply_size"):
        make(redis_server, max_reply_size=0)
    with pytest.raises(ValueError, match="max_reply_items"):
        make(redis_server, max_reply_items=1.5)


@pytest.mark.parametrize("header, options, limit", [
    (b"*2147483647\r\n", {}, "max_reply_items"),  # refused by default, at the header
    (b"*1000000\r\n", {"max_reply_size": 256 * 1024}, "max_reply_size"),  # fails after 256 KiB
], ids=["items", "bytes"])
async def test_endless_reply_fails_fast_and_other_calls_keep_working(header, options, limit):
    """A peer answering LRANGE with an array header and ``:1`` forever (and PING with +PONG): the
    LRANGE fails naming the limit well before its timeout, its connection is closed, and a PING in
    flight meanwhile on another pooled connection, and the calls after, are answered."""
    flooding = asyncio.Event()
    hung_up = asyncio.Event()

    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                if b"LRANGE" in data:
                    writer.write(header)
                    flooding.set()
                    while True:
                        writer.write(b":1\r\n" * 16384)
                        await writer.drain()
                else:
                    writer.write(b"+PONG\r\n" * data.count(b"PING"))
                    await writer.drain()
        except (ConnectionError, OSError):
            hung_up.set()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        r = aquests.aio.redis(f"127.0.0.1:{port}", pool_size=2, timeout=5, **options)
        started = time.monotonic()

        async def ping_while_flooding():
            await flooding.wait()
            return await r.ping()

        flood, ping = await asyncio.gather(r.lrange("k", 0, -1), ping_while_flooding())
        assert time.monotonic() - started < 2
        assert flood.status_code == codes.PROTOCOL_ERROR, flood.reason
        assert "exceeded the limit" in flood.reason and limit in flood.reason
        assert ping.ok and ping.data == "PONG"
        await asyncio.wait_for(hung_up.wait(), 2)  # the flooded connection was closed
        assert [(await r.ping()).data for _ in range(3)] == ["PONG"] * 3
        assert r.pool.opened == 2 and r.pool.idle == 1
    finally:
        server.close()
        await server.wait_closed()
