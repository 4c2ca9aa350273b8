"""``was.status()``: the HTML page (uptime, requests, connections, thread pool, clusters and their members'
health, cache, per-mount counters), JSON with ``Accept: application/json``, section filters, and a
screenshot of the page in headless Chromium (saved to docs/img/ when SKITAI_SAVE_SCREENSHOTS=1)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from skitai import was
from skitai.config import Mount
from skitai.runner import Running
from tests.integration.was_support import config_for, echo_backends, json_app, routed
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def status_url():
    dead = f"127.0.0.1:{free_port()}"
    with echo_backends(2) as servers:
        members = [s.url.split("//")[1] for s in servers]

        def work(env):
            for _ in range(40):                  # members are picked at random: the dead one comes up soon
                was.get("@api/x").getwait(5)
            was.get(servers[0].url + "/cached").getwait(5).cache(60)
            return {"ok": True}

        def status(env):
            flt = env.get("QUERY_STRING", "").partition("=")[2] or None
            return was.status(flt)

        def other(env):
            return {"other": True}

        config = config_for(routed({"/work": work, "/status": status}), threads=4, clusters={
            "api": ("http", members + [dead]), "search": ("http", members)})
        config.mounts.append(Mount("/other", json_app(other)))
        with Running(config) as srv:
            url = f"http://127.0.0.1:{srv.port}"
            requests.get(url + "/work", timeout=10).raise_for_status()
            for _ in range(3):
                requests.get(url + "/other/x", timeout=10).raise_for_status()
            yield url, dead


def test_status_page_html(status_url):
    url, dead = status_url
    r = requests.get(url + "/status", headers={"Accept": "text/html,*/*"}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    page = r.text
    for text in ("Skitai", "uptime", "requests", "open connections", "threads", "cached results",
                 "@api", "@search", "dead (retry in", "alive", "/other", "Result cache",
                 "Thread pool", "mount point"):
        assert text in page, text
    assert dead in page and "refused" in page.lower()
    assert "2/3 alive" in page and "2/2 alive" in page


def test_status_json_and_filters(status_url):
    url, dead = status_url
    d = requests.get(url + "/status", headers={"Accept": "application/json"}, timeout=10).json()
    assert set(d) == {"SERVER", "THREADS", "MOUNTS", "CLUSTERS", "RCACHE", "OBJECTS"}
    assert d["SERVER"]["uptime_seconds"] >= 0 and d["SERVER"]["requests"] >= 5
    assert d["SERVER"]["connections_total"] >= 1 and d["SERVER"]["connections_open"] >= 1
    assert d["THREADS"]["threads"] == 4 and "queued" in d["THREADS"]
    assert d["MOUNTS"]["/other"] == 3 and d["MOUNTS"]["/"] >= 2
    api = {m["address"]: m for m in d["CLUSTERS"]["api"]["members"]}
    assert api[dead]["dead"] and d["CLUSTERS"]["api"]["live"] == 2
    assert d["RCACHE"]["current_cached"] >= 1
    one = requests.get(url + "/status?f=CLUSTER:search", headers={"Accept": "application/json"}, timeout=10).json()
    assert list(one) == ["CLUSTERS"] and list(one["CLUSTERS"]) == ["search"]
    cache = requests.get(url + "/status?f=rcache", headers={"Accept": "application/json"}, timeout=10).json()
    assert list(cache) == ["RCACHE"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_status_page_screenshot(status_url, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    url, _ = status_url
    shot = tmp_path / "status-page.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,900",
           url + "/status"]
    try:
        subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish the screenshot in 90 s")
    assert shot.exists(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000      # a real page, not a blank image
    if os.environ.get("SKITAI_SAVE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "img" / "status-page.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
