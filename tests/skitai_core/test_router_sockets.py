"""The router behind a real server on 127.0.0.1: mounts, vhosts and static/app sharing over sockets."""
import socket

import pytest
import requests

from skitai import loader, runner
from skitai.config import Cluster, Config, Mount


def named(name):
    def app(env, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{name} {env['SCRIPT_NAME']}|{env['PATH_INFO']}".encode()]
    return app


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "static").mkdir()
    (root / "static" / "hello.txt").write_text("static hello")
    (root / "shared").mkdir()
    (root / "shared" / "file.txt").write_text("shared file")
    config = Config(address="127.0.0.1", port=0, workdir=str(root), mounts=[
        Mount("/", named("root")),
        Mount("/app", named("app")),
        Mount("/app/deep", named("deep")),
        Mount("/files", "static"),
        Mount("/both", "shared"),
        Mount("/both", named("both")),
        Mount("/", named("site1"), host="www.site1.com"),
        Mount("/", named("sub"), host=".site2.com"),
        Mount("/lb", "@backend"),
    ], clusters={"backend": Cluster("backend", "http", ["127.0.0.1:9"])})
    with runner.Running(config) as running:
        yield f"http://127.0.0.1:{running.port}"


def get(url, **kw):
    kw.setdefault("allow_redirects", False)
    kw.setdefault("timeout", 10)
    return requests.get(url, **kw)


@pytest.mark.parametrize("path, text", [
    ("/", "root |/"), ("/x/y", "root |/x/y"), ("/app/", "app /app|/"), ("/app/x", "app /app|/x"),
    ("/appx", "root |/appx"), ("/app/deep/1", "deep /app/deep|/1"), ("/app/deeper", "app /app|/deeper"),
])
def test_longest_prefix_mount_wins(server, path, text):
    assert get(server + path).text == text


def test_mount_point_without_slash_redirects(server):
    r = get(server + "/app?q=1")
    assert r.status_code == 301 and r.headers["Location"] == "/app/?q=1"


def test_static_alone(server):
    assert get(server + "/files/hello.txt").text == "static hello"
    assert get(server + "/files/missing.txt").status_code == 404        # no fall-through to "/"
    assert requests.post(server + "/files/hello.txt", timeout=10).status_code == 405
    assert requests.head(server + "/files/hello.txt", timeout=10).headers["Content-Length"] == "12"


def test_static_and_app_share_a_point(server):
    assert get(server + "/both/file.txt").text == "shared file"
    assert get(server + "/both/other").text == "both /both|/other"
    assert requests.post(server + "/both/file.txt", timeout=10).text == "both /both|/file.txt"


def test_virtual_hosts(server):
    assert get(server + "/", headers={"Host": "www.site1.com"}).text == "site1 |/"
    assert get(server + "/a", headers={"Host": "x.site2.com:5000"}).text == "sub |/a"
    assert get(server + "/", headers={"Host": "other.com"}).text == "root |/"


def test_unknown_host_without_default_is_404(tmp_path):
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path),
                    mounts=[Mount("/", named("only"), host="www.only.com")])
    with runner.Running(config) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: www.else.com\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 404 ")


def test_proxy_mount_to_a_dead_cluster_is_a_gateway_error(server):
    assert get(server + "/lb/x").status_code in (502, 503, 504)


def test_proxy_mount_needs_its_cluster(tmp_path):
    config = Config(workdir=str(tmp_path), mounts=[Mount("/lb", "@nowhere")])
    with pytest.raises(loader.MountError, match="no alias"):
        runner.build(config)


def test_start_and_cleanup_hooks(tmp_path):
    events = []
    app = named("hooked")
    app.start = lambda was, point: events.append(("start", point))
    app.cleanup = lambda: events.append("cleanup")
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path), mounts=[Mount("/h", app)])
    with runner.Running(config) as running:
        assert events == [("start", "/h")]
        assert get(f"http://127.0.0.1:{running.port}/h/").text == "hooked /h|/"
    assert events == [("start", "/h"), "cleanup"]


def test_a_failing_hook_is_logged_not_fatal(tmp_path, caplog):
    app = named("bad")
    app.start = lambda was, point: 1 / 0
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path), mounts=[Mount("/", app)])
    with runner.Running(config) as running:
        assert get(f"http://127.0.0.1:{running.port}/").text == "bad |/"
    assert "start hook" in caplog.text
