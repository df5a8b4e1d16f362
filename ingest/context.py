"""Contextual chunk embeddings: what is embedded with a chunk besides its own text.

A passage cut from the middle of a document often does not say what it is about ("Customer will not
...", "The Court finds ..."). ``KB_CHUNK_CONTEXT`` says what goes in front of a chunk's text when it is
embedded: ``heading`` (the default for a new index) the section heading above it, ``title`` its
document's title and that heading, ``none`` nothing (the first wave's indexes). The stored text, the
citation offsets and the chunk ids are the chunk's own either way. The embedded text is what the
passage-vector cache is keyed on, so a chunk is embedded again only when its text or its context
changed. (BM25 already indexes the title with every chunk; ``README.md`` has the measured effect.)
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

#: The most characters of a title or a heading put in front of a chunk (e5 reads 512 tokens in all).
MAX_TITLE = 160
MAX_HEADING = 90
#: A heading is a few words, not a line of a paragraph.
MAX_HEADING_WORDS = 12

#: A line that ends a sentence or continues one is not a heading.
_NOT_HEADING_END = re.compile(r"[.!?;,。！？；，、…।॥؟،۔]$")
#: Footnote marks and closing brackets looked past for that ending ("... undisputed.[3]", "... 7.)").
_TRAILING_MARKS = re.compile(r"(?:\[\w{1,3}\]|[)\]*])+$")
#: A line ending in a connector goes on in the next line ("... Meta's proprietary Llama 2 and", "... LAW, THE");
#: lower case or all capitals only ("Exhibit A", "Sign In" are headings).
_ENDS_CONNECTOR = re.compile(r"\b(?:and|or|of|the|to|a|an|in|on|for|with|by|that|which|AND|OR|OF|THE|TO|FOR|WITH|BY)$")
#: Abbreviations that end a would-be inline title ("2. Mr. Smith said ..."): no title.
_ABBREVIATIONS = {"Mr", "Mrs", "Ms", "Dr", "St", "Inc", "No", "Co", "Jr", "Sr", "Ltd", "Corp", "vs", "Prof"}
_MARKDOWN = re.compile(r"^\s{0,3}#{1,6}\s+")
#: A Markdown setext underline: the line above it is a heading ("1\\. Services." over "-------").
_SETEXT = re.compile(r"^\s{0,3}(?:=+|-+)\s*$")
_NUMBERED = re.compile(r"^(?:\d+(?:\\?\.\d+)*\\?\.?|[A-Z]\\?\.(?:\d+\\?\.?)*)\s")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·]|\d+[.)]\s+\S.*[.;]$)")
_HAS_WORD = re.compile(r"\w{2,}")
#: A year: a short line holding one is a date line ("Effective: January 1, 2026", "Updated 16 May 2025").
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
DATE_LINE_WORDS = 6
_DIGITS = re.compile(r"\d+")
#: A numbered section that opens with its title on the line of its first sentence ("7. Governing Law and
#: Jurisdiction. This Agreement ...", "K.1. **Claims Against Customer.** Anthropic will ..."): the number and
#: the title (capitalised words and connectors, up to ``MAX_HEADING_WORDS``) are its heading.
_TITLE_WORD = r"(?:[A-Z][\w'’&\-]*|of|and|to|the|for|in|on|a|an|or|with|by|from|our|your)"
_INLINE_HEADING = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?|[A-Z]\.\d+(?:\.\d+)*\.?|§\s*\d+(?:\.\d+)*\.?)\s+\**(?P<title>" + _TITLE_WORD
    + r"(?:\s+" + _TITLE_WORD + r"){0," + str(MAX_HEADING_WORDS - 1) + r"})[.:]\**(?=\s+[\"“(\[*]*[A-Z0-9])")


def heading_lines(text: str) -> list[tuple[int, str]]:
    """(offset, heading) for every line of ``text`` that reads as a section heading, in order.

    A heading stands alone: a short line (3-90 characters, at most 12 words) after a blank line or at the
    start, not ending like a sentence or a lead-in ("You agree that:"), not a date or link line, not a
    bullet, not continued by a lower-case line (a wrapped sentence) and not repeated three times or more,
    numbers aside (a page header); a Markdown heading of that length (``#`` or underlined) always counts. A paragraph that
    opens with a section number and title ("7. Governing Law. This Agreement ...") gives that number and
    title, so that the heading above it stops there.
    """
    lines = text.splitlines(keepends=True)
    # Each line with its digits blanked: "Page 3 of 16" repeats as "Page # of #".
    keys = [_DIGITS.sub("#", line.strip()) for line in lines]
    counts: dict[str, int] = {}
    for key in keys:
        if key:
            counts[key] = counts.get(key, 0) + 1
    out: list[tuple[int, str]] = []
    pos = 0
    prev_blank = True
    for k, line in enumerate(lines):
        body = line.strip()
        start = pos
        pos += len(line)
        if not body:
            prev_blank = True
            continue
        inline = _INLINE_HEADING.match(body) if prev_blank else None
        words = inline.group("title").split() if inline else []
        if inline and words[-1] not in _ABBREVIATIONS and not any(len(w) == 1 and w.isupper() for w in words):
            # a number and title, then the section's first sentence on its line
            out.append((start, inline.group(0).replace("*", "")))
            prev_blank = False
            continue
        nxt = lines[k + 1].lstrip() if k + 1 < len(lines) else ""
        setext = prev_blank and len(nxt.strip()) >= 3 and bool(_SETEXT.match(nxt))
        if setext and nxt.strip()[0] == "-" and _NOT_HEADING_END.search(body) and not _NUMBERED.match(body):
            setext = False   # a sentence above a separator line ("-----" also draws a rule in plain text)
        markdown = bool(_MARKDOWN.match(line)) or setext
        heading = _MARKDOWN.sub("", body).strip().replace("\\", "") if markdown else body
        if not (markdown or prev_blank) or not 3 <= len(heading) <= MAX_HEADING or not _HAS_WORD.search(heading) \
                or len(heading.split()) > MAX_HEADING_WORDS:
            prev_blank = False
            continue
        lead_in = heading.endswith((":", "：")) and not heading.isupper()   # "You agree that:"; "COMPLAINT FOR:" is one
        dated = bool(_YEAR.search(heading)) and len(heading.split()) <= DATE_LINE_WORDS
        linked = "://" in heading or "www." in heading   # "Public record: https://...", a link line
        wrapped = nxt[:1].islower()                      # the line goes on: a sentence, not a heading
        ends = _TRAILING_MARKS.sub("", heading) or heading
        if markdown or not (_NOT_HEADING_END.search(ends) or _ENDS_CONNECTOR.search(ends) or _LIST_ITEM.match(body)
                            or lead_in or dated or linked or wrapped or counts[keys[k]] >= 3):
            out.append((start, heading.strip("*_ ") or heading))
        prev_blank = False
    return out


#: A "heading" above most of a long document is a title or a navigation line ("Download PDF"), no section's.
MAX_SECTION_SHARE = 0.6
LONG_DOCUMENT = 3000


def section_headings(text: str) -> list[tuple[int, str]]:
    """``heading_lines``, with '' for those whose section (up to the next heading) is most of a long document:
    the text below such a line has no heading (the line above it does not reach further down)."""
    heads = heading_lines(text)
    if len(text) <= LONG_DOCUMENT:
        return heads
    ends = [h[0] for h in heads[1:]] + [len(text)]
    return [(at, h if end - at <= MAX_SECTION_SHARE * len(text) else "") for (at, h), end in zip(heads, ends)]


def heading_before(headings: Sequence[tuple[int, str]], start: int, starts: Sequence[int] | None = None) -> str:
    """The last heading that begins at or before ``start`` ('' when none); ``starts`` = the headings' offsets."""
    offsets = starts if starts is not None else [h[0] for h in headings]
    i = bisect.bisect_right(offsets, start) - 1   # a chunk that starts with a heading is under that heading
    return headings[i][1] if i >= 0 else ""


def contextual_texts(kind: str, title: str, text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """The texts to embed for the chunks ``text[s:e]`` of one document version."""
    chunks = [text[s:e] for s, e in spans]
    if kind == "none":
        return chunks
    heads = section_headings(text)
    starts = [h[0] for h in heads]
    # "heading": the heading alone; a page without a title got its URL as one, which says nothing here
    title = " ".join(title.split())[:MAX_TITLE] if kind == "title" and "://" not in title else ""
    out = []
    for (s, _e), chunk in zip(spans, chunks):
        heading = heading_before(heads, s, starts)[:MAX_HEADING]
        parts = [p for p in (title, heading) if p and p.casefold() not in chunk[:300].casefold()]
        if len(parts) == 2 and parts[1].casefold() == parts[0].casefold():
            parts = parts[:1]
        out.append("\n".join(parts) + "\n\n" + chunk if parts else chunk)
    return out
