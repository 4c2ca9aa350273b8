"""How each verb variant turns its ``data`` into a body (AQ-03), shared by both APIs.

Plain ``post/put/patch`` send JSON (since 0.18.11); ``*form`` urlencode, ``*xml`` send text/xml,
``*nvp`` send text/namevalue, ``*json`` JSON. Bytes, files and iterators are sent as they are,
labelled with the variant's content type.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

NO_BODY = ("get", "delete", "head", "options", "trace")
WITH_BODY = ("post", "put", "patch")
VARIANTS = {"": "application/json", "json": "application/json",
            "form": "application/x-www-form-urlencoded", "xml": "text/xml", "nvp": "text/namevalue"}


def body_kwargs(variant: str, data: Any) -> dict[str, Any]:
    """Keyword arguments for :meth:`aquests.http.client.Client.build_body`."""
    ctype = VARIANTS[variant]
    if data is None:
        return {}
    if variant in ("", "json"):
        if isinstance(data, (Mapping, list, tuple, int, float, bool)):
            return {"json": data, "content_type": ctype}
        return {"data": data, "content_type": ctype}
    if variant in ("form", "nvp") and isinstance(data, Mapping):
        return {"data": urlencode(data, doseq=True), "content_type": ctype}
    return {"data": data, "content_type": ctype}


def split_name(name: str) -> tuple[str, str]:
    """``"postform"`` → ``("POST", "form")``; raises AttributeError for names that are not verbs."""
    for verb in WITH_BODY:
        if name.startswith(verb) and name[len(verb):] in VARIANTS:
            return verb.upper(), name[len(verb):]
    if name in NO_BODY:
        return name.upper(), ""
    raise AttributeError(name)


ALL_NAMES = NO_BODY + tuple(v + s for v in WITH_BODY for s in VARIANTS)
