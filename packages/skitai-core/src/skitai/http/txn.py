"""Transaction IDs of the request log line (inventory SK-23a).

A request without ``X-Gtxn-Id`` gets a minted ``GTID-C<connection>-R<request>`` and local ID 1000; one with
it keeps it and gets ``int(X-Ltxn-Id) + 1000`` (a missing or malformed ``X-Ltxn-Id`` counts as 0, never a crash).
"""
from __future__ import annotations

MINTED_LTXNID = 1000


def mint_gtxnid(conn_no: int, req_no: int) -> str:
    return f"GTID-C{conn_no}-R{req_no}"


def ltxnid_from(value: str | None) -> int:
    """``int(X-Ltxn-Id) + 1000``; junk or an absurd size counts as 0."""
    if value:
        value = value.strip()
        if 0 < len(value) <= 18 and value.isascii() and value.isdigit():
            return int(value) + 1000
    return MINTED_LTXNID


def txn_ids(gtxn_header: str | None, ltxn_header: str | None, conn_no: int, req_no: int) -> tuple[str, int]:
    """``(gtxnid, ltxnid)`` for a request, from its headers or minted."""
    if gtxn_header:
        gtxn = gtxn_header.strip()
        if 0 < len(gtxn) <= 128 and gtxn.isprintable():
            return gtxn, ltxnid_from(ltxn_header)
    return mint_gtxnid(conn_no, req_no), MINTED_LTXNID
