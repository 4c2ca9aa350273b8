"""The reverse proxy's header and target rules (``skitai.handlers.forwarding``), without sockets."""
from __future__ import annotations

import pytest

from skitai.handlers import forwarding as fw


@pytest.mark.parametrize(("point", "path", "query", "target"), [
    ("/search", "/search/x", "", "/x"),
    ("/search", "/search/", "q=1", "/?q=1"),
    ("/search", "/search", "", "/"),
    ("/a/b", "/a/b/c%20d/e", "k=a%2Fb&z", "/c%20d/e?k=a%2Fb&z"),
    ("/", "/x/y", "q", "/x/y?q"),
])
def test_member_target(point, path, query, target):
    assert fw.member_target(point, path, query) == target


def test_request_headers_rules():
    items = [("host", "front.example:8080"), ("connection", "keep-alive, X-Secret"), ("x-secret", "1"),
             ("keep-alive", "300"), ("te", "trailers"), ("trailer", "x"), ("transfer-encoding", "chunked"),
             ("upgrade", "h2c"), ("http2-settings", "AAA"), ("proxy-authorization", "Basic x"),
             ("proxy-anything", "1"), ("expect", "100-continue"), ("content-length", "5"),
             ("cookie", "a=1"), ("cookie", "b=2"), ("accept", "text/html"), ("accept", "*/*"),
             ("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"), ("x-forwarded-proto", "ftp"),
             ("x-gtxn-id", "old"), ("x-ltxn-id", "5"), ("via", "1.0 edge")]
    out = fw.request_headers(items, client_ip="9.9.9.9", scheme="https", gtxnid="G-1", ltxnid=2001,
                             host="10.0.0.1:80", forwarded_host="front.example:8080", version="2")
    assert out == {"cookie": "a=1; b=2", "accept": "text/html, */*", "host": "10.0.0.1:80", "via": "1.0 edge, 2 skitai",
                   "x-forwarded-for": "1.1.1.1, 2.2.2.2, 9.9.9.9", "x-forwarded-proto": "https",
                   "x-forwarded-host": "front.example:8080", "x-gtxn-id": "G-1", "x-ltxn-id": "2002"}


def test_forwarding_headers_the_client_names_in_connection_are_dropped():
    # "Connection: X-Forwarded-For" makes the client's value hop-by-hop: only our own entry goes on
    items = [("connection", "close, X-Forwarded-For, Via"), ("x-forwarded-for", "6.6.6.6"), ("via", "1.1 fake")]
    out = fw.request_headers(items, client_ip="9.9.9.9", scheme="http", gtxnid="G", ltxnid=1, host="m:80",
                             forwarded_host="")
    assert out["x-forwarded-for"] == "9.9.9.9" and out["via"] == "1.1 skitai"


def test_response_headers_rules():
    items = [("Content-Type", "text/plain"), ("Connection", "close, X-Hop"), ("X-Hop", "1"),
             ("Keep-Alive", "5"), ("Transfer-Encoding", "chunked"), ("Proxy-Authenticate", "Basic"),
             ("Date", "yesterday"), ("Server", "member"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
             ("Content-Length", "10")]
    assert fw.response_headers(items) == [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"),
                                          ("Set-Cookie", "b=2"), ("Content-Length", "10")]


def test_retry_and_failure_codes():
    assert fw.may_retry("GET", 730) and fw.may_retry("PUT", 736)
    assert fw.may_retry("POST", 732) and not fw.may_retry("POST", 730) and not fw.may_retry("PATCH", 736)
    assert fw.failure_status(730, False) == 504 and fw.failure_status(730, True) == 504
    assert fw.failure_status(732, False) == 502 and fw.failure_status(732, True) == 503


def test_no_forwarded_host_when_unknown():
    out = fw.request_headers([], client_ip="", scheme="http", gtxnid="G", ltxnid=1000, host="m:80",
                             forwarded_host="")
    assert out == {"host": "m:80", "via": "1.1 skitai", "x-forwarded-for": "", "x-forwarded-proto": "http",
                   "x-gtxn-id": "G", "x-ltxn-id": "1001"}
