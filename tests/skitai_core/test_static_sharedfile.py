"""Large files stay open between requests; a descriptor is never closed under a send in flight."""
import asyncio
import os

import pytest

from skitai.handlers.sharedfile import SharedFile
from skitai.handlers.static import StaticHandler

from .static_support import BIG, Exchange, Request, call, make_site


@pytest.fixture
def site(tmp_path):
    return make_site(tmp_path)


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_views_and_retire(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    shared = SharedFile(os.open(path, os.O_RDONLY))
    a, b = shared.view(), shared.view()
    assert a.read(3) == b"012" and b.read(5) == b"01234"          # each view has its own position
    assert a.tell() == 3 and a.seek(8) == 8 and a.read() == b"89" and a.read() == b""
    assert b.seek(-2, os.SEEK_END) == 8 and b.read() == b"89" and b.seek(1, os.SEEK_SET) == 1
    with pytest.raises(ValueError):
        a.seek(-1)
    fd = shared.fd
    shared.retire()
    assert is_open(fd)                      # two views still use it
    a.close()
    a.close()                               # closing twice is harmless
    assert a.closed and is_open(fd)
    with pytest.raises(ValueError):
        a.fileno()
    with b:
        pass
    assert not is_open(fd) and shared.fd == -1
    shared.retire()                         # idempotent


def test_retire_without_users_closes_now(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    shared = SharedFile(os.open(path, os.O_RDONLY))
    fd = shared.fd
    shared.retire()
    assert not is_open(fd)


def test_big_file_kept_open_and_reused(site):
    h = StaticHandler(str(site), "/", None, None)
    assert call(h, "/big.bin").body == BIG
    shared = h.cache.get("/big.bin").shared
    assert shared is not None and is_open(shared.fd) and h.cache.nopen == 1
    assert call(h, "/big.bin", range="bytes=7-9").body == BIG[7:10]
    assert h.cache.get("/big.bin").shared is shared and shared.users == 0
    fd = shared.fd
    h.close()
    assert not is_open(fd) and h.cache.nopen == 0 and len(h.cache) == 0


def test_open_limit(site):
    (site / "big2.bin").write_bytes(BIG[::-1])
    h = StaticHandler(str(site), "/", None, None, cache_max_open=1)
    assert call(h, "/big.bin").body == BIG and call(h, "/big2.bin").body == BIG[::-1]
    assert h.cache.get("/big.bin").shared is not None and h.cache.get("/big2.bin").shared is None
    h0 = StaticHandler(str(site), "/", None, None, cache_max_open=0)
    assert call(h0, "/big.bin").body == BIG and h0.cache.get("/big.bin").shared is None


def test_replaced_while_sending(site):
    """The file is replaced while a send waits: the old descriptor lives until that send ends."""
    h = StaticHandler(str(site), "/", None, None, revalidate=0)
    call(h, "/big.bin")
    old = h.cache.get("/big.bin").shared
    gate = asyncio.Event()

    class SlowExchange(Exchange):
        async def sendfile(self, file, offset, count):
            await gate.wait()
            await super().sendfile(file, offset, count)

    async def scenario():
        slow = SlowExchange(Request("GET", "/big.bin", {}))
        task = asyncio.ensure_future(h(slow))
        await asyncio.sleep(0)
        assert old.users == 1
        (site / "new.tmp").write_bytes(b"x" * 300_000)          # still too big to keep in memory
        os.replace(site / "new.tmp", site / "big.bin")         # a new inode under the same name
        fresh = Exchange(Request("GET", "/big.bin", {}))
        await h(fresh)
        assert fresh.body == b"x" * 300_000 and h.cache.get("/big.bin").shared is not old
        assert old.retired and is_open(old.fd)                  # the waiting send still holds it
        gate.set()
        await task
        assert slow.body == BIG                                 # the old file, whole
        assert old.fd == -1 and h.cache.nopen == 1

    asyncio.run(scenario())


def test_truncated_in_place(site):
    h = StaticHandler(str(site), "/", None, None)
    assert call(h, "/big.bin").body == BIG
    with open(site / "big.bin", "r+b") as f:                   # same inode, new size
        f.truncate(300_000)
    ex = call(h, "/big.bin")
    assert ex.body == BIG[:300_000] and ex.header("content-length") == "300000"


def test_idle_files_get_closed(site):
    h = StaticHandler(str(site), "/", None, None)
    call(h, "/big.bin")
    shared = h.cache.get("/big.bin").shared
    fd = shared.fd
    h.cache.get("/big.bin").checked -= 120          # not requested for two minutes
    h._swept -= 60
    assert call(h, "/small.bin").status == 200      # any lookup may sweep
    assert not is_open(fd) and h.cache.get("/big.bin") is None and h.cache.nopen == 0
    assert call(h, "/big.bin").body == BIG          # and the file simply opens again
