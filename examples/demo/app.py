"""The demo (``tools/demo.sh``): a page, static files and a small JSON API on http://127.0.0.1:5000/.

Runs with embedded defaults and no other server. ``--port N`` (or ``SKITAI_PORT``) picks another port.
"""
import json
import os
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STARTED = time.time()


class Notes:
    """A tiny in-memory note list behind the JSON API (thread-safe: apps run in a thread pool)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items = [{"id": 1, "text": "Skitai serves this page, its files and this API."}]

    def add(self, text: str) -> dict:
        with self.lock:
            note = {"id": max((n["id"] for n in self.items), default=0) + 1, "text": text}
            self.items.append(note)
            return note

    def all(self) -> list:
        with self.lock:
            return list(self.items)


notes = Notes()


def respond(start_response, status, body, ctype="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]


def api(env, start_response):
    path, method = env.get("PATH_INFO", ""), env["REQUEST_METHOD"]
    if path == "/api/status":
        return respond(start_response, "200 OK", {
            "server": env.get("SERVER_SOFTWARE", "skitai"), "uptime": round(time.time() - STARTED, 1),
            "pid": os.getpid(), "multithread": env["wsgi.multithread"]})
    if path == "/api/notes" and method == "GET":
        return respond(start_response, "200 OK", notes.all())
    if path == "/api/notes" and method == "POST":
        try:
            length = int(env.get("CONTENT_LENGTH") or 0)
            text = str(json.loads(env["wsgi.input"].read(length) or b"{}")["text"]).strip()[:500]
        except (ValueError, KeyError, TypeError):
            return respond(start_response, "400 Bad Request", {"error": 'send {"text": "..."}'})
        if not text:
            return respond(start_response, "400 Bad Request", {"error": "empty note"})
        return respond(start_response, "201 Created", notes.add(text))
    if path == "/api/notes":
        return respond(start_response, "405 Method Not Allowed", {"error": "GET or POST"})
    return respond(start_response, "404 Not Found", {"error": "no such API"})


def app(env, start_response):
    """The page at / and the API under /api/; the files under /static/ come from the static mount."""
    path = env.get("PATH_INFO", "") or "/"
    if path.startswith("/api/"):
        return api(env, start_response)
    if path in ("/", "/index.html"):
        with open(os.path.join(HERE, "templates", "index.html"), "rb") as f:
            return respond(start_response, "200 OK", f.read(), "text/html; charset=utf-8")
    return respond(start_response, "404 Not Found", b"<h1>404 Not Found</h1>", "text/html; charset=utf-8")


app.use_reloader = True

if __name__ == "__main__":
    import skitai

    skitai.mount("/", app)
    skitai.mount("/static", "static")
    skitai.set_max_age("/static", 300)
    skitai.run(address="127.0.0.1", port=5000)
