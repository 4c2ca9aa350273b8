"""Every configure() option of the standalone API, proven by what the servers saw (AQ-01, AQ-12)."""
from __future__ import annotations

import asyncio
import logging

import aquests
from aquests import verbs

from .http_support import Gauge


def test_workers_is_the_in_flight_bound_seen_by_the_server(app):
    # /gauge holds each request until more than 3 are inside at once (or 0.5 s pass): if fetchall()
    # let a 4th out early, the server would count it
    app.server.gauge = gauge = Gauge()
    in_flight = []
    aquests.configure(workers=3, callback=lambda r: in_flight.append((r.status_code, aquests.mapsize())))
    for _ in range(6):
        aquests.get(f"{app.url}/gauge", params={"over": 3})
    aquests.fetchall()
    assert gauge.served == 6 and gauge.peak == 3 and not gauge.exceeded
    assert [code for code, _ in in_flight] == [200] * 6
    assert max(n for _, n in in_flight) <= 3 and aquests.concurrent() == 3


def test_one_worker_sends_one_at_a_time(app):
    app.server.gauge = gauge = Gauge()
    aquests.configure(workers=1, callback=lambda r: None)
    for _ in range(3):
        aquests.get(f"{app.url}/gauge", params={"over": 1, "hold": 0.2})
    aquests.fetchall()
    assert gauge.served == 3 and gauge.peak == 1


def test_http2_constreams_is_streams_per_connection(h2c):
    got = []
    aquests.configure(workers=6, callback=got.append, http2=True, http2_constreams=2)
    for _ in range(6):
        aquests.get(f"{h2c}/hold", params={"s": 1.0})  # long enough for all six to overlap
    aquests.fetchall()
    assert [r.version for r in got] == ["2"] * 6
    ports = [r.data["client_port"] for r in got]
    # six streams at once, two per connection: three connections, each carrying two of them
    assert sorted(ports.count(p) for p in set(ports)) == [2, 2, 2]


def test_force_http1(h2tls):
    url, cafile = h2tls
    got = []
    aquests.configure(callback=got.append, verify=cafile)
    aquests.get(f"{url}/echo")
    aquests.fetchall()
    aquests.configure(callback=got.append, verify=cafile, force_http1=True)
    aquests.get(f"{url}/echo")
    aquests.fetchall()
    assert [(r.version, r.data["http_version"]) for r in got] == [("2", "2"), ("1.1", "1.1")]


def test_allow_redirects(app):
    got = []
    aquests.configure(callback=got.append, allow_redirects=False)
    aquests.get(f"{app.url}/redirect", params={"n": 2})
    aquests.fetchall()
    aquests.configure(callback=got.append)
    aquests.get(f"{app.url}/redirect", params={"n": 2})
    aquests.get(f"{app.url}/redirect", params={"n": 1}, allow_redirects=False)  # per request
    aquests.fetchall()
    off, on, off_once = got
    assert off.status_code == 302 and off.headers["location"] == "/redirect?n=1&code=302" and off.history == []
    assert on.status_code == 200 and on.data["path"] == "/echo"
    assert [h.status_code for h in on.history] == [302, 302] and on.url == f"{app.url}/echo"
    assert off_once.status_code == 302


def _order(app, qrandom: bool) -> list[int]:
    seen = []
    aquests.configure(workers=1, qrandom=qrandom, callback=lambda r: seen.append(int(r.data["query"]["i"])))
    for i in range(40):
        aquests.get(f"{app.url}/echo", params={"i": i})
    aquests.fetchall()
    return seen


def test_qrandom_takes_the_queue_in_random_order(app):
    assert _order(app, False) == list(range(40))  # FIFO by default
    shuffled = _order(app, True)
    assert sorted(shuffled) == list(range(40)) and shuffled != list(range(40))  # 1 in 40! to be in order


def test_logger_gets_callback_errors_and_the_summary(app, caplog):
    mine = logging.getLogger("aq-audit-logger")

    def broken(r):
        raise ValueError("broken callback")
    aquests.configure(logger=mine, callback=broken)
    aquests.get(f"{app.url}/echo")
    aquests.get(f"{app.url}/echo", callback=lambda r: None)
    with caplog.at_level(logging.INFO, logger="aq-audit-logger"):
        aquests.fetchall()
    assert aquests.countfin() == 2
    mine_records = [r for r in caplog.records if r.name == "aq-audit-logger"]
    assert any("broken callback" in (r.exc_text or "") for r in mine_records)
    assert any("2 tasks during" in r.getMessage() for r in mine_records)


def test_every_verb_through_fetchall(app):
    got = {}
    aquests.configure(workers=4, callback=lambda r: got.__setitem__(r.meta["name"], r))
    for name in verbs.ALL_NAMES:
        verb = getattr(aquests, name)
        if name in verbs.NO_BODY:
            verb(f"{app.url}/echo", {"q": name}, meta={"name": name})
        else:
            verb(f"{app.url}/echo", {"k": "v"}, meta={"name": name})
    aquests.fetchall()
    assert sorted(got) == sorted(verbs.ALL_NAMES)
    for name, r in got.items():
        method, variant = verbs.split_name(name)
        assert r.status_code == 200 and r.meta["req_method"] == method
        if method == "HEAD":
            assert r.content == b""
            continue
        assert r.data["method"] == method
        if name in verbs.NO_BODY:
            assert r.data["query"] == {"q": name}
        else:
            assert r.data["headers"]["content-type"] == verbs.VARIANTS[variant]
            assert r.data["body"] == ('{"k": "v"}' if variant in ("", "json") else "k=v")


def test_upload_path_and_open_file_through_fetchall(app, tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("from a path")
    q = tmp_path / "b.bin"
    q.write_bytes(b"\x01from a file object")
    got = []
    aquests.configure(callback=got.append)
    with open(q, "rb") as fobj:
        aquests.upload(f"{app.url}/echo", {"who": "Hans", "a": str(p), "b": fobj})
        aquests.fetchall()
    body = got[0].data["body"]
    assert got[0].data["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert 'filename="a.txt"' in body and "from a path" in body
    assert 'filename="b.bin"' in body and "\x01from a file object" in body
    assert 'name="who"\r\n\r\nHans\r\n' in body


def test_fetchall_returns_after_async_callbacks_finish(app):
    finished = []

    async def slow_callback(r, label):
        await asyncio.sleep(0.05)
        finished.append((label, r.status_code))
    aquests.configure(workers=2, callback=(slow_callback, ("x",)))
    for _ in range(4):
        aquests.get(f"{app.url}/echo")
    aquests.fetchall()
    assert finished == [("x", 200)] * 4 and aquests.countfin() == 4


def test_add_queues_any_request_factory(app):
    got = []
    aquests.configure(callback=got.append)
    meta = aquests.add(lambda: aquests.client().request("GET", f"{app.url}/echo?via=add"), meta={"m": 1})
    assert meta == {"m": 1, "req_id": 1} and aquests.qsize() == 1 and aquests.countreq() == 1
    aquests.fetchall()
    assert got[0].data["query"] == {"via": "add"} and got[0].meta["m"] == 1
    assert (aquests.qsize(), aquests.mapsize(), aquests.countfin()) == (0, 0, 1)


def test_fetchall_runs_on_uvloop_when_installed_and_loop_factory_opts_out(app):
    uvloop = __import__("pytest").importorskip("uvloop")
    app.server.gauge = Gauge()
    seen = []

    def on_loop(r):
        seen.append((r.status_code, type(asyncio.get_running_loop())))

    aquests.configure(workers=1, callback=on_loop)
    aquests.get(f"{app.url}/gauge", params={"over": 1, "hold": 0})
    aquests.fetchall()
    aquests.configure(workers=1, callback=on_loop, loop_factory=asyncio.new_event_loop)
    aquests.get(f"{app.url}/gauge", params={"over": 1, "hold": 0})
    aquests.fetchall()
    assert seen[0] == (200, uvloop.Loop)
    assert seen[1][0] == 200 and not issubclass(seen[1][1], uvloop.Loop)
