"""``was`` request verbs from a WSGI app, over real sockets: fan-out, every verb, wait timeouts, results.

The front is a skitai (``Running``) whose plain WSGI app uses ``from skitai import was``; the backends are
second skitai servers whose dispatch sleeps on their loop and echoes the request, a stdlib XML-RPC server,
a ``websockets`` echo server and a grpcio server.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from skitai import was
from skitai.services.results import WasTimeout
from tests.integration.was_support import (echo_backends, front, get_json, query, routed, ws_echo_backend,
                                           xmlrpc_backend)
from tests.support.net import free_port


@pytest.fixture(scope="module")
def backends():
    with echo_backends(5) as servers:
        yield servers


@pytest.fixture(scope="module")
def rpc_server():
    with xmlrpc_backend() as address:
        yield address


@pytest.fixture(scope="module")
def ws_url():
    with ws_echo_backend() as address:
        yield f"ws://{address}/echo"


@pytest.fixture(scope="module")
def base(backends, rpc_server, ws_url, tmp_path_factory):
    urls = [b.url for b in backends]
    upload_file = tmp_path_factory.mktemp("was") / "note.txt"
    upload_file.write_bytes(b"file body")

    def fan(env):
        delay = query(env).get("delay", "0.2")
        started = time.monotonic()
        pending = [was.get(f"{u}/fan?delay={delay}") for u in urls]
        issued = time.monotonic() - started
        results = [p.getwait(5) for p in pending]
        return {"issued": issued, "elapsed": time.monotonic() - started,
                "status": [r.status for r in results], "ports": [r.data["port"] for r in results]}

    def verbs(env):
        u = urls[0]
        calls = {
            "get": was.get(u + "/g", {"q": "mozart"}),
            "post": was.post(u + "/p", {"a": 1}),
            "postform": was.postform(u + "/pf", {"a": "1", "b": "x y"}),
            "postjson": was.postjson(u + "/pj", [1, 2]),
            "put": was.put(u + "/u", {"k": "v"}),
            "patch": was.patch(u + "/pa", {"k": "w"}),
            "delete": was.delete(u + "/d"),
            "options": was.options(u + "/o"),
            "trace": was.trace(u + "/t"),
            "postxml": was.postxml(u + "/px", "<a>1</a>"),
            "postnvp": was.postnvp(u + "/pn", {"n": "v w"}),
            "putform": was.putform(u + "/uf", {"a": "1"}),
            "putjson": was.putjson(u + "/uj", {"j": 1}),
            "putxml": was.putxml(u + "/ux", "<u/>"),
            "putnvp": was.putnvp(u + "/un", {"n": "1"}),
            "patchform": was.patchform(u + "/af", {"b": "2"}),
            "patchjson": was.patchjson(u + "/aj", [3]),
            "patchxml": was.patchxml(u + "/ax", "<p>x</p>"),
            "patchnvp": was.patchnvp(u + "/an", {"m": "2"}),
            "upload": was.upload(u + "/up", {"note": str(upload_file), "field": "value"}),
            "headers_list": was.get(u + "/h", headers=[("X-One", "1")]),
            "headers_dict": was.get(u + "/h", headers={"X-Two": "2"}),
        }
        filtered = was.get(u + "/filtered", filter=lambda d: {**d, "filtered": d["path"].upper()}).getwait(5)
        out = {}
        for name, task in calls.items():
            r = task.getwait(5)
            d = r.data
            out[name] = {"status": r.status, "code": r.status_code, "method": d["method"], "path": d["path"],
                         "query": d["query"], "body": d["body"], "ctype": d["headers"].get("content-type", ""),
                         "headers": d["headers"]}
        out["filtered"] = {"status": 3, "code": 200, "headers": filtered.data["headers"],
                           "upper": filtered.data["filtered"]}
        return out

    def timeout(env):
        q = query(env)
        task = was.get(f"{q['url']}/slow?delay={q.get('delay', '2')}")
        time.sleep(float(q.get("pause", 0)))
        started = time.monotonic()
        r = task.getwait(float(q.get("wait", 0.3)))
        return {"status": r.status, "code": r.status_code, "wait_took": time.monotonic() - started,
                "again_same": task.getwait(5) is r, "reason": r.reason}

    def results(env):
        u = urls[0]
        task = was.get(u + "/r")
        first = task.getwait(5)
        out = {"same": task.getwait(5) is first, "status": first.status, "node": first.node,
               "ok_reraise": first.reraise() is first, "lb_node": was.get("@one/r").getwait(5).node}
        several = task.getswait(5)
        try:
            was.get(u + "/cb", callback=lambda r: None).getwait(5)    # its result goes to the callback only
        except RuntimeError as exc:
            out["callback_wait"] = str(exc)
        out["getswait_single"] = [len(several), several.status]
        # HTTP errors are answers: status 3, and reraise lets them through (SK-53)
        r500 = was.get(u + "/e?status=500").getwait(5, reraise=True)
        out["http500"] = [r500.status, r500.status_code]
        # a refused connection: status 2, code 732
        dead = f"http://127.0.0.1:{free_port()}/x"
        failed = was.get(dead).getwait(5)
        out["refused"] = [failed.status, failed.status_code]
        try:
            was.get(dead).getwait(5, reraise=True)
        except Exception as exc:
            out["reraised"] = type(exc).__name__
        try:
            was.post(dead, {"a": 1}).wait(5)       # wait() re-raises by default
        except Exception as exc:
            out["wait_raised"] = type(exc).__name__
        bad = was.get("ftp://127.0.0.1/x").getwait(5)          # refused while sending: a status 2 result
        out["bad_scheme"] = [bad.status, bad.status_code, "ftp" in bad.reason.lower()]
        try:
            was.get(u + "/slow?delay=1").getwait(0.1, reraise=True)
        except WasTimeout as exc:
            out["timeout_raised"] = str(exc)
        return out

    def rpc(env):
        stub = was.rpc(f"http://{rpc_server}/RPC2")
        add, found, dotted = stub.add(1, 2), stub.search("mozart"), stub.math.mul(6, 7)
        fault = stub.nosuch(1).getwait(5)
        return {"add": add.getwait(5).data, "search": found.getwait(5).data, "dotted": dotted.getwait(5).data,
                "fault": [fault.status, fault.reason]}

    def ws(env):
        r = was.ws(ws_url, "hello").getwait(5)
        b = was.ws(ws_url, b"\x00\x01").getwait(5)
        return {"text": r.data, "status": r.status, "binary": list(b.data)}

    app = routed({"/fan": fan, "/verbs": verbs, "/timeout": timeout, "/results": results, "/rpc": rpc,
                  "/ws": ws})
    with front(app, {"one": ("http", urls[0].split("//")[1])}, threads=4) as url:
        yield url


def test_five_calls_before_the_first_wait_run_concurrently(base):
    started = time.monotonic()
    data = get_json(base + "/fan?delay=0.4")
    took = time.monotonic() - started
    assert data["status"] == [3] * 5
    assert len(set(data["ports"])) == 5
    assert data["issued"] < 0.2                   # each call returns at once, long before its 0.4 s answer
    assert 0.39 <= data["elapsed"] < 1.2          # about 400 ms, clearly below the serial 2 s
    assert took < 2.0


def test_fan_out_from_several_requests_at_once(base):
    out: list = []

    def one() -> None:
        out.append(get_json(base + "/fan?delay=0.4")["elapsed"])

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(out) == 4 and max(out) < 1.6       # 4 worker threads × 5 calls, all overlapping (serial: 2 s each)


def test_every_verb_sends_its_method_body_and_headers(base):
    d = get_json(base + "/verbs")
    assert all(v["status"] == 3 and v["code"] == 200 for v in d.values()), d
    assert (d["get"]["method"], d["get"]["query"]) == ("GET", {"q": "mozart"})
    assert (d["post"]["method"], d["post"]["body"], d["post"]["ctype"]) == ("POST", '{"a": 1}', "application/json")
    assert d["postform"]["body"] == "a=1&b=x+y"
    assert d["postform"]["ctype"] == "application/x-www-form-urlencoded"
    assert (d["postjson"]["body"], d["postjson"]["ctype"]) == ("[1, 2]", "application/json")
    assert (d["put"]["method"], d["put"]["body"]) == ("PUT", '{"k": "v"}')
    assert (d["patch"]["method"], d["patch"]["body"]) == ("PATCH", '{"k": "w"}')
    assert d["delete"]["method"] == "DELETE" and d["options"]["method"] == "OPTIONS"
    assert d["trace"]["method"] == "TRACE"
    form, xml, nvp = "application/x-www-form-urlencoded", "text/xml", "text/namevalue"
    sent = {name: (d[name]["method"], d[name]["path"], d[name]["body"], d[name]["ctype"]) for name in (
        "postxml", "postnvp", "putform", "putjson", "putxml", "putnvp", "patchform", "patchjson", "patchxml",
        "patchnvp")}
    assert sent == {
        "postxml": ("POST", "/px", "<a>1</a>", xml), "postnvp": ("POST", "/pn", "n=v+w", nvp),
        "putform": ("PUT", "/uf", "a=1", form), "putjson": ("PUT", "/uj", '{"j": 1}', "application/json"),
        "putxml": ("PUT", "/ux", "<u/>", xml), "putnvp": ("PUT", "/un", "n=1", nvp),
        "patchform": ("PATCH", "/af", "b=2", form), "patchjson": ("PATCH", "/aj", "[3]", "application/json"),
        "patchxml": ("PATCH", "/ax", "<p>x</p>", xml), "patchnvp": ("PATCH", "/an", "m=2", nvp)}
    up = d["upload"]
    assert up["method"] == "POST" and up["ctype"].startswith("multipart/form-data; boundary=")
    assert 'filename="note.txt"' in up["body"] and "file body" in up["body"] and "value" in up["body"]
    assert d["headers_list"]["headers"]["x-one"] == "1"
    assert d["headers_dict"]["headers"]["x-two"] == "2"
    assert d["filtered"]["upper"] == "/FILTERED"           # filter= maps the data of a normal result
    for v in d.values():                          # every outgoing request carries the transaction ids
        assert v["headers"]["x-gtxn-id"].startswith("GTID-") and v["headers"]["x-ltxn-id"].isdigit()


def test_wait_timeout_gives_status_1_and_drops_the_call():
    with echo_backends(1) as (slow,):
        with front(routed({"/t": lambda env: _timeout_once(env, slow.url)})) as url:
            d = get_json(url + "/t")
            assert (d["status"], d["code"]) == (1, 730)
            assert 0.25 <= d["elapsed"] < 1.2 and d["again_same"]     # before the backend's 1.2 s answer
            # nothing is left running: the front dropped its connection, so the backend has none open
            deadline = time.monotonic() + 3
            while slow.server.state.connections and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not slow.server.state.connections


def _timeout_once(env, backend: str):
    started = time.monotonic()
    task = was.get(backend + "/slow?delay=1.2")
    r = task.getwait(0.3)
    return {"status": r.status, "code": r.status_code, "elapsed": time.monotonic() - started,
            "again_same": task.getwait(5) is r}


def test_wait_timeout_counts_from_the_call_not_from_the_wait(base, backends):
    # the call is 1.2 s old when the wait starts: a 1 s timeout has already passed, so the wait returns at once
    d = get_json(f"{base}/timeout?url={backends[1].url}&delay=3&pause=1.2&wait=1")
    assert (d["status"], d["code"]) == (1, 730) and d["again_same"]
    assert d["wait_took"] < 1.0                   # counted from the wait it would take 1 s
    # a call that finished meanwhile is a normal result even though its timeout has passed too
    done = get_json(f"{base}/timeout?url={backends[1].url}&delay=0.05&pause=0.5&wait=0.2")
    assert (done["status"], done["code"]) == (3, 200) and done["wait_took"] < 0.5


def test_results_status_node_reraise_and_repeated_waits(base, backends):
    d = get_json(base + "/results")
    assert d["same"] and d["status"] == 3 and d["ok_reraise"]
    assert d["node"] is None                      # a direct call has no cluster member
    assert d["lb_node"] == f"127.0.0.1:{backends[0].port}"
    assert d["getswait_single"] == [1, [3]]
    assert "callback" in d["callback_wait"]
    assert d["http500"] == [3, 500]
    assert d["refused"] == [2, 732]
    assert d["bad_scheme"] == [2, 731, True]
    assert d["reraised"] == "HTTPError" and d["wait_raised"] == "HTTPError"
    assert "timeout" in d["timeout_raised"] or "within" in d["timeout_raised"]


def test_xmlrpc_calls_and_faults(base):
    d = get_json(base + "/rpc")
    assert d["add"] == 3 and d["search"] == ["mozart-1", "mozart-2"] and d["dotted"] == 42
    assert d["fault"][0] == 2 and "Fault" in d["fault"][1]


def test_websocket_one_shot_request(base):
    d = get_json(base + "/ws")
    assert d == {"text": "hello", "status": 3, "binary": [0, 1]}


def test_grpc_unary_call():
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    from tests.aquests.protos import routeguide_pb2 as pb
    from tests.aquests.protos import routeguide_pb2_grpc as pb_grpc

    class Guide(pb_grpc.RouteGuideServicer):
        def GetFeature(self, request, context):
            return pb.Feature(name=f"f{request.latitude}", location=request)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_RouteGuideServicer_to_server(Guide(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    service = pb.DESCRIPTOR.services_by_name["RouteGuide"]

    def call(env):
        stub = was.grpc(f"http://127.0.0.1:{port}/routeguide.RouteGuide", service=service)
        r = stub.GetFeature(pb.Point(latitude=7, longitude=8)).getwait(5)
        lb = was.grpc("@guide/routeguide.RouteGuide", service=service).GetFeature(pb.Point(latitude=9)).getwait(5)
        raw = was.togrpc(pb.Point(latitude=1))
        return {"name": r.data.name, "status": r.status, "lat": was.fromgrpc(pb.Point, raw).latitude,
                "lb": [lb.data.name, lb.node]}

    try:
        with front(routed({"/g": call}), {"guide": ("grpc", f"127.0.0.1:{port}")}) as url:
            assert get_json(url + "/g") == {"name": "f7", "status": 3, "lat": 1, "lb": ["f9", f"127.0.0.1:{port}"]}
    finally:
        server.stop(0)


def test_unknown_verb_and_cluster_are_clear_errors(base):
    def bad(env):
        out = {}
        for what, fn in (("verb", lambda: was.fetch("http://x/")), ("cluster", lambda: was.get("@nosuch/x")),
                         ("map_without_cluster", lambda: was.get.map("http://127.0.0.1:1/"))):
            try:
                fn()
            except (AttributeError, ValueError) as exc:
                out[what] = f"{type(exc).__name__}: {exc}"
        return out

    with front(routed({"/bad": bad})) as url:
        d = get_json(url + "/bad")
    assert d["verb"].startswith("AttributeError") and "fetch" in d["verb"]
    assert "no cluster named @nosuch" in d["cluster"]
    assert "needs a cluster address" in d["map_without_cluster"]


def test_was_outside_a_server_says_so():
    code = "from skitai import was\ntry:\n    was.get\nexcept AttributeError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "the was services are not installed in this process" in out.stdout, out.stderr
