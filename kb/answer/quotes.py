"""Which scored sentences become quotes: the best one and those nearly as good, without repeats.
"""
from __future__ import annotations

from kb.answer.scoring import Candidate
from kb.text.tokenize import tokenize

#: At most this many quotes in one answer; further quotes must score within this margin of the best one.
MAX_QUOTES = 3


FOLLOW_MARGIN = 0.08


#: Two quotes this similar say the same thing (syndicated paraphrase); across scripts in one version, a translation.
SAME_MEANING, TRANSLATION = 0.95, 0.88


def choose_quotes(cands: list[Candidate]) -> list[Candidate]:
    """The best sentence and up to two more that score nearly as well, in reading order per document."""
    if not cands:
        return []
    best = cands[0]
    chosen = [best]
    for c in cands[1:]:
        if len(chosen) >= MAX_QUOTES or c.score < best.score - FOLLOW_MARGIN:
            break
        if any(_overlaps(c, k) or _same_text(c, k) or _same_meaning(c, k) for k in chosen):
            continue
        chosen.append(c)
    return chosen


def _cjk(text: str) -> bool:
    return sum(1 for ch in text if "\u3040" <= ch <= "\u9fff") > len(text) * 0.2


def _same_meaning(a: Candidate, b: Candidate) -> bool:
    """A paraphrase (very close vectors) or, in one bilingual version, a translation of a chosen quote."""
    if a.vector is None or b.vector is None:
        return False
    sim = float(a.vector @ b.vector)
    if sim >= SAME_MEANING:
        return True
    return a.passage.version_id == b.passage.version_id and _cjk(a.text) != _cjk(b.text) and sim >= TRANSLATION


def _overlaps(a: Candidate, b: Candidate) -> bool:
    return a.passage.version_id == b.passage.version_id and a.start < b.end and b.start < a.end


def _same_text(a: Candidate, b: Candidate) -> bool:
    ta, tb = set(tokenize(a.text, a.passage.language)), set(tokenize(b.text, b.passage.language))
    return bool(ta and tb) and len(ta & tb) / len(ta | tb) >= 0.6
