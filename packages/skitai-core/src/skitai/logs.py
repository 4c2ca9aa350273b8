"""Logging set-up (SK-23) on the standard ``logging`` package.

Three loggers: ``skitai.server``, ``skitai.app`` and ``skitai.request``. With a ``logpath`` they write
``server.log`` (rotated every 30 days), ``app.log`` and ``request.log`` (rotated at midnight), keeping 100
old files each; without one they write to the console. ``verbose`` (``-v``) echoes file logs to the console.

Line format: ``YYYY.MM.DD HH:MM:SS [type] message``; the request log has no ``[type]`` tag. Traceback lines
of a logged exception carry the tag ``[expt]``.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys

SERVER, APP, REQUEST = "skitai.server", "skitai.app", "skitai.request"
NAMES = (SERVER, APP, REQUEST)
DATEFMT = "%Y.%m.%d %H:%M:%S"
BACKUPS = 100
TAGS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
        logging.ERROR: "error", logging.CRITICAL: "fatal"}
ROTATION = {SERVER: ("D", 30), APP: ("midnight", 1), REQUEST: ("midnight", 1)}

_installed: list[tuple[logging.Logger, logging.Handler]] = []


class LineFormatter(logging.Formatter):
    """``2026.11.25 18:00:00 [info] message``; each traceback line as its own ``[expt]`` line."""

    def __init__(self, tagged: bool = True) -> None:
        super().__init__(datefmt=DATEFMT)
        self.tagged = tagged

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, DATEFMT)
        message = record.getMessage()
        if self.tagged:
            line = f"{stamp} [{TAGS.get(record.levelno, record.levelname.lower())}] {message}"
        else:
            line = f"{stamp} {message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "".join(f"\n{stamp} [expt] {t}" for t in record.exc_text.splitlines())
        return line


def _file_handler(logpath: str, name: str) -> logging.Handler:
    when, interval = ROTATION[name]
    filename = os.path.join(logpath, name.split(".")[-1] + ".log")
    handler = logging.handlers.TimedRotatingFileHandler(
        filename, when=when, interval=interval, backupCount=BACKUPS, encoding="utf-8", delay=True)
    handler.suffix = "%Y%m%d"
    return handler


def setup(logpath: str | None = None, verbose: bool = False, level: int = logging.INFO,
          stream=None) -> None:
    """Point the three loggers at files under ``logpath`` (and the console when ``verbose``) or the console.

    Calling it again replaces what an earlier call installed.
    """
    reset()
    if logpath:
        os.makedirs(logpath, exist_ok=True)
    for name in NAMES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = False
        handlers = []
        if logpath:
            handlers.append(_file_handler(logpath, name))
        if not logpath or verbose:
            handlers.append(logging.StreamHandler(stream or sys.stderr))
        for handler in handlers:
            handler.setFormatter(LineFormatter(tagged=name != REQUEST))
            logger.addHandler(handler)
            _installed.append((logger, handler))


def reset() -> None:
    """Remove and close the handlers ``setup`` installed (tests; a forked worker re-opening its files)."""
    while _installed:
        logger, handler = _installed.pop()
        logger.removeHandler(handler)
        handler.close()
        logger.propagate = True


def rotate() -> None:
    """Roll every log file over now (SIGUSR1)."""
    for _logger, handler in list(_installed):
        if isinstance(handler, logging.handlers.BaseRotatingHandler):
            handler.doRollover()
