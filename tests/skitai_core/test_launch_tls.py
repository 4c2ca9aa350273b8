"""enable_ssl (SK-08) and enable_forward (SK-09) through run()'s listeners."""
import http.client
import ssl

import requests
import trustme

from skitai import runner
from skitai.config import Config, Mount
from tests.support.net import free_port


def hello(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [env["wsgi.url_scheme"].encode()]


def test_https_and_the_forward_listener(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    forward = free_port()
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path), certfile=str(pem),
                    forward_port=forward, forward_to=8443, mounts=[Mount("/", hello)])
    with runner.Running(config) as server:
        context = ssl.create_default_context(cafile=str(cafile))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"https"
        finally:
            conn.close()
        moved = requests.get(f"http://127.0.0.1:{forward}/a/b?c=1", headers={"Host": "example.com:80"},
                             allow_redirects=False, timeout=10)
        assert moved.status_code == 301 and moved.headers["Location"] == "https://example.com:8443/a/b?c=1"
