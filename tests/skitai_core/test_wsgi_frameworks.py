"""Flask and Bottle apps mounted under a prefix generate correct URLs and see the right paths."""
from __future__ import annotations

import pytest
import requests

from tests.support.server import ServerThread

flask = pytest.importorskip("flask")
bottle = pytest.importorskip("bottle")


def make_flask():
    app = flask.Flask("mounted_flask")

    @app.route("/")
    def index():
        return flask.jsonify(home=flask.url_for("index"), item=flask.url_for("item", name="a b"),
                             external=flask.url_for("item", name="x", _external=True),
                             script=flask.request.script_root, path=flask.request.path)

    @app.route("/item/<name>")
    def item(name):
        return f"item {name}"

    @app.route("/go")
    def go():
        return flask.redirect(flask.url_for("item", name="z"))

    @app.route("/upload", methods=["POST"])
    def upload():
        f = flask.request.files["file"]
        return f"{f.filename}:{len(f.read())}:{flask.request.form['field']}"

    @app.route("/stream")
    def stream():
        return flask.Response((f"{i}," for i in range(5)), mimetype="text/plain")

    return app


@pytest.mark.parametrize("threads", [0, 3])
def test_flask_under_prefix(threads):
    with ServerThread(app=make_flask(), mount="/flask", threads=threads) as srv:
        r = requests.get(srv.url + "/flask/")
        data = r.json()
        assert data["home"] == "/flask/" and data["item"] == "/flask/item/a%20b"
        assert data["external"] == f"http://127.0.0.1:{srv.port}/flask/item/x"
        assert data["script"] == "/flask" and data["path"] == "/"
        assert requests.get(srv.url + "/flask/item/a%20b").text == "item a b"
        r = requests.get(srv.url + "/flask/go", allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"] == "/flask/item/z"
        assert requests.get(srv.url + "/flask/go").text == "item z"
        r = requests.post(srv.url + "/flask/upload", files={"file": ("f.bin", b"x" * 300_000)},
                          data={"field": "v"})
        assert r.text == "f.bin:300000:v"
        assert requests.get(srv.url + "/flask/stream").text == "0,1,2,3,4,"
        assert requests.get(srv.url + "/flask/missing").status_code == 404


def make_bottle():
    app = bottle.Bottle()

    @app.route("/", name="home")
    def home():
        return {"home": app.get_url("home"), "hello": app.get_url("hello", name="bob"),
                "script": bottle.request.script_name, "path": bottle.request.path,
                "url": bottle.request.url}

    @app.route("/hello/<name>", name="hello")
    def hello(name):
        return f"hello {name}"

    @app.post("/echo")
    def echo():
        return bottle.request.body.read()

    return app


@pytest.mark.parametrize("threads", [0, 3])
def test_bottle_under_prefix(threads):
    with ServerThread(app=make_bottle(), mount="/b", threads=threads) as srv:
        data = requests.get(srv.url + "/b/").json()
        assert data["home"] == "/b/" and data["hello"] == "/b/hello/bob"
        assert data["script"] == "/b/" and data["path"] == "/"
        assert data["url"] == f"http://127.0.0.1:{srv.port}/b/"
        assert requests.get(srv.url + "/b/hello/bob").text == "hello bob"
        assert requests.post(srv.url + "/b/echo", data=b"payload").content == b"payload"
