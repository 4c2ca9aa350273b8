"""The response of a database request (inventory AQ-15).

It mirrors the HTTP ``Response`` where the ideas overlap (``status_code``, ``reason``, ``ok``, ``meta``,
``elapsed``, ``raise_for_status()``) and adds the DB fields: ``data`` (rows, documents or a Redis
reply), ``description`` (column info), ``code``/``msg`` (aliases of status_code/reason) and, on error,
``expt_class``/``expt_str``. A failure is never raised into the loop: it is a response with a 7xx code.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from .. import codes
from ..response import Headers, HTTPError, Response

OK = 200


class DBError(HTTPError):
    """Raised by ``DBResponse.raise_for_status()``; ``.response`` is the failed response."""


class Row:
    """One result row: ``row[0]``, ``row["city"]`` and ``row.city`` all work.

    Rows of one result share a single name→index map, so a row costs one small object.
    """

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence, index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[self._index[name]]
        except KeyError:
            raise AttributeError(f"row has no column {name!r} (columns: {list(self._index)})") from None

    def __reduce__(self) -> tuple:
        # pickle and copy rebuild a row through __init__ (the result cache pickles results); the
        # rows of one result keep sharing one index
        return Row, (self._values, self._index)

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                raise KeyError(f"row has no column {key!r} (columns: {list(self._index)})") from None
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return tuple(self._values) == tuple(other._values)
        if isinstance(other, (tuple, list)):
            return tuple(self._values) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={self._values[i]!r}" for k, i in self._index.items())
        return f"Row({inner})"

    def keys(self) -> list[str]:
        return list(self._index)

    def values(self) -> list:
        return list(self._values)

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self._values[i]) for k, i in self._index.items()]

    def get(self, name: str, default: Any = None) -> Any:
        i = self._index.get(name)
        return default if i is None else self._values[i]

    def asdict(self) -> dict[str, Any]:
        return {k: self._values[i] for k, i in self._index.items()}


def make_rows(names: Sequence[str], records: list[Sequence]) -> list[Row]:
    """Wrap raw tuples as rows sharing one index (the last of duplicate column names wins)."""
    index = {name: i for i, name in enumerate(names)}
    return [Row(r, index) for r in records]


class Document(dict):
    """A MongoDB document: a dict whose keys also read as attributes (``doc.name``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"document has no field {name!r}") from None


class DBResponse(Response):
    """Result of one database request (a ``Response``, so queues and callbacks treat it alike)."""

    headers = Headers()
    content = b""
    version = ""
    history: list = []
    cookies: dict = {}
    error = None
    trailers = None
    decoder = None
    lastrowid = None  # SQLite: rowid of the last INSERT

    # no super().__init__: a query result needs none of the HTTP fields, and this runs per query
    def __init__(self, data: Any = None, description: Any = None, *, status_code: int = OK,
                 reason: str = "OK", expt_class: type | None = None, expt_str: str | None = None,
                 meta: dict | None = None, url: str = "", method: str = "", rowcount: int = -1,
                 elapsed: float = 0.0) -> None:
        self._data = data
        self.description = description
        self.status_code = status_code
        self.reason = reason
        self.expt_class = expt_class
        self.expt_str = expt_str
        self.meta = meta if meta is not None else {}
        self.url = url
        self.method = method
        self.rowcount = rowcount
        self.elapsed = elapsed

    @classmethod
    def failed(cls, code: int, reason: str = "", *, url: str = "", meta: dict | None = None,
               method: str = "", error: BaseException | None = None,
               exc: BaseException | None = None) -> DBResponse:
        """A 7xx failure; the exception (``exc`` or ``error``) fills ``expt_class``/``expt_str``."""
        exc = exc if exc is not None else error
        label = codes.REASONS.get(code, "Failed")
        return cls(None, None, status_code=code, reason=f"{label}: {reason}" if reason else label,
                   expt_class=type(exc) if exc is not None else None,
                   expt_str=(str(exc).strip() or type(exc).__name__) if exc is not None else None,
                   url=url, method=method, meta=meta)

    # the names the original DB response used
    @property
    def code(self) -> int:
        return self.status_code

    @property
    def msg(self) -> str:
        return self.reason

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return ""

    def json(self) -> Any:
        return self.data

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            detail = f" ({self.expt_class.__name__}: {self.expt_str})" if self.expt_class else ""
            raise DBError(f"{self.status_code} {self.reason}{detail} [{self.url}]", self)

    def __iter__(self) -> Iterator:
        return iter(self.data or ())

    def __repr__(self) -> str:
        return f"<DBResponse [{self.status_code} {self.reason}] {self.method} {self.url}>"
