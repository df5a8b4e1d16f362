"""The README documents every CLI command, every sources.yaml key and every setting (as sqlite-utils does)."""
from __future__ import annotations

import re
from pathlib import Path

from ingest.sources import SOURCE_KEYS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_ingest_command_is_documented() -> None:
    from ingest.cli import COMMANDS

    for cmd in COMMANDS:
        assert f"python -m ingest {cmd.name}" in README, cmd.name


def test_every_kb_command_is_documented() -> None:
    from kb.cli import COMMANDS

    for cmd in COMMANDS:
        assert f"python -m kb {cmd.name}" in README, cmd.name


def test_every_sources_key_is_documented() -> None:
    for key in SOURCE_KEYS:
        assert re.search(rf"`{key}`", README), key


def test_every_setting_is_documented() -> None:
    code = (ROOT / "kb" / "settings.py").read_text(encoding="utf-8")
    for var in set(re.findall(r'"(KB_[A-Z_]+)"', code)):
        assert f"`{var}`" in README, var


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
