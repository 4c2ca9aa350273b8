"""The aquests usage of the spec ("Async Requests Service", skitai 0.26 README), run verbatim.

Each snippet runs as its own script in a fresh interpreter (so nothing is configured before it),
with only the server address filled in. A profile hook records every call of the snippet's own
``display_result`` and what it was given, so the snippet's text stays untouched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# the spec's blocks, character for character but for trailing blanks (its typo `reponse` included)
SPEC_HTTP = """\
import aquests

def display_result (response):
  print (reponse.data)

aquests.configure (callback = display_result, timeout = 3)

aquests.get (url)
aquests.post (url, {"user": "Hans Roh", "comment": "Hello"})
aquests.fetchall ()
"""

SPEC_PG = """\
import aquests

def display_result (response):
  for row in response.data:
    row.city, row.t_high, row.t_low

aquests.configure (callback = display_result, timeout = 3)

dbo = aquests.postgresql ("127.0.0.1:5432", "mydb")
dbo.excute ("SELECT city, t_high, t_low FROM weather;")
aquests.fetchall ()
"""

# records display_result(response) calls and prints them as JSON after the snippet
PRELUDE = """\
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
_calls = []
def _watch(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "display_result":
        _calls.append(frame.f_locals["response"])
sys.setprofile(_watch)
"""

EPILOGUE = """
sys.setprofile(None)
def _row(r):
    return {"status": r.status_code, "method": r.meta.get("req_method"),
            "data": [dict(x.asdict()) for x in r.data] if hasattr(r, "description") else r.data}
print("CALLS=" + json.dumps([_row(r) for r in _calls], default=repr))
"""


def run_snippet(snippet: str, env: dict | None = None, **names: str) -> tuple[list[dict], str]:
    script = PRELUDE + "".join(f"{k} = {v!r}\n" for k, v in names.items()) + snippet + EPILOGUE
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("CALLS=")][-1]
    return json.loads(line[len("CALLS="):]), proc.stdout + proc.stderr


def test_http_usage_verbatim(app):
    calls, output = run_snippet(SPEC_HTTP, url=f"{app.url}/echo")
    by_method = {c["data"]["method"]: c for c in calls}
    assert sorted(by_method) == ["GET", "POST"] and all(c["status"] == 200 for c in calls)
    assert json.loads(by_method["POST"]["data"]["body"]) == {"user": "Hans Roh", "comment": "Hello"}
    assert by_method["POST"]["data"]["headers"]["content-type"] == "application/json"
    # the spec's own typo makes its callback raise: logged, and the run still finishes both requests
    assert output.count("NameError: name 'reponse' is not defined") == 2
    assert "* 2 tasks during" in output


def test_http_usage_with_the_typo_fixed_prints_the_data(app):
    fixed = SPEC_HTTP.replace("print (reponse.data)", "print (response.data)")
    calls, output = run_snippet(fixed, url=f"{app.url}/echo")
    assert len(calls) == 2 and "'method': 'POST'" in output and "'method': 'GET'" in output
    assert "Traceback" not in output


def test_requests_without_configure_use_the_defaults(app):
    # no configure(): the defaults (one worker, the demo callback logging one line per response)
    calls, output = run_snippet("import aquests\naquests.get(url)\naquests.fetchall()\n", url=f"{app.url}/echo")
    assert calls == [] and "REQ 1 " in output and " 200 OK " in output and "* 1 tasks during" in output


@pytest.fixture
def mydb(pg_server):
    psycopg2 = pytest.importorskip("psycopg2")
    conn = psycopg2.connect(pg_server.dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS mydb")
        cur.execute("CREATE DATABASE mydb")
    conn.close()
    conn = psycopg2.connect(psycopg2.extensions.make_dsn(pg_server.dsn, dbname="mydb"))
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE weather (city text, t_high int, t_low int)")
        cur.execute("INSERT INTO weather VALUES ('Seoul', 30, 18), ('Busan', 28, 21)")
    conn.close()
    return pg_server


def test_postgresql_usage_verbatim(mydb):
    snippet = SPEC_PG.replace('"127.0.0.1:5432"', repr(mydb.server))
    # no auth in the spec: libpq takes the user from PGUSER, as it would from a ~/.pgpass setup
    calls, output = run_snippet(snippet, env={"PGUSER": "postgres"})
    assert calls == [{"status": 200, "method": "execute",
                      "data": [{"city": "Seoul", "t_high": 30, "t_low": 18},
                               {"city": "Busan", "t_high": 28, "t_low": 21}]}]
    assert "Traceback" not in output, output


def test_awaitable_form_of_the_same_usage(app):
    # the spec's calls, awaited from asyncio code instead of queued
    script = textwrap.dedent(f"""
        import asyncio, aquests
        async def main():
            r1 = await aquests.get("{app.url}/echo")
            r2 = await aquests.post("{app.url}/echo", {{"user": "Hans Roh", "comment": "Hello"}})
            async with aquests.Session(timeout=3) as s:
                r3 = await s.get("{app.url}/echo")
            print(r1.data["method"], r2.data["body"], r3.status_code)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == 'GET {"user": "Hans Roh", "comment": "Hello"} 200', proc.stderr
