"""Turn the exceptions of sockets and drivers into aquests failure codes.

The database answering with an error is ``DB_ERROR``; anything below it (refused, timeout, closed,
DNS) gets the network code, so callers can tell "my SQL is wrong" from "the server is down".
"""
from __future__ import annotations

import asyncio
import socket

from .. import codes
from .resp import ProtocolError
from .response import DBResponse

# words libpq, pymongo and friends put in their messages, checked in order
_MESSAGE_CODES = (
    ("connection refused", codes.CONNECTION_REFUSED),
    ("connect call failed", codes.CONNECTION_REFUSED),
    ("[errno 111]", codes.CONNECTION_REFUSED),
    ("could not translate host name", codes.DNS_FAILED),
    ("name or service not known", codes.DNS_FAILED),
    ("temporary failure in name resolution", codes.DNS_FAILED),
    ("timeout expired", codes.TIMEOUT),
    ("timed out", codes.TIMEOUT),
    ("server closed the connection", codes.CONNECTION_CLOSED),
    ("connection already closed", codes.CONNECTION_CLOSED),
    ("connection closed", codes.CONNECTION_CLOSED),
    ("connection reset", codes.CONNECTION_CLOSED),
    ("eof detected", codes.CONNECTION_CLOSED),
    ("terminating connection", codes.CONNECTION_CLOSED),
    ("lost synchronization with server", codes.PROTOCOL_ERROR),  # libpq: the bytes are not the protocol
    ("unexpected response from server", codes.PROTOCOL_ERROR),
)


def classify(exc: BaseException, default: int = codes.DB_ERROR) -> int:
    """The aquests code for ``exc``; driver errors without a network cause get ``default``."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, socket.timeout)):
        return codes.TIMEOUT
    if isinstance(exc, ProtocolError):
        return codes.PROTOCOL_ERROR
    if isinstance(exc, ConnectionRefusedError):
        return codes.CONNECTION_REFUSED
    if isinstance(exc, socket.gaierror):
        return codes.DNS_FAILED
    if isinstance(exc, (ConnectionError, EOFError, asyncio.IncompleteReadError)):
        return codes.CONNECTION_CLOSED
    text = str(exc).lower()
    for words, code in _MESSAGE_CODES:
        if words in text:
            return code
    if isinstance(exc, OSError):
        return codes.REQUEST_FAILED
    return default


def failure(exc: BaseException, *, url: str, method: str, meta: dict | None,
            default: int = codes.DB_ERROR, code: int | None = None) -> DBResponse:
    """A failed response for ``exc``; ``code`` overrides the classification (a driver knows better)."""
    code = classify(exc, default) if code is None else code
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    if code == codes.TIMEOUT and not reason:
        reason = "no answer within the timeout"
    return DBResponse.failed(code, reason, exc=exc, url=url, method=method, meta=meta)
