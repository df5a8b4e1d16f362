"""The one command-line framework of ``python -m kb`` and ``python -m ingest``.

A CLI is a program name, a description and an explicit list of ``Command`` objects; there is no
module scanning. Every error class maps to an exit code in one table (``EXIT_CODES``, documented in
the README): 0 success; 1 the work finished or stopped but something failed (listed); 2 bad
invocation, configuration, or nothing to work on. Settings are read once, after the arguments
parsed (so ``--help`` needs no valid settings), and passed to the command.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from kb.errors import ConfigError, EmbedderMismatch, EmbedderUnavailable, KBError, NoIndex, NotFound, UsageError
from kb.settings import Settings, load_settings

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130

#: Error class -> exit code, most specific first; any other ``KBError`` exits 1.
EXIT_CODES: tuple[tuple[type[KBError], int], ...] = (
    (UsageError, EXIT_USAGE),
    (ConfigError, EXIT_USAGE),
    (NoIndex, EXIT_USAGE),
    (NotFound, EXIT_USAGE),
    (EmbedderMismatch, EXIT_USAGE),
    (EmbedderUnavailable, EXIT_USAGE),
    (KBError, EXIT_PARTIAL),
)


def exit_code_for(exc: KBError) -> int:
    """The exit code of an error (``EXIT_CODES``)."""
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, its arguments and what it runs (returns the exit code)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Settings], int]


def print_json(obj: Any, indent: int | None = 2) -> None:
    """The one JSON printer: UTF-8 text as is, one object, newline-terminated, on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")
    sys.stdout.flush()


def build_parser(prog: str, description: str, commands: Sequence[Command]) -> argparse.ArgumentParser:
    """An argparse parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in commands:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def run_cli(prog: str, description: str, commands: Sequence[Command], argv: Sequence[str] | None = None,
            settings_loader: Callable[[], Settings] = load_settings) -> int:
    """Parse, read the settings, run the command; errors become one line on stderr and an exit code."""
    name = prog.split()[-1]
    parser = build_parser(prog, description, commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    cmd: Command | None = getattr(args, "_command", None)
    if cmd is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(cmd.run(args, settings_loader()))
    except KBError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; run the same command again to finish the job", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
