"""Skitai App Engine: the launch API (filled by skitai.launch)."""

__version__ = "1.0.0.dev0"
