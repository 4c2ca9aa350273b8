"""Issue 4 peer: the same two routes in a WSGI app using ``requests`` (served by waitress).

A ``requests.Session`` per worker thread keeps connections alive; /fan5 makes its five calls one
after another, as such code does. Environment: BENCH_BACKEND (URL).
"""
import os
import threading

import requests

BACKEND = os.environ["BENCH_BACKEND"]
_local = threading.local()


def _session() -> requests.Session:
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
    return s


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    count = {"/one": 1, "/fan5": 5}.get(path)
    if count is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    s = _session()
    body = b"".join(s.get(BACKEND, timeout=10).content for _ in range(count))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
