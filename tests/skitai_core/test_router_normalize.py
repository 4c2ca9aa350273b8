"""What the router takes from the client before choosing a mount, over real sockets: dot segments in the path
(HTTP/1.1 and HTTP/2) and a Host name with a trailing dot."""
import socket

import h2.events
import pytest

from skitai import plugins, runner
from skitai.config import Config, Mount
from tests.skitai_core.h2ws_support import H2Client


def named(name):
    def app(env, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        text = f"{name} {env['SCRIPT_NAME']}|{env['PATH_INFO']}|{env['QUERY_STRING']}|{env['REQUEST_URI']}"
        return [text.encode("latin-1")]
    return app


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "files").mkdir()
    (root / "files" / "hello.txt").write_text("static hello")
    (root / "secret.txt").write_text("SECRET")
    config = Config(address="127.0.0.1", port=0, workdir=str(root), mounts=[
        Mount("/", named("root")), Mount("/app", named("app")), Mount("/app/admin", named("appadmin")),
        Mount("/admin", named("admin")), Mount("/files", "files"),
        Mount("/", named("site1"), host="www.site1.com"), Mount("/", named("sub"), host=".site2.com"),
    ])
    with runner.Running(config) as running:
        yield running.port


def get(port, target: bytes, host: bytes = b"x") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


DOTTED = [
    # the mount is chosen on the path with its dot segments removed; REQUEST_URI is what the client sent
    (b"/app/../admin/x", b"admin /admin|/x||/app/../admin/x"),
    (b"/app/../admin/x?q=/../y", b"admin /admin|/x|q=/../y|/app/../admin/x?q=/../y"),
    (b"/app/./x", b"app /app|/x||/app/./x"),
    (b"/app/%2e%2e/admin/x", b"admin /admin|/x||/app/%2e%2e/admin/x"),
    (b"/app/.%2E/admin/x?a=1", b"admin /admin|/x|a=1|/app/.%2E/admin/x?a=1"),
    (b"/app/x/../admin/y", b"appadmin /app/admin|/y||/app/x/../admin/y"),
    (b"/admin/../app/x%20y/.", b"app /app|/x y/||/admin/../app/x%20y/."),
    (b"/app/x/..", b"app /app|/||/app/x/.."),
    (b"/app/..", b"root |/||/app/.."),
    (b"/app//../x", b"app /app|/x||/app//../x"),
    (b"/app/.well-known/x", b"app /app|/.well-known/x||/app/.well-known/x"),     # a name, not a dot segment
    (b"/app/%252e%252e/x", b"app /app|/%2e%2e/x||/app/%252e%252e/x"),          # decoded once: a name
]


@pytest.mark.parametrize("target, answer", DOTTED)
def test_dot_segments_are_removed_before_the_mount_is_chosen(port, target, answer):
    assert get(port, target) == (200, answer)


@pytest.mark.parametrize("target", [
    b"/..", b"/../app/x", b"/app/../../admin", b"/%2e%2e/x", b"/app/%2E%2E/..%2fx", b"/./../x?q=1",
])
def test_dot_segments_above_the_root_are_400(port, target):
    assert get(port, target)[0] == 400


def test_encoded_slash_making_a_dot_segment_for_another_mount_is_400(port):
    # "..%2F" is one segment in the raw path (it stays in /app) but ".." once decoded (it leaves /app)
    assert get(port, b"/app/..%2Fadmin/x")[0] == 400
    assert get(port, b"/app/x/..%2Fy") == (200, b"app /app|/y||/app/x/..%2Fy")      # stays inside /app


def test_static_files_through_dot_segments(port):
    assert get(port, b"/files/./hello.txt") == (200, b"static hello")
    assert get(port, b"/app/../files/hello.txt") == (200, b"static hello")
    status, body = get(port, b"/files/../secret.txt")          # the root app, never the file
    assert status == 200 and body.startswith(b"root |/secret.txt") and b"SECRET" not in body
    assert get(port, b"/files/../../secret.txt")[0] == 400


class Guard(plugins.Plugin):
    """A front handler that keeps everyone out of /admin (as an auth handler would)."""

    name = "guard"

    def handlers(self, config):
        class Keeper:
            def match(self, exchange):
                path = exchange.request.path
                return path == "/admin" or path.startswith("/admin/")

            def __call__(self, exchange):
                exchange.respond(403, [("Content-Type", "text/plain")], b"keep out")
        return [Keeper()]


def test_front_handlers_see_the_clean_path(tmp_path):
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path), mounts=[
        Mount("/", named("root")), Mount("/app", named("app")), Mount("/admin", named("admin"))])
    with runner.Running(config, [Guard()]) as server:
        for target in (b"/admin/x", b"/app/../admin/x", b"/app/%2e%2e/admin/x", b"/x/./../admin"):
            assert get(server.port, target) == (403, b"keep out"), target
        assert get(server.port, b"/ap%70/x")[0] == 400                    # the percent rule holds here too
        assert get(server.port, b"/app/../../admin")[0] == 400
        assert get(server.port, b"/app/./x%20y") == (200, b"app /app|/x y||/app/./x%20y")


def h2_get(client: H2Client, path: str, authority: str = "localhost") -> tuple[int, bytes]:
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                   (":authority", authority)], end_stream=True)
    client.flush()
    headers, body = client.response(sid)
    if not headers:
        assert any(isinstance(e, h2.events.StreamReset) and e.stream_id == sid for e in client.events)
        return 0, b""
    return int(headers[":status"]), body


def test_http2_takes_the_same_route(port):
    client = H2Client(port)
    try:
        assert h2_get(client, "/app/../admin/x?q=1") == (200, b"admin /admin|/x|q=1|/app/../admin/x?q=1")
        assert h2_get(client, "/app/%2e%2e/admin/x") == (200, b"admin /admin|/x||/app/%2e%2e/admin/x")
        assert h2_get(client, "/app/../../admin")[0] == 400
        assert h2_get(client, "/", "www.site1.com.") == (200, b"site1 |/||/")
        assert h2_get(client, "/", "www.site1.com..")[0] in (0, 400)     # the stream is reset
        assert h2_get(client, "/app/x") == (200, b"app /app|/x||/app/x")   # the connection lives on
    finally:
        client.close()


@pytest.mark.parametrize("host, answer", [
    (b"www.site1.com.", b"site1 |/||/"), (b"WWW.Site1.com.:8080", b"site1 |/||/"),
    (b"a.site2.com.", b"sub |/||/"), (b"site2.com.", b"sub |/||/"), (b"other.com.", b"root |/||/"),
])
def test_host_with_one_trailing_dot_picks_its_site(port, host, answer):
    assert get(port, b"/", host) == (200, answer)


@pytest.mark.parametrize("host", [b"www.site1.com..", b"www.site1.com..:80", b"www..site1.com", b".site1.com",
                                  b".", b"a.site2.com.."])
def test_host_with_an_empty_label_is_400(port, host):
    assert get(port, b"/", host)[0] == 400
