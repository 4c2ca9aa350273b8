"""SK-28 app.use_reloader: a changed app file (or appack module) is served without a restart."""
import os
import textwrap

import pytest

from skitai import loader, reloader
from skitai.config import Mount

APP = """
from appack import words

def app(env, start_response):
    start_response("200 OK", [])
    return [("%s " + words.WORD).encode()]

app.use_reloader = True
"""


def touch_write(path, text):
    """Write and move the mtime forward so a same-second rewrite is still seen."""
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(textwrap.dedent(text))
    os.utime(path, ns=(old + 2_000_000_000, old + 2_000_000_000))


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "appack").mkdir()
    (tmp_path / "appack" / "__init__.py").write_text("")
    touch_write(tmp_path / "appack" / "words.py", "WORD = 'one'\n")
    touch_write(tmp_path / "reloadme.py", APP % "v1")
    target = loader.resolve(Mount("/", "reloadme.py"), str(tmp_path))
    served = reloader.Reloading(target, lambda t: t.app, interval=0)
    yield tmp_path, served
    import sys
    for name in [n for n in sys.modules if n.startswith("appack")]:
        del sys.modules[name]


def call(handler):
    return b"".join(handler.handler({}, lambda *a: None))


def test_changed_app_file_is_reloaded(site):
    tmp_path, served = site
    assert reloader.can_reload(served.target)
    assert call(served) == b"v1 one"
    assert served.check() is False
    touch_write(tmp_path / "reloadme.py", APP % "v2")
    assert served.check() is True
    assert call(served) == b"v2 one"


def test_changed_appack_module_is_reloaded(site):
    tmp_path, served = site
    touch_write(tmp_path / "appack" / "words.py", "WORD = 'two'\n")
    assert served.check() is True
    assert call(served) == b"v1 two"


def test_a_broken_file_keeps_the_old_app(site, caplog):
    tmp_path, served = site
    touch_write(tmp_path / "reloadme.py", "def app(:\n")
    assert served.check() is False
    assert call(served) == b"v1 one"
    assert "reloading" in caplog.text and "failed" in caplog.text
    touch_write(tmp_path / "reloadme.py", APP % "v3")
    assert served.check() is True and call(served) == b"v3 one"


def test_checks_at_most_once_per_interval(site, monkeypatch):
    tmp_path, served = site
    served.interval = 60
    served.due = 0
    checks = []
    monkeypatch.setattr(served, "check", lambda: checks.append(1))
    exchange = object()
    served.handler = lambda ex: None
    for _ in range(5):
        served(exchange)
    assert checks == [1]


def test_pref_is_applied_again_after_reload(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    touch_write(tmp_path / "prefreload.py", "def app(e, s):\n    return []\napp.use_reloader = True\n")
    from skitai.pref import Pref
    p = Pref(debug=True)
    target = loader.resolve(Mount("/", "prefreload.py", pref=p), str(tmp_path))
    served = reloader.Reloading(target, lambda t: t.app, interval=0)
    touch_write(tmp_path / "prefreload.py", "def app(e, s):\n    return [b'new']\napp.use_reloader = True\n")
    assert served.check()
    assert served.target.app.debug is True and served.target.app is not target.app


def test_without_use_reloader_nothing_is_wrapped(tmp_path):
    touch_write(tmp_path / "still.py", "def app(e, s):\n    return []\n")
    target = loader.resolve(Mount("/", "still.py"), str(tmp_path))
    assert not reloader.can_reload(target)


def test_restart_hook_is_called(site):
    tmp_path, served = site
    touch_write(tmp_path / "reloadme.py", APP % "v4" + """
restarted = []
app.restart = lambda was, point: restarted.append(point)
""")
    assert served.check()
    import sys
    assert sys.modules[served.target.module].restarted == ["/"]
