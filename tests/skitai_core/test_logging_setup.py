"""SK-23 logging: three loggers, files with rotation under logpath, console otherwise, -v echoes."""
import io
import logging
import logging.handlers
import re

import pytest

from skitai import logs

LINE = re.compile(r"^\d{4}\.\d{2}\.\d{2} \d{2}:\d{2}:\d{2} ")


@pytest.fixture(autouse=True)
def clean():
    yield
    logs.reset()


def test_files_under_logpath(tmp_path):
    logs.setup(str(tmp_path / "logs"))
    logging.getLogger("skitai.server").info("server up")
    logging.getLogger("skitai.app").warning("app says %s", "hi")
    logging.getLogger("skitai.request").info('127.0.0.1:5000 - GET / HTTP/1.1 200 0 2 GTID-C1-R1 1000 - - "-" 1ms 0ms')
    logs.reset()       # flush and close
    server = (tmp_path / "logs" / "server.log").read_text().splitlines()
    app = (tmp_path / "logs" / "app.log").read_text().splitlines()
    request = (tmp_path / "logs" / "request.log").read_text().splitlines()
    assert LINE.match(server[0]) and server[0].endswith(" [info] server up")
    assert app[0].endswith(" [warn] app says hi")
    assert LINE.match(request[0]) and "[" not in request[0].split(" ")[2]
    assert request[0].split(" ", 2)[2].startswith("127.0.0.1:5000 - GET /")


def test_rotation_settings(tmp_path):
    logs.setup(str(tmp_path))
    handlers = {lg.name: h for lg, h in logs._installed}
    assert all(isinstance(h, logging.handlers.TimedRotatingFileHandler) for h in handlers.values())
    assert handlers["skitai.app"].when == "MIDNIGHT" and handlers["skitai.request"].when == "MIDNIGHT"
    assert handlers["skitai.server"].when == "D" and handlers["skitai.server"].interval == 30 * 86400
    assert all(h.backupCount == 100 for h in handlers.values())


def test_rotate_now_keeps_a_dated_copy(tmp_path):
    logs.setup(str(tmp_path))
    logging.getLogger("skitai.app").info("before")
    logs.rotate()
    logging.getLogger("skitai.app").info("after")
    logs.reset()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "app.log" in names and any(re.match(r"app\.log\.\d{8}$", n) for n in names)
    assert (tmp_path / "app.log").read_text().strip().endswith("after")


def test_console_when_no_logpath():
    out = io.StringIO()
    logs.setup(None, stream=out)
    logging.getLogger("skitai.server").error("boom")
    assert re.match(r"\d{4}\.\d{2}\.\d{2} \d{2}:\d{2}:\d{2} \[error\] boom", out.getvalue())


def test_verbose_echoes_file_logs(tmp_path):
    out = io.StringIO()
    logs.setup(str(tmp_path), verbose=True, stream=out)
    logging.getLogger("skitai.app").info("both")
    logs.reset()
    assert "both" in out.getvalue() and "both" in (tmp_path / "app.log").read_text()


def test_not_verbose_keeps_the_console_quiet(tmp_path):
    out = io.StringIO()
    logs.setup(str(tmp_path), stream=out)
    logging.getLogger("skitai.app").info("file only")
    assert out.getvalue() == ""


def test_traceback_lines_are_tagged_expt():
    out = io.StringIO()
    logs.setup(None, stream=out)
    try:
        raise ValueError("bad thing")
    except ValueError:
        logging.getLogger("skitai.app").exception("handler failed")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("[error] handler failed")
    assert all(" [expt] " in line for line in lines[1:]) and "ValueError: bad thing" in lines[-1]


def test_setup_twice_does_not_double_lines():
    out = io.StringIO()
    logs.setup(None, stream=out)
    logs.setup(None, stream=out)
    logging.getLogger("skitai.server").info("once")
    assert out.getvalue().count("once") == 1


def test_v_echoes_file_logs_of_a_running_app(tmp_path):
    import requests

    from tests.support.apps import app_process
    script = tmp_path / "logged.py"
    script.write_text(
        "import skitai\n"
        "def app(env, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n"
        "if __name__ == '__main__':\n"
        "    skitai.mount('/', app)\n"
        f"    skitai.run(address='127.0.0.1', logpath={str(tmp_path / 'logs')!r}, varpath={str(tmp_path)!r})\n")
    with app_process(script, "-v") as app:
        assert requests.get(app.url + "/", headers={"User-Agent": "tester"}, timeout=10).text == "ok"
        console = app.output()
    request_log = (tmp_path / "logs" / "request.log").read_text()
    server_log = (tmp_path / "logs" / "server.log").read_text()
    assert re.search(r' GET / HTTP/1\.1 200 0 \d+ GTID-C\d+-R1 1000 - - "tester" \d+ms \d+ms', request_log)
    assert "[info] serving http://127.0.0.1:" in server_log
    assert ' GET / HTTP/1.1 200 ' in console and "[info] serving" in console
    with app_process(script) as quiet:
        requests.get(quiet.url + "/", timeout=10)
        assert "GET /" not in quiet.output()
