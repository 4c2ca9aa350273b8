"""XML-RPC stubs against the standard library's SimpleXMLRPCServer."""
from __future__ import annotations

import socketserver
import threading
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

import aquests
from aquests import codes

from .http_support import raw_server


class _Quiet(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/rpc2",)
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


class _Math:
    def mul(self, a, b):
        return a * b


@pytest.fixture(scope="module")
def rpc_url():
    srv = _Server(("127.0.0.1", 0), requestHandler=_Quiet, allow_none=True, logRequests=False)
    srv.register_function(lambda a, b: a + b, "add")
    srv.register_function(lambda *a: list(a), "echo")
    srv.register_function(lambda: None, "nothing")

    def fail(msg):
        raise xmlrpc.client.Fault(42, msg)
    srv.register_function(fail, "fail")
    srv.register_instance(_Math(), allow_dotted_names=False)
    srv.register_function(_Math().mul, "math.mul")
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/rpc2"
    finally:
        srv.shutdown()
        srv.server_close()


def test_standalone_calls_with_dotted_names(rpc_url):
    got = {}
    aquests.configure(workers=3, callback=lambda r: got.__setitem__(r.meta["name"], r))
    aquests.rpc(rpc_url, meta={"name": "add"}).add(1, 2)
    aquests.rpc(rpc_url, meta={"name": "mul"}).math.mul(6, 7)
    aquests.rpc(rpc_url, meta={"name": "echo"}).echo("a", {"k": [1, 2]}, b"\x00raw")
    aquests.rpc(rpc_url, meta={"name": "none"}).nothing()
    aquests.fetchall()
    assert got["add"].data == 3 and got["add"].status_code == 200
    assert got["mul"].data == 42
    assert got["echo"].data == ["a", {"k": [1, 2]}, b"\x00raw"]
    assert got["none"].data is None and got["none"].ok


async def test_awaitable_stub_and_fault(rpc_url):
    async with aquests.Session() as s:
        stub = s.rpc(rpc_url)
        r = await stub.add("x", "y")
        assert r.data == "xy"
        r = await stub.fail("bad input")
        assert r.status_code == 200 and not r.ok and r.data is None
        assert isinstance(r.error, xmlrpc.client.Fault)
        assert r.reason == "XML-RPC Fault 42: bad input"
        with pytest.raises(aquests.HTTPError, match="XML-RPC Fault 42"):
            r.raise_for_status()
        r = await stub.no_such_method()
        assert "Fault" in r.reason and "not supported" in r.reason
    r = await aquests.aio.rpc(rpc_url).add(2, 2)
    assert r.data == 4


async def test_malformed_and_failed_rpc_responses():
    bad = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 13\r\n\r\n<notxmlrpc />"
    async with raw_server([bad]) as url:
        r = await aquests.aio.rpc(url + "/rpc2").add(1, 2)
        assert r.status_code == codes.PROTOCOL_ERROR and "malformed XML-RPC response" in r.reason
    from tests.support.net import free_port
    r = await aquests.aio.rpc(f"http://127.0.0.1:{free_port()}/rpc2").add(1, 2)
    assert r.status_code == codes.CONNECTION_REFUSED and r.data is None


def test_unmarshallable_arguments_raise_at_call_time(rpc_url):
    aquests.configure()
    with pytest.raises(TypeError, match="cannot marshal"):
        aquests.rpc(rpc_url).add(object(), 1)
    assert aquests.qsize() == 0
