"""Claims out of a streamed, possibly malformed or truncated reply, each as soon as its object closes.

A tolerant scanner rather than ``json.loads`` on the whole reply: it tracks strings and braces over
the growing text and yields every complete ``{"text": ..., "quotes": [...]}`` object it sees, at any
depth, so a reply wrapped in prose or Markdown fences, one object per line, or cut off mid-way still
gives the claims that were complete. Quote items may use ``source``/``passage`` and ``quote``/``text``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class RawQuote:
    source: int | None
    quote: str


@dataclass
class RawClaim:
    """A claim as the model wrote it (nothing in it is trusted yet)."""

    text: str
    quotes: list[RawQuote] = field(default_factory=list)


def _as_claim(obj: Any) -> RawClaim | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return None
    quotes = obj.get("quotes", obj.get("citations", obj.get("evidence")))
    if not isinstance(quotes, list):
        return None
    out: list[RawQuote] = []
    for q in quotes:
        if isinstance(q, str):
            out.append(RawQuote(None, q))
        elif isinstance(q, dict):
            text = q.get("quote", q.get("text"))
            src = q.get("source", q.get("passage", q.get("n")))
            if isinstance(text, str):
                out.append(RawQuote(src if isinstance(src, int) and not isinstance(src, bool) else None, text))
    return RawClaim(obj["text"].strip(), out)


class ClaimScanner:
    """Feed text deltas; get each complete claim object once."""

    def __init__(self) -> None:
        self.buffer = ""
        self._pos = 0
        self._in_string = False
        self._escaped = False
        self._starts: list[int] = []

    def feed(self, delta: str) -> Iterator[RawClaim]:
        self.buffer += delta
        text = self.buffer
        while self._pos < len(text):
            ch = text[self._pos]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch == "{":
                self._starts.append(self._pos)
            elif ch == "}" and self._starts:
                start = self._starts.pop()
                try:
                    claim = _as_claim(json.loads(text[start:self._pos + 1]))
                except ValueError:
                    claim = None
                if claim is not None:
                    yield claim
            self._pos += 1

    @property
    def complete(self) -> bool:
        """Whether the reply so far is balanced (not cut off inside an object or a string)."""
        return not self._starts and not self._in_string


def parse_claims(text: str) -> list[RawClaim]:
    """Every complete claim in a whole reply."""
    return list(ClaimScanner().feed(text))
