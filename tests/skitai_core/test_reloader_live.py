"""app.use_reloader over a real server: edit the running app's file, the next request sees it."""
import os
import textwrap
import time

import requests

from tests.support.apps import app_process

APP = """
import skitai
from appack import greeting

def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("VERSION " + greeting.WORD).encode()]

app.use_reloader = True

if __name__ == "__main__":
    skitai.mount("/", app)
    skitai.run(address="127.0.0.1", varpath=skitai.joinpath("var"))
"""


def write(path, text):
    old = path.stat().st_mtime_ns if path.exists() else time.time_ns()
    path.write_text(textwrap.dedent(text))
    os.utime(path, ns=(old + 2_000_000_000,) * 2)


def wait_for(url, expected, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        text = requests.get(url, timeout=10).text
        if text == expected or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_edit_the_script_and_its_appack(tmp_path):
    (tmp_path / "appack").mkdir()
    (tmp_path / "appack" / "__init__.py").write_text("")
    write(tmp_path / "appack" / "greeting.py", "WORD = 'hello'\n")
    script = tmp_path / "live.py"
    write(script, APP.replace("VERSION", "v1"))
    with app_process(script, cwd=tmp_path) as app:
        url = app.url + "/"
        assert requests.get(url, timeout=10).text == "v1 hello"
        write(script, APP.replace("VERSION", "v2"))
        assert wait_for(url, "v2 hello") == "v2 hello"
        write(tmp_path / "appack" / "greeting.py", "WORD = 'bye'\n")
        assert wait_for(url, "v2 bye") == "v2 bye"
        write(script, "this is not python")
        time.sleep(1.2)
        assert requests.get(url, timeout=10).text == "v2 bye"       # a broken edit keeps the old app
        log = app.output()
    assert "reloaded" in log and "failed" in log
