"""``python -m kb diff URL [--from DATE] [--to DATE] [--json]``: what changed between two versions.

Listed in ``kb.cli``. Exit codes: 0 shown (also when the
document has a single version); 2 bad invocation, unknown document or no index.
"""
from __future__ import annotations

import argparse
import textwrap

from kb.cli.framework import EXIT_OK, Command, print_json
from kb.diff import VersionDiff, VersionInfo, compare_versions, mark_words
from kb.errors import UsageError
from kb.registry import open_registry
from kb.settings import Settings
from kb.times import FOREVER, iso_of_epoch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("document", metavar="URL", help="the document's URL (as cited), its file path or its doc_id")
    p.add_argument("--from", dest="from_", metavar="DATE",
                   help="the version the index held at DATE (date, ISO-8601 date-time or version id); "
                        "default: the version before --to")
    p.add_argument("--to", metavar="DATE", help="the version held at DATE (or a version id); default: the current one")
    p.add_argument("--json", action="store_true", help="print the changes as one JSON object")
    p.add_argument("--width", type=int, default=100, metavar="N", help="wrap paragraphs at N columns (default 100)")


def _when(v: VersionInfo) -> str:
    until = "current" if v.valid_to == FOREVER else \
        "until " + iso_of_epoch(v.valid_to)
    eff = f"; {v.effective_date}" if v.effective_date else ""
    return f"version {v.version_id[:12]} retrieved {v.retrieved} ({until}{eff})"


def _wrap(prefix: str, text: str, width: int) -> str:
    body = " ".join(text.split())
    return textwrap.fill(body, width=width, initial_indent=prefix, subsequent_indent=" " * len(prefix)) or prefix


def format_diff(d: VersionDiff, width: int = 100) -> str:
    """The changes as text: ``+`` added, ``-`` removed, ``~`` changed with [-old-]{+new+} words."""
    lines = [f"{d.title or d.url}", f"{d.url}"]
    if d.old is None or d.new is None:
        return "\n".join(lines + ["no indexed version of this document"])
    if d.old.version_id == d.new.version_id:
        return "\n".join(lines + [f"{_when(d.new)}: {d.note}"])
    c = d.counts()
    lines += [f"from {_when(d.old)}", f"  to {_when(d.new)}",
              f"{c['added']} paragraph(s) added, {c['removed']} removed, {c['changed']} changed, "
              f"{d.unchanged} unchanged", ""]
    for ch in d.changes:
        if ch.op == "added":
            lines.append(_wrap("+ ", ch.new, width))
        elif ch.op == "removed":
            lines.append(_wrap("- ", ch.old, width))
        else:
            marked = mark_words(ch.words)
            lines.append(_wrap("~ ", marked, width))
        lines.append("")
    return "\n".join(lines).rstrip()


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.width < 20:
        raise UsageError("--width must be 20 or more")
    registry = open_registry(settings, readonly=True)
    try:
        d = compare_versions(registry, args.document, args.from_, args.to)
    finally:
        registry.close()
    if args.json:
        print_json(d.to_json())
    else:
        print(format_diff(d, args.width))
    return EXIT_OK


DIFF = Command("diff", "what changed between two versions of a document, paragraph by paragraph", add_arguments, run)
