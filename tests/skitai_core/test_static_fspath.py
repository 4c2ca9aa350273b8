"""Safe path resolution: every encoding of a way out of the root is refused."""
import os

import pytest

from skitai.handlers import fspath
from skitai.handlers.fspath import BadPath


@pytest.mark.parametrize("raw, expected", [
    ("", ([], False)),
    ("/", ([], True)),
    ("/a.css", (["a.css"], False)),
    ("/css/a.css", (["css", "a.css"], False)),
    ("/css/", (["css"], True)),
    ("/a%20b.txt", (["a b.txt"], False)),
    ("/caf%C3%A9.txt", (["café.txt"], False)),
    ("/caf\xc3\xa9.txt", (["café.txt"], False)),     # raw UTF-8 bytes handed over as latin-1 text
    ("/%252e%252e/x", (["%2e%2e", "x"], False)),     # decoded once: a literal name, not a dot segment
    ("/.well-known/acme", ([".well-known", "acme"], False)),
    ("/a%2fb", (["a", "b"], False)),                 # %2f is a slash
])
def test_split_accepts(raw, expected):
    assert fspath.split(raw) == expected


@pytest.mark.parametrize("raw", [
    "/..", "/../etc/passwd", "/a/../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2e/etc/passwd",
    "/..%2fetc%2fpasswd", "/%2e%2e%2f%2e%2e%2fetc/passwd", "/./a", "/%2e/a", "//etc/passwd",
    "/a//b", "/.env", "/.git/config", "/sub/.htpasswd", "/%2egit/config", "/.well-known/.secret",
    "etc/passwd",
])
def test_split_not_found(raw):
    assert fspath.split(raw) is None


@pytest.mark.parametrize("raw", [
    "/a\\..\\..\\etc\\passwd", "/..%5c..%5cetc", "/%5C", "/a%00.txt", "/a\x00b", "/%c0%ae%c0%ae/etc/passwd",
    "/%e0%80%ae", "/%ff", "/%0d%0aX: y", "/a%7f", "/%ed%a0%80",
])
def test_split_bad(raw):
    with pytest.raises(BadPath):
        fspath.split(raw)


def test_contain(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f.txt").write_text("x")
    (tmp_path / "secret.txt").write_text("s")
    (root / "out").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path)
    (root / "in").symlink_to(root / "sub" / "f.txt")
    r = os.path.realpath(root)
    assert fspath.contain(r, "sub", "f.txt") == os.path.join(r, "sub", "f.txt")
    assert fspath.contain(r) == r
    assert fspath.contain(r, "in") == os.path.join(r, "sub", "f.txt")
    assert fspath.contain(r, "out") is None
    assert fspath.contain(r, "outdir", "secret.txt") is None
    assert fspath.contain(r, "..", "secret.txt") is None
    assert fspath.contain(r, "/etc/passwd") is None          # an absolute segment cannot escape
    sibling = tmp_path / "rootx"
    sibling.mkdir()
    (root / "sib").symlink_to(sibling)      # shares the root's name as a string prefix, still outside
    assert fspath.contain(r, "sib") is None
