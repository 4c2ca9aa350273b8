"""Redirects, Basic/Digest/Bearer auth and cookies against the stdlib test server."""
from __future__ import annotations


import aquests
from aquests import aio, codes

from .http_support import PASSWORD, USER


async def test_redirect_chain_is_followed_with_history(app):
    r = await aio.get(f"{app.url}/redirect", params={"n": 3})
    assert r.status_code == 200 and r.data["path"] == "/echo"
    assert [h.status_code for h in r.history] == [302, 302, 302]
    assert r.url == f"{app.url}/echo"


async def test_303_turns_post_into_get_and_307_keeps_it(app):
    r = await aio.post(f"{app.url}/redirect?code=303", {"a": 1})
    assert r.data["method"] == "GET" and r.data["len"] == 0
    r = await aio.post(f"{app.url}/redirect?code=307", {"a": 1})
    assert r.data["method"] == "POST" and r.data["body"] == '{"a": 1}'


async def test_redirects_off_and_limit(app):
    r = await aio.get(f"{app.url}/redirect", allow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/echo"
    async with aquests.Session(max_redirects=2) as s:
        r = await s.get(f"{app.url}/redirect", params={"n": 5})
    assert r.status_code == codes.REQUEST_FAILED and "more than 2 redirects" in r.reason


async def test_basic_auth(app):
    r = await aio.get(f"{app.url}/basic", auth=(USER, PASSWORD))
    assert r.status_code == 200 and r.content == b"basic ok"
    r = await aio.get(f"{app.url}/basic", auth=(USER, "wrong"))
    assert r.status_code == 401


async def test_digest_auth_after_challenge(app):
    r = await aio.get(f"{app.url}/digest", auth=(USER, PASSWORD))
    assert r.status_code == 200 and r.content == b"digest ok"
    assert [h.status_code for h in r.history] == [401]
    # digest-only: no Basic credentials go out before the challenge
    r = await aio.post(f"{app.url}/digest", {"x": 1}, auth=(USER, PASSWORD, "digest"))
    assert r.status_code == 200
    r = await aio.get(f"{app.url}/digest", auth=(USER, "bad"))
    assert r.status_code == 401 and len(r.history) == 1


async def test_bearer_token(app):
    r = await aio.get(f"{app.url}/bearer", headers={"Authorization": "Bearer tok123"})
    assert r.status_code == 200
    r = await aio.get(f"{app.url}/bearer", auth="tok123")
    assert r.status_code == 200


async def test_cookie_jar(app):
    async with aquests.Session(cookie=True) as s:
        r = await s.get(f"{app.url}/setcookie")
        assert r.cookies == {"sid": "abc123", "lang": "ko"}
        r = await s.get(f"{app.url}/echo")
        cookie = r.data["headers"]["cookie"]
        assert "sid=abc123" in cookie and "lang=ko" in cookie
        assert s.cookies == {"sid": "abc123", "lang": "ko"}
    async with aquests.Session() as s:  # no jar unless asked
        await s.get(f"{app.url}/setcookie")
        r = await s.get(f"{app.url}/echo")
        assert "cookie" not in r.data["headers"]


async def test_dns_cache_ttl_and_bound(monkeypatch):
    from aquests.http import dns
    dns._cache.clear()
    first = await dns.resolve("localhost", 80)
    assert ("localhost", 80) in dns._cache and await dns.resolve("localhost", 80) is first  # cached
    assert (await dns.resolve("127.0.0.1", 80))[0][4] == ("127.0.0.1", 80)  # literals skip the cache
    monkeypatch.setattr(dns, "TTL", -1.0)  # expired at once: looked up again
    dns._cache.clear()
    a = await dns.resolve("localhost", 80)
    assert await dns.resolve("localhost", 80) is not a
    monkeypatch.setattr(dns, "MAX_ENTRIES", 2)
    for port in (1, 2, 3):
        await dns.resolve("localhost", port)
    assert len(dns._cache) <= 2
