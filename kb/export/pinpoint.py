"""Pinpoints: where a quote sits in its document version (section, paragraph, page).

All positions are computed from the stored version text that citation offsets point into:

- paragraph: 1 + the number of paragraph breaks (a blank line, ``"\\n\\n"``) before ``start``;
- page: from the version meta ``pages`` (the start offset of every page, present for PDFs);
- section: the nearest preceding clause heading at a line start (``3.3.``, ``4\\.``, ``§ 4``,
  ``Section 5``, ``Article 2``, ``A.1.``, court outlines ``III.`` / ``A.``), refined by the enumerated
  sub-clause markers (``(e)``, ``(ii)``) between the heading and the quote, e.g. ``§3.3(e)``.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Sequence

_LINE_BREAK = re.compile(r"\n\s*")
_PARA_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# What may precede a heading label on its line: indentation, Markdown bullets, '#' and '**'.
_LEAD = r"^[ \t]*(?:[*+\-][ \t]+)?(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*"
_HEADING_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("para", re.compile(_LEAD + r"§{1,2}[ \t]*(\d+(?:\.\d+)*[a-z]?)", re.M)),
    ("named", re.compile(_LEAD + r"(Section|SECTION|Sec\.|Article|ARTICLE|Art\.|Clause|CLAUSE)[ \t]+"
                         r"(\d+(?:\.\d+)*[a-z]?|[IVXLC]+)\b", re.M)),
    ("lettered", re.compile(_LEAD + r"([A-Z]\.\d+(?:\.\d+)*)\\?\.?(?=[ \t*])", re.M)),
    ("dotted", re.compile(_LEAD + r"(\d+(?:\.\d+)+)\\?\.?(?=[ \t*])", re.M)),
    ("escaped", re.compile(_LEAD + r"(\d+)\\\.(?=[ \t*])", re.M)),
    ("number", re.compile(_LEAD + r"(\d+)\.[ \t](?=\S)", re.M)),
    ("list", re.compile(r"^([ \t]*)(?:[*+\-][ \t]+)?(\d+)\.[ \t]{2,}(?=\S)", re.M)),
    ("roman", re.compile(r"^[ \t]*(?:#{1,6}[ \t]*)?((?:X{0,3})(?:IX|IV|V?I{0,3}))\.[ \t]+(?=[A-Z])", re.M)),
    ("outline", re.compile(r"^[ \t]*(?:#{1,6}[ \t]*)?([A-H])\.[ \t]+(?=[A-Z])", re.M)),
]
_ENUM = re.compile(r"(?:^|(?<=[\s:;,—–\-(\[]))\(([a-z]{1,4}|[A-Z]|\d{1,2})\)(?=\s)")
_LEADING_CONNECTOR = re.compile(r"[\s;,]*(?:(?:or|and|but)\s+)?", re.I)
_LINE_LEAD = re.compile(r"[ \t]*(?:[*+\-][ \t]+)?(?:\*\*)?")


def _opens_line(text: str, offset: int) -> bool:
    """True when only indentation or a list bullet precedes ``offset`` on its line."""
    return bool(_LINE_LEAD.fullmatch(text, text.rfind("\n", 0, offset) + 1, offset))


def _paragraph_start(text: str, offset: int) -> int:
    """Offset where the paragraph holding ``offset`` begins."""
    cut = text.rfind("\n\n", 0, offset)
    return 0 if cut < 0 else cut + 2


@dataclass(frozen=True)
class Pinpoint:
    """A quote's position: section label (may be empty), 1-based paragraph, and page(s) for PDFs."""

    paragraph: int
    section: str = ""
    page: int | None = None
    page_end: int | None = None
    heading: str = ""

    def label(self) -> str:
        """Human form, e.g. ``§3.3(e), para. 7`` or ``¶ 5, p. 4, para. 12``."""
        parts = []
        if self.section:
            parts.append(self.section)
        elif self.heading:
            parts.append(f"under “{self.heading}”")
        if self.page is not None:
            if self.page_end and self.page_end != self.page:
                parts.append(f"pp. {self.page}–{self.page_end}")
            else:
                parts.append(f"p. {self.page}")
        parts.append(f"para. {self.paragraph}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"section": self.section, "heading": self.heading, "paragraph": self.paragraph,
                "page": self.page, "page_end": self.page_end, "label": self.label()}


def paragraph_number(text: str, start: int) -> int:
    """1-based number of the ``"\\n\\n"``-separated paragraph that contains offset ``start``.

    A text with no blank line anywhere (one paragraph a line, as many scraped articles are) counts lines.
    """
    head = text[:start].lstrip()
    if not _PARA_BREAK.search(text.strip()):  # laid out one paragraph a line, no blank lines at all
        return 1 + len(_LINE_BREAK.findall(head))
    return 1 + len(_PARA_BREAK.findall(head))


def page_range(pages: Sequence[int] | None, start: int, end: int) -> tuple[int | None, int | None]:
    """Pages (1-based) holding ``[start, end)`` given each page's start offset; ``(None, None)`` without pages."""
    if not pages:
        return None, None
    offsets = sorted(int(p) for p in pages)
    first = max(1, bisect_right(offsets, start))
    last = max(first, bisect_right(offsets, max(start, end - 1)))
    return first, last


@dataclass
class _Heading:
    pos: int          # offset of the line start
    body: int         # offset just after the label (where the clause text begins)
    kind: str
    label: str
    indent: int = 0


def _headings(text: str, limit: int) -> list[_Heading]:
    """Every heading-like label at a line start before ``limit``, in text order (one per line)."""
    found: dict[int, _Heading] = {}
    for kind, pattern in _HEADING_PATTERNS:
        for m in pattern.finditer(text, 0, limit):
            line_start = m.start()
            if line_start in found:
                continue  # the first (most specific) pattern wins for a line
            if kind == "named":
                word = m.group(1).lower()
                prefix = "Art. " if word.startswith("art") else "Clause " if word.startswith("cl") else "§"
                label = prefix + m.group(2)
                found[line_start] = _Heading(line_start, m.end(), kind, label)
            elif kind == "list":
                found[line_start] = _Heading(line_start, m.end(), kind, m.group(2), len(m.group(1).expandtabs(4)))
            elif kind == "roman" and not m.group(1):
                continue
            else:
                found[line_start] = _Heading(line_start, m.end(), kind, m.group(1))
    return [found[k] for k in sorted(found)]


def _section_at(text: str, offset: int, doctype: str = "") -> tuple[str, int]:
    """The section label in force at ``offset`` and where its clause text starts (for sub-clauses)."""
    label, clause_start = "", 0
    roman = outline = ""
    items: list[tuple[int, str]] = []  # (indent, number) of the open list items under the heading
    for h in _headings(text, offset + 1):
        if h.pos > offset:
            break
        if h.kind == "list":
            while items and items[-1][0] >= h.indent:
                items.pop()
            items.append((h.indent, h.label))
            clause_start = h.body
            continue
        items = []
        clause_start = h.body
        if h.kind == "roman":
            roman, outline, label = h.label, "", f"Part {h.label}"
        elif h.kind == "outline":
            outline = h.label
            label = f"Part {roman}.{outline}" if roman else f"Part {outline}"
        elif h.kind == "number" and doctype == "court":
            label = f"¶ {h.label}"  # court filings number their paragraphs: "Compl. ¶ 5"
        elif h.kind in ("para", "dotted", "escaped", "number", "lettered"):
            label = f"§{h.label}"
        else:
            label = h.label
    if items:
        numbers = ".".join(n for _, n in items)
        label = f"{label}, item {numbers}" if label else f"item {numbers}"
    return label, clause_start


_ROMANS = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii"]


def _successor(tag: str) -> str:
    """The next enumeration label after ``tag``: b after a, 4 after 3, iii after ii."""
    if tag.isdigit():
        return str(int(tag) + 1)
    if tag in _ROMANS[:-1]:
        return _ROMANS[_ROMANS.index(tag) + 1]
    return chr(ord(tag) + 1) if len(tag) == 1 else ""


def _enumeration(text: str, clause_start: int, offset: int, lookahead: bool = True) -> tuple[str, str]:
    """``(letter, roman)`` in force at ``offset``: the enumerated sub-clauses of the clause so far.

    Markers must count up ((a), (b), (c) ...; (i), (ii) ... below a letter); one that does not, like
    "(a) and (b) are not ..." inside clause (c), is a cross-reference and ignored.
    """
    letter = roman = ""
    # Markers count when they are in the quote's own paragraph or open a line of their own (a list of
    # sub-clauses); a "(b)" inside some earlier paragraph of a long section is not this quote's clause.
    para_start = max(clause_start, _paragraph_start(text, offset))
    # A marker that begins the quote counts ("or (c) if ..."); at the quote's end nothing past it does.
    window_end = min(len(text), offset + 12) if lookahead else offset + 1
    for m in _ENUM.finditer(text, clause_start, window_end):
        if m.start() > offset and not _LEADING_CONNECTOR.fullmatch(text, offset, m.start()):
            break  # only a marker at the very start of the quote ("or (c) if ...") is the quote's own
        if m.start() < para_start and not _opens_line(text, m.start()):
            continue
        tag = m.group(1)
        if not (tag.isdigit() or len(tag) == 1 or tag in _ROMANS):
            continue  # "(see)" is not an enumeration
        if letter and tag == _successor(letter):
            letter, roman = tag, ""
        elif tag in _ROMANS and letter and ((not roman and tag == "i") or (roman and tag == _successor(roman))):
            roman = tag
        elif not letter and len(tag) <= 2:
            letter, roman = tag, ""
    return letter, roman


def _subclause(text: str, clause_start: int, offset: int, lookahead: bool = True) -> str:
    """The enumerated sub-clause markers in force at ``offset``: ``(e)``, ``(c)(ii)``, ``(B)``, or ``""``."""
    letter, roman = _enumeration(text, clause_start, offset, lookahead)
    return (f"({letter})" if letter else "") + (f"({roman})" if roman else "")


def section_label(text: str, start: int, end: int | None = None, doctype: str = "") -> str:
    """The section pinpoint of ``text[start:end]``, e.g. ``§3.3(e)`` or ``§3.3(d)–(f)``; ``""`` if none."""
    label, clause_start = _section_at(text, start, doctype)
    sub = _subclause(text, clause_start, start) if label else ""
    if label and end is not None and end - 1 > start:
        end_label, end_clause = _section_at(text, end - 1, doctype)
        if end_label == label and end_clause == clause_start:
            sub_end = _subclause(text, clause_start, end - 1, lookahead=False)
            if sub and sub_end and sub_end != sub:  # markers only count up, so the end is later
                return f"{label}{sub}–{sub_end}"
        elif end_label:
            return f"{label}{sub}–{end_label.lstrip('§') if label.startswith('§') else end_label}"
    return f"{label}{sub}"


_HEADING_LINES = [
    re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M),                      # ## Heading
    re.compile(r"^([^\n]*\S[^\n]*)\n[ \t]*(?:={3,}|-{3,})[ \t]*$", re.M),    # Heading / ------
    re.compile(r"^[ \t]*\*\*([^*\n]{2,100}?)\*\*", re.M),                   # **Heading**. text
]
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|])")


def nearest_heading(text: str, start: int) -> str:
    """The text of the nearest heading line before ``start`` (Markdown ``#``, underlined, or a bold lead)."""
    best_pos, best = -1, ""
    for pattern in _HEADING_LINES:
        for m in pattern.finditer(text, 0, start):
            if m.end(1) <= start and m.start() > best_pos:
                best_pos, best = m.start(), m.group(1)
    best = _MD_ESCAPE.sub(r"\1", best).strip(" *_#:.")
    return best if len(best) <= 100 else best[:99] + "…"


def compute_pinpoint(text: str, start: int, end: int, meta: dict[str, Any] | None = None,
                     doctype: str = "") -> Pinpoint:
    """Section, paragraph and page of ``text[start:end]`` (``meta`` is the version meta, with ``pages``)."""
    pages = (meta or {}).get("pages")
    page, page_end = page_range(pages if isinstance(pages, list) else None, start, end)
    return Pinpoint(paragraph=paragraph_number(text, start), section=section_label(text, start, end, doctype),
                    page=page, page_end=page_end, heading=nearest_heading(text, start))
