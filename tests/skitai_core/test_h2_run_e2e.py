"""Through run()'s listeners: HTTPS with ALPN h2, h2c prior knowledge, and wss:// to a mounted Flask app."""
from __future__ import annotations

import asyncio
import ssl

import httpx
import trustme
from websockets.asyncio.client import connect as ws_connect
from flask import Flask, request

import skitai
from skitai import runner
from skitai.config import Config, Mount
from tests.skitai_core.h2ws_support import H2Client

app = Flask(__name__)


@app.route("/hello")
def hello():
    return f"{request.environ['wsgi.url_scheme']} {request.environ['SERVER_PROTOCOL']}"


@app.route("/websocket/echo")
def echo():
    event = request.environ.get("websocket.event")
    if event == skitai.WS_EVT_INIT:
        request.environ["websocket.config"] = (skitai.WS_SIMPLE, 60, ("message",))
        return ""
    if event:
        return ""
    return "ECHO:" + request.args.get("message")


async def wss_echo(url: str, ctx: ssl.SSLContext) -> str:
    """The asyncio client: the threaded one writes and reads one SSL object from two threads at once,
    which now and then loses its handshake request over TLS 1.3 (python-websockets/websockets#1387)."""
    async with ws_connect(url, ssl=ctx) as ws:
        await ws.send("over tls")
        return await asyncio.wait_for(ws.recv(), 10)


def test_tls_h2_and_wss_through_run(tmp_path):
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    def trusted():       # one context per client: httpx adds ALPN h2 to the context it is given
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return ctx
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path), certfile=str(pem),
                    keyfile="key.pem", mounts=[Mount("/app", app)])
    with runner.Running(config) as server:
        with httpx.Client(http2=True, verify=trusted()) as cl:
            r = cl.get(f"https://127.0.0.1:{server.port}/app/hello")
            assert r.http_version == "HTTP/2" and r.text == "https HTTP/2"
        assert asyncio.run(wss_echo(f"wss://127.0.0.1:{server.port}/app/websocket/echo", trusted())) \
            == "ECHO:over tls"


def test_h2c_prior_knowledge_through_run(tmp_path):
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path), mounts=[Mount("/", app)])
    with runner.Running(config) as server, httpx.Client(http2=True, http1=False) as cl:
        r = cl.get(f"http://127.0.0.1:{server.port}/hello")
        assert r.http_version == "HTTP/2" and r.text == "http HTTP/2"


def test_static_files_over_h2_with_range(tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    data = bytes(range(256)) * 2000
    (static / "blob.bin").write_bytes(data)
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path), mounts=[Mount("/static", str(static))])
    with runner.Running(config) as server, httpx.Client(http2=True, http1=False) as cl:
        base = f"http://127.0.0.1:{server.port}/static/blob.bin"
        r = cl.get(base)
        assert r.http_version == "HTTP/2" and r.content == data
        r = cl.get(base, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert cl.head(base).headers["content-length"] == str(len(data))


def test_many_streams_mixing_apps_and_static_files_on_one_connection(tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    blob = bytes(range(256)) * 400                           # 100 KB: several DATA frames per stream
    (static / "blob.bin").write_bytes(blob)
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path),
                    mounts=[Mount("/static", str(static)), Mount("/", app)])
    with runner.Running(config) as server:
        c = H2Client(server.port)
        try:
            sids = {c.request("/static/blob.bin" if i % 2 else "/hello"): i % 2 for i in range(40)}
            for sid, is_file in sids.items():
                headers, body = c.response(sid, timeout=20)
                assert headers[":status"] == "200"
                assert body == (blob if is_file else b"http HTTP/2")
        finally:
            c.close()
