"""Validators and preconditions (RFC 9110 section 13)."""
import pytest

from skitai.handlers import conditional as c

ETAG = c.make_etag(4096, 1_700_000_000_123_456_789)
MTIME = 1_700_000_000
LM = c.http_date(MTIME)
OLDER = c.http_date(MTIME - 10)
NEWER = c.http_date(MTIME + 10)


def test_etag_and_dates():
    assert ETAG == '"1000-' + format(1_700_000_000_123_456_789, "x") + '"'
    assert c.make_etag(4096, 1) != c.make_etag(4096, 2) != c.make_etag(4097, 2)
    assert LM == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert c.parse_http_date(LM) == MTIME
    assert c.parse_http_date("Tuesday, 14-Nov-23 22:13:20 GMT") == MTIME      # RFC 850 form
    assert c.parse_http_date("Tue Nov 14 22:13:20 2023") == MTIME           # asctime form: GMT
    for bad in ("", "yesterday", "Tue, 99 Nov 2023 22:13:20 GMT", "Tue, 14 Nov"):
        assert c.parse_http_date(bad) is None


@pytest.mark.parametrize("headers, status", [
    ({}, 200),
    ({"if-none-match": ETAG}, 304),
    ({"if-none-match": "W/" + ETAG}, 304),                    # weak comparison
    ({"if-none-match": f'"zzz", {ETAG}'}, 304),
    ({"if-none-match": "*"}, 304),
    ({"if-none-match": '"other"'}, 200),
    ({"if-none-match": "garbage"}, 200),
    ({"if-modified-since": LM}, 304),
    ({"if-modified-since": NEWER}, 304),
    ({"if-modified-since": OLDER}, 200),                      # the file is newer: send it
    ({"if-modified-since": "not a date"}, 200),
    ({"if-none-match": '"other"', "if-modified-since": NEWER}, 200),   # If-None-Match wins
    ({"if-none-match": ETAG, "if-modified-since": OLDER}, 304),
    ({"if-match": ETAG}, 200),
    ({"if-match": "*"}, 200),
    ({"if-match": "W/" + ETAG}, 412),                          # If-Match compares strongly
    ({"if-match": '"other"'}, 412),
    ({"if-unmodified-since": OLDER}, 412),
    ({"if-unmodified-since": LM}, 200),
    ({"if-unmodified-since": "bad"}, 200),
    ({"if-match": ETAG, "if-unmodified-since": OLDER}, 200),   # If-Match present: IUS ignored
])
def test_precondition(headers, status):
    assert c.precondition(headers, ETAG, LM, MTIME) == status


def test_range_applies():
    assert c.range_applies(None, ETAG, MTIME)
    assert c.range_applies(ETAG, ETAG, MTIME)
    assert not c.range_applies("W/" + ETAG, ETAG, MTIME)
    assert not c.range_applies('"old"', ETAG, MTIME)
    assert c.range_applies(LM, ETAG, MTIME)
    assert not c.range_applies(OLDER, ETAG, MTIME)
    assert not c.range_applies("nonsense", ETAG, MTIME)
