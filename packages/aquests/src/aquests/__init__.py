"""aquests: the async client library of Skitai."""

__version__ = "1.0.0.dev0"
