"""The launch API only fills one Config (SK-01..SK-18, SK-04's run() forms)."""
import os
import sys

import pytest

import skitai
from skitai import cli, launch, paths
from skitai.config import Limits


def app(env, start_response):
    start_response("200 OK", [])
    return [b"x"]


def other(env, start_response):
    start_response("200 OK", [])
    return [b"y"]


@pytest.fixture(autouse=True)
def fresh(tmp_path):
    launch.reset()
    launch.config.workdir = str(tmp_path)
    (tmp_path / "static").mkdir()
    yield launch.config
    launch.reset()


def points(config):
    return [(m.host, m.point) for m in config.mounts]


def test_mount_fills_config_only(fresh):
    m = skitai.mount("/", app)
    assert fresh.mounts == [m] and m.target is app and m.host == "default"
    assert m.source == __file__


def test_vmount_and_mount_host(fresh):
    skitai.vmount("www.site1.com", "/", app)
    skitai.mount("/", other, host="www.site2.com site2.org")
    assert points(fresh) == [("www.site1.com", "/"), ("www.site2.com site2.org", "/")]


def test_mount_point_normalised_and_checked(fresh):
    assert skitai.mount("/app/", app).point == "/app"
    with pytest.raises(ValueError):
        skitai.mount("app", app)
    with pytest.raises(ValueError):
        skitai.mount("/", app, host=" ")


@pytest.mark.parametrize("form, expected", [
    (("/", app), [("default", "/")]),
    ([("/", app), ("/search", "@x")], [("default", "/"), ("default", "/search")]),
    ({"/admin": app, "/s": "static"}, [("default", "/admin"), ("default", "/s")]),
    (("/", app, "app"), [("default", "/")]),
])
def test_run_mount_forms(fresh, form, expected):
    launch.apply_run(mount=form, clusters={"@x": ("https", ["a.example.com:443"])})
    assert points(fresh) == expected


def test_run_mount_file_and_appname_pairs(fresh, tmp_path):
    """'Building for Larger App': mount=[('/service', ('/service/app', 'app')), ('/', '/service/static')]."""
    (tmp_path / "service" / "static").mkdir(parents=True)
    (tmp_path / "service" / "app.py").write_text("def app(e, s):\n    return []\nother = app\n")
    launch.apply_run(mount=[("/service", (str(tmp_path / "service" / "app"), "app")),
                            ("/other", ("service/app.py", "other")), ("/", str(tmp_path / "service" / "static"))])
    assert [(m.point, m.target, m.appname) for m in fresh.mounts] == [
        ("/service", str(tmp_path / "service" / "app.py"), "app"),
        ("/other", str(tmp_path / "service" / "app.py"), "other"),
        ("/", str(tmp_path / "service" / "static") + os.sep, "app")]


def test_run_mount_tuple_with_pref(fresh):
    p = skitai.pref(debug=True)
    launch.apply_run(mount=[("/", app, p)])
    assert fresh.mounts[0].pref is p


def test_run_mount_bad_forms(fresh):
    with pytest.raises(ValueError):
        launch.apply_run(mount="/")
    with pytest.raises(ValueError):
        launch.apply_run(mount=[("/",)])
    with pytest.raises(ValueError):
        launch.apply_run(mount=[("/", app, 1.5)])


@pytest.mark.parametrize("spec", [
    ("https", ["a:443", "b:443"]),
    ("https", "a:443", "admin"),
    ("http", ["a"], "admin", "10.0.0.0/8"),
    ("http", ["a"], "", "", True),
])
def test_run_clusters_forms(fresh, spec):
    launch.apply_run(clusters={"@x": spec})
    c = fresh.clusters["x"]
    assert c.ctype == spec[0] and c.members
    assert c.ssl is (spec[0] == "https" or (len(spec) == 5 and spec[4]))


def test_alias_rules(fresh):
    c = skitai.alias("@members", skitai.PROTO_HTTP, "members.example.com", role="admin", source="172.30.1.0/24")
    assert (c.name, c.members, c.role, c.ssl) == ("members", ["members.example.com"], "admin", False)
    assert skitai.alias("@s", skitai.PROTO_HTTP, ["a"], ssl=True).ssl is True       # the 0.26 bug fixed
    assert skitai.alias("@w", skitai.PROTO_WSS, ["a"]).ssl is True
    assert skitai.alias("@db", skitai.DB_SQLITE3, ["/var/tmp/db1", "/var/tmp/db2"]).ctype == "*sqlite3"
    with pytest.raises(ValueError, match="unknown cluster type"):
        skitai.alias("@bad", "ftp", ["a"])
    with pytest.raises(ValueError):
        skitai.alias("@empty", "http", [])


def test_run_defaults_are_the_specs(fresh):
    c = launch.apply_run()
    assert (c.address, c.port, c.threads, c.workers, c.logpath, c.verbose) == ("0.0.0.0", 5000, 4, 1, None, False)
    assert (c.limits.keep_alive, c.limits.network_timeout, c.rcache_objmax) == (30, 30, 100)


def test_run_settings_take_precedence(fresh):
    skitai.set_keep_alive(10)
    launch.apply_run(address="127.0.0.1", port=5009, threads=8, workers=2, logpath="/tmp/l", varpath="/tmp/v",
                     keep_alive=5, network_timeout=7, certfile="c.pem", max_body_size=1024)
    assert (fresh.address, fresh.port, fresh.threads, fresh.workers) == ("127.0.0.1", 5009, 8, 2)
    assert (fresh.logpath, fresh.varpath, fresh.certfile) == ("/tmp/l", "/tmp/v", "c.pem")
    assert (fresh.limits.keep_alive, fresh.limits.network_timeout, fresh.limits.max_body_size) == (5, 7, 1024)


def test_run_legacy_keys(fresh):
    launch.apply_run(cachefs_dir="/tmp/c", cachefs_memmax=2, enable_gw=True, gw_auth=True, fws_port=80,
                     fws_to=443, max_ages={"/": 300}, cron=["* * * * * x"])
    assert fresh.cachefs == {"path": "/tmp/c", "memmax": 2}
    assert fresh.gateway == {"enabled": True, "auth": True}
    assert (fresh.forward_port, fresh.forward_to) == (80, 443)
    assert fresh.max_ages == {"/": 300} and fresh.cron == ["* * * * * x"]


@pytest.mark.parametrize("kw", [{"nonsense": 1}, {"port": 70000}, {"threads": -1}, {"workers": 0},
                                {"keep_alive": "x"}, {"max_headers": -5}])
def test_run_refuses_bad_settings(fresh, kw):
    with pytest.raises((TypeError, ValueError)):
        launch.apply_run(**kw)


def test_every_limit_has_a_setter_and_a_default(fresh):
    for name, default in vars(Limits()).items():
        setter = getattr(skitai, f"set_{name}")
        assert default is not None
        if isinstance(default, bool):
            good, bad, stored = (not default), 1, (not default)
        elif isinstance(default, tuple):
            good, bad, stored = "https://a.example", [1], ("https://a.example",)
        else:
            good, bad, stored = 3, -1, 3
        setter(good)
        assert getattr(fresh.limits, name) == stored, name
        with pytest.raises((TypeError, ValueError)):
            setter(bad)


def test_zero_timeouts_mean_defaults(fresh):
    skitai.set_keep_alive(0)
    skitai.set_network_timeout(0)
    assert (fresh.limits.keep_alive, fresh.limits.network_timeout) == (2, 30)


def test_max_age_rules(fresh):
    skitai.set_max_age("/", 300)
    skitai.set_max_age("js/", 0)
    skitai.set_max_age("/images", 3600)
    assert fresh.max_ages == {"/": 300, "/js": 0, "/images": 3600}
    with pytest.raises((TypeError, ValueError)):
        skitai.set_max_age("/x", -1)


def test_enable_calls_fill_config(fresh, tmp_path):
    (tmp_path / "server.pem").write_text("x")
    skitai.enable_ssl("server.pem", "server.pem", "pass")
    skitai.enable_forward(80, 443)
    skitai.enable_proxy(unsecure_https=True)
    skitai.enable_gateway(True, "8fa06210", "realm")
    skitai.enable_cachefs(memmax=1, diskmax=2, path="/var/skitai/cache")
    skitai.enable_blacklist("/tmp/bl")
    skitai.enable_smtpda("127.0.0.1:25", "user", "password", ssl=False, max_retry=10, keep_days=3)
    skitai.set_max_rcache(300)
    assert fresh.certfile == str(tmp_path / "server.pem") and fresh.passphrase == "pass"
    assert (fresh.forward_port, fresh.forward_to) == (80, 443)
    assert fresh.proxy and fresh.proxy_unsecure_https
    assert fresh.gateway == {"enabled": True, "auth": True, "secure_key": "8fa06210", "realm": "realm"}
    assert fresh.cachefs == {"memmax": 1, "diskmax": 2, "path": "/var/skitai/cache"}
    assert fresh.blacklist_dir == "/tmp/bl" and fresh.rcache_objmax == 300
    assert fresh.smtpda == {"server": "127.0.0.1:25", "user": "user", "password": "password", "ssl": False,
                            "max_retry": 10, "keep_days": 3}
    assert skitai.enable_gateway() is None and fresh.gateway["auth"] is False   # no tuple bug


def test_enable_ssl_missing_file(fresh):
    with pytest.raises(FileNotFoundError):
        skitai.enable_ssl("nope.pem")


def test_cron(fresh):
    skitai.cron("*/2 */2 * * *", "/home/apps/monitor.py  > /home/apps/monitor.log 2>&1")
    assert fresh.cron == ["*/2 */2 * * * /home/apps/monitor.py  > /home/apps/monitor.log 2>&1"]
    with pytest.raises(ValueError):
        skitai.cron("* *", "x")


def test_constants():
    """Every constant of SK-18 with the value 0.26 gives it (apps compare against the raw values too)."""
    expected = {
        "WS_SIMPLE": 1, "WEBSOCKET_SIMPLE": 1, "WS_GROUPCHAT": 5, "WEBSOCKET_GROUPCHAT": 5, "WS_THREADSAFE": 6,
        "WS_DEDICATE": 4, "WS_EVT_INIT": "init", "WS_EVT_OPEN": "open", "WS_EVT_CLOSE": "close",
        "WS_EVT_NONE": None, "WS_MSG_JSON": "json", "WS_MSG_XMLRPC": "xmlrpc", "WS_MSG_GRPC": "grpc",
        "WS_MSG_DEFAULT": None, "WS_OPCODE_CONTINUATION": 0, "WS_OPCODE_TEXT": 1, "WS_OPCODE_BINARY": 2,
        "WS_OPCODE_CLOSE": 8, "WS_OPCODE_PING": 9, "WS_OPCODE_PONG": 10,
        "PROTO_HTTP": "http", "PROTO_HTTPS": "https", "PROTO_WS": "ws", "PROTO_WSS": "wss",
        "PROTO_GRPC": "grpc", "PROTO_GRPCS": "grpcs",
        "DB_PGSQL": "*postgresql", "DB_POSTGRESQL": "*postgresql", "DB_SQLITE3": "*sqlite3",
        "DB_REDIS": "*redis", "DB_MONGODB": "*mongodb",
    }
    got = {name: getattr(skitai, name, "<missing>") for name in expected}
    assert got == expected
    assert set(expected) <= set(skitai.__all__)
    assert skitai.NAME == "Skitai/%d.%d" % skitai.version_info[:2] and skitai.version_info[:2] == (1, 0)
    assert skitai.__version__ == "1.0.0.dev0"
    for ctype in ("PROTO_HTTP", "PROTO_HTTPS", "PROTO_WS", "PROTO_WSS", "PROTO_GRPC", "PROTO_GRPCS",
                  "DB_PGSQL", "DB_SQLITE3", "DB_REDIS", "DB_MONGODB"):
        assert skitai.alias("@c" + ctype.lower(), getattr(skitai, ctype), ["m"]).ctype == expected[ctype]


def test_was_is_importable_and_says_what_is_missing(monkeypatch):
    from skitai import was
    from skitai.wasproxy import WasProxy
    monkeypatch.setattr(WasProxy, "_resolver", None)        # as in a process where no server runs
    with pytest.raises(AttributeError, match="not installed"):
        _ = was.get
    monkeypatch.setattr(WasProxy, "_resolver", lambda: type("W", (), {"get": "the get"})())
    assert was.get == "the get"


def test_paths(monkeypatch, tmp_path):
    script = tmp_path / "app.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script)])
    assert skitai.getswd() == str(tmp_path)
    assert skitai.joinpath("appack", "monitor.py") == str(tmp_path / "appack" / "monitor.py")
    assert skitai.abspath("/etc") == "/etc"
    monkeypatch.delenv("SKITAI_PRODUCTION", raising=False)
    assert skitai.is_devel()
    monkeypatch.setenv("SKITAI_PRODUCTION", "1")
    assert not skitai.is_devel()


def test_default_varpath_is_stable(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "svc.py")])
    a = paths.default_varpath()
    assert a == paths.default_varpath() and os.path.basename(a).startswith("skitai-svc-")


def test_import_skitai_stays_cheap():
    import subprocess
    code = "import skitai, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'httptools', 'skitai')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "httptools" not in out and "skitai.http" not in out and "'asyncio'" not in out


def test_cli_options_override_run(fresh):
    opts = cli.parse(["--port", "6001", "-v", "--address=127.0.0.2"])
    cli.apply(fresh, opts, environ={"SKITAI_PORT": "6000"})
    assert (fresh.port, fresh.address, fresh.verbose) == (6001, "127.0.0.2", True)
    cli.apply(fresh, cli.parse([]), environ={"SKITAI_PORT": "6002"})
    assert fresh.port == 6002
