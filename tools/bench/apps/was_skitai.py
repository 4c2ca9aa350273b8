"""Issue 4 on our skitai: routes that call a backend through ``was``.

/one   ``was.get(backend).getwait()``, the backend's body returned
/fan5  five ``was.get`` issued first, then five ``getwait()``: they run concurrently
Environment: BENCH_PORT, BENCH_THREADS (default 4), BENCH_BACKEND (URL).
"""
import logging
import os

import skitai
from skitai import was

BACKEND = os.environ["BENCH_BACKEND"]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/one":
        bodies = [was.get(BACKEND).getwait(timeout=10).content]
    elif path == "/fan5":
        pending = [was.get(BACKEND) for _ in range(5)]
        bodies = [p.getwait(timeout=10).content for p in pending]
    else:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    if any(b is None for b in bodies):
        start_response("502 Bad Gateway", [("Content-Length", "0")])
        return [b""]
    body = b"".join(bodies)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


skitai.mount("/", app)
# No request log, as for every other server here (stdlib logger switched off; skitai checks it).
logging.getLogger("skitai.request").disabled = True
skitai.run(address="127.0.0.1", port=int(os.environ["BENCH_PORT"]),
           threads=int(os.environ.get("BENCH_THREADS", "4")))
