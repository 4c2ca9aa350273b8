"""The aquests docs stay true: every public name is documented, the failure codes table matches
aquests.codes, and the README examples marked ``<!-- doc-test: KIND -->`` run against real servers."""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import types
from pathlib import Path


import aquests
from aquests import aio, codes

from .http_support import AppHandler, AppServer, ThreadedServer
from .test_ws_client import echo, ws_server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "packages" / "aquests" / "README.md"
DOCS = [README, ROOT / "docs" / "aquests-db.md", ROOT / "docs" / "aquests-clusters.md"]
BLOCK = re.compile(r"<!-- doc-test: (\w+) -->\n```python\n(.*?)```", re.S)


def test_readme_links_the_other_docs():
    text = README.read_text()
    for doc in DOCS[1:]:
        assert f"(../../docs/{doc.name}" in text and doc.exists()


def test_every_public_name_is_documented():
    text = "\n".join(p.read_text() for p in DOCS)
    public = {n for n in dir(aquests) if not n.startswith("_")
              and not isinstance(getattr(aquests, n), types.ModuleType)}
    public |= {n for n in dir(aio) if not n.startswith("_")
               and getattr(getattr(aio, n), "__module__", "") in ("aquests.aio", "aquests.dbapi.aio")}
    missing = sorted(n for n in public if not re.search(rf"\b{n}\b", text))
    assert not missing, f"undocumented: {missing}"


def test_failure_codes_table_matches_codes():
    text = README.read_text()
    for code, reason in codes.REASONS.items():
        assert f"| {code} | {reason} |" in text


class _AnyPath(AppHandler):
    """Answers every method and path with 200 and a JSON echo (the README's URLs are examples)."""

    def _route(self) -> None:
        body = self._body()
        self._send(200, json.dumps({"method": self.command, "path": self.path, "len": len(body)}).encode(),
                   "application/json")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _route


@contextlib.contextmanager
def _server_for(kind: str):
    if kind == "none":
        yield None
    elif kind == "http":
        srv = ThreadedServer(AppServer(("127.0.0.1", 0), _AnyPath))
        try:
            yield srv.url
        finally:
            srv.stop()
    elif kind == "ws":
        with ws_server(echo) as port:
            yield f"ws://127.0.0.1:{port}"
    elif kind == "rpc":
        from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

        class Handler(SimpleXMLRPCRequestHandler):
            rpc_paths = ("/rpc2",)
        rpc = SimpleXMLRPCServer(("127.0.0.1", 0), Handler, logRequests=False)
        rpc.register_function(lambda a, b: a + b, "add")
        rpc.register_function(lambda a, b: a * b, "math.mul")
        srv = ThreadedServer(rpc)
        try:
            yield srv.url
        finally:
            srv.stop()
    else:
        raise AssertionError(f"unknown doc-test kind {kind!r}")


EXPECT = {  # what some examples print
    "none": ["733 DNS Lookup Failed"],
    "rpc": ["3\n", "42\n"],
    "ws": ["200 (1, 'hello')", "200 (2, b'\\x00raw')"],
}


# runs every block in one interpreter (fresh globals each), capturing what each one prints
DRIVER = """
import contextlib, io, json, sys, traceback
out = []
for i, code in enumerate(json.loads(sys.stdin.read())):
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            exec(compile(code, f"<README block {i}>", "exec"), {"__name__": "__main__"})
        except BaseException:
            traceback.print_exc()
    out.append({"stdout": o.getvalue(), "stderr": e.getvalue()})
print(json.dumps(out))
"""


def _blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text())


def test_some_examples_are_marked():
    assert {kind for kind, _ in _blocks()} == {"http", "ws", "rpc", "none"}


def test_readme_examples_run():
    blocks = _blocks()
    with contextlib.ExitStack() as stack:
        bases = {kind: stack.enter_context(_server_for(kind)) for kind in {k for k, _ in blocks}}
        codes_ = []
        for kind, code in blocks:
            if bases[kind]:
                code = code.replace("ws://127.0.0.1:8080", bases[kind]).replace("http://127.0.0.1:8080", bases[kind])
            codes_.append(code)
        proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(codes_), cwd=ROOT,
                              capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == len(blocks)
    for (kind, code), res in zip(blocks, results):
        where = f"README block starting {code.splitlines()[0:3]}"
        assert "Traceback" not in res["stderr"], f"{where}:\n{res['stderr']}"
        for want in EXPECT.get(kind, []):
            assert want in res["stdout"], f"{where}: {want!r} not in {res['stdout']!r}"
        if "aquests.add(" in code:
            assert "2 2 {'via': 'add', 'req_id': 1}" in res["stdout"] and res["stdout"].rstrip().endswith("2 2")
