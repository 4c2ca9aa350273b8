"""Virtual hosts and mount points (SK-02, SK-27, SK-31) decided by the router, without sockets.

The socket-level behaviour of the same rules is in tests/integration/test_examples_*.py.
"""
from types import SimpleNamespace

import pytest

from skitai.router import HOST_CACHE_MAX, Router


class FakeExchange:
    def __init__(self, path, host="", method="GET", query=""):
        self.request = SimpleNamespace(path=path, host=host, method=method, query=query)
        self.answer = None

    def error(self, status, detail=""):
        self.answer = (status, detail)

    def respond(self, status, headers, body=b"", reason=None):
        self.answer = (status, dict(headers))


class Tag:
    """A handler that answers with its own name (and the rest of the path it would see)."""

    def __init__(self, name, files=()):
        self.name, self.files = name, set(files)

    def has(self, rest):
        return rest in self.files

    def __call__(self, exchange):
        exchange.answer = self.name


def ask(router, path, **kw):
    ex = FakeExchange(path, **kw)
    router(ex)
    return ex.answer


@pytest.fixture
def router():
    r = Router()
    r.add("default", "/", Tag("root"))
    r.add("default", "/t1", Tag("t1"))
    r.add("default", "/t1/deep", Tag("deep"))
    r.add("default", "/v1", Tag("v1-app"))
    r.add("default", "/v1", Tag("v1-static", {"/style.css"}), static=True)
    r.add("default", "/files", Tag("files-static"), static=True)
    return r


@pytest.mark.parametrize("path, who", [
    ("/", "root"), ("/x", "root"), ("/t1/", "t1"), ("/t1/a/b", "t1"), ("/t1x", "root"), ("/t1x/", "root"),
    ("/t1/deep/", "deep"), ("/t1/deeper", "t1"), ("/t1/deep/x", "deep"),
])
def test_longest_prefix_on_whole_segments(router, path, who):
    assert ask(router, path) == who


def test_exact_app_point_redirects_to_its_slash_form(router):
    assert ask(router, "/t1") == (301, {"Location": "/t1/"})
    assert ask(router, "/t1", query="a=1&b=2") == (301, {"Location": "/t1/?a=1&b=2"})


def test_static_and_app_at_one_point(router):
    assert ask(router, "/v1/style.css") == "v1-static"
    assert ask(router, "/v1/missing.css") == "v1-app"
    assert ask(router, "/v1/style.css", method="POST") == "v1-app"
    assert ask(router, "/v1/style.css", method="HEAD") == "v1-static"


def test_static_alone_answers_itself(router):
    """Missing files and other methods are the static handler's (404/405), never a shorter mount's."""
    assert ask(router, "/files/nothing") == "files-static"
    assert ask(router, "/files/x", method="DELETE") == "files-static"
    assert ask(router, "/files") == "files-static"          # it redirects a directory itself


def test_no_root_mount_is_404():
    r = Router()
    r.add("default", "/api", Tag("api"))
    assert ask(r, "/other")[0] == 404
    assert ask(r, "/api/x") == "api"


def test_bad_target_is_400(router):
    assert ask(router, "*")[0] == 400


@pytest.fixture
def vhosts():
    r = Router()
    r.add("www.site1.com", "/", Tag("site1"))
    r.add("www.site2.com site2.org", "/", Tag("site2"))
    r.add(".site3.com", "/", Tag("site3"))
    r.add(".api.site3.com", "/", Tag("api3"))
    return r


@pytest.mark.parametrize("host, who", [
    ("www.site1.com", "site1"), ("www.site2.com", "site2"), ("site2.org", "site2"),
    ("a.site3.com", "site3"), ("site3.com", "site3"), ("x.api.site3.com", "api3"), ("api.site3.com", "api3"),
    ("www.site1.com.", "site1"),
])
def test_virtual_host_rules(vhosts, host, who):
    assert ask(vhosts, "/", host=host) == who


def test_unknown_host_without_default_is_404(vhosts):
    assert ask(vhosts, "/", host="evil.com")[0] == 404
    assert ask(vhosts, "/", host="notsite3.com")[0] == 404
    assert ask(vhosts, "/", host="")[0] == 404


def test_default_and_star_catch_the_rest(vhosts):
    vhosts.add("*", "/", Tag("fallback"))
    assert ask(vhosts, "/", host="evil.com") == "fallback"
    assert ask(vhosts, "/", host="www.site1.com") == "site1"


def test_host_cache_is_bounded(vhosts):
    for i in range(HOST_CACHE_MAX + 10):
        ask(vhosts, "/", host=f"h{i}.example")
    assert len(vhosts._cache) <= HOST_CACHE_MAX


def test_collision_warns_and_the_later_mount_wins(caplog):
    r = Router()
    r.add("default", "/a", Tag("first"))
    r.add("default", "/a/", Tag("second"))
    assert ask(r, "/a/") == "second"
    assert "mount collision at /a" in caplog.text


def test_empty_host_rule_is_refused():
    with pytest.raises(ValueError):
        Router().add("  ", "/", Tag("x"))
