"""TLS: make_ssl_context from the enable_ssl fields, ALPN h2/http1.1, https in the environ."""
from __future__ import annotations

import socket
import ssl

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from skitai.config import Config
from skitai.tls import make_ssl_context
from tests.skitai_core.h2ws_support import h2_server


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['wsgi.url_scheme']} {environ['SERVER_PROTOCOL']}".encode()]


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def pems(ca, tmp_path):
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return leaf, cert, key


def client_ctx(ca, alpn):
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(alpn)
    return ctx


def test_h2_and_http11_by_alpn(ca, pems):
    _, cert, key = pems
    ctx = make_ssl_context(Config(certfile=str(cert), keyfile=str(key)))
    with h2_server(app=app, ssl=ctx) as s:
        with httpx.Client(http2=True, verify=client_ctx(ca, ["h2", "http/1.1"])) as cl:
            r = cl.get(f"https://127.0.0.1:{s.port}/")
            assert r.http_version == "HTTP/2" and r.text == "https HTTP/2"
        with httpx.Client(verify=client_ctx(ca, ["http/1.1"])) as cl:
            r = cl.get(f"https://127.0.0.1:{s.port}/")
            assert r.http_version == "HTTP/1.1" and r.text == "https HTTP/1.1"
        with socket.create_connection(("127.0.0.1", s.port)) as raw, \
                client_ctx(ca, ["h2", "http/1.1"]).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "h2"


def test_one_pem_with_key_and_cert_as_the_spec_writes_it(ca, pems, tmp_path):
    leaf, _, _ = pems
    both = tmp_path / "server.pem"
    both.write_bytes(leaf.private_key_pem.bytes() + b"".join(b.bytes() for b in leaf.cert_chain_pems))
    for keyfile in (str(tmp_path / "key-missing.pem"), None, str(both)):
        ctx = make_ssl_context(Config(certfile=str(both), keyfile=keyfile))
        with h2_server(app=app, ssl=ctx) as s, httpx.Client(verify=client_ctx(ca, ["http/1.1"])) as cl:
            assert cl.get(f"https://127.0.0.1:{s.port}/").text == "https HTTP/1.1"


def test_pass_phrase(ca, pems, tmp_path):
    leaf, cert, _ = pems
    pkey = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    enc = tmp_path / "enc.pem"
    enc.write_bytes(pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"your pass phrase")))
    ctx = make_ssl_context(Config(certfile=str(cert), keyfile=str(enc), passphrase="your pass phrase"))
    with h2_server(app=app, ssl=ctx) as s, httpx.Client(http2=True, verify=client_ctx(ca, ["h2"])) as cl:
        assert cl.get(f"https://127.0.0.1:{s.port}/").text == "https HTTP/2"
    with pytest.raises(ValueError, match="pass phrase"):
        make_ssl_context(Config(certfile=str(cert), keyfile=str(enc), passphrase="wrong"))


def test_clear_errors_for_missing_files(pems, tmp_path):
    _, cert, _ = pems
    with pytest.raises(ValueError, match="certificate file"):
        make_ssl_context(Config(certfile=str(tmp_path / "nope.pem")))
    with pytest.raises(ValueError, match="holds no private key"):
        make_ssl_context(Config(certfile=str(cert), keyfile=str(tmp_path / "nope.pem")))


def test_old_tls_is_refused(ca, pems):
    _, cert, key = pems
    ctx = make_ssl_context(Config(certfile=str(cert), keyfile=str(key)))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.get_ca_certs() == []              # a server context: no client CA list by default
