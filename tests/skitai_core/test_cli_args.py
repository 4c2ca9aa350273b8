"""SK-20 command line parsing (the daemon itself is tested in test_cli_daemon.py)."""
import pytest

from skitai import cli


@pytest.mark.parametrize("argv, command", [
    ([], None), (["start"], "start"), (["-d"], "start"), (["stop"], "stop"), (["-s"], "stop"),
    (["restart"], "restart"), (["-r"], "restart"), (["status"], "status"),
])
def test_commands(argv, command):
    assert cli.parse(argv).command == command


def test_options():
    o = cli.parse(["-v", "--port", "5001", "--workers=3", "--address", "0.0.0.0"])
    assert (o.verbose, o.port, o.workers, o.address) == (True, 5001, 3, "0.0.0.0")


@pytest.mark.parametrize("argv, words", [
    (["-v", "start"], "daemon has no console"),
    (["start", "stop"], "two commands"),
    (["--port"], "needs a value"),
    (["--port", "http"], "takes a number"),
    (["--port", "70000"], "out of range"),
    (["--workers", "0"], "out of range"),
    (["--what"], "unknown argument"),
    (["-f", "start"], "foreground"),
])
def test_bad_command_lines(argv, words):
    with pytest.raises(cli.UsageError, match=words):
        cli.parse(argv)


def test_main_prints_usage_on_error(capsys):
    from skitai.config import Config
    assert cli.main(Config(), ["--bogus"]) == 2
    assert "usage:" in capsys.readouterr().err
    assert cli.main(Config(), ["--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_status_of_nothing_running(tmp_path, capsys):
    from skitai.config import Config
    c = Config(varpath=str(tmp_path))
    assert cli.main(c, ["status"]) == 3
    assert "stopped" in capsys.readouterr().out
    assert cli.main(c, ["stop"]) == 0
    assert "not running" in capsys.readouterr().out
