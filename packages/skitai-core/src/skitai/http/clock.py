"""The once-a-second clock: the preformatted ``Server``/``Date`` header bytes shared by every protocol.

Formatting a date per response is measurable on a hello-world benchmark, so the server's ticker calls
``refresh()`` once a second and protocols copy ``SERVER_DATE`` (``b"Server: ...\\r\\nDate: ...\\r\\n"``).
"""
from __future__ import annotations

import time
from email.utils import formatdate

from skitai import NAME

SERVER = NAME                   # "Skitai/1.0": the Server header is skitai.NAME (SK-18)
SERVER_DATE: bytes = b""
DATE: str = ""
_last = -1


def refresh(now: float | None = None) -> None:
    """Reformat the cached headers if the wall-clock second changed."""
    global SERVER_DATE, DATE, _last
    now = time.time() if now is None else now
    sec = int(now)
    if sec != _last:
        _last = sec
        DATE = formatdate(sec, usegmt=True)
        SERVER_DATE = f"Server: {SERVER}\r\nDate: {DATE}\r\n".encode("latin-1")


refresh()
