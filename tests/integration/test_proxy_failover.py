"""Reverse proxy mounts (SK-41, SK-42, SK-43): load spread, fail-over, dead members and the proxy's own
5xx answers, with real backends and refused ports."""
from __future__ import annotations

import collections
import hashlib
import socket
import time

import pytest
import requests

from skitai.loader import MountError
from skitai.runner import Running
from tests.integration.proxy_support import address, backends, front, pattern, proxy_config
from tests.support.net import free_port


def refused() -> str:
    return f"127.0.0.1:{free_port()}"


def test_load_is_spread_by_weight():
    with backends(2) as (heavy, light), front([address(heavy) + " 3", address(light) + " 1"]) as f:
        with requests.Session() as s:
            ports = collections.Counter(s.get(f.url + "/search/w", timeout=5).json()["port"] for _ in range(80))
        status = f.cluster().status()
    assert ports[heavy.port] + ports[light.port] == 80
    assert ports[heavy.port] > 1.5 * ports[light.port] > 0, ports
    assert sum(m["requests"] for m in status["members"]) == 80
    assert all(m["inflight"] == 0 for m in status["members"])


def test_a_refused_member_is_failed_over_and_shown_dead():
    dead = refused()
    with backends(2) as live, front([address(m) for m in live] + [dead]) as f:
        with requests.Session() as s:
            answers = [s.get(f.url + "/search/x", timeout=5) for _ in range(12)]
            post = s.post(f.url + "/search/p", data=b"payload", timeout=5)      # POST: refused is safe to resend
        page = f.status()                                                     # what was.status() shows
    status = page["CLUSTERS"]["mysearch"]
    assert page["MOUNTS"]["/search"] == 13
    assert [r.status_code for r in answers] == [200] * 12
    assert {r.json()["port"] for r in answers} <= {m.port for m in live}
    assert post.status_code == 200 and post.json()["size"] == 7
    by = {m["address"]: m for m in status["members"]}
    assert by[dead]["dead"] and by[dead]["failures"] >= 1 and by[dead]["retry_in"] > 50, by[dead]
    assert "refused" in by[dead]["last_error"].lower()
    assert by[dead]["requests"] <= 2                 # backed off after the first failure (a probe at most)
    assert status["live"] == 2


def test_a_large_streamed_body_fails_over_before_it_is_read():
    dead = refused()
    body = pattern(3 * 1024 * 1024)
    with backends(1) as (live,), front([dead + " 100", address(live)], replay_limit=1024) as f:
        results = [requests.post(f.url + "/search/big-up", data=body, timeout=20) for _ in range(3)]
        tried = {m["address"]: m["failures"] for m in f.cluster().status()["members"]}
    assert tried[dead] == 1                          # weight 100: it was (almost surely) chosen first
    for r in results:
        assert r.status_code == 200, r.text
        assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_all_members_down_is_502_then_503():
    with front([refused(), refused()]) as f:
        first = requests.get(f.url + "/search/x", timeout=5)
        second = requests.get(f.url + "/search/x", timeout=5)
        status = f.cluster().status()
    assert first.status_code == 502 and "could be reached" in first.text, first.text
    assert "127.0.0.1" not in first.text and "refused" not in first.text.lower()    # no internals shown
    assert second.status_code == 503 and "down" in second.text
    assert 1 <= int(second.headers["Retry-After"]) <= 60
    assert status["live"] == 0 and all(m["dead"] for m in status["members"])


def test_no_usable_member_is_503():
    with backends(1) as (member,), front([address(member)]) as f:
        f.cluster().stop_member(address(member))
        r = requests.get(f.url + "/search/x", timeout=5)
        f.cluster().stop_member(address(member), False)
        again = requests.get(f.url + "/search/x", timeout=5)
    assert r.status_code == 503 and "no member" in r.text
    assert again.status_code == 200


def test_a_slow_member_is_504_and_http_errors_are_not_failures():
    with backends(1) as (member,), front([address(member)], timeout=0.3) as f:
        t0 = time.monotonic()
        slow = requests.get(f.url + "/search/s?delay=0.8", timeout=10)
        elapsed = time.monotonic() - t0
        f.cluster().revive(address(member))
        err = requests.get(f.url + "/search/e?status=503", timeout=5)
        status = f.cluster().status()["members"][0]
    assert slow.status_code == 504 and "0.3 s" in slow.text and elapsed < 0.8      # before the member answers
    assert err.status_code == 503 and err.json()["path"] == "/e"        # the member's own 503, passed on
    assert not status["dead"] and status["fails"] == 0


def test_a_member_cutting_its_answer_cuts_the_client():
    with backends(1) as (member,), front([address(member)]) as f:
        t0 = time.monotonic()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            with requests.get(f.url + "/search/cut?n=4000000", stream=True, timeout=5) as r:
                assert r.status_code == 200 and r.headers["Content-Length"] == "4000000"
                for _ in r.iter_content(65536):
                    pass
        assert time.monotonic() - t0 < 4
        status = f.cluster().status()["members"][0]
        assert status["dead"] and "cut" in status["last_error"]


def test_a_timed_out_post_is_not_resent_but_a_get_is():
    with backends(2) as (a, b), front([address(a), address(b)], timeout=0.3) as f:
        post = requests.post(f.url + "/search/p?delay=0.8", data=b"once", timeout=10)
        after_post = sum(m["requests"] for m in f.cluster().status()["members"])
        for m in (a, b):
            f.cluster().revive(address(m))
        get = requests.get(f.url + "/search/g?delay=0.8", timeout=10)
        after_get = sum(m["requests"] for m in f.cluster().status()["members"])
    assert post.status_code == 504 and after_post == 1      # the member may have acted on it: not resent
    assert get.status_code == 504 and after_get == 3        # idempotent: the other member was tried too


@pytest.mark.parametrize("ctype", ["postgresql", "redis", "sqlite3"])
def test_a_database_cluster_cannot_be_mounted(ctype):
    member = "/tmp/x.db" if ctype == "sqlite3" else "127.0.0.1:5432/db/u/p"
    with pytest.raises(MountError, match="database cluster"):
        Running(proxy_config([member], ctype))


def test_bad_settings_and_grpc_are_clear_errors():
    with pytest.raises(MountError, match="gRPC"):
        Running(proxy_config(["127.0.0.1:1"], "grpc"))
    with pytest.raises(MountError, match="unknown reverse proxy setting"):
        Running(proxy_config(["127.0.0.1:1"], nope=1))
    with pytest.raises(MountError, match="timeout"):
        Running(proxy_config(["127.0.0.1:1"], timeout=0))


def _upload(port: int, pieces: list[bytes], gap: float, length: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /search/slow-up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length)
        for piece in pieces:
            time.sleep(gap)
            s.sendall(piece)
        data = b""
        while b"</html>" not in data and b'"port"' not in data and (chunk := s.recv(65536)):
            data += chunk
        return data


def test_streamed_upload_has_an_idle_timeout_not_a_total_one():
    # gaps far below the timeout (a loaded machine may stretch them), a total well above it
    with backends(1) as (member,), front([address(member)], timeout=0.8, replay_limit=0) as f:
        steady = _upload(f.port, [b"x" * 100] * 8, 0.15, 800)          # 1.2 s in all, never 0.8 s idle
        stalled = _upload(f.port, [b"y" * 10], 0.0, 1000)               # 10 of 1000 bytes, then nothing
        status = f.cluster().status()["members"][0]
    assert steady.startswith(b"HTTP/1.1 200 ") and b'"size": 800' in steady, steady[:300]
    assert stalled.startswith(b"HTTP/1.1 408 ")
    assert not status["dead"] and status["failures"] == 0 and status["inflight"] == 0


def test_expect_100_continue_is_answered_here():
    with backends(1) as (member,), front([address(member)]) as f:
        with socket.create_connection(("127.0.0.1", f.port), timeout=5) as s:
            s.sendall(b"PUT /search/e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            assert s.recv(1024).startswith(b"HTTP/1.1 100 ")
            s.sendall(b"hello")
            answer = b""
            while b'"port"' not in answer:
                answer += s.recv(65536)
    assert b" 200 " in answer.split(b"\r\n", 1)[0] and b'"size": 5' in answer and b"expect" not in answer.lower()


def test_a_body_over_the_server_limit_is_413_whether_buffered_or_streamed():
    with backends(1) as (member,):
        for replay_limit in (1 << 20, 0):
            config = proxy_config([address(member)], replay_limit=replay_limit)
            config.limits.max_body_size = 1000
            with Running(config) as srv:
                r = requests.post(f"http://127.0.0.1:{srv.port}/search/big", data=iter([b"z" * 600] * 3),
                                  timeout=5)
            assert r.status_code == 413, (replay_limit, r.status_code, r.text)
