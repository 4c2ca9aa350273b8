"""``https`` clusters behind a mount: TLS to the members, checked against ``verify`` (a CA bundle here)."""
from __future__ import annotations

import json
import ssl

import pytest
import requests
import websockets.sync.client as wsc

from tests.integration.proxy_support import backend_dispatch, front, ws_server
from tests.support.server import ServerThread

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(server SSL context for 127.0.0.1, CA bundle path)."""
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return ctx, str(bundle)


@pytest.fixture(scope="module")
def tls_member(tls):
    ctx, bundle = tls
    with ServerThread(backend_dispatch(), ssl=ctx) as srv:
        yield f"127.0.0.1:{srv.port}", bundle


def test_https_members_are_reached_over_tls(tls_member):
    member, bundle = tls_member
    with front([member], "https", verify=bundle) as f:
        d = requests.get(f.url + "/search/secure?x=1", timeout=5).json()
        big = requests.post(f.url + "/search/up", data=b"s" * 300_000, timeout=5).json()
    assert d["target"] == "/secure?x=1" and d["headers"]["host"] == member
    assert d["headers"]["x-forwarded-proto"] == "http"          # how the client reached the front
    assert big["size"] == 300_000


def test_an_untrusted_member_certificate_is_a_502(tls_member):
    member, _ = tls_member
    with front([member], "https") as f:                           # verify=True: the system CAs only
        r = requests.get(f.url + "/search/secure", timeout=5)
        status = f.cluster().status()["members"][0]
    assert r.status_code == 502 and "certificate" in r.text.lower()
    assert status["dead"] and "certificate" in status["last_error"].lower()


def test_websocket_tunnel_to_a_tls_member(tls):
    ctx, bundle = tls
    member, stop = ws_server(ssl=ctx)
    try:
        with front([member], "wss", verify=bundle) as f:
            with wsc.connect(f"ws://127.0.0.1:{f.port}/search/echo", open_timeout=5) as ws:
                assert json.loads(ws.recv(timeout=5))["path"] == "/echo"
                ws.send("over tls")
                assert ws.recv(timeout=5) == "over tls"
    finally:
        stop()
