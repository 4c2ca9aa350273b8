"""Plugin discovery and its use by run(): validation, app adapters and front handlers."""
import pytest
import requests

from skitai import plugins, runner
from skitai.config import Config, Mount


def hello(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain"]


class Shouty(plugins.Plugin):
    name = "shouty"

    def adapt(self, target, mount, config):
        if getattr(target, "shout", False):
            def wrapped(env, start_response):
                return [b.upper() for b in target(env, start_response)]
            return wrapped
        return None

    def handlers(self, config):
        class Teapot:
            def match(self, exchange):
                return exchange.request.path == "/tea"

            def __call__(self, exchange):
                exchange.respond(418, [("Content-Type", "text/plain")], b"short and stout")
        return [Teapot()]

    def validate(self, config):
        if config.extra.get("shouty") == "bad":
            raise ValueError("shouty: bad setting")


def test_installed_plugins_are_discovered():
    names = {p.name for p in plugins.discover()}
    assert {"saddle", "gateway", "smtpda"} <= names


@pytest.mark.parametrize("setting, extra", [
    ({"gateway": {"enabled": True}}, "skitai\\[gateway\\]"),
    ({"smtpda": {"server": None}}, "skitai\\[smtpda\\]"),
    ({"cron": ["* * * * * x"]}, "skitai\\[smtpda\\]"),
])
def test_features_without_their_plugin_name_the_extra(setting, extra):
    with pytest.raises(RuntimeError, match=extra):
        runner.check_plugins(Config(**setting), [])


def test_plugin_validation_runs():
    with pytest.raises(ValueError, match="bad setting"):
        runner.check_plugins(Config(extra={"shouty": "bad"}), [Shouty()])


def test_adapter_and_front_handler(tmp_path):
    def loud(env, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"loud"]
    loud.shout = True
    config = Config(address="127.0.0.1", port=0, workdir=str(tmp_path),
                    mounts=[Mount("/", hello), Mount("/loud", loud)])
    with runner.Running(config, [Shouty()]) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert requests.get(url + "/", timeout=10).text == "plain"
        assert requests.get(url + "/loud/", timeout=10).text == "LOUD"
        tea = requests.get(url + "/tea", timeout=10)
        assert (tea.status_code, tea.text) == (418, "short and stout")


def test_nothing_mounted_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to serve"):
        runner.prepare(Config(workdir=str(tmp_path), varpath=str(tmp_path / "var")))
