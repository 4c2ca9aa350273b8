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
            n = query(env)["n"]
            r = was.get(f"{leaf.url}/leaf{n}").getwait(5)
            return {"txnid": was.txnid(), "leaf_saw": r.data["headers"]}

        def edge(env):
            first = was.get(mid_url + "/mid?n=1").getwait(5)
            second = was.get(mid_url + "/mid?n=2").getwait(5)
            third = was.get(leaf.url + "/direct").getwait(5)
            return {"txnid": was.txnid(), "mid": [first.data, second.data], "direct": third.data["headers"]}

        with front(routed({"/mid": mid})) as mid_url, front(routed({"/edge": edge})) as edge_url:
            d = get_json(edge_url + "/edge")
            ext = get_json(edge_url + "/edge", headers={"X-Gtxn-Id": "GTID-EXT-1", "X-Ltxn-Id": "7"})
        accesslog.refresh()

    gtxn, ltxn = d["txnid"].split("/")
    assert gtxn.startswith("GTID-C") and "-R" in gtxn and ltxn == "1000"
    # the edge sends 1001, 1002, 1003; each mid logs +1000 and sends its own first sub-call as +1
    assert [m["txnid"] for m in d["mid"]] == [f"{gtxn}/2001", f"{gtxn}/2002"]
    assert [m["leaf_saw"]["x-ltxn-id"] for m in d["mid"]] == ["2002", "2003"]
    assert all(m["leaf_saw"]["x-gtxn-id"] == gtxn for m in d["mid"])
    assert d["direct"]["x-gtxn-id"] == gtxn and d["direct"]["x-ltxn-id"] == "1003"
    assert ext["txnid"] == "GTID-EXT-1/1007" and ext["direct"]["x-ltxn-id"] == "1010"

    lines = {f[3]: f for f in _log_lines(caplog, "/") if f[8] == gtxn}
    # client_ip:port host method uri HTTP/v status in out gtxnid ltxnid ...
    assert {uri: f[9] for uri, f in lines.items()} == {
        "/edge": "1000", "/mid?n=1": "2001", "/leaf1": "3002", "/mid?n=2": "2002", "/leaf2": "3003",
        "/direct": "2003"}
    ext_lines = {f[3]: f[9] for f in _log_lines(caplog, "/") if f[8] == "GTID-EXT-1"}
    assert ext_lines["/edge"] == "1007" and ext_lines["/mid?n=1"] == "2008" and ext_lines["/leaf1"] == "3009"


def test_txnid_of_a_request_and_outside_one():
    def ids(env):
        q = query(env)
        return {"txnid": was.txnid(), "n": q.get("n")}

    with front(routed({"/ids": ids})) as url:
        a = get_json(url + "/ids")
        b = get_json(url + "/ids", headers={"X-Gtxn-Id": "G-1", "X-Ltxn-Id": "2001"})
    assert a["txnid"].endswith("/1000") and b["txnid"] == "G-1/3001"
