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
