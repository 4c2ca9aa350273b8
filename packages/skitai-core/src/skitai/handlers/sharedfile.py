"""One open descriptor shared by every request that sends the same large file.

Opening, ``fstat``-ing and closing a file per request costs system calls that are dear next to one
``sendfile``; so a large file stays open while its cache entry lives. Each request gets a ``FileView``: its
``fileno()`` feeds zero-copy ``sendfile`` (which takes explicit offsets), and ``seek``/``read`` go through
``os.pread``, so concurrent copies over TLS or HTTP/2 never move a shared file position. The descriptor is
closed only when the entry is retired *and* the last view is closed, so a number is never reused under a
send still in flight. Everything runs on the loop thread.
"""
from __future__ import annotations

import os


class SharedFile:
    __slots__ = ("fd", "users", "retired")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.retired = False

    def view(self) -> FileView:
        self.users += 1
        return FileView(self)

    def release(self) -> None:
        self.users -= 1
        if self.retired and self.users == 0:
            self._close()

    def retire(self) -> None:
        """The cache forgot this file: close now, or when the last view is closed."""
        if not self.retired:
            self.retired = True
            if self.users == 0:
                self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileView:
    """A read-only file object over a ``SharedFile`` with its own position; ``close()`` releases it."""

    __slots__ = ("_shared", "_pos")

    def __init__(self, shared: SharedFile) -> None:
        self._shared: SharedFile | None = shared
        self._pos = 0

    def fileno(self) -> int:
        if self._shared is None:
            raise ValueError("I/O operation on a closed file view")
        return self._shared.fd

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += os.fstat(self.fileno()).st_size
        if offset < 0:
            raise ValueError("negative seek position")
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        fd = self.fileno()
        if size is None or size < 0:
            size = max(os.fstat(fd).st_size - self._pos, 0)
        data = os.pread(fd, size, self._pos)
        self._pos += len(data)
        return data

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.release()

    @property
    def closed(self) -> bool:
        return self._shared is None

    def __enter__(self) -> FileView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
