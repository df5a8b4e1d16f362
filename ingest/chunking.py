"""Sentence-aware chunks with exact character offsets into the stored document text."""
from __future__ import annotations

import re
from dataclasses import dataclass

from kb.text.sentences import sentence_spans, token_estimate

TARGET_TOKENS = 160
MAX_TOKENS = 300


@dataclass(frozen=True)
class Chunk:
    """A verbatim slice ``text[start:end]`` of a document version."""

    seq: int
    start: int
    end: int
    text: str


def _split_long(text: str, s: int, e: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence at clause punctuation or spaces, else at fixed widths.

    Linear in the sentence's length: every character counts at least a quarter token, so a piece within
    ``max_tokens`` is at most ``reach`` characters long and each search looks only that far ahead.
    """
    pieces: list[tuple[int, int]] = []
    cur = s
    reach = 4 * (max_tokens + 2)
    while cur < e and (e - cur > reach or token_estimate(text[cur:e]) > max_tokens):
        lo, hi = cur, min(e, cur + reach)
        while hi - lo > 1:  # longest prefix within budget
            mid = (lo + hi) // 2
            if token_estimate(text[cur:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid
        window = text[cur:lo]
        cut = max((m.end() for m in re.finditer(r"[,;:，；、)]\s*|\s+", window)), default=0)
        cut = cur + cut if cut > (lo - cur) // 3 else lo
        pieces.append((cur, cut))
        cur = cut
        while cur < e and text[cur].isspace():
            cur += 1
    if cur < e:
        pieces.append((cur, e))
    return pieces


def chunk_text(text: str, target_tokens: int = TARGET_TOKENS, max_tokens: int = MAX_TOKENS) -> list[Chunk]:
    """Pack whole sentences into chunks of about ``target_tokens``; paragraph breaks are preferred cuts."""
    spans: list[tuple[int, int]] = []
    for s, e in sentence_spans(text):
        spans.extend(_split_long(text, s, e, max_tokens) if token_estimate(text[s:e]) > max_tokens else [(s, e)])
    chunks: list[Chunk] = []
    cur: list[tuple[int, int]] = []
    cur_tokens = 0
    for s, e in spans:
        t = token_estimate(text[s:e])
        if cur:
            para_break = "\n\n" in text[cur[-1][1]:s]
            if cur_tokens + t > max_tokens or (cur_tokens >= target_tokens) or (para_break and cur_tokens >= target_tokens * 0.6):
                chunks.append(_make(text, len(chunks), cur))
                cur, cur_tokens = [], 0
        cur.append((s, e))
        cur_tokens += t
    if cur:
        chunks.append(_make(text, len(chunks), cur))
    return chunks


def _make(text: str, seq: int, spans: list[tuple[int, int]]) -> Chunk:
    start, end = spans[0][0], spans[-1][1]
    return Chunk(seq, start, end, text[start:end])
