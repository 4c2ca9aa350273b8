"""Every member must import from this checkout, never from the public index's old project."""
import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["skitai", "aquests", "saddle", "skitai_gateway", "skitai_smtpda"])
def test_import_resolves_inside_checkout(name):
    mod = importlib.import_module(name)
    assert Path(mod.__file__).resolve().is_relative_to(ROOT / "packages"), mod.__file__


def test_plugins_declared_as_entry_points():
    names = {ep.name for ep in entry_points(group="skitai.plugins")}
    assert {"saddle", "gateway", "smtpda"} <= names


@pytest.mark.parametrize("extra, dist", [("saddle", "skitai-saddle"), ("gateway", "skitai-gateway"),
                                         ("smtpda", "skitai-smtpda")])
def test_skitai_extras_resolve_to_the_local_packages(extra, dist):
    """``pip install skitai[saddle,gateway,smtpda]`` names our plugin distributions, installed editable
    from this checkout (never from the public index)."""
    import json
    from importlib.metadata import distribution, requires

    wanted = [r for r in requires("skitai") if r.startswith(dist + "==") and f'extra == "{extra}"' in r]
    assert wanted, requires("skitai")
    assert wanted[0].split(";")[0].split("==")[1] == distribution(dist).version
    url = json.loads(distribution(dist).read_text("direct_url.json"))
    assert url["dir_info"].get("editable") is True
    assert url["url"].startswith("file://") and Path(url["url"][7:]).resolve().is_relative_to(ROOT / "packages")
