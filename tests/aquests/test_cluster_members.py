"""Member strings (SK-03), choice by spare capacity (SK-42), dead marking, runtime control, registry."""
from __future__ import annotations

import collections

import pytest

from aquests import aliases
from aquests.cluster import Cluster
from aquests.members import DB_MONGODB, DB_PGSQL, DB_REDIS, DB_SQLITE3, normalize_ctype, parse_member


def test_http_member_defaults_and_weight():
    m = parse_member("s1.example.com", "http")
    assert (m.host, m.port, m.weight, m.ssl, m.address) == ("s1.example.com", 80, 1, False, "s1.example.com:80")
    assert m.url("/rpc2") == "http://s1.example.com:80/rpc2"
    m = parse_member("10.0.0.1:8080 3", "http")
    assert (m.port, m.weight) == (8080, 3)
    assert parse_member("[::1]:5000 2", "http").address == "[::1]:5000"
    assert parse_member("[::1]", "http").url("x") == "http://[::1]:80/x"


@pytest.mark.parametrize("ctype", ["https", "wss", "grpcs", "rpcs"])
def test_ssl_ctypes_default_to_443(ctype):
    c = Cluster("s", ctype, ["a.example.com", "b.example.com:8443"])
    assert c.ssl
    a, b = c.members
    assert (a.port, a.ssl, b.port) == (443, True, 8443)
    assert a.scheme in ("https", "wss")


def test_ssl_flag_really_turns_ssl_on():
    c = Cluster("s", "http", "a.example.com", ssl=True)
    (m,) = c.members
    assert c.ssl and m.ssl and m.port == 443 and m.url() == "https://a.example.com:443/"
    ws = Cluster("w", "ws", "a.example.com", ssl=True).members[0]
    assert ws.url("/chat") == "wss://a.example.com:443/chat"


@pytest.mark.parametrize("ctype,port", [(DB_PGSQL, 5432), (DB_REDIS, 6379), (DB_MONGODB, 27017),
                                        ("postgresql", 5432), ("redis", 6379), ("mongodb", 27017)])
def test_db_members_default_port_per_type(ctype, port):
    m = parse_member("db.example.com/mydb/user/pa/ss", normalize_ctype(ctype))
    assert (m.host, m.port, m.dbname, m.user, m.password) == ("db.example.com", port, "mydb", "user", "pa/ss")
    assert m.auth == ("user", "pa/ss") and m.server == f"db.example.com:{port}"
    with pytest.raises(ValueError, match="no URL"):
        m.url()


def test_db_member_partial_and_weighted():
    m = parse_member("127.0.0.1:6380/2 4", DB_REDIS)
    assert (m.port, m.dbname, m.user, m.password, m.weight, m.auth) == (6380, "2", None, None, 4, None)


def test_sqlite_members_are_paths():
    c = Cluster("@photos", DB_SQLITE3, ["/var/tmp/db1", "/var/tmp/my db2"])
    assert [m.path for m in c.members] == ["/var/tmp/db1", "/var/tmp/my db2"]
    assert c.name == "photos" and c.is_db


def test_ctype_spellings():
    assert normalize_ctype("*postgresql") == normalize_ctype("pg") == normalize_ctype("postresql") == DB_PGSQL
    assert normalize_ctype("HTTPS") == "https"
    with pytest.raises(ValueError, match="unknown cluster type"):
        normalize_ctype("ftp")
    with pytest.raises(TypeError):
        normalize_ctype(None)


@pytest.mark.parametrize("spec", ["", "   ", "host:99999", "host:port", "host 0", "host x", "host/path",
                                  "a:1:2"])
def test_bad_http_members(spec):
    with pytest.raises(ValueError):
        parse_member(spec, "http")


def test_bad_cluster_arguments():
    with pytest.raises(ValueError, match="listed twice"):
        Cluster("c", "http", ["a:80", "a"])
    with pytest.raises(ValueError):
        Cluster("", "http", "a")
    with pytest.raises(ValueError):
        Cluster("a/b", "http", "a")
    with pytest.raises(TypeError):
        Cluster("c", "http", 42)
    with pytest.raises(ValueError):
        Cluster("c", "http", "a", backoff=-1)


def test_role_and_source_are_kept_for_the_gateway():
    c = Cluster("@members", "https", "members.example.com", role="admin, user",
                source="172.30.1.0/24,192.168.1/24")
    assert c.roles == ("admin", "user") and c.source == "172.30.1.0/24,192.168.1/24"


def test_idle_choice_follows_weight():
    c = Cluster("c", "http", ["a 1", "b 3"])
    counts = collections.Counter()
    for _ in range(4000):
        m = c.choose()
        counts[m.host] += 1
        c.release(m)
    assert 2.4 < counts["b"] / counts["a"] < 3.8, counts


def test_busy_choice_follows_spare_capacity():
    c = Cluster("c", "http", ["a 1", "b 3"])
    picked = collections.Counter(c.choose().host for _ in range(8))  # nothing released: all in flight
    assert picked == {"b": 6, "a": 2}
    assert {m["address"]: m["inflight"] for m in c.status()["members"]} == {"a:80": 2, "b:80": 6}


def test_dead_marking_backoff_and_all_dead():
    c = Cluster("c", "http", ["a", "b"], backoff=60, long_backoff=600, long_after=10)
    a, b = c.members
    c.report(a, False, "refused")
    st = {m["address"]: m for m in c.status()["members"]}
    assert st["a:80"]["dead"] and 59 <= st["a:80"]["retry_in"] <= 60 and st["a:80"]["last_error"] == "refused"
    assert all(c.choose() is b for _ in range(20))
    for _ in range(8):
        c.report(a, False)
    assert c.status()["members"][0]["retry_in"] <= 60     # 9 in a row
    c.report(a, False)
    assert c.status()["members"][0]["retry_in"] > 590     # 10 in a row: long back-off
    c.report(b, False)
    assert c.status()["live"] == 0
    assert c.choose() in (a, b)                           # all dead: all are tried
    c.report(a, True)
    st = c.status()["members"][0]
    assert not st["dead"] and st["fails"] == 0 and st["deadtotal"] == 10 and st["failures"] == 10


def test_runtime_control():
    c = Cluster("c", "http", ["a", "b"])
    c.stop_member("b")
    assert all(c.choose().host == "a" for _ in range(10))
    c.stop_member("a")
    assert c.choose() is None
    c.stop_member("b", False)
    assert c.choose().host == "b"
    m = c.add_member("c:8080 5")
    assert m.weight == 5 and len(c) == 3
    assert c.add_member("c:8080 2") is m and m.weight == 2 and len(c) == 3
    c.remove_member("a:80")
    assert [x.address for x in c.members] == ["b:80", "c:8080"]
    with pytest.raises(KeyError):
        c.remove_member("zzz")
    c.report(m, False)
    c.revive("c:8080")
    assert not c.status()["members"][1]["dead"]


def test_registry_and_cluster_urls():
    c = aliases.alias("@regtest", "http", ["127.0.0.1:1 2"])
    try:
        assert aliases.get_cluster("regtest") is c and aliases.get_cluster("@regtest") is c
        assert "regtest" in aliases.clusters()
        assert aliases.split_cluster_url("@regtest/rpc2?q=1") == (c, "/rpc2?q=1")
        assert aliases.split_cluster_url("@regtest") == (c, "/")
        assert aliases.split_cluster_url("@regtest?x=1") == (c, "/?x=1")
        with pytest.raises(ValueError, match="no cluster named @nope"):
            aliases.split_cluster_url("@nope/x")
        with pytest.raises(ValueError):
            aliases.split_cluster_url("http://x/")
    finally:
        aliases.unalias("regtest")
    assert "regtest" not in aliases.clusters()


def test_member_back_from_backoff_gets_one_probe_at_a_time():
    c = Cluster("c", "http", ["a 100", "b"], backoff=0)
    a, b = c.members
    c.report(a, False)
    assert c.choose({"b:80"}) is a                  # the probe
    assert [c.choose() for _ in range(3)] == [b, b, b]
    c.release(a)
    c.report(a, True)
    assert c.status()["members"][0]["fails"] == 0
    assert a in [c.choose() for _ in range(5)]
