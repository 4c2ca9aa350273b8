"""Exceptions raised inside the HTTP machinery and their mapping to 7xx failure codes."""
from __future__ import annotations

import asyncio
import socket
import ssl

from .. import codes


class ClientError(Exception):
    """A failure with a known code; the client turns it into a failed Response."""

    code = codes.REQUEST_FAILED

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        if code is not None:
            self.code = code


class ProtocolError(ClientError):
    code = codes.PROTOCOL_ERROR


class ConnectionClosed(ClientError):
    code = codes.CONNECTION_CLOSED


class Unprocessed(ConnectionClosed):
    """The server said it did not act on the request (HTTP/2 GOAWAY above it, REFUSED_STREAM).

    Safe to send again on another connection; the client does so for idempotent requests.
    """


def classify(exc: BaseException) -> tuple[int, str]:
    """(failure code, reason) for an exception raised while talking to a server."""
    if isinstance(exc, ClientError):
        return exc.code, str(exc)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return codes.TIMEOUT, "no answer within the timeout"
    if isinstance(exc, socket.gaierror):
        return codes.DNS_FAILED, f"{exc.strerror or exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return codes.TLS_FAILED, f"certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return codes.TLS_FAILED, f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return codes.CONNECTION_REFUSED, f"{exc.strerror or exc}"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return codes.CONNECTION_CLOSED, f"connection closed by peer: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return codes.REQUEST_FAILED, f"{type(exc).__name__}: {exc.strerror or exc}"
    return codes.REQUEST_FAILED, f"{type(exc).__name__}: {exc}"
