"""Quotable spans of a stored text: sentences completed across chunk bounds, headings kept with their clause,
hard-wrapped lines re-joined, markup trimmed. Every span is a verbatim ``(start, end)`` slice.
"""
from __future__ import annotations

import re

from kb.text.language import script_profile
from kb.text.sentences import sentence_spans

#: Longest sentence quoted (characters); longer ones are cut at clause punctuation. A quote widened to its
#: neighbour sentence may reach ``kb.answer.scoring.WIDE_QUOTE_CHARS``.
MAX_QUOTE_CHARS = 360


MIN_QUOTE_LETTERS = 12


# -- sentences ----------------------------------------------------------------------------------
_CLAUSE = re.compile(r"[;；:：,，、]\s*|\s[-–—]\s")


_EDGE_JUNK = " \t\r\n*#>|=_-•·"


_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


def candidate_spans(text: str, start: int, end: int, window: int = 1500,
                    max_chars: int = MAX_QUOTE_CHARS) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` that overlap ``[start, end)``, completed beyond it and trimmed of markup.

    Link lists and navigation lines are never candidates. A question in the text ("...whether that
    meant yes?"), or a sentence that reports one ("He was asked if ..."), also yields a window with the
    sentence after it (its reply: "Partly."), since the reply alone is too short to match and the
    question alone does not answer.
    """
    ws, we = max(0, start - window), min(len(text), end + window)
    out: list[tuple[int, int]] = []
    spans = attach_headings(text, merge_wrapped_lines(text, sentence_spans(text, ws, we)))
    for i, (s, e) in enumerate(spans):
        if e <= start or s >= end:
            continue
        if (i == 0 and ws > 0) or (i == len(spans) - 1 and we < len(text)):
            continue  # cut by the window, not by punctuation
        if _is_heading(text[s:e]) or is_link_line(text[s:e]):
            continue  # a heading is quoted with the sentence it introduces; links are not evidence
        for ps, pe in _split_long_span(text, s, e, max_chars):
            ps, pe = _trim(text, ps, pe)
            if pe > ps and len(_LETTER.findall(text[ps:pe])) >= MIN_QUOTE_LETTERS:
                out.append((ps, pe))
        if i + 1 < len(spans) and (text[s:e].rstrip(" *_\"'”’)").endswith(("?", "？"))
                                   or _REPORTED_QUESTION.search(text[s:e])):
            ns, ne = spans[i + 1]
            if ne - s <= max_chars and not is_link_line(text[ns:ne]):
                ps, pe = _trim(text, s, ne)
                if pe > ps:
                    out.append((ps, pe))
    return out


#: A sentence that reports a question put to someone ("was asked if", "被问及", "gefragt, ob").
_REPORTED_QUESTION = re.compile(
    r"\basked\s+(if|whether|about|how|why|what)\b|\ble\s+preguntaron\b|\bpreguntad[oa]\s+si\b|"
    r"\bgefragt,?\s+(ob|wie|warum|was)\b|\bdemand[ée]\s+s[i']|\bperguntad[oa]\s+se\b|спросил|被问|问及|問われ|"
    r"पूछा|سئل|سُئل", re.IGNORECASE)


_MD_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)|https?://\S+|www\.\S+")


def is_link_line(piece: str) -> bool:
    """A line that is mostly links or URLs (a link list, navigation, a share bar): never evidence."""
    links = _MD_LINK.findall(piece)
    if not links:
        return False
    rest = _MD_LINK.sub(" ", piece)
    return len(links) >= 2 or len(_LETTER.findall(rest)) < 0.5 * len(_LETTER.findall(piece))


_TERMINAL = tuple(".!?。！？।॥:;")


#: A definition line: a quoted term, then "means" / "refers to" ("“Documentation” means the manuals ...").
_DEFINITION = re.compile(r"^[\W\d_]{0,12}(?:\(?[a-zA-Z0-9]{1,3}[.)]\s*)?[\"“'‘]\**(?P<term>[^\"”’*]{1,60})\**[\"”'’],?\s+(shall\s+)?(means?|refers?\s+to|"
                         r"has\s+the\s+meaning|is\s+defined\s+as|includes?)\b", re.IGNORECASE)


def defined_term(sentence: str) -> str | None:
    """The term a definition line defines ("Documentation" in '"Documentation" means ...'), else None."""
    m = _DEFINITION.match(sentence)
    return m.group("term").strip() if m else None


def merge_wrapped_lines(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Re-join sentences that a hard line wrap split: a single newline, no end punctuation before it, and
    either a lower-case start after it or a long line before it (a wrapped line, not a heading or list item)."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out:
            ps, pe = out[-1]
            gap = text[pe:s]
            nxt = text[s:s + 1]
            if ("\n" in gap and "\n\n" not in gap.replace(" ", "") and not text[ps:pe].rstrip().endswith(_TERMINAL)
                    and (nxt.islower() or nxt.isdigit() or nxt in "(\"'" or (nxt.isupper() and _wrapped_line_before(text, s)))):
                out[-1] = (ps, e)
                continue
        out.append((s, e))
    return out


#: A line this long that ends without punctuation was wrapped by the writer's editor.
WRAPPED_LINE = 60


def _wrapped_line_before(text: str, s: int) -> bool:
    line_start = text.rfind("\n", 0, max(0, text.rfind("\n", 0, s))) + 1
    line = text[line_start:text.rfind("\n", 0, s)]
    return len(line.strip()) >= WRAPPED_LINE and not _is_heading(line)


_SECTION = re.compile(r"^[\W_]*(\(?[A-Za-z]?\d+(\.\d+)*[.)]?|[A-Z]\.\d+(\.\d+)*\.?|[IVX]+\.|\([a-z]\))(\s|$)")


_CONNECTORS = {"of", "and", "to", "the", "for", "in", "on", "a", "an", "or", "with", "by"}


def _is_heading(piece: str) -> bool:
    """A section number and/or a short Title Case title ("3.3.", "Restrictions.", "D.4. Use Restrictions.")."""
    piece = piece.strip(" *#_")
    if len(piece) > 40:
        return False
    if _SECTION.match(piece):
        return True
    words = piece.rstrip(".:").split()
    return 0 < len(words) <= 4 and piece.endswith((".", ":")) and all(
        w[:1].isupper() or w in _CONNECTORS for w in words)


def attach_headings(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Prefix a sentence with the section number and title just before it ("3.3. Restrictions. Customer ...").

    A question about *which section* says something needs the heading in the quote, and the chunker
    or the sentence splitter may have cut it off. The span stays a verbatim slice.
    """
    out: list[tuple[int, int]] = []
    for i, (s, e) in enumerate(spans):
        start = s
        j = i - 1
        while j >= 0 and i - j <= 2 and _is_heading(text[spans[j][0]:spans[j][1]]) \
                and "\n\n" not in text[spans[j][1]:start].replace(" ", "")[:4] and not _is_heading(text[s:e]):
            start = spans[j][0]
            j -= 1
        out.append((start, e))
    return out


def quality_penalty(sentence: str) -> float:
    """How much a sentence looks like a heading, a link or a fragment rather than a statement."""
    words = len(sentence.split())
    cjk = sum(1 for ch in sentence if "\u3040" <= ch <= "\u9fff")
    penalty = 0.0
    if words < 6 and cjk < 12:
        penalty += 0.06
    if not sentence.rstrip("*_)]\"'”’」』 ").endswith(_TERMINAL) and "\u3002" not in sentence[-3:]:
        penalty += 0.03
    if sentence.startswith("[") or "](" in sentence[:80] or sentence.isupper():
        penalty += 0.04
    return penalty


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in _EDGE_JUNK:
        s += 1
    while e > s and text[e - 1] in _EDGE_JUNK:
        e -= 1
    return s, e


def _split_long_span(text: str, s: int, e: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut a sentence longer than ``max_chars`` after clause punctuation (or spaces) into pieces."""
    pieces = []
    while e - s > max_chars:
        window = text[s:s + max_chars]
        cuts = [m.end() for m in _CLAUSE.finditer(window) if m.end() > max_chars // 3]
        if not cuts:
            cuts = [m.end() for m in re.finditer(r"\s+", window) if m.end() > max_chars // 3]
        cut = s + (cuts[-1] if cuts else max_chars)
        pieces.append((s, cut))
        s = cut
    pieces.append((s, e))
    return pieces


def main_script(text: str) -> str:
    """The script most of a text's words are written in (Han and kana count together)."""
    profile = script_profile(text)
    if not profile:
        return ""
    merged: dict[str, float] = {}
    for k, v in profile.items():
        merged["cjk" if k in ("han", "kana") else k] = merged.get("cjk" if k in ("han", "kana") else k, 0.0) + v
    return max(merged, key=lambda k: merged[k])
