"""The server side of the ``packrat`` command: ``serve``, ``coordinator``, ``frontend``,
``fsck``, ``config``, ``keygen``.

Each imports its role (Tornado, ZeroMQ) only when it runs, so the parser
stays light for the client commands.  A situation that stops a role (the
root in use, a bad configuration, an address that cannot be bound, a broken
root) is one line on stderr and its ``ExitStatus``, never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from packrat.core.exits import CannotListen, ExitStatus
from packrat.core.settings import (
    ENV_VAR,
    SEARCH_PATH,
    ConfigError,
    Settings,
    describe,
    find_config,
    load,
)


def _setup(
    role: str, args: argparse.Namespace, title: str | None = None, buffered_log: bool = False
) -> tuple[Settings, Path | None]:
    """Name the process, load settings (``ExitStatus.CONFIG`` on a bad file), configure logging."""
    from packrat.core import logs  # not for the client commands, which share this parser

    try:
        from setproctitle import setproctitle
    except ImportError:  # optional: the command line already names the role
        pass
    else:
        # "packrat <role>" and the options as typed: `ps` shows the role, and
        # `pkill -f "packrat serve --config x.ini"` finds what was started.
        setproctitle(" ".join(["packrat", title or role, *sys.argv[2:]]))
    path, _ = find_config(args.config)
    try:
        settings = load(path)
    except ConfigError as e:
        print(f"packrat: {e}", file=sys.stderr)
        raise SystemExit(ExitStatus.CONFIG) from None
    logs.configure(role, settings, buffered=buffered_log)
    return settings, path


def cmd_serve(args: argparse.Namespace) -> int:
    from packrat.supervisor import serve

    settings, path = _setup("supervisor", args, title="serve")
    return serve.serve(settings, path)


def cmd_coordinator(args: argparse.Namespace) -> int:
    from packrat.coordinator import server

    settings, _ = _setup("coordinator", args)
    server.run(settings)
    return 0


def cmd_frontend(args: argparse.Namespace) -> int:
    from packrat.frontend import app

    settings, _ = _setup(f"frontend {args.number}", args, buffered_log=True)
    # A file-size limit (RLIMIT_FSIZE) must fail the write (EFBIG -> 507),
    # not kill the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    app.run(settings, args.number)
    return 0


def cmd_uploader(args: argparse.Namespace) -> int:
    from packrat.objectstore import uploader

    settings, path = _setup("uploader", args)
    if not settings.objectstore_enabled:
        where = path or "the built-in defaults"
        print(f"packrat: {where}: [objectstore] bucket is not set", file=sys.stderr)
        return ExitStatus.CONFIG
    uploader.run(settings)
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    from packrat.cli import fsck

    settings, _ = _setup("fsck", args)
    return fsck.run(settings, repair=args.repair)


def cmd_keygen(args: argparse.Namespace) -> int:
    from packrat.coordinator.curve import generate_keys

    generate_keys(Path(args.directory))
    print(
        f"CURVE keys written to {args.directory}; set [coordinator] curve_keys = {args.directory}"
    )
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    path, how = find_config(args.config)
    try:
        text = describe(path, how)
    except ConfigError as e:
        print(f"packrat: {e}", file=sys.stderr)
        return ExitStatus.CONFIG
    sys.stdout.write(text)
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the server-side subcommands on the ``packrat`` parser."""
    searched = ", ".join(str(path) for path in SEARCH_PATH)
    config_help = (
        f"configuration file (default: ${ENV_VAR}, else the first of {searched}, "
        "else built-in defaults)"
    )
    serve = commands.add_parser("serve", help="run the coordinator and the front ends")
    serve.set_defaults(func=run, action=cmd_serve)
    coordinator = commands.add_parser("coordinator", help="run the coordinator alone")
    coordinator.set_defaults(func=run, action=cmd_coordinator)
    frontend = commands.add_parser("frontend", help="run one front end alone")
    frontend.add_argument("--number", type=int, default=0, help="front-end number, for logs")
    frontend.set_defaults(func=run, action=cmd_frontend)
    uploader = commands.add_parser(
        "uploader", help="run the object store's uploader alone ([objectstore])"
    )
    uploader.set_defaults(func=run, action=cmd_uploader)
    check = commands.add_parser("fsck", help="check every object against its digest and the index")
    check.add_argument("--repair", action="store_true", help="remove what is corrupt")
    check.set_defaults(func=run, action=cmd_fsck)
    show = commands.add_parser(
        "config", help="print the effective settings and where each came from"
    )
    show.set_defaults(func=run, action=cmd_config)
    for sub in (serve, coordinator, frontend, uploader, check, show):
        sub.add_argument("--config", help=config_help)
    keygen = commands.add_parser(
        "keygen",
        help="make CURVE keys for a coordinator reached over TCP ([coordinator] curve_keys)",
    )
    keygen.add_argument("directory", help="where to write them (created mode 0700)")
    keygen.set_defaults(func=run, action=cmd_keygen)


def run(args: argparse.Namespace) -> int:
    """Run a server-side command; a situation that stops it is one line and its status."""
    from packrat.store import LayoutError, RootLocked

    try:
        return int(args.action(args))
    except RootLocked as e:
        return _cannot_run(e, ExitStatus.IN_USE)
    except LayoutError as e:
        return _cannot_run(e, ExitStatus.BROKEN_ROOT)
    except CannotListen as e:
        return _cannot_run(e, ExitStatus.CANNOT_LISTEN)


def _cannot_run(error: Exception, status: ExitStatus) -> int:
    """One line for the operator, no traceback: these are situations, not bugs."""
    print(f"packrat: {error}", file=sys.stderr)
    return status
