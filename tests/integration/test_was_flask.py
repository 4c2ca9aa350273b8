"""A Flask app using ``from skitai import was`` (SK-19): requests, and attributes set on ``was`` stay with
their own request even when many run at once on different worker threads."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from skitai import was
from tests.integration.was_support import echo_backends, front

flask = pytest.importorskip("flask")


def make_app(backend: str):
    app = flask.Flask(__name__)

    @app.route("/call")
    def call():
        r = was.get(backend + "/from-flask", {"q": flask.request.args.get("q", "")}).getwait(5)
        return flask.jsonify(status=r.status, query=r.data["query"], path=flask.request.path)

    @app.route("/mine/<name>")
    def mine(name):
        fresh = not hasattr(was, "owner")        # nothing left over from an earlier request on this thread
        was.owner = name
        time.sleep(0.05)                          # let other requests run and set theirs meanwhile
        mid = was.owner
        r = was.get(backend + "/x").getwait(5)    # a sub-call in between changes nothing
        time.sleep(0.02)
        return flask.jsonify(fresh=fresh, mid=mid, end=was.owner, env_was=flask.request.environ["skitai.was"].owner,
                             status=r.status)

    return app


def test_flask_route_calls_a_backend_through_was():
    with echo_backends(1) as (backend,), front(make_app(backend.url), threads=4) as url:
        r = requests.get(url + "/call?q=mozart", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": 3, "query": {"q": "mozart"}, "path": "/call"}


def test_attributes_set_on_was_never_leak_across_requests_or_threads():
    results: dict[str, dict] = {}
    with echo_backends(1) as (backend,), front(make_app(backend.url), threads=8) as url:
        def one(name: str) -> None:
            with requests.Session() as s:
                for i in range(4):
                    results[f"{name}-{i}"] = s.get(f"{url}/mine/{name}-{i}", timeout=10).json()

        threads = [threading.Thread(target=one, args=(f"u{n}",)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert len(results) == 48
    for name, d in results.items():
        assert d == {"fresh": True, "mid": name, "end": name, "env_was": name, "status": 3}, (name, d)
