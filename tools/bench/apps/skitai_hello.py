"""Our skitai (from the checkout, .venv) serving the shared hello app.

Environment: BENCH_PORT, BENCH_THREADS (default 4), BENCH_WWW (static dir mounted at /static),
BENCH_CERT/BENCH_KEY (TLS). The port also goes in SKITAI_PORT. The request log is off,
as it is for every other server in the benchmarks.
"""
import logging
import os
import sys

import skitai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsgi_hello import app  # noqa: E402

if os.environ.get("BENCH_WWW"):
    skitai.mount("/static", os.environ["BENCH_WWW"])
skitai.mount("/", app)
if os.environ.get("BENCH_CERT"):
    skitai.enable_ssl(os.environ["BENCH_CERT"], os.environ["BENCH_KEY"])
# No request log, as for every other server here (stdlib logger switched off; skitai checks it).
logging.getLogger("skitai.request").disabled = True
skitai.run(address="127.0.0.1", port=int(os.environ["BENCH_PORT"]),
           threads=int(os.environ.get("BENCH_THREADS", "4")))
