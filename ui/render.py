"""Safe rendering of scraped text for the Streamlit UI: pure functions, no Streamlit import.

Everything that came from a fetched page (titles, publishers, quotes, document text) is shown as
*text*, in one of two ways:

- ``*_html`` helpers HTML-escape it and add only tags written here (``<mark>`` for a quote, ``<a>`` to a
  citation card or a checked http(s) URL). The app shows them with ``st.html``, which does no
  Markdown processing, sanitises with DOMPurify and runs no JavaScript: two independent guards.
- ``escape_markdown`` (for labels shown through Markdown) turns every ASCII punctuation character into
  a numeric character reference and breaks GFM autolinks with an invisible word joiner, so neither
  Markdown (links, images, emphasis, headings, tables, ``$`` maths, ``:colour[...]`` directives,
  ``:emoji:`` codes, bare URLs) nor HTML can be formed from it.

A page holding ``<script>`` or ``![x](http://...)`` therefore renders those characters literally.
"""
from __future__ import annotations

import html
import re
import string
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

#: Every ASCII punctuation character, as a numeric character reference.
_PUNCT = {ord(c): f"&#{ord(c)};" for c in string.punctuation}
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_LINE_INDENT = re.compile(r"^[ \t\u00a0]+", re.MULTILINE)
_MARKER = re.compile(r"\[(\d{1,3})\]")
#: GFM turns bare ``http://``, ``www.`` and e-mail addresses into links after entities are decoded.
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|www)(?=[:.])|(@)(?=[\w-])")
WORD_JOINER = "\u2060"

#: Names shown for language codes (the code is always shown too).
LANGUAGE_NAMES = {
    "en": "English", "hi": "Hindi · हिन्दी", "zh": "Chinese · 中文", "ja": "Japanese · 日本語",
    "es": "Spanish · español", "fr": "French · français", "de": "German · Deutsch", "pt": "Portuguese · português",
    "it": "Italian · italiano", "ru": "Russian · русский", "ar": "Arabic · العربية", "ko": "Korean · 한국어",
    "bn": "Bengali · বাংলা", "ur": "Urdu · اردو", "ta": "Tamil · தமிழ்", "mr": "Marathi · मराठी",
    "nl": "Dutch · Nederlands", "pl": "Polish · polski", "tr": "Turkish · Türkçe", "uk": "Ukrainian · українська",
    "und": "undetermined",
}

#: Styles of the HTML built here (added once per page with ``st.html``).
CSS = """<style>
.kb-answer { line-height: 1.65; }
.kb-answer a.kb-ref { font-weight: 600; text-decoration: none; white-space: nowrap; }
mark.kb-quote { background: rgba(255, 189, 69, 0.38); color: inherit; padding: 0.05em 0.15em; border-radius: 0.2em; }
.kb-card { scroll-margin-top: 4.5rem; }
.kb-card-title { font-weight: 600; margin-bottom: 0.15rem; }
.kb-meta, .kb-prov, .kb-also { font-size: 0.85em; opacity: 0.8; }
.kb-context { border-left: 3px solid rgba(255, 189, 69, 0.9); margin: 0.6rem 0; padding: 0.2rem 0 0.2rem 0.8rem;
              line-height: 1.6; }
.kb-link { margin: 0.4rem 0; overflow-wrap: anywhere; }
.kb-prov code { font-size: 0.9em; }
.kb-diff > div { margin: 0.45rem 0; padding: 0.2rem 0 0.2rem 0.7rem; line-height: 1.55; border-left: 3px solid; }
.kb-diff-added { border-color: rgba(46, 160, 67, 0.9) !important; }
.kb-diff-removed { border-color: rgba(218, 54, 51, 0.9) !important; }
.kb-diff-changed { border-color: rgba(210, 153, 34, 0.9) !important; }
.kb-diff ins { background: rgba(46, 160, 67, 0.22); text-decoration: none; }
.kb-diff del { background: rgba(218, 54, 51, 0.18); }
.kb-diff-op { font-size: 0.8em; opacity: 0.7; margin-right: 0.3rem; white-space: nowrap; }
</style>"""


def language_label(code: str) -> str:
    """``Hindi · हिन्दी (hi)`` for ``hi``; the bare code for languages without a name here."""
    code = (code or "und").strip()
    name = LANGUAGE_NAMES.get(code.split("-")[0].lower())
    return f"{name} ({code})" if name else code


# -- Markdown (labels) ---------------------------------------------------------------------------
def escape_markdown(text: str) -> str:
    """Inline-safe Markdown for arbitrary text: punctuation as character references, autolinks broken.

    The result is one paragraph (line breaks become Markdown hard breaks, blank lines paragraph
    breaks) in which no Markdown or HTML construct can start.
    """
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = _LINE_INDENT.sub("", text.strip())  # four leading spaces would make a code block
    out = []
    for para in _BLANK_LINES.split(text):
        lines = [_AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, ln.strip()).translate(_PUNCT)
                 for ln in para.split("\n")]
        out.append("  \n".join(ln for ln in lines if ln))  # two trailing spaces: a hard line break
    return "\n\n".join(p for p in out if p)


def escape_inline(text: str) -> str:
    """Escaped text on one line (for labels, titles, captions)."""
    return escape_markdown(" ".join((text or "").split()))


def safe_url(url: str) -> str | None:
    """The URL when it is an http(s) or file URL that can be linked safely, else None."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", "file") or any(c in url for c in " <>()[]\"'\\\n\t`"):
        return None
    if parts.scheme != "file" and not parts.netloc:
        return None
    return url


def link(label: str, url: str) -> str:
    """A Markdown link with an escaped label, or just the escaped label when the URL is unsafe."""
    target = safe_url(url)
    return f"[{escape_inline(label)}]({target})" if target and not target.startswith("file:") else escape_inline(label)


# -- HTML (scraped text) ---------------------------------------------------------------------------
def escape_html(text: str) -> str:
    """HTML-escaped text with line breaks kept (``<br>``; at most one empty line)."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"\n\s*\n\s*", "\n\n", text)
    return html.escape(text, quote=True).replace("\n", "<br>")


def html_link(label: str, url: str) -> str:
    """An ``<a>`` opening a checked http(s) URL in a new tab, or the escaped label alone."""
    target = safe_url(url)
    if not target or target.startswith("file:"):
        return escape_html(label)
    return (f'<a href="{html.escape(target, quote=True)}" target="_blank" rel="noopener noreferrer">'
            f"{escape_html(label)}</a>")


@dataclass(frozen=True)
class Context:
    """A quote inside its surrounding text: ``before + quote + after`` is a slice of the stored text."""

    before: str
    quote: str
    after: str
    clipped_start: bool
    clipped_end: bool


def quote_context(text: str, start: int, end: int, width: int = 320) -> Context:
    """The quote ``text[start:end]`` with up to ``width`` characters either side, cut at whitespace."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    lo, hi = max(0, start - width), min(len(text), end + width)
    if lo > 0:
        cut = text.find(" ", lo, start)
        lo = cut + 1 if 0 <= cut < start else lo
    if hi < len(text):
        cut = text.rfind(" ", end, hi)
        hi = cut if cut > end else hi
    return Context(text[lo:start], text[start:end], text[end:hi], lo > 0, hi < len(text))


def context_html(ctx: Context) -> str:
    """The quote in a ``<mark>`` inside its escaped surrounding text."""
    return ("… " if ctx.clipped_start else "") + escape_html(ctx.before) + \
        f'<mark class="kb-quote">{escape_html(ctx.quote)}</mark>' + escape_html(ctx.after) + \
        (" …" if ctx.clipped_end else "")


def cite_anchor(answer_id: str, n: int) -> str:
    """The HTML id of citation card ``n`` of one answer."""
    return f"kb-cite-{re.sub(r'[^A-Za-z0-9_-]', '', str(answer_id))}-{int(n)}"


def short_hash(sha: str | None, n: int = 12) -> str:
    """The first ``n`` hex digits of a hash (``—`` when there is none)."""
    return sha[:n] if sha else "—"


def _host_label(url: str) -> str:
    """``techcrunch.com`` for a link's label."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or url
    return host[4:] if host.startswith("www.") else host


def card_html(anchor: str, n: int, citation: dict, context: Context | None, provenance: dict) -> str:
    """A citation card: title, publisher/date/language/type, the quote in context, link, provenance."""
    c = citation
    meta = " · ".join(escape_html(x) for x in (
        c.get("publisher") or "unknown publisher", c.get("published") or "date unknown",
        language_label(c.get("language", "und")), c.get("doctype") or "other"))
    body = context_html(context) if context else f'<mark class="kb-quote">{escape_html(c.get("quote", ""))}</mark>'
    url = c.get("url", "")
    target = safe_url(url)
    summarised = [u for u in provenance.get("summary_of") or [] if safe_url(u)]
    if target and not target.startswith("file:"):
        where = f"Original: {html_link(url, url)}"
    elif target:
        where = f"Local file: {escape_html(url.rsplit('/', 1)[-1])}"
    elif summarised:
        where = f"Our summary, not original reporting (identifier {escape_html(url)})"
    else:
        where = f"Address (not linked): {escape_html(url) or 'none recorded'}"
    if summarised:
        where += " · Summary of: " + ", ".join(html_link(_host_label(u), u) for u in summarised)
    prov = (f"Retrieved {escape_html(c.get('retrieved') or provenance.get('retrieved', ''))} · snapshot sha256 "
            f"<code>{escape_html(short_hash(provenance.get('snapshot_sha'), 16))}</code> · version "
            f"<code>{escape_html(short_hash(c.get('version_id'), 16))}</code> · characters "
            f"{int(c.get('start', 0))}–{int(c.get('end', 0))}")
    parts = [f'<div class="kb-card" id="{html.escape(anchor, quote=True)}">',
             f'<div class="kb-card-title">[{int(n)}] {escape_html(c.get("title") or url)}</div>',
             f'<div class="kb-meta">{meta}</div>',
             f'<div class="kb-context">{body}</div>',
             f'<div class="kb-link">{where}</div>',
             f'<div class="kb-prov">{prov}</div>']
    also = c.get("also_reported_by") or []
    if also:
        names = ", ".join(html_link(a.get("publisher") or a.get("title") or a.get("url", ""), a.get("url", ""))
                          for a in also)
        parts.append(f'<div class="kb-also">Also reported by: {names}</div>')
    parts.append("</div>")
    return "".join(parts)


# -- answers ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """A piece of an answer: plain (scraped or template) text, or a citation marker ``[n]``."""

    text: str
    n: int | None = None


def answer_segments(answer: str, quotes: Sequence[tuple[int, str]]) -> list[Segment]:
    """Split an answer into text and its citation markers.

    ``quotes`` lists ``(n, quote)`` of the verified citations. A marker counts only right after its
    quote and closing quotation mark (so a ``[2]`` inside a quoted court filing stays text); when no
    quote can be matched, markers of known numbers are taken wherever they stand.
    """
    segs: list[Segment] = []
    pos = 0
    for n, quote in quotes:
        q = answer.find(quote, pos) if quote else -1
        if q < 0:
            continue
        m = re.compile(rf"\s?[”“\"'’»«」』]?\s*(\[{int(n)}\])").match(answer, q + len(quote))
        if not m:
            continue
        segs.append(Segment(answer[pos:m.start(1)]))
        segs.append(Segment(m.group(1), int(n)))
        pos = m.end()
    if not segs:
        known = {n for n, _ in quotes}
        for m in _MARKER.finditer(answer):
            if int(m.group(1)) in known:
                segs.append(Segment(answer[pos:m.start()]))
                segs.append(Segment(m.group(0), int(m.group(1))))
                pos = m.end()
    segs.append(Segment(answer[pos:]))
    return [s for s in segs if s.text]


def _answer_tokens(answer: str, quotes: Sequence[tuple[int, str]], answer_id: str) -> list[str]:
    """Escaped words and whole marker links, in order (joined, they are the answer's HTML)."""
    tokens: list[str] = []
    for seg in answer_segments(answer, quotes):
        if seg.n is None:
            tokens += [escape_html(w) for w in re.findall(r"\s*\S+\s*|\s+", seg.text)]
        else:
            tokens.append(f'<a class="kb-ref" href="#{cite_anchor(answer_id, seg.n)}">[{seg.n}]</a>')
    return tokens


def answer_html(answer: str, quotes: Sequence[tuple[int, str]], answer_id: str) -> str:
    """The answer as HTML: escaped text, each ``[n]`` a link to its citation card."""
    return f'<div class="kb-answer">{"".join(_answer_tokens(answer, quotes, answer_id))}</div>'


def answer_html_steps(answer: str, quotes: Sequence[tuple[int, str]], answer_id: str,
                      steps: int = 8) -> list[str]:
    """At most ``steps`` growing, complete HTML prefixes of the answer, for progressive display."""
    tokens = _answer_tokens(answer, quotes, answer_id)
    size = max(1, -(-len(tokens) // max(1, steps)))
    cuts = list(range(size, len(tokens), size)) + [len(tokens)]
    return [f'<div class="kb-answer">{"".join(tokens[:k])}</div>' for k in cuts]


def filters_summary(filters: dict[str, str]) -> str:
    """A one-line, escaped (Markdown) description of the active filters (empty when none are set)."""
    names = {"language": "language", "doctype": "type", "source": "source", "publisher": "publisher",
             "since": "published from", "until": "published until", "as_of": "as of"}
    parts = [f"{names[k]}: {(filters or {})[k]}" for k in names if (filters or {}).get(k)]
    return escape_inline(" · ".join(parts)) if parts else ""


# -- version diffs ---------------------------------------------------------------------------------
_DIFF_LABELS = {"added": "+ added", "removed": "− removed", "changed": "~ changed"}


def word_diff_html(words: Sequence[tuple[str, str]]) -> str:
    """A changed paragraph: escaped words, deletions in ``<del>``, insertions in ``<ins>``."""
    tags = {"delete": "del", "insert": "ins"}
    return "".join(f"<{tags[op]}>{escape_html(text)}</{tags[op]}>" if op in tags else escape_html(text)
                   for op, text in words)


def diff_html(changes: Sequence[Any]) -> str:
    """Paragraph changes (``kb.diff.ParagraphChange``) as escaped HTML, one block per paragraph."""
    parts = ['<div class="kb-diff">']
    for c in changes:
        if c.op == "changed":
            body = word_diff_html(c.words)
        elif c.op == "added":
            body = f"<ins>{escape_html(c.new)}</ins>"
        else:
            body = f"<del>{escape_html(c.old)}</del>"
        op = c.op if c.op in _DIFF_LABELS else "changed"
        parts.append(f'<div class="kb-diff-{op}"><span class="kb-diff-op">{_DIFF_LABELS[op]}</span> {body}</div>')
    parts.append("</div>")
    return "".join(parts)
