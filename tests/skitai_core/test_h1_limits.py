"""Limits and bad input over raw sockets: every smuggling shape is a 4xx with a closed connection, limits
answer 413/414/431, and other clients are unaffected."""
from __future__ import annotations

import socket
import time

import pytest
import requests

from skitai.http.txn import ltxnid_from, txn_ids
from tests.support.server import ServerThread, parse_responses, raw_request

BODY_SEEN: list[bytes] = []


async def dispatch(exchange):
    data = await exchange.request.body.aread()
    BODY_SEEN.append(data)
    exchange.respond(200, [("Content-Type", "text/plain")], b"ok:%d" % len(data))


@pytest.fixture(scope="module")
def srv():
    with ServerThread(dispatch, max_request_line=1024, max_header_size=4096, max_headers=20,
                      max_body_size=10_000) as s:
        yield s


def assert_rejected(data: bytes, status: int) -> None:
    responses = parse_responses(data)
    assert responses, data
    last = responses[-1]
    assert last.status == status, data[:300]
    assert last.headers.get("connection") == "close"
    assert last.headers["content-type"].startswith("text/html")


def closed_after(data: bytes) -> None:
    """The server sent its answer and closed: nothing after the error page."""
    assert data.rstrip().endswith(b"</html>")


H = b"Host: x\r\n"
SMUGGLING = {
    "cl_and_te": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "duplicate_cl_same": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate_cl_differing": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    "cl_list": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc",
    "cl_negative": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -3\r\n\r\nabc",
    "cl_plus": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc",
    "cl_hex": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc",
    "te_gzip": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc",
    "te_chunked_not_last": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te_gzip_chunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_twice": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_xchunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te_space_before_colon": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "te_on_http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad_chunk_size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "negative_chunk_size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
    "overflow_chunk_size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"fffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk_longer_than_size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    "chunk_bare_lf": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
    "bare_lf_request_line": b"GET / HTTP/1.1\n" + H + b"\r\n",
    "bare_lf_header": b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "bare_cr_request_line": b"GET / HTTP/1.1\r" + H + b"\r\n",
    "bare_cr_header": b"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
    "obs_fold_space": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n",
    "obs_fold_tab": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n\tc\r\n\r\n",
    "ctl_in_value": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x01c\r\n\r\n",
    "nul_in_value": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n",
    "del_in_value": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x7fc\r\n\r\n",
    "ctl_in_name": b"GET / HTTP/1.1\r\n" + H + b"X\x01A: b\r\n\r\n",
    "empty_header_name": b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n",
    "ctl_in_target": b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n",
    "space_in_target": b"GET /a b HTTP/1.1\r\n" + H + b"\r\n",
    "invalid_method_chars": b"G@T / HTTP/1.1\r\n" + H + b"\r\n",
    "lowercase_method": b"get / HTTP/1.1\r\n" + H + b"\r\n",
    "unknown_method": b"FOO / HTTP/1.1\r\n" + H + b"\r\n",
    "bad_version": b"GET / HTTP/1.x\r\n" + H + b"\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "no_host_http11": b"GET / HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_bad_request_is_400_and_closed(srv, name):
    BODY_SEEN.clear()
    data = raw_request(srv.port, SMUGGLING[name] + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_rejected(data, 400)
    closed_after(data)
    assert b"smuggled" not in data
    assert not any(b"smuggled" in b for b in BODY_SEEN)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2"])
def test_unsupported_version(srv, version):
    data = raw_request(srv.port, b"GET / " + version + b"\r\nHost: x\r\n\r\n")
    assert parse_responses(data)[-1].status in (400, 505)


def test_http09_request_is_refused(srv):
    data = raw_request(srv.port, b"GET /\r\n\r\n")
    assert parse_responses(data)[-1].status == 505


def test_request_line_too_long_is_414(srv):
    data = raw_request(srv.port, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_rejected(data, 414)


def test_request_line_too_long_streamed_slowly_is_414(srv):
    data = raw_request(srv.port, [b"GET /" + b"a" * 600, b"b" * 600, b" HTTP/1.1\r\nHost: x\r\n\r\n"], pause=0.05)
    assert_rejected(data, 414)


def test_headers_too_large_is_431(srv):
    data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    assert_rejected(data, 431)


def test_one_endless_header_is_431(srv):
    # never completes a header line: the raw byte count catches it
    data = raw_request(srv.port, [b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "] + [b"a" * 4000] * 5, pause=0.02)
    assert_rejected(data, 431)


def test_too_many_headers_is_431(srv):
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
    data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
    assert_rejected(data, 431)


def test_body_over_limit_by_content_length_is_413(srv):
    data = raw_request(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10001\r\n\r\n")
    assert_rejected(data, 413)


def test_chunked_body_over_limit_is_413_while_streaming(srv):
    chunks = [b"1000\r\n" + b"a" * 4096 + b"\r\n"] * 4
    data = raw_request(srv.port, [b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", *chunks],
                       pause=0.02)
    assert_rejected(data, 413)


def test_body_at_limit_is_fine(srv):
    r = requests.post(srv.url + "/", data=b"a" * 10_000)
    assert r.status_code == 200 and r.text == "ok:10000"


def test_unknown_expectation_is_417(srv):
    data = raw_request(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: teapot\r\n\r\na")
    assert_rejected(data, 417)


def test_answers_before_a_bad_request_still_come_in_order(srv):
    data = raw_request(srv.port, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n")
    statuses = [r.status for r in parse_responses(data)]
    assert statuses == [200, 200, 400]


def test_bad_clients_do_not_affect_others(srv):
    bad = []
    try:
        for payload in list(SMUGGLING.values())[:10]:
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(payload)
            bad.append(s)
        with requests.Session() as sess:
            for _ in range(5):
                assert sess.get(srv.url + "/", timeout=2).text == "ok:0"
    finally:
        for s in bad:
            s.close()


def test_server_closes_after_error_even_if_client_keeps_sending(srv):
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n")
        s.settimeout(5)
        got = b""
        t0 = time.monotonic()
        try:
            while True:
                s.sendall(b"junk" * 100)
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                time.sleep(0.05)
        except OSError:
            pass
        assert got.startswith(b"HTTP/1.1 400")
        assert time.monotonic() - t0 < 8          # closed after the 2 s linger, not the 30 s timeout


def test_txn_ids_rules():
    assert txn_ids(None, None, 3, 8) == ("GTID-C3-R8", 1000)
    assert txn_ids("GTID-C1-R2", "1001", 3, 8) == ("GTID-C1-R2", 2001)
    assert txn_ids("GTID-C1-R2", None, 3, 8) == ("GTID-C1-R2", 1000)
    assert ltxnid_from("junk") == 1000 and ltxnid_from("9" * 50) == 1000 and ltxnid_from("-5") == 1000


def test_many_pipelined_requests_split_anywhere_are_not_mistaken_for_a_big_head():
    with ServerThread(dispatch, max_header_size=2048, max_request_line=512) as srv:
        reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n" % (i, b"p" * 100) for i in range(400))
        data = raw_request(srv.port, [reqs[:30001], reqs[30001:]] + [b"GET /end HTTP/1.1\r\nHost: x\r\n"
                                                                       b"Connection: close\r\n\r\n"], pause=0.05)
    assert [r.status for r in parse_responses(data)] == [200] * 401
