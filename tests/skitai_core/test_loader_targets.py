"""Every mount target kind of SK-01 / PK-02 / PK-03 resolves to the right thing."""
import sys
import textwrap

import pytest

import skitai
from skitai import launch, loader
from skitai.config import Mount

HELLO = """
def app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%s"]
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def body(app):
    got = []
    out = app({}, lambda status, headers, exc_info=None: got.append(status))
    return b"".join(out)


@pytest.fixture(autouse=True)
def fresh(tmp_path):
    launch.reset()
    launch.config.workdir = str(tmp_path)
    yield
    launch.reset()


def resolve(point, target, appname="app", pref=None, workdir=None):
    return loader.resolve(Mount(point, target, appname, pref), workdir or launch.config.workdir)


def test_app_object_is_served_as_is():
    def app(env, start_response):
        return []
    t = resolve("/", app)
    assert t.kind == "app" and t.app is app and t.point == "/"


@pytest.mark.parametrize("spec", ["app_v1/app.py", "app_v1/app", "app_v1"])
def test_file_path_forms_in_a_directory(tmp_path, spec):
    write(tmp_path / "app_v1" / "app.py", HELLO % "v1")
    t = resolve("/v1", spec)
    assert t.kind == "app" and body(t.app) == b"v1"
    assert t.path == str(tmp_path / "app_v1" / "app.py")


def test_bare_name_finds_a_sibling_py_file(tmp_path):
    write(tmp_path / "app_v2.py", HELLO % "v2")
    assert body(resolve("/v2", "app_v2").app) == b"v2"


def test_appname_picks_another_variable_of_a_file(tmp_path):
    write(tmp_path / "multi.py", (HELLO % "one") + "\napp2 = app\ndef app3(e, s):\n    s('200 OK', [])\n    return [b'three']\n")
    assert body(resolve("/t3", "multi.py", "app3").app) == b"three"


def test_absolute_file_path(tmp_path):
    f = write(tmp_path / "x" / "abs_app.py", HELLO % "abs")
    assert body(resolve("/", str(f), workdir="/").app) == b"abs"


def test_a_plain_directory_is_static(tmp_path):
    (tmp_path / "static").mkdir()
    t = resolve("/", "static")
    assert t.kind == "static" and t.path == str(tmp_path / "static")


def test_cluster_target_is_a_proxy():
    t = resolve("/search", "@search")
    assert t.kind == "proxy" and t.cluster == "search"


@pytest.mark.parametrize("bad, words", [
    ("nowhere", "not found"),
    ("@", "name after '@'"),
    (42, "cannot mount"),
])
def test_bad_targets_say_why(bad, words):
    with pytest.raises(loader.MountError, match=words):
        resolve("/", bad)


@pytest.mark.parametrize("point", ["app", "", "/a/../b", None])
def test_bad_points_are_refused(point):
    with pytest.raises(loader.MountError):
        loader.normalize_point(point)


def test_points_are_normalised():
    assert loader.normalize_point("/app/") == "/app"
    assert loader.normalize_point("/") == "/"


def test_missing_appname_is_a_clear_error(tmp_path):
    write(tmp_path / "noapp.py", "x = 1\n")
    with pytest.raises(loader.MountError, match="no app named 'app'"):
        resolve("/", "noapp.py")


def test_a_file_is_imported_once(tmp_path):
    write(tmp_path / "counted.py", "import builtins\nbuiltins.skitai_loads = getattr(builtins, 'skitai_loads', 0) + 1\n" + HELLO % "c")
    import builtins
    builtins.skitai_loads = 0
    a = resolve("/a", "counted.py")
    b = resolve("/b", "counted.py")
    assert a.app is b.app and builtins.skitai_loads == 1


def test_the_running_script_is_not_imported_again(tmp_path, monkeypatch):
    script = write(tmp_path / "main_script.py", HELLO % "main")
    fake_main = type(sys)("__main__")
    fake_main.__file__ = str(script)
    fake_main.app = lambda e, s: [b"the very object"]
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    t = resolve("/", str(script))
    assert t.app is fake_main.app


def test_pref_attributes_and_config_are_applied(tmp_path):
    write(tmp_path / "prefd.py", HELLO % "p" + "\napp.config = {'keep': 1, 'prefA': 0}\n")
    p = skitai.pref()
    p.debug = True
    p.use_reloader = 1
    p.config["prefA"] = 1
    p.config.prefB = 2
    t = resolve("/", "prefd.py", pref=p)
    assert t.app.debug is True and t.app.use_reloader == 1
    assert t.app.config == {"keep": 1, "prefA": 1, "prefB": 2}


def test_pref_config_becomes_the_config_of_an_app_without_one():
    def app(e, s):
        return []
    p = skitai.pref()
    p.config.x = 1
    t = resolve("/", app, pref=p)
    assert t.app.config.x == 1


BOOT_INIT = """
import skitai
from . import helper

def bootstrap(pref):
    pref.config.from_bootstrap = helper.VALUE
    skitai.cron("*/10 * * * *", "echo " + helper.__name__)
"""


def test_bootstrap_runs_in_its_package_with_relative_imports(tmp_path):
    write(tmp_path / "boot_v1" / "__init__.py", BOOT_INIT)
    write(tmp_path / "boot_v1" / "helper.py", "VALUE = 'helped'\n")
    write(tmp_path / "boot_v1" / "app.py", "from . import helper\n" + HELLO % "b")
    p = skitai.pref()
    m = skitai.mount("/b", "boot_v1/app.py", "app", p)
    assert p.config.from_bootstrap == "helped"
    assert launch.config.cron and launch.config.cron[0].startswith("*/10 * * * * echo ")
    t = loader.resolve(m, launch.config.workdir)
    assert t.app.config["from_bootstrap"] == "helped"
    assert t.module.endswith(".app")


def test_bootstrap_gets_a_pref_even_when_none_was_given(tmp_path):
    write(tmp_path / "boot_v2" / "__init__.py", "def bootstrap(pref):\n    pref.config.seen = True\n")
    write(tmp_path / "boot_v2" / "app.py", HELLO % "b2")
    m = skitai.mount("/b", "boot_v2")
    assert m.pref.config.seen is True
    assert loader.resolve(m, launch.config.workdir).app.config["seen"] is True


@pytest.fixture
def unsub(tmp_path, monkeypatch):
    """A package exporting apps the way the spec's 'Export API From Your Module' shows."""
    root = tmp_path / "site"
    write(root / "unsub_pkg" / "__init__.py", "")
    write(root / "unsub_pkg" / "export" / "skitai" / "__init__.py", """
        import skitai

        def bootstrap(pref):
            if pref.config.get("enable_cron"):
                from . import cronjob
                skitai.cron("*/10 * * * *", cronjob.__file__)
            with open(pref.config.urlfile) as f:
                pref.config.urllist = [line.strip().split("\\t", 4) for line in f if line.strip()]
        """)
    write(root / "unsub_pkg" / "export" / "skitai" / "cronjob.py", "")
    write(root / "unsub_pkg" / "export" / "skitai" / "app.py", HELLO % "export app")
    write(root / "unsub_pkg" / "export" / "skitai" / "app_v1.py", HELLO % "export v1")
    (tmp_path / "urllist.txt").write_text("a\thttp://a\nb\thttp://b\n")
    monkeypatch.syspath_prepend(str(root))
    import importlib
    yield importlib.import_module("unsub_pkg")
    for name in [n for n in sys.modules if n.startswith("unsub_pkg")]:
        del sys.modules[name]


def test_module_mount_serves_its_export_app(unsub):
    p = skitai.pref()
    p.config.urlfile = str(launch.config.workdir) + "/urllist.txt"
    p.config.enable_cron = True
    m = skitai.mount("/v1", unsub, "app", p)
    assert p.config.urllist == [["a", "http://a"], ["b", "http://b"]]
    assert launch.config.cron[0].endswith("cronjob.py")
    t = loader.resolve(m, launch.config.workdir)
    assert body(t.app) == b"export app"
    assert t.module == "unsub_pkg.export.skitai.app"
    assert t.app.config["urllist"][1] == ["b", "http://b"]


def test_module_and_file_tuple(unsub):
    p = skitai.pref()
    p.config.urlfile = str(launch.config.workdir) + "/urllist.txt"
    m = skitai.mount("/v1", (unsub, "app_v1.py"), "app", p)
    assert body(loader.resolve(m, launch.config.workdir).app) == b"export v1"


def test_module_without_export_is_a_clear_error():
    import json
    with pytest.raises(loader.MountError, match="exports no skitai app"):
        skitai.mount("/", json)


def test_reload_source_of_an_imported_app_is_its_own_module(tmp_path, monkeypatch):
    """service.py does `from myapp import app`: the reloader must watch myapp.py, not service.py."""
    write(tmp_path / "defining_mod.py", HELLO % "defined")
    monkeypatch.syspath_prepend(str(tmp_path))
    import defining_mod
    try:
        t = resolve("/", defining_mod.app)
        assert t.module == "defining_mod" and t.path == str(tmp_path / "defining_mod.py")
    finally:
        sys.modules.pop("defining_mod", None)


def test_flask_app_is_found_by_its_import_name(tmp_path, monkeypatch):
    write(tmp_path / "flask_mod.py", "from flask import Flask\napp = Flask(__name__)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import flask_mod
    try:
        assert resolve("/", flask_mod.app).module == "flask_mod"
    finally:
        sys.modules.pop("flask_mod", None)
