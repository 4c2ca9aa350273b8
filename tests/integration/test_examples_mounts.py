"""The spec's mounting examples, each started as ``python <script>`` on a free port."""
import requests

from tests.support.apps import app_process


def get(app, path, **kw):
    kw.setdefault("allow_redirects", False)
    return requests.get(app.url + path, timeout=10, **kw)


def test_multiple_apps_from_one_file_and_a_static_root():
    with app_process("examples/multimount/app.py") as app:
        assert get(app, "/t1/").text == "Hello World"
        r = get(app, "/t1")
        assert (r.status_code, r.headers["Location"]) == (301, "/t1/")
        assert get(app, "/t2/").text == "Hello World from Flask, see /t2/hello"     # url_for knows the mount
        assert get(app, "/t2/hello").text == "Hello"
        index = get(app, "/")
        assert index.status_code == 200 and "static index" in index.text
        assert get(app, "/index.html").headers["Content-Type"].startswith("text/html")
        assert get(app, "/t1x").status_code == 404          # whole segments only: the static root says 404
        assert requests.post(app.url + "/", timeout=10).status_code == 405


def test_versions_with_static_files_at_the_same_point():
    with app_process("examples/versions/service.py") as app:
        assert get(app, "/v1/").text == "Hello World Ver.1 at /v1/"
        assert get(app, "/v2/any/where").text == "Hello World Ver.2 at /v2/any/where"
        css = get(app, "/v2/style.css")
        assert css.headers["Content-Type"].startswith("text/css") and "version 2" in css.text
        assert get(app, "/v1/missing.css").text == "Hello World Ver.1 at /v1/missing.css"
        assert get(app, "/").status_code == 404
        assert get(app, "/v1").headers["Location"] == "/v1/"


def test_virtual_hosts():
    with app_process("examples/vhost/app.py") as app:
        def who(host):
            return get(app, "/", headers={"Host": host}).text
        assert who("www.site1.com") == "this is site1 for www.site1.com"
        assert who("www.site1.com:8080").startswith("this is site1")
        assert who("www.site2.com").startswith("this is site2")
        assert who("api.site2.org").startswith("this is site2")
        assert who("site2.org").startswith("this is site2")
        assert who("unknown.example").startswith("this is site_default")


def test_module_export_with_pref_and_bootstrap():
    with app_process("examples/export/service.py") as app:
        v1 = get(app, "/v1/").json()
        assert v1["version"] == 1 and v1["debug"] is True
        assert [u["name"] for u in v1["urls"]] == ["skitai", "aquests"]
        assert get(app, "/v2/").json() == {"version": 2, "count": 2}


def test_flask_under_a_prefix_makes_prefixed_urls():
    with app_process("examples/flaskapp/app.py") as app:
        assert get(app, "/flaskapp/hello").text == "Hello"
        page = get(app, "/flaskapp/").text
        assert 'href="/flaskapp/hello"' in page and 'href="/flaskapp/static/x.css"' in page
        assert get(app, "/flaskapp").status_code == 301
        assert get(app, "/hello").status_code == 404


def test_started_from_another_directory_uses_the_script_directory(tmp_path):
    """'Accessing File Resources On Startup': relative mounts work wherever the app is started from."""
    with app_process("examples/versions/service.py", cwd=tmp_path) as app:
        assert get(app, "/v1/style.css").status_code == 200


def test_bottle_under_a_prefix_makes_prefixed_urls():
    with app_process("examples/bottleapp/app.py") as app:
        assert get(app, "/bottle/hello/you").text == "Hello you"
        assert get(app, "/bottle/").text == '<a href="/bottle/hello/world">hello</a>'
        assert get(app, "/hello/you").status_code == 404
