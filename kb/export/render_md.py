"""Markdown export: questions, answers with ``[n]`` markers, verbatim quotes with pinpoints, bibliography.

Quotes are written byte for byte as stored, inside a fenced block under a ``> `` prefix (a fence renders
no link, image or HTML), so a reader or a script can find them in the source text exactly. Everything
else that came from a page (titles, publishers, URLs, the answer text) is escaped, so a title such as
``![x](http://tracker/x.png)`` shows as those characters and never loads an image.
"""
from __future__ import annotations

import re

from kb.export.model import CitedQuote, CitedSummary, SourceEntry, display_url
from kb.text.language import language_name

DOCTYPES = {"news": "news article", "tos": "terms of service / policy", "court": "court document",
            "blog": "blog post", "summary": "summary written by the knowledge-base team (not original reporting)",
            "other": "document"}


def doctype_name(doctype: str) -> str:
    return DOCTYPES.get(doctype, doctype or "document")


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def md_escape(text: str) -> str:
    """Scraped text as inert Markdown: punctuation that forms links, images, emphasis or HTML is escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join((text or "").split())).replace("<", "&lt;")


def _one_line(text: str) -> str:
    return md_escape(text)


def quote_block(text: str) -> list[str]:
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return [f"> {fence}text", *(f"> {line}" for line in text.split("\n")), f"> {fence}"]


def quote_facts(q: CitedQuote) -> list[str]:
    """The lines under a quote: position, language, verification, syndication (shared with other formats)."""
    c = q.citation
    facts = [f"Position: {q.pinpoint.label()}; characters {c.start}–{c.end} of version {c.version_id}",
             q.language_note(),
             f"Verified at export: snapshot SHA-256 {q.source.snapshot_sha} re-hashed, text re-extracted and equal to the stored text; quote equals it at these offsets"]
    if c.also_reported_by:
        others = "; ".join(f"{a.get('publisher') or a.get('title') or ''} {display_url(a.get('url', ''))}".strip()
                           for a in c.also_reported_by)
        facts.append(f"Also reported by: {others}")
    return facts


def source_facts(s: SourceEntry) -> list[tuple[str, str]]:
    """Labelled bibliography fields (shared with other formats)."""
    rows = [("Title", s.title), ("Publisher", s.publisher or "unknown"), ("Author", s.author or "not stated"),
            ("Published", s.published or "not stated")]
    if s.effective_date and s.effective_date != s.published:
        rows.append(("Date stated in the document", s.effective_date))
    rows += [("Document type", doctype_name(s.doctype)), ("Language", language_name(s.language)),
             ("URL", display_url(s.url)), ("Retrieved", s.retrieved), ("Snapshot SHA-256", s.snapshot_sha),
             ("Version", f"{s.version_label}; id {s.version_id}; valid from {s.valid_from}"
                         + (f" to {s.valid_to}" if s.valid_to else "")),
             ("Document id", s.doc_id)]
    if s.summary_of:
        rows.insert(rows.index(("Document type", doctype_name(s.doctype))) + 1,
                    ("Summary of", "; ".join(s.summary_of)))
    return rows


def citation_heading(q: CitedQuote, extra: str = "") -> str:
    """``[2] OpenAI Services Agreement, §3.3(e), para. 13 (source S1)``."""
    return f"[{q.n}] {q.citation.title or q.source.title}, {q.pinpoint.label()} (source S{q.source.ref}{extra})"


def render_markdown(summary: CitedSummary) -> bytes:
    """The summary as UTF-8 Markdown."""
    m = summary.meta
    out = ["# Cited summary", "",
           f"- Generated: {m.created}",
           f"- Index: {m.index_label()}",
           f"- Questions: {len(summary.entries)}; quotes: {summary.quote_count}; sources: {len(summary.sources)}",
           ""]
    for i, e in enumerate(summary.entries, start=1):
        a = e.answer
        out += [f"## Question {i}", "",
                f"**Question**, in {language_name(a.question_language)}: {_one_line(e.question)}", ""]
        if a.abstained:
            out += [f"**No answer**, in {language_name(a.answer_language)}: {_one_line(a.answer)}", ""]
        else:
            out += [f"**Answer**, in {language_name(a.answer_language)}: {_one_line(a.answer)}", ""]
        if e.wording_note:
            out += [f"*{md_escape(e.wording_note)}*", ""]
        if a.claims:
            out += ["**Claims**, each with the quotes that back it:", ""]
            out += [f"{k}. {_one_line(c.text)} — quotes {', '.join(f'[{n}]' for n in c.citations)}"
                    for k, c in enumerate(a.claims, start=1)]
            out.append("")
        if e.quotes:
            out += [f"### Citations for question {i}", ""]
        for q in e.quotes:
            out += [f"**{md_escape(citation_heading(q))}**", ""]
            out += quote_block(q.quote)
            out.append("")
            out += [f"- {md_escape(fact)}" for fact in quote_facts(q)]
            out.append("")
    out += ["## Bibliography", ""]
    if not summary.sources:
        out += ["No source is quoted.", ""]
    for s in summary.sources:
        out += [f"**[S{s.ref}]** {md_escape(s.title)}", ""]
        out += [f"- {label}: {md_escape(str(value))}" for label, value in source_facts(s)[1:]]
        out.append("")
    out += ["---", "", f"*{summary.footer()}*", ""]
    return "\n".join(out).encode("utf-8")
