"""StaticHandler logic through a recording Exchange (the socket tests run it behind the real server)."""
import os
import time

import pytest

from skitai.handlers.maxage import MaxAges
from skitai.handlers.static import StaticHandler

from .static_support import BIG, SMALL, call, make_site


@pytest.fixture
def site(tmp_path):
    return make_site(tmp_path)


@pytest.fixture
def handler(site):
    return StaticHandler(str(site), "/", MaxAges({"/": 300, "/js": 0, "/css": 60}), None)


def test_get_small_and_big(handler):
    ex = call(handler, "/small.bin")
    assert ex.status == 200 and ex.body == SMALL
    assert ex.header("content-length") == "4096" and ex.header("content-type") == "application/octet-stream"
    assert ex.header("etag").startswith('"1000-') and ex.header("last-modified").endswith(" GMT")
    assert ex.header("accept-ranges") == "bytes"
    ex = call(handler, "/big.bin")
    assert ex.status == 200 and ex.body == BIG and ex.header("content-length") == str(len(BIG))


def test_head_has_get_headers_and_no_body(handler):
    for name in ("/small.bin", "/big.bin"):
        get, head = call(handler, name), call(handler, name, "HEAD")
        assert head.status == 200 and head.body == b""
        assert dict(head.headers) == dict(get.headers)


def test_content_types(handler):
    assert call(handler, "/css/a.css").header("content-type") == "text/css; charset=utf-8"
    assert call(handler, "/js/app.js").header("content-type") == "text/javascript; charset=utf-8"
    assert call(handler, "/").header("content-type") == "text/html; charset=utf-8"


def test_max_age(handler):
    assert call(handler, "/small.bin").header("cache-control") == "max-age=300"
    assert call(handler, "/css/a.css").header("cache-control") == "max-age=60"
    assert call(handler, "/jsx/app.js").header("cache-control") == "max-age=300"
    js = call(handler, "/js/app.js")
    assert js.header("cache-control") is None and js.header("expires") is None
    expires = call(handler, "/small.bin").header("expires")
    from skitai.handlers.conditional import parse_http_date
    assert abs(parse_http_date(expires) - (time.time() + 300)) < 3


def test_index_and_redirects(handler):
    assert call(handler, "/").body == b"<h1>home</h1>"
    assert call(handler, "/docs/").body == b"docs"          # index.htm after index.html
    ex = call(handler, "/docs?a=1&b=2")
    assert ex.status == 301 and ex.header("location") == "/docs/?a=1&b=2"
    assert call(handler, "/docs").header("location") == "/docs/"
    assert call(handler, "/empty").status == 301
    assert call(handler, "/empty/").status == 404            # no directory listings
    assert call(handler, "/css/a.css/").status == 404


def test_not_found_and_refused(handler):
    for target in ("/nope", "/.env", "/%2eenv", "/leak.txt", "/../secret.txt", "/%2e%2e/secret.txt",
                   "/css/..%2f..%2fsecret.txt", "//etc/passwd", "/fifo.txt", "/%252e%252e/secret.txt"):
        assert call(handler, target).status == 404, target
    for target in ("/a%00.txt", "/..%5csecret.txt", "/x\\y", "/%c0%ae%c0%ae/secret.txt"):
        assert call(handler, target).status == 400, target
    assert call(handler, "/" + "a" * 300).status == 404                   # ENAMETOOLONG is just not found
    assert call(handler, "/a" * 2000).status == 404
    assert call(handler, "/.well-known/security.txt").body == b"contact"
    assert call(handler, "/ok.txt").body == b"body{}"         # a symlink inside the root is fine
    assert call(handler, "/caf%C3%A9.txt").body == b"cafe"


def test_methods(handler):
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        ex = call(handler, "/small.bin", method)
        assert ex.status == 405 and ex.header("allow") == "GET, HEAD"


@pytest.mark.parametrize("name", ["/small.bin", "/big.bin"])
def test_conditional(handler, name):
    first = call(handler, name)
    etag, lm = first.header("etag"), first.header("last-modified")
    ex = call(handler, name, if_none_match=etag)
    assert ex.status == 304 and ex.body == b"" and ex.header("etag") == etag
    assert ex.header("content-length") is None
    assert call(handler, name, if_modified_since=lm).status == 304
    assert call(handler, name, if_modified_since="Mon, 01 Jan 2001 00:00:00 GMT").status == 200
    assert call(handler, name, "HEAD", if_none_match=etag).status == 304
    assert call(handler, name, if_none_match='"nope"', if_modified_since=lm).status == 200
    assert call(handler, name, if_match='"nope"').status == 412


def test_newer_file_gets_200(site):
    handler = StaticHandler(str(site), "/", MaxAges(), None, revalidate=0)
    lm = call(handler, "/small.bin").header("last-modified")
    old = call(handler, "/small.bin").header("etag")
    later = time.time() + 5
    (site / "small.bin").write_bytes(b"y" * 10)
    os.utime(site / "small.bin", (later, later))
    ex = call(handler, "/small.bin", if_modified_since=lm, if_none_match=old)
    assert ex.status == 200 and ex.body == b"y" * 10 and ex.header("etag") != old


@pytest.mark.parametrize("name, data", [("/small.bin", SMALL), ("/big.bin", BIG)])
def test_ranges(handler, name, data):
    size = len(data)
    ex = call(handler, name, range="bytes=10-19")
    assert ex.status == 206 and ex.body == data[10:20]
    assert ex.header("content-range") == f"bytes 10-19/{size}" and ex.header("content-length") == "10"
    assert call(handler, name, range="bytes=-5").body == data[-5:]
    ex = call(handler, name, range=f"bytes={size}-")
    assert ex.status == 416 and ex.header("content-range") == f"bytes */{size}"
    ex = call(handler, name, range="bytes=0-1,10-11")
    assert ex.status == 200 and ex.body == data
    assert call(handler, name, "HEAD", range="bytes=0-1").status == 200       # Range is for GET only
    etag = ex.header("etag")
    assert call(handler, name, range="bytes=0-1", if_range=etag).status == 206
    assert call(handler, name, range="bytes=0-1", if_range='"old"').status == 200
    assert call(handler, name, range="bytes=oops").status == 200


def test_empty_file(handler):
    ex = call(handler, "/empty.txt")
    assert ex.status == 200 and ex.body == b"" and ex.header("content-length") == "0"
    assert call(handler, "/empty.txt", range="bytes=0-").status == 416


def test_mount_point_and_has(site):
    h = StaticHandler(str(site), "/v1/", {"/v1/css": 7}, None)
    assert h.mount_point == "/v1"
    assert call(h, "/v1/css/a.css").header("cache-control") == "max-age=7"
    assert call(h, "/v1").header("location") == "/v1/"
    assert call(h, "/v1/").body == b"<h1>home</h1>"
    assert h.has("/css/a.css") and h.has("/") and h.has("") and h.has("/docs") and h.has("/docs/")
    assert not h.has("/nope") and not h.has("/empty") and not h.has("/empty/") and not h.has("/.env")
    assert not h.has("/%00") and not h.has("/../secret.txt") and not h.has("/leak.txt")


def test_cache_follows_changes(site):
    h = StaticHandler(str(site), "/", None, None, revalidate=0)
    assert call(h, "/css/a.css").body == b"body{}"
    (site / "css" / "a.css").write_bytes(b"p{}")
    os.utime(site / "css" / "a.css", ns=(1, 1))
    assert call(h, "/css/a.css").body == b"p{}"
    os.remove(site / "css" / "a.css")
    assert call(h, "/css/a.css").status == 404
    (site / "big.bin").write_bytes(b"now small")
    assert call(h, "/big.bin").body == b"now small"


def test_revalidate_interval(site):
    h = StaticHandler(str(site), "/", None, None, revalidate=60)
    assert call(h, "/css/a.css").body == b"body{}"
    os.remove(site / "css" / "a.css")
    assert call(h, "/css/a.css").status == 200      # remembered for up to `revalidate` seconds
    h.cache.get("/css/a.css").checked -= 61
    assert call(h, "/css/a.css").status == 404


def test_cache_limits(site):
    h = StaticHandler(str(site), "/", None, None, cache_max_file=5000, cache_max_bytes=6000,
                      cache_max_entries=3)
    call(h, "/small.bin")
    call(h, "/big.bin")
    assert h.cache.get("/small.bin").body == SMALL and h.cache.get("/big.bin").body is None
    call(h, "/index.html")
    call(h, "/css/a.css")
    assert len(h.cache) == 3 and h.cache.get("/small.bin") is None        # the oldest entry went
    call(h, "/small.bin")
    call(h, "/js/app.js")
    assert h.cache.nbytes <= 6000
    assert call(h, "/small.bin").body == SMALL


def test_constructor_errors(site, tmp_path):
    with pytest.raises(ValueError):
        StaticHandler(str(tmp_path / "missing"), "/", None, None)
    with pytest.raises(ValueError):
        StaticHandler(str(site / "index.html"), "/", None, None)
    with pytest.raises(TypeError):
        StaticHandler(str(site), "/", None, None, cache_size=1)
    with pytest.raises(ValueError):
        StaticHandler(str(site), "/", None, None, revalidate=-1)
    with pytest.raises(ValueError):
        StaticHandler(str(site), "/", None, None, cache_max_entries=0)


def test_settings_from_config(site):
    class Config:
        max_ages = {"/": 42}
        extra = {"static": {"index_files": ["index.htm"], "cache_max_file": 0}}
    h = StaticHandler(str(site), "/", None, Config())
    assert call(h, "/").status == 404                       # only index.htm counts now
    ex = call(h, "/docs/")
    assert ex.body == b"docs" and ex.header("cache-control") == "max-age=42"
    assert h.cache.get("/docs/").body is None


def test_retargeted_symlink_is_followed(site, tmp_path):
    (site / "link.txt").symlink_to(site / "css" / "a.css")
    h = StaticHandler(str(site), "/", None, None, revalidate=0)
    assert call(h, "/link.txt").body == b"body{}"
    os.remove(site / "link.txt")
    (site / "link.txt").symlink_to(site / "js" / "app.js")
    assert call(h, "/link.txt").body == b"1;"
    os.remove(site / "link.txt")
    (site / "link.txt").symlink_to(tmp_path / "secret.txt")          # now leading outside: gone
    assert call(h, "/link.txt").status == 404
    assert h.cache.get("/link.txt") is None
