"""The ``was`` services in one file: a route fanning out to five backend calls, and the status page.

    .venv/bin/python examples/was/app.py --port 5000
    curl http://127.0.0.1:5000/             # five 200 ms calls answered in about 200 ms
    open http://127.0.0.1:5000/status       # clusters, members' health, counters
    curl -i http://127.0.0.1:5000/old       # was.redirect: 302 to /

The "backend" is this same server (``/api/slow``), reached through the cluster ``@self``.
"""
import json
import os
import sys
import time

import skitai
from skitai import was


def port() -> int:
    """The port skitai will listen on (``--port N`` or SKITAI_PORT), for the ``@self`` alias."""
    if "--port" in sys.argv:
        return int(sys.argv[sys.argv.index("--port") + 1])
    return int(os.environ.get("SKITAI_PORT", "5000"))


def app(env, start_response):
    path = env["PATH_INFO"]
    if path == "/old":
        return was.redirect("/", start_response=start_response)
    if path == "/api/slow":
        time.sleep(0.2)
        body = json.dumps({"n": env.get("QUERY_STRING", "")})
        ctype = "application/json"
    elif path == "/status":
        body = was.status()
        ctype = "application/json" if body.startswith("{") else "text/html; charset=utf-8"
    else:
        started = time.monotonic()
        calls = [was.get(f"@self/api/slow?{i}") for i in range(5)]      # all five start now
        results = [c.getwait(timeout=3) for c in calls]                  # wait for each
        body = json.dumps({"elapsed": round(time.monotonic() - started, 3),
                           "status": [r.status for r in results],
                           "data": [r.data for r in results], "txnid": was.txnid()})
        ctype = "application/json"
    data = body.encode()
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]


if __name__ == "__main__":
    skitai.mount("/", app)
    skitai.alias("@self", skitai.PROTO_HTTP, f"127.0.0.1:{port()}")
    skitai.run(address="127.0.0.1", port=port(), threads=8)
