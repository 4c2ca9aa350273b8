"""Catching what a server logs at ERROR (its own failures, asyncio's "Exception in callback" and "Task
exception was never retrieved"), for tests whose inputs must never produce one."""
from __future__ import annotations

import logging


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
