"""max-age rules and content types."""
import pytest

from skitai.handlers.contenttype import content_type
from skitai.handlers.maxage import MaxAges


def test_spec_example():
    m = MaxAges({"/": 300, "/js": 0, "/images": 3600})
    assert m.lookup("/index.html") == 300
    assert m.lookup("/") == 300
    assert m.lookup("/js/app.js") == 0                # 0 under "/": no max-age at all
    assert m.header("/js/app.js") is None
    assert m.lookup("/js") == 0
    assert m.lookup("/jsx/app.js") == 300             # whole segments: /js does not cover /jsx
    assert m.lookup("/images/a/b.png") == 3600
    assert m.header("/images/a/b.png") == "max-age=3600"
    assert m.lookup("/imagesx.png") == 300


def test_no_root_rule_and_normalising():
    m = MaxAges({"css/": 60, "/a/b": 5})
    assert m.lookup("/css/x.css") == 60
    assert m.lookup("/x.css") == 0
    assert m.lookup("/a/b/c") == 5 and m.lookup("/a/bc") == 0 and m.lookup("/a") == 0
    assert not MaxAges() and MaxAges({}).lookup("/x") == 0 and MaxAges({"/": 1})


@pytest.mark.parametrize("rules, exc", [({"/": -1}, ValueError), ({"/": "60"}, TypeError),
                                        ({"/": 1.5}, TypeError), ({"/": True}, TypeError), ({1: 5}, TypeError)])
def test_bad_rules(rules, exc):
    with pytest.raises(exc):
        MaxAges(rules)


@pytest.mark.parametrize("name, ctype", [
    ("a.js", "text/javascript; charset=utf-8"), ("a.mjs", "text/javascript; charset=utf-8"),
    ("a.json", "application/json; charset=utf-8"), ("a.svg", "image/svg+xml; charset=utf-8"),
    ("a.wasm", "application/wasm"), ("a.woff2", "font/woff2"), ("a.html", "text/html; charset=utf-8"),
    ("A.CSS", "text/css; charset=utf-8"), ("a.png", "image/png"), ("a.txt", "text/plain; charset=utf-8"),
    ("a.unknownext", "application/octet-stream"), ("Makefile", "application/octet-stream"),
    ("a.tar.gz", "application/gzip"), ("/x/y/index.htm", "text/html; charset=utf-8"),
])
def test_content_type(name, ctype):
    assert content_type(name) == ctype
