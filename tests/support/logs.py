"""Catching what a server logs at ERROR (its own failures, asyncio's "Exception in callback" and "Task
exception was never retrieved"), for tests whose inputs must never produce one."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class ErrorRecords(logging.Handler):
    """Collects ERROR records of the loggers it is added to; ``take()`` returns them as lines and forgets them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        out = [f"{r.name}: {r.getMessage()}" + (f" [{r.exc_info[1]!r}]" if r.exc_info else "")
               for r in self.records]
        self.records.clear()
        return out


@contextmanager
def catching_errors(*names: str) -> Iterator[ErrorRecords]:
    """ERROR records of the loggers ``names`` (the root logger when none) while the block runs."""
    records = ErrorRecords()
    loggers = [logging.getLogger(n) for n in names] or [logging.getLogger()]
    for logger in loggers:
        logger.addHandler(records)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(records)
