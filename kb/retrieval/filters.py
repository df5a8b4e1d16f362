"""What a question may be answered from: language, doctype, publisher, source, date range, as-of.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Filters:
    """What a question may be answered from. Empty fields do not filter."""

    language: str | None = None
    doctype: str | None = None
    publisher: str | None = None
    source: str | None = None
    since: str | None = None
    until: str | None = None
    as_of: str | None = None

    def active(self) -> bool:
        return any(getattr(self, f) for f in ("language", "doctype", "publisher", "source", "since", "until"))

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


def split_values(value: str) -> set[str]:
    """The comma-separated values of a filter ("en, hi" -> {"en", "hi"})."""
    return {v.strip() for v in str(value).split(",") if v.strip()}
