"""The client side of the ``packrat`` command: ``put``, ``get``, ``exists``, ``ls``, ``rm``,
``stat``.

Each talks to a server through ``packrat.client.Client``; the server is
``--url`` (else ``$PACKRAT_URL``, else http://127.0.0.1:5050) and the bearer
token ``--token`` (else ``$PACKRAT_TOKEN``).  A progress bar is drawn on
stderr for transfers of 1 MiB or more when stderr is a terminal.  The exit
status (``core.exits.ExitStatus``, listed in docs/client.md too) tells scripts what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from packrat.core.exits import ExitStatus

if TYPE_CHECKING:  # the client (and requests) load only when a client command runs
    from packrat.client import Client, Progress

DEFAULT_URL = "http://127.0.0.1:5050"
PROGRESS_MIN = 1 << 20  # bytes: smaller transfers get no progress bar


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the client subcommands on the ``packrat`` parser."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url", help=f"the server (default: $PACKRAT_URL, else {DEFAULT_URL})", default=None
    )
    server.add_argument(
        "--token",
        default=None,
        help="bearer token when the server's [auth] is on (default: $PACKRAT_TOKEN; "
        "prefer the variable: arguments are visible to other users in ps)",
    )
    put = commands.add_parser(
        "put", parents=[server], help="upload FILE under KEY ('-' reads standard input)"
    )
    put.add_argument("file", metavar="FILE")
    put.add_argument("key", metavar="KEY", nargs="?", help="default: FILE's name")
    put.set_defaults(func=run, action=cmd_put)
    get = commands.add_parser("get", parents=[server], help="download the object under KEY")
    get.add_argument("key", metavar="KEY")
    get.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default, or '-': standard output)"
    )
    get.set_defaults(func=run, action=cmd_get)
    exists = commands.add_parser(
        "exists", parents=[server], help="exit 0 if KEY is stored, 1 if not"
    )
    exists.add_argument("key", metavar="KEY")
    exists.set_defaults(func=run, action=cmd_exists)
    ls = commands.add_parser(
        "ls", parents=[server], help="list the keys under PREFIX (needs the list right)"
    )
    ls.add_argument("prefix", metavar="PREFIX", nargs="?", default="", help="default: every key")
    ls.add_argument(
        "-l", "--long", action="store_true", help="each key's size and time stored, too"
    )
    ls.set_defaults(func=run, action=cmd_ls)
    rm = commands.add_parser(
        "rm", parents=[server], help="remove the object under KEY, or every object under a prefix"
    )
    rm.add_argument("key", metavar="KEY", nargs="?")
    rm.add_argument(
        "--prefix",
        metavar="PREFIX",
        help="purge every key starting with PREFIX, in batches; interrupted, run it again "
        "(needs the write and list rights)",
    )
    rm.set_defaults(func=run, action=cmd_rm)
    stat = commands.add_parser("stat", parents=[server], help="the server's figures, as JSON")
    stat.set_defaults(func=run, action=cmd_stat)


def cmd_put(args: argparse.Namespace) -> int:
    if args.file == "-" and not args.key:
        return _fail(ExitStatus.USAGE, "put: a KEY is needed when FILE is '-' (standard input)")
    key = args.key or os.path.basename(args.file)
    source = sys.stdin.buffer if args.file == "-" else args.file
    size = None if args.file == "-" else _size_of(args.file)
    with _client(args) as client, _progress(size) as progress:
        stored = client.put(key, source, progress=progress)
    answer = {"key": stored.key, "size": stored.size, "sha256": stored.sha256}
    print(json.dumps({**answer, "evicted": stored.evicted}))
    return ExitStatus.OK


def cmd_get(args: argparse.Namespace) -> int:
    to_stdout = args.output in (None, "-")
    if to_stdout and args.output is None and sys.stdout.isatty():
        return _fail(ExitStatus.USAGE, "get: standard output is a terminal; use -o FILE")
    with _client(args) as client, _progress(None) as progress:
        if to_stdout:
            client.get(args.key, sys.stdout.buffer, progress=progress)
            sys.stdout.flush()
        else:
            client.get(args.key, args.output, progress=progress)
    return ExitStatus.OK


def cmd_exists(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return ExitStatus.OK if client.exists(args.key) else ExitStatus.NOT_FOUND


def cmd_ls(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for entry in client.list_keys(args.prefix):
            if args.long:
                stored = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["stored_at"]))
                print(f"{entry['size']:>12}  {stored}  {entry['key']}")
            else:
                print(entry["key"])
    return ExitStatus.OK


def cmd_rm(args: argparse.Namespace) -> int:
    if (args.key is None) == (args.prefix is None):
        return _fail(ExitStatus.USAGE, "rm: give a KEY or --prefix PREFIX (one of them)")
    if args.prefix is None:
        with _client(args) as client:
            client.delete(args.key)
        return ExitStatus.OK
    if not args.prefix:
        return _fail(
            ExitStatus.USAGE,
            "rm: --prefix needs a PREFIX (an empty one, such as an unset variable, would purge "
            "every key; DELETE /api/keys?prefix= does that on purpose)",
        )
    deleted = 0
    with _client(args) as client:
        for batch in client.purge(args.prefix):
            deleted += len(batch)
            if sys.stderr.isatty():
                print(f"packrat: {deleted} removed under {args.prefix!r}", file=sys.stderr)
    print(json.dumps({"prefix": args.prefix, "deleted": deleted}))
    return ExitStatus.OK


def cmd_stat(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(client.stat(), indent=2))
    return ExitStatus.OK


class UsageError(Exception):
    """An argument (or ``$PACKRAT_URL``) the command cannot use: exit 2."""


def run(args: argparse.Namespace) -> int:
    """Run a client command, turning every failure into one line and its exit status."""
    from packrat import client

    try:
        return int(args.action(args))
    except UsageError as e:
        return _fail(ExitStatus.USAGE, str(e))
    except client.NotFound as e:
        return _fail(ExitStatus.NOT_FOUND, str(e))
    except client.IntegrityError as e:  # ChecksumMismatch too
        return _fail(ExitStatus.INTEGRITY, str(e))
    except client.APIError as e:
        if e.status in (401, 403):
            return _fail(ExitStatus.DENIED, str(e))
        if e.status == 503:
            return _fail(ExitStatus.UNAVAILABLE, str(e))
        return _fail(ExitStatus.REFUSED, str(e))
    except client.TransferError as e:
        return _fail(ExitStatus.UNAVAILABLE, str(e))
    except OSError as e:
        return _fail(ExitStatus.LOCAL, f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))
    except KeyboardInterrupt:
        return _fail(ExitStatus.INTERRUPTED, "interrupted")


def _fail(status: ExitStatus, message: str) -> int:
    print(f"packrat: {message}", file=sys.stderr)
    return status


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Client]:
    from packrat.client import Client

    url = args.url or os.environ.get("PACKRAT_URL") or DEFAULT_URL
    token = args.token or os.environ.get("PACKRAT_TOKEN") or None
    try:
        client = Client(url, token)
    except ValueError as e:
        if "token" in str(e):
            given = "--token" if args.token else "$PACKRAT_TOKEN"
        else:
            given = "--url" if args.url else "$PACKRAT_URL"
        raise UsageError(f"{given}: {e}") from None
    with client:
        yield client


def _size_of(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None  # put reports the problem when it opens the file


@contextlib.contextmanager
def _progress(size: int | None) -> Iterator[Progress | None]:
    """A progress callback drawing a tqdm bar on a terminal's stderr, else None.

    The bar starts with the first report, which carries the total (a
    download's size is known only then); small transfers get none.
    """
    if not sys.stderr.isatty() or (size is not None and size < PROGRESS_MIN):
        yield None
        return
    from tqdm import tqdm

    bar: Any = None

    def report(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            if total is not None and total < PROGRESS_MIN:
                return
            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, leave=False)
        bar.update(done - bar.n)  # may go back: a retried upload starts again

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()
