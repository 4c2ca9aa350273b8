"""The demo the README's first command starts: a page, static files and a JSON API."""
import requests

from tests.support.apps import app_process


def test_demo_page_static_files_and_api():
    with app_process("examples/demo/app.py") as app:
        page = requests.get(app.url + "/", timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "/static/app.js" in page.text and "/static/style.css" in page.text
        for path, ctype in [("/static/style.css", "text/css"), ("/static/app.js", "javascript"),
                            ("/static/logo.svg", "image/svg+xml")]:
            r = requests.get(app.url + path, timeout=10)
            assert r.status_code == 200 and ctype in r.headers["Content-Type"], path
            assert r.headers.get("Cache-Control") == "max-age=300"
            again = requests.get(app.url + path, headers={"If-None-Match": r.headers["ETag"]}, timeout=10)
            assert again.status_code == 304
        status = requests.get(app.url + "/api/status", timeout=10).json()
        assert status["multithread"] is True and status["uptime"] >= 0
        assert requests.get(app.url + "/api/notes", timeout=10).json()[0]["id"] == 1
        created = requests.post(app.url + "/api/notes", json={"text": "from the test"}, timeout=10)
        assert created.status_code == 201 and created.json()["text"] == "from the test"
        assert requests.get(app.url + "/api/notes", timeout=10).json()[-1]["text"] == "from the test"
        assert requests.post(app.url + "/api/notes", data=b"not json", timeout=10).status_code == 400
        assert requests.delete(app.url + "/api/notes", timeout=10).status_code == 405
        assert requests.get(app.url + "/api/none", timeout=10).status_code == 404
        assert requests.get(app.url + "/static/none.css", timeout=10).status_code == 404


def test_demo_in_process():
    """The same app mounted in this process (the way tests and embedders run a server)."""
    import sys
    from pathlib import Path

    from skitai import launch, runner
    from skitai.config import Config, Mount

    demo = Path(__file__).resolve().parents[2] / "examples" / "demo"
    sys.path.insert(0, str(demo))
    try:
        import app as demo_app
    finally:
        sys.path.remove(str(demo))
    config = Config(address="127.0.0.1", port=0, workdir=str(demo),
                    mounts=[Mount("/", demo_app.app), Mount("/static", "static")])
    assert launch.config is not config
    with runner.Running(config) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert requests.get(url + "/api/notes", timeout=10).ok
        assert requests.get(url + "/static/logo.svg", timeout=10).headers["Content-Type"].startswith("image/svg")
    sys.modules.pop("app", None)
