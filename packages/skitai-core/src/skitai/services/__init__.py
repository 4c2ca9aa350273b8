"""``was``: the services every app gets (issue 4): async requests, clusters, caching, utilities.

Kept import-light: the WSGI bridge imports ``skitai.services.binding`` per process; the services (and aquests)
load when a server context is installed.
"""
from .binding import attach, bound, current, install, installed, server_context

__all__ = ["attach", "bound", "current", "install", "installed", "server_context"]
