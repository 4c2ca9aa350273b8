"""A bounded LRU of what the static handler learnt about a URL path.

Every resolved path keeps a small record (real path, validators, preformatted headers); files up to
``max_file`` bytes also keep their content, as long as all kept contents stay under ``max_bytes``; up to
``max_open`` larger files keep an open descriptor (``SharedFile``), retired when their entry goes.
Keys are raw request paths, so a hit skips decoding, realpath and the containment check entirely.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .sharedfile import SharedFile


@dataclass(eq=False)
class Entry:
    real: str                       # the resolved file
    size: int
    mtime_ns: int
    ino: int
    etag: str
    last_modified: str
    mtime: int                      # whole seconds, what Last-Modified says
    ctype: str
    cache_control: str | None
    headers: list[tuple[str, str]]  # a 200's headers, preformatted
    validators: list[tuple[str, str]] = field(default_factory=list)   # what a 304 repeats
    body: bytes | None = None       # the content when small enough to keep
    shared: SharedFile | None = None   # else, maybe an open descriptor
    checked: float = 0.0            # time.monotonic() of the last stat
    timed: list[tuple[str, str]] = field(default_factory=list)   # headers + Expires, for second timed_at
    timed_at: int = -1

    def same_file(self, st) -> bool:
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns and st.st_ino == self.ino


class FileCache:
    def __init__(self, max_entries: int, max_bytes: int, max_file: int, max_open: int = 0) -> None:
        if max_entries < 1 or max_bytes < 0 or max_file < 0 or max_open < 0:
            raise ValueError("cache limits must be positive (max_entries >= 1)")
        self.max_entries, self.max_bytes, self.max_file = max_entries, max_bytes, max_file
        self.max_open = max_open
        self.nbytes = 0
        self.nopen = 0
        self._items: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Entry | None:
        entry = self._items.get(key)
        if entry is not None:
            self._items.move_to_end(key)
        return entry

    def keeps(self, size: int) -> bool:
        """Whether a file of ``size`` bytes should be held in memory."""
        return size <= self.max_file and size <= self.max_bytes

    def may_open(self) -> bool:
        """Whether one more large file may keep its descriptor open."""
        return self.nopen < self.max_open

    def put(self, key: str, entry: Entry) -> None:
        self.discard(key)
        self._items[key] = entry
        if entry.body is not None:
            self.nbytes += len(entry.body)
        if entry.shared is not None:
            self.nopen += 1
        while len(self._items) > self.max_entries or self.nbytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def discard(self, key: str) -> None:
        if key in self._items:
            self._drop(key)

    def close_idle(self, before: float) -> int:
        """Forget large files kept open but not checked since ``before`` (their disk space may be a deleted
        file's); returns how many were closed."""
        idle = [k for k, e in self._items.items() if e.shared is not None and e.checked < before]
        for key in idle:
            self._drop(key)
        return len(idle)

    def clear(self) -> None:
        while self._items:
            self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        entry = self._items.pop(key)
        if entry.body is not None:
            self.nbytes -= len(entry.body)
        if entry.shared is not None:
            self.nopen -= 1
            entry.shared.retire()
