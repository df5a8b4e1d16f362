"""Turn fetched bytes (HTML, PDF, DOCX, text, Markdown) into a Page: normalised text plus metadata.

The text is what gets stored, chunked and quoted, so it is normalised once here: NFC, ``\\n`` line
ends, no trailing spaces, paragraphs separated by exactly one blank line.
"""
from __future__ import annotations

import codecs
import io
import logging
import re
import unicodedata
import zipfile
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit

import charset_normalizer
from charset_normalizer.md import mess_ratio
from lxml.html import HtmlElement

from kb.errors import KBError
from kb.evidence.raw import FetchResult

log = logging.getLogger(__name__)

# Measured on tests/fixtures/pages (test_extract.py::test_html_extraction_quality_of_the_chosen_trafilatura_mode):
# favour-recall kept 26/26 expected passages, the balanced and precision modes 23/26 (they drop short clauses held in
# <div>s, e.g. a usage policy's list of prohibited uses); none of the three let boilerplate in (0/17).
FAVOR = {"favor_precision": False, "favor_recall": True}
# Below MIN_EXTRACTED_SIZE characters trafilatura swaps its result for a dump of the whole page
# (navigation and footer included) when that is longer, which it always is on short pages; 250 by
# default, which a short notice or a CJK article of a few sentences does not reach.
MIN_EXTRACTED_SIZE = 50
# htmldate guesses dates from loose text (a bare "2026" became 2026-01-01; a ToS page got 2010-01-10
# from nowhere visible), so its date is kept only when the page carries date markup (meta tags,
# <time>, JSON-LD, a dated URL); otherwise an explicit "Updated/Effective <date>" near the top counts.
_DATE_MARKUP = ('//meta[contains(translate(concat(@name, @property, @itemprop, @http-equiv), "DATEPUBLISHMODIFY",'
                ' "datepublishmodify"), "date") or contains(concat(@name, @property, @itemprop), "published")'
                ' or contains(concat(@name, @property, @itemprop), "modified")] | //time[@datetime]'
                ' | //*[@itemprop="datePublished" or @itemprop="dateModified" or @itemprop="dateCreated"]'
                ' | //script[@type="application/ld+json"][contains(., "datePublished") or contains(., "dateModified")]')
_URL_DATE = re.compile(r"/(19|20)\d{2}[/-](0?[1-9]|1[0-2])[/-](0?[1-9]|[12]\d|3[01])(/|-|$)")
_DATED = re.compile(r"\b(?:last\s+updated|updated|effective(?:\s+date)?|published|posted|dated|release\s+date)\b"
                    r"[\s:,-]*(?:on\s+|as\s+of\s+)?([^\n]{6,40})", re.I)


class ExtractError(KBError):
    """A document could not be turned into text; the message says what to do."""

    def __init__(self, message: str, item: str = "") -> None:
        super().__init__(message)
        self.item = item


@dataclass
class Page:
    """The extracted text of one document and what is known about it."""

    text: str
    title: str
    author: str
    date: str                  # YYYY-MM-DD or ""
    sitename: str
    url: str
    language: str              # declared language (ISO 639-1 when possible) or ""
    doctype: str
    meta: dict[str, Any] = field(default_factory=dict)


# -- normalisation ---------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_TRAILING = re.compile(r"[^\S\n]+\n")
_BLANKS = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """NFC, \\n line ends, no control characters or trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = _CONTROL.sub("", text).replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = _TRAILING.sub("\n", text + "\n")
    lines = [line if line.strip() else "" for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")


def join_paragraphs(paragraphs: Iterable[str]) -> str:
    """Normalise paragraphs and join the non-empty ones with one blank line."""
    return "\n\n".join(p for p in (normalize_text(p) for p in paragraphs) if p)


# -- character sets --------------------------------------------------------------------------------
# WHATWG practice: these labels mean their superset in real-world pages.
_SUPERSETS = {"latin_1": "cp1252", "ascii": "cp1252", "iso8859_1": "cp1252", "us_ascii": "cp1252",
              "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932", "euc_kr": "cp949", "iso8859_9": "cp1254",
              "tis_620": "cp874"}
_LATIN_SINGLE_BYTE = {"cp1250", "cp1252", "cp1254", "cp1257", "latin_1", "iso8859_2", "iso8859_3", "iso8859_4",
                      "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "mac_roman",
                      "mac_latin2", "mac_iceland", "mac_turkish", "cp437", "cp775", "cp850", "cp852", "cp858"}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:\-]+)""", re.I)


def _codec(label: str | None) -> str | None:
    """Python codec name for a charset label (with WHATWG supersets), or None when unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    return _SUPERSETS.get(name.replace("-", "_"), name)


def declared_charset(data: bytes) -> str | None:
    """Charset named by a <meta> tag or an XML declaration in the first 4 KB, if any."""
    head = data[:4096]
    m = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    return m.group(1).decode("ascii", errors="ignore") if m else None


def _detect(data: bytes) -> tuple[str, str] | None:
    """Guess the encoding with charset_normalizer, preferring windows-1252 among Latin look-alikes."""
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        return None
    guess, text = best.encoding, str(best)
    if guess in _LATIN_SINGLE_BYTE and guess != "cp1252":
        try:
            as_1252 = data.decode("cp1252")
        except UnicodeDecodeError:
            return text, guess
        if mess_ratio(as_1252, 1.0) <= mess_ratio(text, 1.0) + 0.05:
            return as_1252, "cp1252"
    return text, _SUPERSETS.get(guess, guess)


#: Bidi embedding/override/isolate controls and invisible zero-width characters: they can make a quote
#: read differently from what it is, and no reader needs them. ZWJ and ZWNJ stay (Indic and Persian
#: spelling needs them). Removed before the text is stored, so every offset is into the cleaned text.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"))


def strip_invisible(text: str) -> str:
    """The text without bidi controls and zero-width spaces (joiners kept)."""
    return text.translate(_INVISIBLE) if text else text


def decode_bytes(data: bytes, declared: Iterable[str | None] = ()) -> tuple[str, str]:
    """Decode bytes: BOM, then valid UTF-8, then declared charsets that decode cleanly, then detection.

    A page that declares UTF-8 and is UTF-8 but for a few invalid bytes keeps its text: those bytes
    become U+FFFD (a Hindi or Chinese page is not turned into cp1252 mojibake by one stray byte).
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace"), codec
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    declared = list(declared)
    if any(_codec(label) == "utf-8" for label in declared):
        text = data.decode("utf-8", errors="replace")
        if text.count("\ufffd") <= max(4, len(text) // 1000):
            return text, "utf-8"
    for label in declared:
        declared_codec = _codec(label)
        if declared_codec and declared_codec != "utf-8":
            try:
                return data.decode(declared_codec), declared_codec
            except (UnicodeDecodeError, LookupError):
                log.debug("declared charset %s does not fit the bytes", label)
    detected = _detect(data)
    if detected:
        return detected
    return data.decode("cp1252", errors="replace"), "cp1252"


# -- document kinds --------------------------------------------------------------------------------
_HTML_TYPES = {"text/html", "application/xhtml+xml", "application/html"}
_DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_MD_TYPES = {"text/markdown", "text/x-markdown"}
_EXT_KINDS = {".html": "html", ".htm": "html", ".xhtml": "html", ".pdf": "pdf", ".docx": "docx",
              ".md": "markdown", ".markdown": "markdown", ".txt": "text"}
_BINARY_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                 (b"\x1f\x8b", "gzip-compressed data"), (b"PK\x03\x04", "a ZIP archive"),
                 (b"\xd0\xcf\x11\xe0", "a legacy Office (.doc/.xls) file"), (b"RIFF", "a RIFF media file"),
                 (b"OggS", "an Ogg media file"), (b"\x00\x00\x00", "binary data"), (b"ID3", "an MP3 file"),
                 (b"wOF", "a web font"), (b"\x7fELF", "an executable"))


def _extension(result: FetchResult, path_hint: str | None) -> str:
    """Lower-case file extension of the path hint or of the URL path."""
    path = path_hint or unquote(urlsplit(result.final_url or result.url).path)
    return PurePosixPath(path.replace("\\", "/")).suffix.lower()


def _binary_kind(data: bytes) -> str | None:
    """What a byte string is when it is clearly not text, else None."""
    head = data[:4096]
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            return what
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    if b"\x00" in head:
        return "binary data (it contains NUL bytes)"
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return "binary data" if head and controls / len(head) > 0.1 else None


def _looks_like_html(data: bytes) -> bool:
    """True when text starts like an HTML document."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) and b"<html" in data[:4096].lower()


def _is_docx(data: bytes) -> bool:
    """True when the bytes are a ZIP package holding word/document.xml."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        return "word/document.xml" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError, EOFError):
        return False


_UNTYPED = {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}


def document_kind(result: FetchResult, path_hint: str | None = None) -> str:
    """html | pdf | docx | markdown | text | doc | unsupported, from magic bytes, content type and extension."""
    data, mime, ext = result.content, (result.content_type or "").lower(), _extension(result, path_hint)
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return "pdf"
    if _is_docx(data):
        return "docx"
    if mime == "application/pdf":
        return "pdf"
    if mime == _DOCX_TYPE:
        return "docx"
    if mime in _HTML_TYPES:
        return "html"
    if mime in _MD_TYPES:
        return "markdown"
    if mime == "application/msword" or ext == ".doc":
        return "doc"
    if mime == "text/plain" or mime in _UNTYPED:
        kind = _EXT_KINDS.get(ext) or ("html" if _looks_like_html(data) else "text")
        if mime == "text/plain" and kind in ("pdf", "docx"):
            kind = "text"
        return "html" if kind == "text" and _looks_like_html(data) else kind
    if mime in ("application/xml", "text/xml") and _looks_like_html(data):
        return "html"
    return "unsupported"


def _item(result: FetchResult, path_hint: str | None) -> str:
    """How to name the document in messages: its path or URL."""
    return path_hint or result.final_url or result.url


def extract_document(result: FetchResult, path_hint: str | None = None) -> Page:
    """Extract text and metadata from fetched bytes, dispatching on content type and extension."""
    item = _item(result, path_hint)
    if result.not_modified:
        raise ExtractError(f"{item} was not modified (HTTP 304): there is nothing new to extract; keep the stored "
                           "version", item)
    kind = document_kind(result, path_hint)
    if kind == "doc":
        raise ExtractError(f"{item} is a legacy Word .doc file, which cannot be read; save it as .docx or PDF", item)
    if kind == "unsupported":
        raise ExtractError(f"{item} has content type {result.content_type!r}, which is not a supported document; "
                           "point the source at an HTML page, PDF, DOCX, TXT or MD file", item)
    if kind in ("html", "text", "markdown"):
        binary = _binary_kind(result.content)
        if binary:
            raise ExtractError(f"{item} is not text/HTML: it was served as {result.content_type or 'unknown type'} "
                               f"but looks like {binary}; check that the URL points at the document itself", item)
    if kind == "markdown":
        page = extract_text(result, path_hint, markdown=True)
    else:
        extractor = {"html": extract_html, "pdf": extract_pdf, "docx": extract_docx, "text": extract_text}[kind]
        page = extractor(result, path_hint)
    page.text = strip_invisible(page.text)
    page.title = strip_invisible(page.title)
    if not page.date and kind != "html":
        page.date = text_date(page.text)
        if page.date:
            page.meta["date_source"] = "text"
    page.meta.setdefault("date_source", "metadata" if page.date else "")
    page.meta.setdefault("content_type", result.content_type)
    page.meta.setdefault("format", kind)
    if result.encoding:
        page.meta.setdefault("declared_charset", result.encoding)  # so that verify can extract it again
    return page


# -- HTML ------------------------------------------------------------------------------------------
_BLOCK_TAGS = {"p", "head", "list", "item", "table", "quote", "code", "div", "section", "graphic", "row"}
_WS = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_PARA = "\u2029"   # paragraph break marker while text is assembled


def _raw(text: str | None, keep_newlines: bool) -> str:
    """A text node; its own newlines separate paragraphs (only trafilatura's baseline dump keeps them)."""
    return (text or "") if keep_newlines else (text or "").replace("\n", _PARA)


def _inline_text(el: Any, keep_newlines: bool = False) -> str:
    """Text of an element of trafilatura's XML, with <lb/> as a line break."""
    keep_newlines = keep_newlines or el.tag == "code"
    parts = [_raw(el.text, keep_newlines)]
    for child in el:
        parts.append("\n" if child.tag == "lb" else _inline_text(child, keep_newlines))
        parts.append(_raw(child.tail, keep_newlines))
    return "".join(parts)


def _clean_inline(text: str) -> str:
    """Collapse white space inside each line of a paragraph."""
    return "\n".join(_WS.sub(" ", line).strip() for line in text.split("\n")).strip()


def _table_text(table: Any) -> str:
    """A table as one paragraph: one line per row, cells joined by ' | '."""
    rows = []
    for row in table.iter("row"):
        cells = [_WS.sub(" ", _inline_text(c).replace(_PARA, " ")).strip() for c in row if c.tag == "cell"]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _emit(el: Any, out: list[str], prefix: str = "") -> None:
    """Append the paragraphs of one element of trafilatura's XML body to ``out``."""
    if el.tag == "table":
        out.append(_table_text(el))
        return
    if el.tag == "graphic":
        return
    if el.tag == "list":
        ordered = el.get("rend") == "ol"
        for n, item in enumerate((c for c in el if c.tag == "item"), 1):
            _emit(item, out, f"{n}. " if ordered else "- ")
        return
    keep = el.tag == "code"
    buf = [_raw(el.text, keep)]
    for child in el:
        if child.tag in _BLOCK_TAGS:
            prefix = _flush(buf, out, prefix)
            _emit(child, out)
            buf = [_raw(child.tail, keep)]
        else:
            buf += ["\n" if child.tag == "lb" else _inline_text(child, keep), _raw(child.tail, keep)]
    _flush(buf, out, prefix)


def _flush(buf: list[str], out: list[str], prefix: str) -> str:
    """Append buffered inline text as paragraphs; return the prefix still unused."""
    for part in "".join(buf).split(_PARA):
        text = _clean_inline(part)
        if text:
            out.append(prefix + text)
            prefix = ""
    return prefix


def body_paragraphs(body: Any) -> list[str]:
    """Paragraphs of trafilatura's XML body (headings, paragraphs, list items, tables, quotes)."""
    out: list[str] = []
    if body is not None:
        for child in body:
            _emit(child, out)
    return out


_FALLBACK_DROP = ("script", "style", "noscript", "template", "svg", "head", "iframe", "object", "canvas")
_FALLBACK_BLOCKS = {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "table",
                    "section", "article", "header", "footer", "nav", "aside", "main", "blockquote", "pre", "figure",
                    "figcaption", "form", "hr", "address", "details", "summary", "body"}


def fallback_text(tree: HtmlElement) -> str:
    """A plain text dump of an HTML tree, one paragraph per block element."""
    tree = deepcopy(tree)
    for el in list(tree.iter(*_FALLBACK_DROP)):
        if el.getparent() is not None:
            el.drop_tree()
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        # Source layout is not text; characters XML cannot hold (a decoded "&#0;") are dropped.
        text = _XML_ILLEGAL.sub("", _WS.sub(" ", el.text or ""))
        tail = _XML_ILLEGAL.sub("", _WS.sub(" ", el.tail or ""))
        if el.tag in ("br", "tr"):
            tail = "\u2028" + tail
        elif el.tag in ("td", "th") and el.getnext() is not None:
            tail = " | " + tail
        elif el.tag in _FALLBACK_BLOCKS:
            text, tail = _PARA + text, _PARA + tail
        el.text, el.tail = text, tail
    raw = tree.text_content()
    return join_paragraphs(_clean_inline(p.replace("\u2028", "\n")) for p in raw.split(_PARA))


def _declared_language(tree: HtmlElement) -> tuple[str, str]:
    """(ISO 639-1-ish code, raw value) of <html lang>, Content-Language or og:locale."""
    raw = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
    if not raw:
        for xpath in ('//meta[translate(@http-equiv, "CONTENT-LANGUAGE", "content-language")'
                      '="content-language"]/@content', '//meta[@property="og:locale"]/@content'):
            found = tree.xpath(xpath)
            if found:
                raw = str(found[0])
                break
    raw = raw.split(",")[0].strip()
    return language_code(raw), raw


def language_code(value: str) -> str:
    """'en-US' / 'zh_Hans' / 'EN' -> 'en'; '' when it does not look like a language tag."""
    primary = re.split(r"[-_]", value.strip(), maxsplit=1)[0].lower()
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else ""


def _html_title(tree: HtmlElement) -> str:
    """The <title> text, if any."""
    found = tree.xpath("//title")
    return _WS.sub(" ", found[0].text_content()).strip() if found else ""


def _date_params() -> dict[str, Any]:
    """htmldate settings: markup only, original (not modified) date, nothing in the future."""
    return {"extensive_search": False, "original_date": True, "outputformat": "%Y-%m-%d",
            "max_date": date.today().isoformat()}


def text_date(text: str) -> str:
    """A date stated as 'Last updated …', 'Effective …' etc. in the first 1,500 characters, or ''."""
    for m in _DATED.finditer(text[:1500]):
        found = parse_date(m.group(1))
        if found:
            return found
    return ""


def _html_date(tree: HtmlElement, url: str) -> str:
    """A publication date found by htmldate in the page markup (YYYY-MM-DD) or ''."""
    from htmldate import find_date

    try:
        found = find_date(deepcopy(tree), url=url or None, **_date_params())
    except Exception as err:  # noqa: BLE001 - htmldate failing only costs the date
        log.debug("htmldate failed on %s: %s", url, err)
        return ""
    return found or ""


def _page_date(tree: HtmlElement, url: str, doc: Any, text: str) -> tuple[str, str]:
    """(YYYY-MM-DD or '', where it came from): dated markup first, then an explicit statement in the text."""
    if tree.xpath(_DATE_MARKUP) or _URL_DATE.search(urlsplit(url).path):
        found = (doc.date if doc is not None and doc.date else "") or _html_date(tree, url)
        if found:
            return found, "markup"
    found = text_date(text)
    return (found, "text") if found else ("", "")


@lru_cache(maxsize=1)
def _trafilatura_config() -> Any:
    """trafilatura's default configuration with our minimum extracted size."""
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", str(MIN_EXTRACTED_SIZE))
    return config


#: Characters XML (and lxml) cannot hold: C0 controls other than tab, newline and carriage return.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def extract_html(result: FetchResult, path_hint: str | None = None) -> Page:
    """Main text and metadata of an HTML page via trafilatura, with an lxml fallback."""
    from trafilatura import bare_extraction
    from trafilatura.utils import load_html

    item = _item(result, path_hint)
    html, encoding = decode_bytes(result.content, [result.encoding, declared_charset(result.content)])
    html = _XML_ILLEGAL.sub("", html)  # NULs and C0 controls break lxml (found by tests/unit/test_fuzz_inputs.py)
    tree = load_html(html)
    if tree is None:  # a bare fragment: trafilatura wants a whole document
        tree = load_html(f"<html><body>{html}</body></html>")
    if tree is None:
        raise ExtractError(f"{item} could not be parsed as HTML; check that the URL serves a web page", item)
    url = result.final_url or result.url
    lang, raw_lang = _declared_language(tree)
    doc: Any = bare_extraction(tree, url=url if url.startswith("http") else None, with_metadata=True,
                          include_tables=True, include_comments=False, include_images=False,
                          date_extraction_params=_date_params(), prune_xpath="//noscript",
                          config=_trafilatura_config(), favor_precision=FAVOR["favor_precision"],
                          favor_recall=FAVOR["favor_recall"])
    text = join_paragraphs(body_paragraphs(doc.body)) if doc is not None else ""
    extractor = "trafilatura"
    if not text:
        text, extractor = fallback_text(tree), "lxml"
    if not text:
        raise ExtractError(f"no text found in {item}; the page may be built by JavaScript or be empty: "
                           "use a static, print or RSS version of it", item)
    meta: dict[str, Any] = {"encoding": encoding, "extractor": extractor}
    found_date, meta["date_source"] = _page_date(tree, url, doc, text)
    if raw_lang:
        meta["lang_declared"] = raw_lang
    if doc is not None:
        for key in ("description", "hostname", "image", "pagetype", "license"):
            if getattr(doc, key, None):
                meta[key] = str(getattr(doc, key))
        for key in ("categories", "tags"):
            if getattr(doc, key, None):
                meta[key] = [str(v) for v in getattr(doc, key)]
    return Page(text=text, title=(doc.title if doc is not None and doc.title else _html_title(tree)),
                author=(doc.author or "") if doc is not None else "",
                date=found_date,
                sitename=(doc.sitename or "") if doc is not None else "",
                url=(doc.url if doc is not None and doc.url and doc.url.startswith("http") else url),
                language=lang, doctype="", meta=meta)


# -- PDF -------------------------------------------------------------------------------------------
def _stem(result: FetchResult, path_hint: str | None) -> str:
    """File name without extension, as a last-resort title."""
    path = path_hint or unquote(urlsplit(result.final_url or result.url).path)
    return PurePosixPath(path.replace("\\", "/")).stem


def _iso_day(value: Any) -> str:
    """A PDF metadata date as YYYY-MM-DD, or ''."""
    return value.strftime("%Y-%m-%d") if isinstance(value, (date, datetime)) else ""


def _join_pages(texts: list[str]) -> tuple[str, list[int]]:
    """Join page texts with a blank line; return the text and each page's start offset."""
    parts: list[str] = []
    offsets: list[int] = []
    pos = 0
    for text in texts:
        if parts and text:
            pos += 2
        offsets.append(pos)
        if text:
            parts.append(text)
            pos += len(text)
    joined = "\n\n".join(parts)
    return joined, [min(o, len(joined)) for o in offsets]


def extract_pdf(result: FetchResult, path_hint: str | None = None) -> Page:
    """Text of every page of a PDF (pypdf), pages joined by a blank line, offsets in meta['pages']."""
    from pypdf import PdfReader

    item, data = _item(result, path_hint), result.content
    if b"%%EOF" not in data[-4096:]:
        raise ExtractError(f"{item} is a truncated or damaged PDF (no end-of-file marker); download it again "
                           "or replace the file", item)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractError(f"{item} is a password-protected PDF; provide an unencrypted copy", item)
        texts = [normalize_text(page.extract_text() or "") for page in reader.pages]
    except ExtractError:
        raise
    except Exception as err:
        raise ExtractError(f"{item} is a damaged PDF that cannot be read ({type(err).__name__}: {err}); "
                           "download it again or replace the file", item) from err
    text, offsets = _join_pages(texts)
    if not text:
        raise ExtractError(f"{item} has no extractable text (a scanned or damaged PDF?); run OCR on it "
                           "(e.g. ocrmypdf) and ingest the OCR'd file", item)
    info = _pdf_info(reader)
    return Page(text=text, title=info.get("title") or _stem(result, path_hint), author=info.get("author", ""),
                date=info.get("date", ""), sitename="", url=result.final_url or result.url, language="",
                doctype="", meta={"pages": offsets, "page_count": len(texts)})


def _pdf_info(reader: Any) -> dict[str, str]:
    """Title, author and creation date from the PDF's document information, when readable."""
    try:
        meta = reader.metadata
        if meta is None:
            return {}
        return {"title": (meta.title or "").strip(), "author": (meta.author or "").strip(),
                "date": _iso_day(meta.creation_date)}
    except Exception as err:  # noqa: BLE001 - broken metadata only costs the metadata
        log.debug("unreadable PDF metadata: %s", err)
        return {}


# -- DOCX ------------------------------------------------------------------------------------------
def _docx_blocks(document: Any) -> list[str]:
    """Paragraphs, headings and tables of a Word document in order."""
    from docx.table import Table

    blocks = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = []
            for row in block.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells))  # merged cells repeat
                if any(cells):
                    rows.append(" | ".join(cells))
            blocks.append("\n".join(rows))
        else:
            blocks.append(block.text)
    return blocks


#: Most bytes a DOCX may expand to (all parts) and one part may expand to, before anything parses it:
#: the size cap counts compressed bytes, and XML compresses a thousandfold.
MAX_DOCX_EXPANDED = 100 * 1024 * 1024
MAX_DOCX_PART = 50 * 1024 * 1024


def _check_zip_expansion(data: bytes, item: str) -> None:
    """Refuse a ZIP container whose parts would expand past the limits (a "zip bomb")."""
    import zipfile

    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as err:
        raise ExtractError(f"{item} is not a readable DOCX file ({err}); open and re-save it in Word/LibreOffice",
                           item) from err
    largest = max((i.file_size for i in infos), default=0)
    total = sum(i.file_size for i in infos)
    if largest > MAX_DOCX_PART or total > MAX_DOCX_EXPANDED:
        raise ExtractError(f"{item} would expand to {total // (1024 * 1024)} MiB of XML (limit "
                           f"{MAX_DOCX_EXPANDED // (1024 * 1024)} MiB, {MAX_DOCX_PART // (1024 * 1024)} MiB a part); "
                           "it is not processed. Export it to PDF or split it", item)


def extract_docx(result: FetchResult, path_hint: str | None = None) -> Page:
    """Paragraphs, headings and tables of a DOCX (python-docx), one paragraph per block."""
    import docx

    item = _item(result, path_hint)
    _check_zip_expansion(result.content, item)
    try:
        document = docx.Document(io.BytesIO(result.content))
        text = join_paragraphs(_docx_blocks(document))
    except Exception as err:
        raise ExtractError(f"{item} is not a readable DOCX file ({type(err).__name__}: {err}); open and re-save it "
                           "in Word/LibreOffice, or export it to PDF", item) from err
    if not text:
        raise ExtractError(f"{item} contains no text; check that it is the right document", item)
    props = document.core_properties
    template = (props.author or "") == "python-docx"  # python-docx's template carries a fake author and 2013 dates
    return Page(text=text, title=(props.title or "").strip() or _stem(result, path_hint),
                author="" if template else (props.author or "").strip(),
                date="" if template else _iso_day(props.created), sitename="", url=result.final_url or result.url,
                language=language_code(props.language or ""), doctype="", meta={})


# -- text and Markdown -----------------------------------------------------------------------------
_FRONT_END = re.compile(r"^---[ \t]*$", re.M)
_MONTHS = {m: i for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                       "september", "october", "november", "december"], 1)}
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DATE_PATTERNS = (
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), ("y", "m", "d")),
    (re.compile(_MONTH + r"\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})(?!\d)", re.I), ("mon", "d", "y")),
    (re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH + r"\.?,?\s+(\d{4})(?!\d)", re.I), ("d", "mon", "y")),
)


def parse_date(value: str) -> str:
    """The first date in a free-text date ('Effective June 17, 2025 (…)') as YYYY-MM-DD, or ''."""
    for text in (re.sub(r"\([^)]*\)", " ", value), value):
        found = []
        for pattern, order in _DATE_PATTERNS:
            for m in pattern.finditer(text):
                parts = dict(zip(order, m.groups()))
                month = int(parts["m"]) if "m" in parts else _month_number(parts["mon"])
                try:
                    found.append((m.start(), date(int(parts["y"]), month, int(parts["d"])).isoformat()))
                except ValueError:
                    continue
        if found:
            return min(found)[1]
    return ""


def _month_number(name: str) -> int:
    """1-12 for an English month name or abbreviation."""
    name = name.lower()
    return next(i for full, i in _MONTHS.items() if full.startswith(name[:3]))


def summary_of(value: str) -> list[str]:
    """The http(s) URLs of a ``summary_of:`` front-matter line (the reporting a summary is based on),
    separated by spaces, commas or semicolons; anything else on the line is ignored."""
    found = (u.strip().rstrip(".,;") for u in re.split(r"[\s,;]+", value or ""))
    return list(dict.fromkeys(u for u in found if re.match(r"https?://[^\s/]+\.[^\s]+", u)))


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """(metadata, body) of a text that begins with one ``---`` … ``---`` block; the first block only."""
    if not text.startswith("---\n"):
        return {}, text
    end = _FRONT_END.search(text, 4)
    if end is None:
        return {}, text
    meta: dict[str, str] = {}
    for line in text[4:end.start()].splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t", "#")):
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[end.end():].lstrip("\n")


_MD_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"!\[([^\]]*)\]\((?:[^()\s]|\([^)\s]*\))*(?:\s+\"[^\"]*\")?\)"), r"\1"),
    (re.compile(r"\[([^\]]*)\]\((?:[^()\s]|\([^)\s]*\))*(?:\s+\"[^\"]*\")?\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),
    (re.compile(r"\*\*(?!\s)(.+?)(?<!\s)\*\*"), r"\1"),
    (re.compile(r"(?<!\w)__(?!\s)(.+?)(?<!\s)__(?!\w)"), r"\1"),
    (re.compile(r"(?<![\w*])\*(?![\s*])(.+?)(?<![\s*])\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w_])_(?![\s_])(.+?)(?<![\s_])_(?![\w_])"), r"\1"),
    (re.compile(r"~~(.+?)~~"), r"\1"),
    (re.compile(r"`([^`\n]+)`"), r"\1"),
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),
)
_MD_BREAK_LINE = re.compile(r"^\s*(=+|-{3,}|\*{3,}|_{3,}|(- ){2,}-)\s*$")            # setext underline, rule
_MD_DROP_LINE = re.compile(r"^\s*(```.*|~~~.*|\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?)\s*$")  # fence, table rule
_MD_REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_MD_QUOTE = re.compile(r"^\s{0,3}>\s?")
_MD_SIGNALS = (re.compile(r"^\s{0,3}#{1,6}\s", re.M), re.compile(r"\n=+[ \t]*\n"), re.compile(r"\]\(https?://"),
               re.compile(r"\*\*\S"), re.compile(r"^\s*[-*]\s+\S", re.M))


def looks_like_markdown(text: str) -> bool:
    """True when a plain-text file uses at least two kinds of Markdown markup."""
    return sum(1 for s in _MD_SIGNALS if s.search(text)) >= 2


def render_markdown(text: str) -> str:
    """Markdown as readable text: markup removed (links keep their text), wording and line order kept."""
    out: list[str] = []
    for line in text.split("\n"):
        if _MD_DROP_LINE.match(line):
            continue
        if _MD_BREAK_LINE.match(line) or _MD_REFDEF.match(line):
            out.append("")
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            out += ["", heading.group(1), ""]
            continue
        line = _MD_QUOTE.sub("", line)
        for pattern, repl in _MD_RULES:
            line = pattern.sub(repl, line)
        out.append(line)
    return "\n".join(out)


def _first_line_title(body: str) -> str:
    """The first non-empty line, when short enough to be a title."""
    for line in body.split("\n"):
        if line.strip():
            return line.strip() if len(line.strip()) <= 200 else ""
    return ""


def extract_text(result: FetchResult, path_hint: str | None = None, markdown: bool = False) -> Page:
    """A .txt/.md document: decoded, front matter read, Markdown markup removed, normalised."""
    raw, encoding = decode_bytes(result.content, [result.encoding])
    raw = raw.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    front, body = split_front_matter(raw)
    is_markdown = markdown or looks_like_markdown(body)
    text = normalize_text(render_markdown(body) if is_markdown else body)
    item = _item(result, path_hint)
    if not text:
        raise ExtractError(f"{item} contains no text after its front matter; check the file", item)
    meta: dict[str, Any] = {"encoding": encoding, "markup": "markdown" if is_markdown else "plain"}
    if front:
        meta["front_matter"] = dict(front)
    if front.get("publisher"):
        meta["publisher"] = front["publisher"]
    if front.get("date"):
        meta["date_raw"] = front["date"]
    originals = summary_of(front.get("summary_of", ""))
    if originals:
        meta["summary_of"] = originals
    return Page(text=text, title=front.get("title") or _first_line_title(text) or _stem(result, path_hint),
                author=front.get("author", ""), date=parse_date(front.get("date", "")),
                sitename=front.get("publisher", ""), url=front.get("url", "") or result.final_url or result.url,
                language=language_code(front.get("language", "")), doctype=front.get("doctype", ""), meta=meta)
