"""Sentence spans for any script: Latin/Cyrillic full stops, CJK 。！？, the Devanagari danda (। ॥).

Spans are ``(start, end)`` offsets into the original text, so every sentence is a verbatim slice.
"""
from __future__ import annotations

import re

# A boundary: terminal punctuation (optionally closed by quotes/brackets), then whitespace, or a CJK
# terminator / danda which needs no following space; or a line break.
_BOUNDARY = re.compile(
    r"(?:(?<=[.!?;:])[\"'”’»)\]]*\s+(?=[\"'“‘«(\[]?[A-Z0-9À-ÖØ-ÞĀ-ſА-Я\u0900-\u097F\u3000-\u9fff\uac00-\ud7af*#\-–•]))"
    r"|(?:(?<=[。！？；])[”’」』）)]*\s*)"
    r"|(?:(?<=[।॥])\s*)"
    r"|(?:\s*\n\s*)"
)
_ABBREV = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Inc|Ltd|Co|Corp|No|Nos|vs|v|St|Jr|Sr|U\.S|e\.g|i\.e|etc|Cal|Fed|Supp|Dkt|Ex|Sec|art|para|p|pp)\.|\b[A-Z]\.|§\s*\d+(?:\.\d+)*\.)$")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_DEVA = re.compile(r"[\u0900-\u097F]")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into trimmed sentence spans (offsets into ``text``)."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cur = start
    for m in _BOUNDARY.finditer(text, start, end):
        cut = m.start()
        if cut <= cur:
            continue
        piece = text[cur:cut]
        if "\n" not in m.group(0) and _ABBREV.search(piece[-12:]):
            continue  # "Mr. Musk", "U.S. court", "§ 3.3." are not sentence ends
        spans.append((cur, cut))
        cur = m.end()
    if cur < end:
        spans.append((cur, end))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def token_estimate(text: str) -> int:
    """Rough model-token count: ~1 per CJK character, ~1 per 3 Devanagari chars, ~1 per 4 other chars."""
    cjk = len(_CJK.findall(text))
    deva = len(_DEVA.findall(text))
    other = len(text) - cjk - deva
    return cjk + deva // 3 + other // 4 + 1
