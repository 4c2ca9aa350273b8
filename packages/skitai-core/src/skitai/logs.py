"""Logging set-up (SK-23) on the standard ``logging`` package.

Three loggers: ``skitai.server``, ``skitai.app`` and ``skitai.request``. With a ``logpath`` they write
``server.log`` (rotated every 30 days), ``app.log`` and ``request.log`` (rotated at midnight), keeping 100
old files each; without one they write to the console. ``verbose`` (``-v``) echoes file logs to the console.

Line format: ``YYYY.MM.DD HH:MM:SS [type] message``; the request log has no ``[type]`` tag. Traceback lines
of a logged exception carry the tag ``[expt]``. Control characters in a message (CR, LF, ESC, C1, line and
bidi separators) are written as ``\\xNN``/``\\uNNNN``, so text a client sent can neither start a forged line
nor drive the terminal that shows the log.

SIGUSR1 (``rotate()``) never overwrites an earlier dated copy of the same day (the next one is ``.1``, ``.2``,
...). A log file removed under the server is re-created by ``reopen_missing()`` (the server's once-a-second tick).
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys

SERVER, APP, REQUEST = "skitai.server", "skitai.app", "skitai.request"
NAMES = (SERVER, APP, REQUEST)
DATEFMT = "%Y.%m.%d %H:%M:%S"
BACKUPS = 100
TAGS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
        logging.ERROR: "error", logging.CRITICAL: "fatal"}
ROTATION = {SERVER: ("D", 30), APP: ("midnight", 1), REQUEST: ("midnight", 1)}

_installed: list[tuple[logging.Logger, logging.Handler]] = []
CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"   # C0, DEL, C1, separators, bidi
_UNSAFE = re.compile(f"[{CONTROL}]")
_DATED = re.compile(r"^\d{8}(\.\d+)?$", re.ASCII)     # what ``suffix`` "%Y%m%d" (+ ".N") names


def escape_char(m: re.Match) -> str:
    """One matched character written safely: ``"`` and ``\\`` backslashed (quoted fields of the request
    log), any other as ``\\xNN``/``\\uNNNN``."""
    c = m.group()
    if c == '"' or c == "\\":
        return "\\" + c
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def escape(text: str) -> str:
    """``text`` with control characters as ``\\xNN``: a log line stays one line and never drives a terminal.

    Ordinary text costs one ``str.isprintable()``.
    """
    if text.isprintable():
        return text
    return _UNSAFE.sub(escape_char, text)


class LineFormatter(logging.Formatter):
    """``2026.11.25 18:00:00 [info] message``; each traceback line as its own ``[expt]`` line."""

    def __init__(self, tagged: bool = True) -> None:
        super().__init__(datefmt=DATEFMT)
        self.tagged = tagged

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, DATEFMT)
        message = escape(record.getMessage())
        if self.tagged:
            line = f"{stamp} [{TAGS.get(record.levelno, record.levelname.lower())}] {message}"
        else:
            line = f"{stamp} {message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "".join(f"\n{stamp} [expt] {escape(t)}" for t in record.exc_text.splitlines())
        return line


class DatedFileHandler(logging.handlers.TimedRotatingFileHandler):
    """Daily copies ``<name>.log.YYYYMMDD`` (then ``.1``, ``.2``, ... for more rotations that day), pruned
    oldest first. The stdlib sorts copies as text, which would take ``.10`` for older than ``.2``."""

    def getFilesToDelete(self) -> list[str]:
        folder, base = os.path.split(self.baseFilename)
        copies = []
        for name in os.listdir(folder):
            if name.startswith(base + ".") and self.extMatch.match(name[len(base) + 1:]):
                day, _, n = name[len(base) + 1:].partition(".")
                copies.append((day, int(n or 0), os.path.join(folder, name)))
        copies.sort()
        return [path for _, _, path in copies[:max(0, len(copies) - self.backupCount)]]


def _file_handler(logpath: str, name: str) -> logging.Handler:
    when, interval = ROTATION[name]
    filename = os.path.join(logpath, name.split(".")[-1] + ".log")
    handler = DatedFileHandler(
        filename, when=when, interval=interval, backupCount=BACKUPS, encoding="utf-8", delay=True)
    handler.suffix = "%Y%m%d"
    handler.extMatch = _DATED          # what our copies are named (the stdlib's pattern is for its suffixes)
    handler.namer = _free_name         # midnight's rollover too: it would replace a copy SIGUSR1 made that day
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


def _free_name(default_name: str) -> str:
    """The dated name, or ``.N`` after it, one past the highest copy of that day: a second SIGUSR1 on one day
    (or a sibling worker rotating the same file) must not remove the copy the first one made, and a name
    freed by pruning is never reused (the newest copy would then sort as the oldest)."""
    folder, day = os.path.split(default_name)
    taken = [name[len(day):] for name in os.listdir(folder or ".") if name.startswith(day)]
    numbers = [int(rest[1:]) for rest in taken if rest[1:].isdigit() and rest[:1] == "."]
    if "" in taken:
        numbers.append(0)
    return f"{default_name}.{max(numbers) + 1}" if numbers else default_name


def rotate() -> None:
    """Roll every log file over now (SIGUSR1), under each handler's lock so no thread writes meanwhile."""
    for _logger, handler in list(_installed):
        if isinstance(handler, logging.handlers.BaseRotatingHandler):
            handler.acquire()
            try:
                handler.doRollover()
            finally:
                handler.release()


def reopen_missing() -> None:
    """Re-create a log file removed (or renamed) under the server, instead of writing on into the lost file."""
    for _logger, handler in list(_installed):
        if not isinstance(handler, logging.FileHandler) or handler.stream is None:
            continue
        try:
            now = os.stat(handler.baseFilename)
            then = os.fstat(handler.stream.fileno())
            if (now.st_dev, now.st_ino) == (then.st_dev, then.st_ino):
                continue
        except (OSError, ValueError):
            pass
        handler.acquire()
        try:
            if handler.stream is not None:
                handler.stream.close()
                handler.stream = None        # ``delay=True``: the next line opens (creates) the file again
        finally:
            handler.release()
