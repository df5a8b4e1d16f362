"""``python -m kb``: ask, eval, export, diff and changes, listed explicitly (see ``kb.cli.framework``)."""
from __future__ import annotations

from typing import Sequence

from kb.cli.ask_eval import ASK, EVAL
from kb.cli.changes import CHANGES
from kb.cli.export_answers import EXPORT
from kb.cli.framework import Command, run_cli
from kb.cli.version_diff import DIFF

COMMANDS: tuple[Command, ...] = (ASK, EVAL, DIFF, CHANGES, EXPORT)
DESCRIPTION = "Ask the knowledge base; evaluate it."


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m kb`` with these arguments (``sys.argv`` by default); returns the exit code."""
    return run_cli("python -m kb", DESCRIPTION, COMMANDS, argv)
