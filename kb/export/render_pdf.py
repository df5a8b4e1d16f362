"""PDF export with WeasyPrint (HTML + CSS through Pango/HarfBuzz, fonts subset and embedded).

Devanagari, Chinese and Japanese need real shaping and fonts: every element carries its ``lang`` and
the CSS picks Noto fonts per language (Japanese gets the JP variant of the CJK fonts, Chinese the SC
one). The fonts come from Debian packages (``fonts-noto-core``, ``fonts-noto-cjk``) through
fontconfig. Before rendering, every character of the summary is checked against the installed fonts:
a character no font can draw makes the export fail with the package to install, instead of a PDF
with tofu boxes.
"""
from __future__ import annotations

import html
import logging
import shutil
import subprocess
import unicodedata
from functools import cache, lru_cache

from kb.export.model import CitedQuote, CitedSummary, ExportError
from kb.export.render_docx import xml_safe
from kb.export.render_md import citation_heading, quote_facts, source_facts
from kb.text.language import language_name

log = logging.getLogger(__name__)

SERIF = ["Noto Serif", "Noto Serif Devanagari", "Noto Serif CJK SC", "Noto Sans", "Noto Sans Devanagari",
         "Noto Sans CJK SC"]
SANS = ["Noto Sans", "Noto Sans Devanagari", "Noto Sans CJK SC"]
#: Debian package that provides fonts for a script (for the error message).
PACKAGE_FOR = {"DEVANAGARI": "fonts-noto-core", "CJK": "fonts-noto-cjk", "HIRAGANA": "fonts-noto-cjk",
               "KATAKANA": "fonts-noto-cjk", "HANGUL": "fonts-noto-cjk", "EMOJI": "fonts-noto-color-emoji"}


def _stack(families: list[str], generic: str) -> str:
    return ", ".join(f'"{f}"' for f in families) + f", {generic}"


def _css() -> str:
    serif, sans = _stack(SERIF, "serif"), _stack(SANS, "sans-serif")
    ja_serif = _stack([f.replace("CJK SC", "CJK JP") for f in SERIF], "serif")
    ko_serif = _stack([f.replace("CJK SC", "CJK KR") for f in SERIF], "serif")
    tc_serif = _stack([f.replace("CJK SC", "CJK TC") for f in SERIF], "serif")
    return f"""
@page {{
  size: A4; margin: 20mm 18mm 26mm 18mm;
  @bottom-left {{ content: element(footer); vertical-align: top; padding-top: 3mm; }}
  @bottom-right {{ content: "Page " counter(page) " of " counter(pages); font: 7.5pt {sans}; color: #555;
                   vertical-align: top; padding-top: 3mm; width: 22mm; }}
}}
html {{ font-family: {serif}; font-size: 10pt; line-height: 1.45; color: #111; }}
:lang(ja) {{ font-family: {ja_serif}; }}
:lang(ko) {{ font-family: {ko_serif}; }}
:lang(zh-TW), :lang(zh-HK), :lang(zh-Hant) {{ font-family: {tc_serif}; }}
h1, h2, h3, .label, .facts, .meta, .footer, table {{ font-family: {sans}; }}
h1 {{ font-size: 17pt; margin: 0 0 4mm; }}
h2 {{ font-size: 13pt; margin: 7mm 0 2mm; border-bottom: 0.6pt solid #999; padding-bottom: 1mm; }}
h3 {{ font-size: 10.5pt; margin: 4mm 0 1.5mm; }}
.meta {{ font-size: 8.5pt; color: #333; margin: 0 0 1mm; }}
.label {{ font-weight: bold; font-size: 9pt; }}
.cite {{ font-weight: bold; }}
.citation {{ margin: 3mm 0 4mm; break-inside: avoid-page; }}
.citation .head {{ font-family: {sans}; font-weight: bold; font-size: 9pt; margin: 0 0 1mm; }}
blockquote {{ margin: 1mm 0 1.5mm 6mm; padding: 1mm 0 1mm 4mm; border-left: 2pt solid #777;
              white-space: pre-wrap; font-size: 10.5pt; }}
.qlang {{ font-family: {sans}; font-size: 7.5pt; color: #fff; background: #555; padding: 0 1mm;
          border-radius: 1mm; margin-left: 1mm; white-space: nowrap; }}
.facts {{ font-size: 7.8pt; color: #333; margin: 0 0 0 10mm; padding: 0; list-style: none; }}
.facts li {{ margin: 0.3mm 0; overflow-wrap: anywhere; }}
.source {{ margin: 2mm 0 4mm; break-inside: avoid-page; }}
table {{ border-collapse: collapse; font-size: 8pt; width: 100%; }}
td {{ border: 0.4pt solid #aaa; padding: 0.8mm 1.5mm; vertical-align: top; overflow-wrap: anywhere; }}
td.k {{ width: 33mm; font-weight: bold; }}
.footer {{ position: running(footer); font-size: 7pt; color: #555; width: 140mm; }}
.statement {{ font-size: 8.5pt; margin-top: 6mm; border-top: 0.6pt solid #999; padding-top: 2mm; }}
"""


def _e(text: str) -> str:
    return html.escape(xml_safe(text), quote=True)


def _lang(code: str) -> str:
    return _e(code) if code and code != "und" else ""


def _quote_block(q: CitedQuote) -> str:
    facts = "".join(f"<li>{_e(f)}</li>" for f in quote_facts(q))
    return (f'<div class="citation"><p class="head">{_e(citation_heading(q))} '
            f'<span class="qlang">{_e(q.quote_language)}</span></p>'
            f'<blockquote lang="{_lang(q.quote_language)}">{_e(q.quote)}</blockquote>'
            f'<ul class="facts" lang="en">{facts}</ul></div>')


def summary_html(summary: CitedSummary) -> str:
    """The HTML document the PDF is laid out from."""
    m = summary.meta
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Cited summary</title>',
             f'<meta name="description" content="{_e(summary.footer())}">',
             f'<meta name="dcterms.created" content="{_e(m.created)}">',
             f"<style>{_css()}</style></head><body>",
             f'<div class="footer">{_e(summary.short_footer())}</div>',
             "<h1>Cited summary</h1>",
             f'<p class="meta"><b>Generated:</b> {_e(m.created)}</p>',
             f'<p class="meta"><b>Index:</b> {_e(m.index_label())}</p>',
             f'<p class="meta"><b>Contents:</b> {len(summary.entries)} question(s), {summary.quote_count} '
             f"quote(s), {len(summary.sources)} source(s)</p>"]
    for i, e in enumerate(summary.entries, start=1):
        a = e.answer
        # Markers stay plain text in the answer's one text run: an inline element after a long run of text
        # makes WeasyPrint 70 break the line too early (a lone word on its own line).
        answer = _e(a.answer)
        parts += [f"<h2>Question {i}</h2>",
                  f'<p><span class="label">Question, in {_e(language_name(a.question_language))}:</span> '
                  f'<span lang="{_lang(a.question_language)}">{_e(e.question)}</span></p>',
                  f'<p><span class="label">{"No answer" if a.abstained else "Answer"}, '
                  f'in {_e(language_name(a.answer_language))}:</span> '
                  f'<span lang="{_lang(a.answer_language)}">{answer}</span></p>']
        if e.wording_note:
            parts.append(f'<p class="meta"><i>{_e(e.wording_note)}</i></p>')
        if e.quotes:
            parts.append(f"<h3>Citations for question {i}</h3>")
        parts += [_quote_block(q) for q in e.quotes]
    parts.append("<h2>Bibliography</h2>")
    for s in summary.sources:
        rows = "".join(f'<tr><td class="k">{_e(k)}</td><td>{_e(v)}</td></tr>' for k, v in source_facts(s)[1:])
        parts.append(f'<div class="source"><h3>[S{s.ref}] <span lang="{_lang(s.language)}">{_e(s.title)}</span></h3>'
                     f"<table>{rows}</table></div>")
    parts.append(f'<p class="statement">{_e(summary.footer().replace("`", ""))}</p></body></html>')
    return "".join(parts)


# -- font coverage ------------------------------------------------------------------------------
def _visible_chars(text: str) -> set[str]:
    return {ch for ch in text if not ch.isspace() and unicodedata.category(ch)[0] not in ("C", "Z")
            and not unicodedata.category(ch).startswith("M")}


@cache
def _font_file(family: str) -> str | None:
    """The file fontconfig has for exactly this family (None when it would substitute another)."""
    if not shutil.which("fc-match"):
        return None
    out = subprocess.run(["fc-match", "-f", "%{family}\t%{file}", family], capture_output=True, text=True,
                         timeout=30).stdout
    names, _, path = out.partition("\t")
    return path if family in [n.strip() for n in names.split(",")] else None


@cache
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    font = TTFont(path, fontNumber=0, lazy=True)
    try:
        return frozenset(font.getBestCmap() or {})
    finally:
        font.close()


@lru_cache(maxsize=4096)
def _any_font_has(ch: str) -> bool:
    out = subprocess.run(["fc-list", f":charset={ord(ch):x}", "family"], capture_output=True, text=True,
                         timeout=30).stdout
    return bool(out.strip())


def missing_glyphs(text: str) -> list[str]:
    """Characters of ``text`` that no installed font can draw (empty when fontconfig is unavailable)."""
    if not shutil.which("fc-list"):
        log.warning("fontconfig's fc-list is not installed: cannot check the PDF's font coverage")
        return []
    covered: set[int] = set()
    for family in SERIF + [f.replace("CJK SC", "CJK JP") for f in SERIF]:
        path = _font_file(family)
        if path:
            covered |= _cmap(path)
    return sorted(ch for ch in _visible_chars(text) if ord(ch) not in covered and not _any_font_has(ch))


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "UNKNOWN")
    for key in PACKAGE_FOR:
        if key in name:
            return key
    if 0x1F000 <= ord(ch) <= 0x1FAFF:
        return "EMOJI"
    return name.split()[0]


def check_fonts(summary: CitedSummary) -> None:
    """``ExportError`` naming the characters no installed font covers and the Debian package to install."""
    missing = missing_glyphs(summary.all_text())
    if not missing:
        return
    shown = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in missing[:8])
    packages = sorted({PACKAGE_FOR.get(_script(c), "fonts-noto-core") for c in missing})
    raise ExportError(f"the PDF cannot draw {len(missing)} character(s) with the installed fonts ({shown}"
                      f"{', ...' if len(missing) > 8 else ''}); install the Debian package(s) "
                      f"{' '.join(packages)} (`apt-get install {' '.join(packages)}`), or export as md, docx or json")


def render_pdf(summary: CitedSummary) -> bytes:
    """The summary as a PDF with embedded (subset) Noto fonts."""
    check_fonts(summary)
    from weasyprint import HTML

    return HTML(string=summary_html(summary)).write_pdf()
