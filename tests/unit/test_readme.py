"""The README documents every CLI command, every sources.yaml key and every setting (as sqlite-utils does)."""
from __future__ import annotations

import re
from pathlib import Path

from ingest.sources import SOURCE_KEYS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subcommands(module: str) -> set[str]:
    import argparse
    import importlib

    cli = importlib.import_module(f"{module}.cli")
    if hasattr(cli, "_load_extensions"):
        cli._load_extensions()
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(subs.choices)


def test_every_ingest_command_is_documented() -> None:
    for name in _subcommands("ingest"):
        assert f"python -m ingest {name}" in README, name


def test_every_kb_command_is_documented() -> None:
    for name in _subcommands("kb"):
        assert f"python -m kb {name}" in README, name


def test_every_sources_key_is_documented() -> None:
    for key in SOURCE_KEYS:
        assert re.search(rf"`{key}`", README), key


def test_every_setting_is_documented() -> None:
    code = (ROOT / "kb" / "settings.py").read_text(encoding="utf-8")
    for var in set(re.findall(r'"(KB_[A-Z_]+)"', code)):
        assert f"`{var}`" in README, var


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
