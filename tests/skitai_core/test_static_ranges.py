"""Range header selection (RFC 9110 section 14)."""
import pytest

from skitai.handlers.ranges import MAX_RANGES, NotSatisfiable, select


@pytest.mark.parametrize("header, size, expected", [
    ("bytes=0-99", 1000, (0, 100)),
    ("bytes=100-", 1000, (100, 1000)),
    ("bytes=-100", 1000, (900, 1000)),
    ("bytes=-5000", 1000, None),               # suffix longer than the file: the whole file, 200
    ("bytes=990-5000", 1000, (990, 1000)),     # the end is clamped
    ("bytes=999-999", 1000, (999, 1000)),
    ("bytes=0-", 1000, None),                  # the whole file
    ("BYTES = 5-9", 1000, None),               # spaces around the unit are not allowed ...
    ("Bytes=5-9", 1000, (5, 10)),              # ... but the unit is case-insensitive
    ("bytes= 5 - 9 ", 1000, (5, 10)),
    ("bytes=0-9,10-19", 1000, (0, 20)),        # adjacent ranges merge
    ("bytes=0-9,5-19,", 1000, (0, 20)),        # overlapping ranges merge; empty elements are skipped
    ("bytes=0-9,20-29", 1000, None),           # two real ranges: the whole file (no multipart)
    ("bytes=0-9,5000-6000", 1000, (0, 10)),    # the unsatisfiable one is dropped
    ("items=0-9", 1000, None),
    ("bytes=9-0", 1000, None),
    ("bytes=a-b", 1000, None),
    ("bytes=", 1000, None),
    ("bytes=-", 1000, None),
    ("bytes=1", 1000, None),
    ("bytes=¹-2", 1000, None),
    ("0-9", 1000, None),
    ("bytes=" + ",".join(["0-0"] * (MAX_RANGES + 1)), 1000, None),
])
def test_select(header, size, expected):
    assert select(header, size) == expected


@pytest.mark.parametrize("header, size", [
    ("bytes=1000-", 1000), ("bytes=1000-2000", 1000), ("bytes=-0", 1000), ("bytes=0-", 0), ("bytes=-1", 0),
    ("bytes=2000-,3000-4000", 1000),
])
def test_not_satisfiable(header, size):
    with pytest.raises(NotSatisfiable):
        select(header, size)
