"""Quote location and verification against the stored text of a document version.

A citation is valid when ``stored_text[start:end] == quote`` and the span does not cut a character
apart (a combining vowel sign, a virama, an accent, a surrogate-free grapheme). ``locate_quote``
finds a quote again when its offsets are lost or it was produced from a differently normalised copy
(NFC vs NFD, collapsed whitespace, curly vs straight quotes): the span it returns is always a slice of
the stored text, so what is shown is verbatim. ``verify_citations`` is the last gate before an answer
leaves ``kb``: it repairs offsets where the exact quote is found elsewhere and drops the rest.
"""
from __future__ import annotations

import logging
import unicodedata
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

from kb.models import Citation

if TYPE_CHECKING:
    from kb.answer.engine import Engine
    from kb.answer.scoring import Candidate

log = logging.getLogger(__name__)

_JOINERS = {"\u200c", "\u200d"}  # ZWNJ / ZWJ belong to the cluster they sit in
_PUNCT_FOLD = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
               "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
               "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " "}


def is_cluster_start(text: str, i: int) -> bool:
    """True when offset ``i`` does not fall inside a grapheme (before a combining mark or joiner)."""
    if i <= 0 or i >= len(text):
        return True
    ch = text[i]
    if unicodedata.combining(ch) or ch in _JOINERS or unicodedata.category(ch) in ("Mn", "Mc", "Me"):
        return False
    return text[i - 1] not in _JOINERS


def verify_quote(text: str, quote: str, start: int, end: int) -> bool:
    """``text[start:end] == quote``, non-empty, and both ends on character-cluster boundaries."""
    return (bool(quote) and 0 <= start < end <= len(text) and text[start:end] == quote
            and is_cluster_start(text, start) and is_cluster_start(text, end))


def _normalise_with_map(text: str) -> tuple[str, list[int]]:
    """NFC, folded punctuation and collapsed whitespace, with each output char's source offset.

    ``offsets`` has one entry per output character plus a final one (``len(text)``), so an output
    span ``[i, j)`` maps back to ``[offsets[i], offsets[j])`` in the original.
    """
    out: list[str] = []
    offsets: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and not is_cluster_start(text, j):
            j += 1
        cluster = text[i:j]
        if cluster.isspace():
            k = j
            while k < n and text[k].isspace():
                k += 1
            if not out or out[-1] != " ":
                out.append(" ")
                offsets.append(i)
            i = k
            continue
        norm = unicodedata.normalize("NFC", "".join(_PUNCT_FOLD.get(c, c) for c in cluster))
        for c in norm:
            out.append(c)
            offsets.append(i)
        i = j
    offsets.append(n)
    return "".join(out), offsets


def _normalise(text: str) -> str:
    return _normalise_with_map(text)[0].strip()


def locate_quote(text: str, quote: str, hint: int = 0) -> tuple[int, int] | None:
    """Where ``quote`` sits in ``text`` (the occurrence nearest ``hint``), exactly or after normalising.

    Returns ``(start, end)`` with ``text[start:end]`` verbatim and on cluster boundaries, or None.
    """
    if not quote or not text:
        return None
    spans = _exact_occurrences(text, quote)
    if spans:
        return min(spans, key=lambda s: abs(s[0] - hint))
    needle = _normalise(quote)
    if not needle:
        return None
    hay, offsets = _normalise_with_map(text)
    found: list[tuple[int, int]] = []
    pos = hay.find(needle)
    while pos >= 0:
        s, e = offsets[pos], offsets[pos + len(needle)]
        while e > s and text[e - 1].isspace():
            e -= 1
        if verify_quote(text, text[s:e], s, e):
            found.append((s, e))
        pos = hay.find(needle, pos + 1)
    return min(found, key=lambda s: abs(s[0] - hint)) if found else None


def _exact_occurrences(text: str, quote: str) -> list[tuple[int, int]]:
    out = []
    pos = text.find(quote)
    while pos >= 0:
        if verify_quote(text, quote, pos, pos + len(quote)):
            out.append((pos, pos + len(quote)))
        pos = text.find(quote, pos + 1)
    return out


def verify_citations(citations: Sequence[Citation], version_text: Callable[[str], str],
                     repair: bool = True) -> tuple[list[Citation], list[tuple[Citation, str]]]:
    """Check every citation against the stored text of its version.

    Returns ``(kept, dropped)`` where ``dropped`` pairs each failed citation with the reason. With
    ``repair``, a quote found verbatim at other offsets of the same version is kept with corrected
    offsets (never with altered text).
    """
    texts: dict[str, str | None] = {}
    kept: list[Citation] = []
    dropped: list[tuple[Citation, str]] = []
    for c in citations:
        if c.version_id not in texts:
            try:
                texts[c.version_id] = version_text(c.version_id)
            except Exception as exc:  # noqa: BLE001 - a missing or altered version drops its quotes
                log.warning("cannot read version %s: %s", c.version_id, exc)
                texts[c.version_id] = None
        text = texts[c.version_id]
        if text is None:
            dropped.append((c, "stored text unavailable or altered"))
        elif verify_quote(text, c.quote, c.start, c.end):
            kept.append(c)
        elif repair and (spans := _exact_occurrences(text, c.quote)):
            s, e = min(spans, key=lambda sp: abs(sp[0] - c.start))
            kept.append(replace(c, start=s, end=e))
        else:
            dropped.append((c, "quote is not a verbatim slice of the stored text"))
    return kept, dropped


def make_citations(chosen: list[Candidate], engine: Engine) -> list[Citation]:
    """Citations for the chosen quotes; syndicated copies are named as "also reported by"."""
    out: list[Citation] = []
    for i, c in enumerate(chosen, start=1):
        p = c.passage
        also = engine.retriever.duplicates_of(p.doc_id)
        also += [{"doc_id": o.doc_id, "title": o.title, "publisher": o.publisher, "url": o.url}
                 for o in c.also if o.doc_id != p.doc_id]
        uniq = list({a["doc_id"]: a for a in also}.values())
        out.append(Citation(n=i, doc_id=p.doc_id, version_id=p.version_id, chunk_id=p.chunk_id, title=p.title,
                            publisher=p.publisher, url=p.url, doctype=p.doctype, language=p.language,
                            published=p.published, retrieved=p.retrieved, quote=c.text, start=c.start, end=c.end,
                            also_reported_by=uniq))
    return out
