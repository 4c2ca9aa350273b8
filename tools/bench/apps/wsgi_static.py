"""Static files for WSGI servers that have no file server of their own (waitress): /static/NAME.

The plain way a WSGI user serves a file: stat, open, hand it to ``wsgi.file_wrapper``.
"""
import os

ROOT = os.environ.get("BENCH_WWW", os.path.join(os.path.dirname(__file__), "..", ".peers", "www"))
TYPES = {".bin": "application/octet-stream", ".txt": "text/plain"}


def app(environ, start_response):
    name = environ.get("PATH_INFO", "").rpartition("/static/")[2]
    path = os.path.join(ROOT, name)
    if not name or "/" in name or name.startswith(".") or not os.path.isfile(path):
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    size = os.path.getsize(path)
    ctype = TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(size))])
    f = open(path, "rb")
    wrapper = environ.get("wsgi.file_wrapper")
    return wrapper(f, 65536) if wrapper else iter(lambda: f.read(65536), b"")
