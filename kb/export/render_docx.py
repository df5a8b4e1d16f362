"""DOCX export with python-docx: real Word footnotes for every citation marker, quotes in the Quote style.

python-docx has no footnote API, so the footnotes part (``word/footnotes.xml``) is added here as an
XML part with Word's two separator footnotes. Each ``[n]`` marker of an answer becomes an
auto-numbered footnote (custom marks such as "[1]" show twice in LibreOffice, so Word's own numbering
is used); the note names the question and citation number (``Question 2, citation [1]``), so it maps
to the Markdown, JSON and ``kb ask`` numbering, and holds the pinpoint, the verbatim quote and the
source. The quotes are repeated in the body in Word's built-in "Quote" style with their language set
on the run (upright for Devanagari and CJK), then a bibliography table.
"""
from __future__ import annotations

import io
import re
from datetime import datetime

from docx import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import XmlPart
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Cm, Pt, RGBColor

from kb.export.model import CitedQuote, CitedSummary, display_url, split_markers
from kb.export.render_md import citation_heading, quote_facts, source_facts
from kb.text.language import language_name

# Fonts Word (or LibreOffice) should use per script; Noto comes from Debian's fonts-noto-core/-cjk.
LATIN_FONT = "Noto Serif"
COMPLEX_FONT = "Noto Serif Devanagari"
EAST_ASIAN_FONT = {"zh": "Noto Serif CJK SC", "ja": "Noto Serif CJK JP", "ko": "Noto Serif CJK KR"}
WORD_LANG = {"en": "en-US", "hi": "hi-IN", "zh": "zh-CN", "ja": "ja-JP", "ko": "ko-KR", "es": "es-ES",
             "fr": "fr-FR", "de": "de-DE", "pt": "pt-PT", "it": "it-IT", "ru": "ru-RU", "mr": "mr-IN",
             "ne": "ne-NP", "ar": "ar-SA", "ur": "ur-PK", "bn": "bn-IN"}
#: Languages whose scripts are not set in italics (the Quote style's italic is switched off for them).
UPRIGHT_SCRIPTS = {"hi", "mr", "ne", "zh", "ja", "ko", "ar", "ur", "bn", "ta", "te", "th"}
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

_FOOTNOTES_XML = (
    f"<w:footnotes {nsdecls('w')}>"
    '<w:footnote w:type="separator" w:id="-1"><w:p><w:pPr><w:spacing w:after="0" w:line="240" w:lineRule="auto"/>'
    "</w:pPr><w:r><w:separator/></w:r></w:p></w:footnote>"
    '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:pPr><w:spacing w:after="0" w:line="240" '
    'w:lineRule="auto"/></w:pPr><w:r><w:continuationSeparator/></w:r></w:p></w:footnote>'
    "</w:footnotes>")


def xml_safe(text: str) -> str:
    """Control characters XML cannot hold shown as their visible Unicode symbols (U+2400 block)."""
    return _XML_ILLEGAL.sub(lambda m: chr(0x2400 + ord(m.group(0))) if ord(m.group(0)) < 0x20 else "\ufffd", text)


def _base(lang: str) -> str:
    return (lang or "und").split("-")[0].lower()


def _set_run_language(run, lang: str) -> None:
    """Language and script fonts of a run, so Word shapes and spell-checks it as that language."""
    rPr = run._r.get_or_add_rPr()
    base = _base(lang)
    fonts = rPr.get_or_add_rFonts()
    fonts.set(qn("w:eastAsia"), EAST_ASIAN_FONT.get(base, EAST_ASIAN_FONT["zh"]))
    fonts.set(qn("w:cs"), COMPLEX_FONT)
    el = OxmlElement("w:lang")
    tag = WORD_LANG.get(base)
    if tag:
        if base in EAST_ASIAN_FONT:
            el.set(qn("w:eastAsia"), tag)
        elif base in ("hi", "mr", "ne", "ar", "ur", "bn"):
            el.set(qn("w:bidi"), tag)
        else:
            el.set(qn("w:val"), tag)
        rPr.insert_element_before(el, "w:eastAsianLayout", "w:specVanish", "w:oMath")


def _add_text(paragraph, text: str, lang: str = "", bold: bool = False, italic: bool = False, style: str | None = None):
    run = paragraph.add_run(xml_safe(text), style=style)
    run.bold = bold or None
    run.italic = italic or None
    if lang:
        _set_run_language(run, lang)
    return run


class _Footnotes:
    """The footnotes part of a document and the next free footnote id."""

    def __init__(self, document) -> None:
        self.document = document
        part = XmlPart(PackURI("/word/footnotes.xml"), CT.WML_FOOTNOTES, parse_xml(_FOOTNOTES_XML),
                       document.part.package)
        document.part.relate_to(part, RT.FOOTNOTES)
        self.root = part.element
        self.next_id = 1
        settings = document.settings.element
        pr = parse_xml(f'<w:footnotePr {nsdecls("w")}><w:footnote w:id="-1"/><w:footnote w:id="0"/></w:footnotePr>')
        settings.insert_element_before(pr, *_SETTINGS_AFTER_FOOTNOTEPR)

    def add(self, paragraph, text_parts: list[tuple[str, str, bool]]) -> int:
        """An auto-numbered footnote reference in ``paragraph``; the note holds ``(text, lang, italic)`` parts.

        Returns the footnote number Word and LibreOffice will show (ids are given in document order).
        """
        fid = self.next_id
        self.next_id += 1
        run = paragraph.add_run(style="Footnote Reference")
        ref = OxmlElement("w:footnoteReference")
        ref.set(qn("w:id"), str(fid))
        run._r.append(ref)
        note = OxmlElement("w:footnote")
        note.set(qn("w:id"), str(fid))
        p = OxmlElement("w:p")
        note.append(p)
        self.root.append(note)
        from docx.text.paragraph import Paragraph

        para = Paragraph(p, self.document.part)
        para.style = self.document.styles["Footnote Text"]
        mark = para.add_run(style="Footnote Reference")
        mark._r.append(OxmlElement("w:footnoteRef"))
        para.add_run(" ")
        for text, lang, italic in text_parts:
            _add_text(para, text, lang, italic=italic)
        return fid


# Children of w:settings that come after w:footnotePr in the schema order.
_SETTINGS_AFTER_FOOTNOTEPR = tuple(f"w:{t}" for t in (
    "endnotePr", "compat", "docVars", "rsids", "mathPr", "attachedSchema", "themeFontLang", "clrSchemeMapping",
    "doNotIncludeSubdocsInStats", "doNotAutoCompressPictures", "forceUpgrade", "captions", "readModeInkLockDown",
    "smartTagType", "schemaLibrary", "shapeDefaults", "doNotEmbedSmartTags", "decimalSymbol", "listSeparator"))


def _styles(document) -> None:
    styles = document.styles
    normal = styles["Normal"]
    normal.font.name = LATIN_FONT
    normal.font.size = Pt(10.5)
    rPr = normal.element.get_or_add_rPr()
    fonts = rPr.get_or_add_rFonts()
    fonts.set(qn("w:eastAsia"), EAST_ASIAN_FONT["zh"])
    fonts.set(qn("w:cs"), COMPLEX_FONT)
    names = {s.name for s in styles}
    if "Footnote Text" not in names:
        st = styles.add_style("Footnote Text", WD_STYLE_TYPE.PARAGRAPH)
        st.base_style = normal
        st.font.size = Pt(8.5)
        st.paragraph_format.space_after = Pt(2)
    if "Footnote Reference" not in names:
        st = styles.add_style("Footnote Reference", WD_STYLE_TYPE.CHARACTER)
        st.font.superscript = True
    if "Source Note" not in names:
        st = styles.add_style("Source Note", WD_STYLE_TYPE.PARAGRAPH)
        st.base_style = normal
        st.font.size = Pt(8.5)
        st.font.color.rgb = RGBColor(0x44, 0x44, 0x44)
        st.paragraph_format.space_after = Pt(1)
        st.paragraph_format.left_indent = Pt(18)


def _footnote_parts(qi: int, q: CitedQuote) -> list[tuple[str, str, bool]]:
    c = q.citation
    return [(f"Question {qi}, citation [{q.n}]: {c.title or q.source.title}, {q.pinpoint.label()}: “", "", False),
            (q.quote, q.quote_language, False),
            (f"” [{language_name(q.quote_language)}, verbatim"
             + (", not translated" if q.foreign else "") + f"]. Source S{q.source.ref}, {display_url(q.source.url)}, "
             f"retrieved {q.source.retrieved}.", "", True)]


def _answer_paragraph(document, notes: _Footnotes, qi: int, entry) -> dict[int, int]:
    """The answer with each ``[n]`` marker turned into a footnote; returns ``{n: footnote number}``."""
    a = entry.answer
    p = document.add_paragraph()
    _add_text(p, "No answer" if a.abstained else "Answer", bold=True)
    _add_text(p, f", in {language_name(a.answer_language)}: ")
    by_n = {q.n: q for q in entry.quotes}
    numbers: dict[int, int] = {}
    for part in split_markers(a.answer, list(by_n)):
        if isinstance(part, int):
            numbers.setdefault(part, notes.add(p, _footnote_parts(qi, by_n[part])))
        else:
            _add_text(p, part, a.answer_language)
    return numbers


def _footer(document, summary: CitedSummary) -> None:
    footer = document.sections[0].footer
    p = footer.paragraphs[0]
    p.style = document.styles["Source Note"]
    p.paragraph_format.left_indent = Pt(0)
    _add_text(p, summary.short_footer() + " Page ")
    run = p.add_run()
    fld = parse_xml(f'<w:fldSimple {nsdecls("w")} w:instr="PAGE"><w:r><w:t>1</w:t></w:r></w:fldSimple>')
    run._r.addnext(fld)


def render_docx(summary: CitedSummary) -> bytes:
    """The summary as a .docx file."""
    document = Document()
    _styles(document)
    props = document.core_properties
    props.title = "Cited summary"
    props.subject = "; ".join(e.question for e in summary.entries)[:250]
    props.created = datetime.fromisoformat(summary.meta.created.replace("Z", "+00:00"))
    props.comments = f"Every quote verified against the stored snapshots at {summary.verified_at}"
    notes = _Footnotes(document)

    document.add_heading("Cited summary", level=0)
    meta = summary.meta
    for label, value in (("Generated", meta.created), ("Index", meta.index_label()),
                         ("Contents", f"{len(summary.entries)} question(s), {summary.quote_count} quote(s), "
                                      f"{len(summary.sources)} source(s)")):
        p = document.add_paragraph()
        _add_text(p, f"{label}: ", bold=True)
        _add_text(p, value)

    for i, entry in enumerate(summary.entries, start=1):
        a = entry.answer
        document.add_heading(f"Question {i}", level=1)
        p = document.add_paragraph()
        _add_text(p, "Question", bold=True)
        _add_text(p, f", in {language_name(a.question_language)}: ")
        _add_text(p, xml_safe(entry.question), a.question_language)
        footnotes = _answer_paragraph(document, notes, i, entry)
        if entry.wording_note:
            _add_text(document.add_paragraph(), xml_safe(entry.wording_note), italic=True)
        if entry.quotes:
            document.add_heading(f"Citations for question {i}", level=2)
        for q in entry.quotes:
            p = document.add_paragraph()
            note = f"; footnote {footnotes[q.n]}" if q.n in footnotes else ""
            _add_text(p, citation_heading(q, note), bold=True)
            p.paragraph_format.keep_with_next = True
            qp = document.add_paragraph(style="Quote")
            run = _add_text(qp, q.quote, q.quote_language)
            if _base(q.quote_language) in UPRIGHT_SCRIPTS:
                run.italic = False  # the Quote style is italic; Devanagari and CJK have no italics
                run.font.cs_italic = False
            for fact in quote_facts(q):
                _add_text(document.add_paragraph(style="Source Note"), fact)

    document.add_heading("Bibliography", level=1)
    for s in summary.sources:
        p = document.add_paragraph()
        _add_text(p, f"[S{s.ref}] ", bold=True)
        _add_text(p, s.title, s.language, bold=True)
        p.paragraph_format.keep_with_next = True
        rows = source_facts(s)[1:]
        table = document.add_table(rows=len(rows), cols=2)
        table.style = document.styles["Table Grid"]
        table.autofit = False
        for row, (label, value) in zip(table.rows, rows):
            row.cells[0].width, row.cells[1].width = Cm(4.2), Cm(11.8)
            _add_text(row.cells[0].paragraphs[0], label, bold=True)
            _add_text(row.cells[1].paragraphs[0], value)
        document.add_paragraph()

    document.add_heading("Verification", level=1)
    _add_text(document.add_paragraph(), summary.footer().replace("`", ""))
    _footer(document, summary)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()
