"""The process-wide registry of named clusters and the ``"@name/path"`` address form (SK-03)."""
from __future__ import annotations

import threading

from .cluster import Cluster

_lock = threading.Lock()
_clusters: dict[str, Cluster] = {}


def alias(name: str, ctype: str, members: str | list[str], role: str = "", source: str = "",
          ssl: bool = False, **options: float) -> Cluster:
    """Register (or replace) cluster ``name``; a leading ``@`` is dropped. Returns the cluster.

    ``options`` go to :class:`~aquests.cluster.Cluster` (``backoff``, ``long_backoff``, ``long_after``).
    """
    cluster = Cluster(name, ctype, members, role, source, ssl, **options)
    with _lock:
        _clusters[cluster.name] = cluster
    return cluster


def get_cluster(name: str) -> Cluster:
    """The cluster registered as ``name`` (with or without ``@``); ValueError if there is none."""
    key = name.lstrip("@")
    with _lock:
        cluster = _clusters.get(key)
    if cluster is None:
        raise ValueError(f"no cluster named @{key}: define it first with aquests.alias('@{key}', ctype, members)")
    return cluster


def unalias(name: str) -> None:
    with _lock:
        _clusters.pop(name.lstrip("@"), None)


def clusters() -> dict[str, Cluster]:
    """A copy of the registry (name -> cluster)."""
    with _lock:
        return dict(_clusters)


def is_cluster_url(url: object) -> bool:
    return isinstance(url, str) and url.startswith("@")


def split_cluster_url(url: str) -> tuple[Cluster, str]:
    """``"@mysearch/rpc2?q=1"`` -> (cluster mysearch, ``"/rpc2?q=1"``); the path defaults to ``/``."""
    if not is_cluster_url(url):
        raise ValueError(f"{url!r} is not a cluster address ('@name/path')")
    name, sep, rest = url[1:].partition("/")
    if not sep:
        name, sep, query = url[1:].partition("?")
        rest = ("?" + query) if sep else ""
    return get_cluster(name), "/" + rest
