"""DB responses, rows, server strings and the DB constants."""
from __future__ import annotations

import pytest

import aquests
from aquests import codes
from aquests.dbapi.args import parse_auth, parse_server
from aquests.dbapi.errors import classify
from aquests.dbapi.response import DBResponse, Document, make_rows


def test_rows():
    rows = make_rows(["city", "t_high"], [("Seoul", 30), ("Busan", 28)])
    assert rows[0].city == "Seoul" and rows[1]["t_high"] == 28 and rows[1][0] == "Busan"
    assert list(rows[0]) == ["Seoul", 30] and len(rows[0]) == 2 and rows[0][:1] == ("Seoul",)
    assert rows[0].keys() == ["city", "t_high"] and rows[0].get("nope", 1) == 1
    assert repr(rows[0]) == "Row(city='Seoul', t_high=30)"
    with pytest.raises(KeyError, match="no column"):
        rows[0]["nope"]
    assert Document({"a": 1}).a == 1
    with pytest.raises(AttributeError):
        _ = Document().missing


def test_response_fields_and_failure():
    ok = DBResponse([1], None, meta={"x": 1})
    assert ok.ok and ok.code == 200 and ok.msg == "OK" and ok.status_code == 200
    assert isinstance(ok, aquests.Response) and ok.meta == {"x": 1}
    ok.raise_for_status()
    bad = DBResponse.failed(codes.DB_ERROR, "syntax error", exc=ValueError("syntax error"), url="pg://x")
    assert not bad.ok and bad.code == 740 and bad.expt_class is ValueError and bad.expt_str == "syntax error"
    assert bad.reason == "Database Error: syntax error" and bad.data is None
    with pytest.raises(aquests.DBError) as ei:
        bad.raise_for_status()
    assert ei.value.response is bad and isinstance(ei.value, aquests.HTTPError)


@pytest.mark.parametrize("server, port, expected", [
    ("db.local", 5432, ("db.local", 5432)),
    ("db.local:6380", 6379, ("db.local", 6380)),
    ("[::1]:27018", 27017, ("::1", 27018)),
    ("[::1]", 27017, ("::1", 27017)),
])
def test_parse_server(server, port, expected):
    assert parse_server(server, port) == expected


@pytest.mark.parametrize("server", ["", ":5432", "h:x", "h:70000", "[::1", None])
def test_parse_server_rejects(server):
    with pytest.raises(ValueError):
        parse_server(server, 1)


def test_parse_auth():
    assert parse_auth(None) == (None, None)
    assert parse_auth(("u", "p")) == ("u", "p")
    assert parse_auth(("u",)) == ("u", None)
    assert parse_auth("pw") == (None, "pw")
    with pytest.raises(ValueError):
        parse_auth({"u": "p"})


def test_classify():
    assert classify(ConnectionRefusedError()) == codes.CONNECTION_REFUSED
    assert classify(TimeoutError()) == codes.TIMEOUT
    assert classify(ConnectionResetError()) == codes.CONNECTION_CLOSED
    assert classify(Exception("server closed the connection unexpectedly")) == codes.CONNECTION_CLOSED
    assert classify(Exception('relation "x" does not exist')) == codes.DB_ERROR


def test_constants():
    assert aquests.DB_PGSQL == aquests.DB_POSTGRESQL == "*postgresql"
    assert (aquests.DB_SQLITE3, aquests.DB_REDIS, aquests.DB_MONGODB) == ("*sqlite3", "*redis", "*mongodb")
    assert aquests.pg is aquests.postgresql
