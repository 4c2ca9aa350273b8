"""Response fields over a real socket: text/json()/data by content type, raise_for_status (AQ-13)."""
from __future__ import annotations

import xmlrpc.client

import pytest

import aquests


def test_data_text_and_json_by_content_type(app):
    got = {}
    aquests.configure(workers=3, callback=lambda r: got.__setitem__(r.meta["kind"], r))
    for kind in ("json", "problem", "badjson", "euckr", "xmlrpc", "fault"):
        aquests.get(f"{app.url}/typed", params={"kind": kind}, meta={"kind": kind})
    aquests.get(f"{app.url}/xml", meta={"kind": "xml"})
    aquests.fetchall()
    assert got["json"].data == {"k": "한"} == got["json"].json() and got["json"].text == '{"k": "한"}'
    assert got["problem"].data == {"title": "bad"}  # any */*+json type is JSON
    bad = got["badjson"]
    assert bad.data == b"{nope" and bad.status_code == 200  # not JSON after all: the bytes
    with pytest.raises(ValueError):
        bad.json()
    kr = got["euckr"]
    assert kr.text == "한글" and kr.encoding == "euc-kr" and kr.data == "한글".encode("euc-kr")
    assert got["xmlrpc"].data == 5  # an XML-RPC answer decodes even without rpc()
    fault = got["fault"]
    assert fault.data is None and isinstance(fault.error, xmlrpc.client.Fault) and not fault.ok
    with pytest.raises(aquests.HTTPError):
        fault.raise_for_status()
    assert got["xml"].data == b"<a>1</a>"  # other XML stays bytes


def test_raise_for_status_classes(app):
    got = {}
    aquests.configure(workers=3, callback=lambda r: got.__setitem__(r.status_code, r))
    for code in (200, 404, 503):
        aquests.get(f"{app.url}/status", params={"code": code})
    aquests.fetchall()
    got[200].raise_for_status()
    with pytest.raises(aquests.HTTPError, match="404 Client Error") as ei:
        got[404].raise_for_status()
    assert ei.value.response is got[404]
    with pytest.raises(aquests.HTTPError, match="503 Server Error"):
        got[503].raise_for_status()
    assert got[503].url == f"{app.url}/status?code=503" and got[503].reason == "Service Unavailable"
