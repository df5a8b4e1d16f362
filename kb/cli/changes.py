"""``python -m kb changes [--since DATE] [--source NAME] [--format md|json|atom] [-o FILE] [--limit N]``.

What changed in the index: new documents and new versions, newest first, each new version with its
paragraph diff (``kb.changes``). Listed in ``kb.cli``. Exit codes: 0 shown or written (also when
nothing changed); 2 bad invocation (a --since that is no date, an unknown --source, an unsafe -o
target) or no index.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kb.changes import FORMATS, feed_path, list_changes, render, render_json
from kb.cli.framework import EXIT_OK, Command, print_json
from kb.errors import UsageError
from kb.export import check_export_target, write_atomically
from kb.registry import open_registry
from kb.settings import Settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="DATE",
                   help="only changes the index picked up on or after DATE (YYYY-MM-DD or ISO-8601 date-time)")
    p.add_argument("--source", metavar="NAME", help="only documents of this source (a name from sources.yaml)")
    p.add_argument("--format", "-f", choices=FORMATS, default="md", help="md (default), json or atom")
    p.add_argument("-o", "--output", metavar="FILE", default="-", help="write to FILE atomically ('-' = stdout)")
    p.add_argument("--limit", type=int, metavar="N", help="at most the N newest changes")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    to_file = args.output != "-"
    if to_file:
        check_export_target(args.output)   # before any work
    registry = open_registry(settings, readonly=True)
    try:
        changes = list_changes(registry, since=args.since, source=args.source, limit=args.limit)
    finally:
        registry.close()
    self_url = (Path(args.output) if to_file else feed_path(settings.data_dir)).resolve().as_uri()
    if to_file:
        path = write_atomically(args.output, render(changes, args.format, self_url))
        print(f"kb: wrote {path} ({args.format}; {len(changes.changes)} of {changes.matched} change(s))",
              file=sys.stderr)
    elif args.format == "json":
        print_json(render_json(changes))
    else:
        sys.stdout.buffer.write(render(changes, args.format, self_url))
        sys.stdout.buffer.flush()
    return EXIT_OK


CHANGES = Command("changes", "what changed: new documents and new versions with their paragraph diffs "
                             "(md, json or an Atom feed)", add_arguments, run)
