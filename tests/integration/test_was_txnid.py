"""API transaction IDs (SK-23a): every ``was`` request carries ``X-Gtxn-Id``/``X-Ltxn-Id``; the receiving
skitai logs them (1000 at the edge, 2001, 2002 one hop in, 3002 two hops in); ``was.txnid()``."""
from __future__ import annotations

import logging

from skitai import was
from skitai.http import accesslog
from tests.integration.was_support import echo_backends, front, get_json, query, routed


def _log_lines(caplog, path_prefix: str) -> list[list[str]]:
    """The request log lines whose target starts with ``path_prefix``, split on spaces."""
    out = []
    for rec in caplog.records:
        if rec.name == "skitai.request":
            fields = rec.getMessage().split()
            if fields[3].startswith(path_prefix):
                out.append(fields)
    return out


def test_ids_go_out_and_each_hop_logs_them(caplog):
    caplog.set_level(logging.INFO, logger="skitai.request")
    accesslog.refresh()
    with echo_backends(1) as (leaf,):
        def mid(env):
            r = was.get(leaf.url + "/leaf").getwait(5)
            return {"txnid": was.txnid(), "leaf_saw": r.data["headers"]}

        def edge(env):
            first = was.get(mid_url + "/mid").getwait(5)
            second = was.get(leaf.url + "/leaf2").getwait(5)
            return {"txnid": was.txnid(), "mid": first.data, "second": second.data["headers"]}

        with front(routed({"/mid": mid})) as mid_url, front(routed({"/edge": edge})) as edge_url:
            d = get_json(edge_url + "/edge")
            ext = get_json(edge_url + "/edge", headers={"X-Gtxn-Id": "GTID-EXT-1", "X-Ltxn-Id": "7"})
        accesslog.refresh()

    gtxn, ltxn = d["txnid"].split("/")
    assert gtxn.startswith("GTID-C") and "-R" in gtxn and ltxn == "1000"
    assert d["mid"]["txnid"] == f"{gtxn}/2001"                     # the first sub-call: 1001 sent, 2001 logged
    assert d["mid"]["leaf_saw"]["x-gtxn-id"] == gtxn and d["mid"]["leaf_saw"]["x-ltxn-id"] == "2002"
    assert d["second"]["x-gtxn-id"] == gtxn and d["second"]["x-ltxn-id"] == "1002"
    assert ext["txnid"] == "GTID-EXT-1/1007" and ext["second"]["x-ltxn-id"] == "1009"

    lines = {f[3]: f for f in _log_lines(caplog, "/") if f[8] == gtxn}
    # client_ip:port host method uri HTTP/v status in out gtxnid ltxnid ...
    assert lines["/edge"][9] == "1000"
    assert lines["/mid"][9] == "2001"
    assert lines["/leaf"][9] == "3002"
    assert lines["/leaf2"][9] == "2002"


def test_txnid_of_a_request_and_outside_one():
    def ids(env):
        q = query(env)
        return {"txnid": was.txnid(), "n": q.get("n")}

    with front(routed({"/ids": ids})) as url:
        a = get_json(url + "/ids")
        b = get_json(url + "/ids", headers={"X-Gtxn-Id": "G-1", "X-Ltxn-Id": "2001"})
    assert a["txnid"].endswith("/1000") and b["txnid"] == "G-1/3001"
