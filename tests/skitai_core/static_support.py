"""Shared by the static handler tests: a recording Exchange and a sample document root."""
import asyncio
import os


class Headers(dict):
    def getall(self, name):
        return [self[name]] if name in self else []


class Request:
    def __init__(self, method, target, headers, version="1.1"):
        self.method, self.target, self.version = method, target, version
        self.path, _, self.query = target.partition("?")
        self.headers = Headers({k.lower(): v for k, v in headers.items()})


class Exchange:
    """Records the answer; ``sendfile`` reads the file the way a zero-copy send would."""

    def __init__(self, request):
        self.request, self.closed = request, False
        self.status, self.headers, self.body = None, [], b""
        self.ended = False

    def respond(self, status, headers, body=b"", reason=None):
        self.status, self.headers, self.body, self.ended = status, headers, body, True

    def start(self, status, headers, reason=None):
        self.status, self.headers = status, headers

    async def sendfile(self, file, offset, count):
        self.body += os.pread(file.fileno(), count, offset)

    def end(self, data=b""):
        self.body += data
        self.ended = True

    def error(self, status, detail=""):
        self.respond(status, [], b"error")

    def header(self, name):
        return dict((k.lower(), v) for k, v in self.headers).get(name.lower())


def call(handler, target, method="GET", **headers):
    ex = Exchange(Request(method, target, {k.replace("_", "-"): v for k, v in headers.items()}))
    result = handler(ex)
    if result is not None:
        asyncio.run(result)
    assert ex.ended
    return ex


SMALL = b"x" * 4096
BIG = bytes(range(256)) * 4096          # 1 MiB


def make_site(tmp_path):
    """A document root with every kind of entry the static tests need (and a secret outside it)."""
    root = tmp_path / "www"
    (root / "css").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "empty").mkdir()
    (root / "js").mkdir()
    (root / "jsx").mkdir()
    (root / ".well-known").mkdir()
    (root / "index.html").write_bytes(b"<h1>home</h1>")
    (root / "docs" / "index.htm").write_bytes(b"docs")
    (root / "css" / "a.css").write_bytes(b"body{}")
    (root / "js" / "app.js").write_bytes(b"1;")
    (root / "jsx" / "app.js").write_bytes(b"2;")
    (root / "small.bin").write_bytes(SMALL)
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / ".env").write_bytes(b"SECRET=1")
    (root / ".well-known" / "security.txt").write_bytes(b"contact")
    (root / "caf\u00e9.txt").write_bytes(b"cafe")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "ok.txt").symlink_to(root / "css" / "a.css")
    os.mkfifo(root / "fifo.txt")
    return root
