"""The command line of every app that calls ``skitai.run()`` (SK-20).

    python app.py [-v] [--port N] [--address A] [--workers N]    serve in the foreground
    python app.py start | -d                                      serve as a daemon
    python app.py stop | -s                                       stop the daemon
    python app.py restart | -r                                    stop, then start
    python app.py status                                          print running / stopped
    python app.py -f                                              serve, restarted whenever it dies

``-v`` echoes file logs to the console. The port also comes from ``SKITAI_PORT`` (the command line wins
over the environment, which wins over ``run(port=...)``); ``SKITAI_ADDRESS`` likewise for the address.
The daemon's pid file is ``<varpath>/skitai.pid`` unless ``run(pidfile=...)`` says otherwise.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from .config import Config
from .loader import MountError

USAGE = """usage: python app.py [start|stop|restart|status] [-d|-s|-r] [-v] [-f] [--port N] [--address A] [--workers N]
  (no command)  serve in the foreground
  start, -d     run as a daemon            stop, -s   stop the daemon
  restart, -r   stop then start            status     print whether the daemon runs
  -v            echo logs to the console as well as to the log files
  -f            run under a supervisor that starts the app again when it dies (foreground)
  --port N      listen on port N (or SKITAI_PORT=N); --address A (or SKITAI_ADDRESS=A); --workers N"""

COMMANDS = {"start": "start", "-d": "start", "stop": "stop", "-s": "stop", "restart": "restart",
            "-r": "restart", "status": "status"}
OPTIONS = {"--port": "port", "--address": "address", "--workers": "workers"}


class UsageError(ValueError):
    pass


@dataclass
class Options:
    command: str | None = None
    verbose: bool = False
    port: int | None = None
    address: str | None = None
    workers: int | None = None
    help: bool = False
    failsafe: bool = False


def parse(argv: list[str]) -> Options:
    opts = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if arg in COMMANDS:
            if opts.command and opts.command != COMMANDS[arg]:
                raise UsageError(f"two commands given: {opts.command} and {COMMANDS[arg]}")
            opts.command = COMMANDS[arg]
        elif arg == "-v":
            opts.verbose = True
        elif arg == "-f":
            opts.failsafe = True
        elif arg in ("-h", "--help"):
            opts.help = True
        elif name in OPTIONS:
            if not eq:
                if not args:
                    raise UsageError(f"{name} needs a value")
                value = args.pop(0)
            setattr(opts, OPTIONS[name], _option(name, value))
        else:
            raise UsageError(f"unknown argument {arg!r}")
    if opts.verbose and opts.command in ("start", "restart"):
        raise UsageError("-v cannot go with start/restart: a daemon has no console")
    if opts.failsafe and opts.command:
        raise UsageError(f"-f runs the app in the foreground: it cannot go with {opts.command}")
    return opts


def _option(name: str, value: str) -> int | str:
    if name == "--address":
        return value
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name} takes a number, not {value!r}") from None
    if name == "--port" and not 0 <= number <= 65535 or name == "--workers" and number < 1:
        raise UsageError(f"{name} out of range: {number}")
    return number


def apply(config: Config, opts: Options, environ: dict | None = None) -> Config:
    """Command line and environment over what ``run()`` was given."""
    env = os.environ if environ is None else environ
    if env.get("SKITAI_PORT"):
        config.port = int(_option("--port", env["SKITAI_PORT"]))
    if env.get("SKITAI_ADDRESS"):
        config.address = env["SKITAI_ADDRESS"]
    for name in ("port", "address", "workers"):
        if getattr(opts, name) is not None:
            setattr(config, name, getattr(opts, name))
    if opts.verbose:
        config.verbose = True
    return config


def pidfile_of(config: Config) -> str:
    return config.pidfile or os.path.join(config.varpath, "skitai.pid")


def main(config: Config, argv: list[str]) -> int:
    """Do what the command line says; returns the process exit code (0: fine)."""
    from . import daemon, paths
    try:
        opts = parse(argv)
    except UsageError as e:
        print(f"skitai: {e}\n{USAGE}", file=sys.stderr)
        return 2
    if opts.help:
        print(USAGE)
        return 0
    if opts.failsafe:
        from . import failsafe
        return failsafe.supervise(argv)
    from .failsafe import watch_supervisor
    watch_supervisor()
    apply(config, opts)
    config.varpath = config.varpath or paths.default_varpath()
    pidfile = pidfile_of(config)
    if opts.command == "status":
        return daemon.status(pidfile)
    if opts.command in ("stop", "restart"):
        code = daemon.stop(pidfile, config.stop_timeout + 5)
        if opts.command == "stop":
            return code
    from . import runner, workers
    from .tls import TLSConfigError
    if opts.command in ("start", "restart"):
        output = os.path.join(config.logpath or config.varpath, "console.log")
        return daemon.daemonize(pidfile, output, lambda report: runner.serve(config, report))
    try:
        return runner.serve(config)
    except (runner.ListenError, MountError, TLSConfigError, workers.StartError) as e:
        print(f"skitai: {e}", file=sys.stderr)
        return 1
