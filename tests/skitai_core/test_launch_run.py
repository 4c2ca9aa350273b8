"""The seed's run(mount=..., clusters=...) forms, in an app started as `python app.py` (SK-04)."""
import textwrap

import pytest
import requests

from tests.support.apps import app_process

SCRIPT = """
import skitai

def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["app at " + env["SCRIPT_NAME"] + env["PATH_INFO"]]

if __name__ == "__main__":
    skitai.run(address="127.0.0.1", varpath=skitai.joinpath("var"), threads=THREADS, MOUNT)
"""


@pytest.mark.parametrize("threads, mount, checks", [
    (4, 'mount=("/", app)', {"/x": "app at /x"}),
    (0, 'mount=[("/", app), ("/search", "@x")], clusters={"@x": ("https", ["127.0.0.1:9"])}',
     {"/": "app at /", "/search/q": None}),
    (2, 'mount={"/admin": app}', {"/admin/": "app at /admin/", "/": 404}),
])
def test_run_forms(tmp_path, threads, mount, checks):
    script = tmp_path / "runforms.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("THREADS", str(threads)).replace("MOUNT", mount))
    with app_process(script) as app:
        for path, expected in checks.items():
            r = requests.get(app.url + path, timeout=10)
            if expected is None:
                assert r.status_code >= 500          # the cluster member does not answer
            elif isinstance(expected, int):
                assert r.status_code == expected
            else:
                assert r.text == expected


def test_run_without_mounts_is_one_clear_line(tmp_path):
    script = tmp_path / "empty.py"
    script.write_text("import skitai\nskitai.run(address='127.0.0.1')\n")
    with app_process(script, wait=False) as app:
        assert app.popen.wait(20) == 1
        out = app.popen.stdout.read()
    assert "nothing to serve" in out and "Traceback" not in out
