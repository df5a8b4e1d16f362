"""The export model: questions with their answers, verified pinpoint citations and a bibliography.

``build_summary`` is the only way to a ``CitedSummary``: it re-checks every quote against the
registry before anything is rendered (the raw snapshot is re-hashed with ``verify_snapshot``, the
stored text is hash-checked by ``version_text`` and must equal the text extracted again from the
snapshot, and ``quote == text[start:end]``), computes each
quote's pinpoint, and numbers the sources. A quote that fails makes ``ExportError`` name it; nothing
is dropped silently. The renderers only format what this model holds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from kb.errors import CitationError, KBError
from kb.evidence.rederive import check_rederived
from kb.export.pinpoint import Pinpoint, compute_pinpoint
from kb.models import Answer, Citation
from kb.registry import Registry
from kb.settings import Settings
from kb.text.language import detect_language, language_name
from kb.times import FOREVER, iso_of_epoch, now_iso

FORMATS = ("md", "docx", "pdf", "json")
SCHEMA = "kb-export/1"
MARKER = re.compile(r"\[(\d+)\]")

VERIFICATION_METHOD = ("the raw snapshot was re-hashed (SHA-256), its text extracted again and found equal to the "
                       "stored, hash-checked text of its version, and the quote compared with that text at the cited "
                       "character offsets")


class ExportError(CitationError):
    """An export was refused: a quote did not verify, or the output cannot be rendered faithfully."""


_NON_LATIN = {"hi", "mr", "ne", "zh", "ja", "ko", "ru", "uk", "bg", "ar", "ur", "fa", "he", "el", "bn", "ta", "te",
              "th", "gu", "pa", "kn", "ml"}


def quote_language(quote: str, passage_language: str) -> str:
    """The quote's own language: its passage's, unless the quote is plainly in another script.

    A bilingual passage (an English article with Chinese translations) is labelled with one language;
    a Chinese sentence quoted from it is Chinese. Between Latin-script languages the passage's label,
    detected on more text, is the better guess.
    """
    base = (passage_language or "und").split("-")[0].lower()
    detected = detect_language(quote)
    if detected == "und":
        return base
    if base == "und" or (detected != base and (detected in _NON_LATIN or base in _NON_LATIN)):
        return detected
    return base


def same_language(a: str, b: str) -> bool:
    """True when two ISO codes name the same language (an undetermined side counts as the same)."""
    a, b = (a or "und").split("-")[0].lower(), (b or "und").split("-")[0].lower()
    return a == b or "und" in (a, b)


# -- model --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportMeta:
    """When and from which index a summary was made."""

    created: str
    data_dir: str
    registry: str
    collection: str
    store: str
    embedder: str
    generation: int = 0

    def index_label(self) -> str:
        return (f"{self.data_dir} (collection {self.collection!r}, {self.store} store, embedder {self.embedder}, "
                f"registry generation {self.generation})")

    def to_json(self) -> dict[str, Any]:
        return {"created": self.created, "data_dir": self.data_dir, "registry": self.registry,
                "collection": self.collection, "store": self.store, "embedder": self.embedder,
                "generation": self.generation}


@dataclass
class SourceEntry:
    """One bibliography entry: a document version that at least one quote comes from."""

    ref: int
    doc_id: str
    version_id: str
    title: str
    publisher: str
    author: str
    published: str
    doctype: str
    language: str
    url: str
    retrieved: str
    snapshot_sha: str
    version_number: int
    version_count: int
    valid_from: str
    valid_to: str  # "" for the current version
    effective_date: str = ""
    #: The original reporting a summary (doctype ``summary``) is based on, from its front matter.
    summary_of: tuple[str, ...] = ()

    @property
    def version_label(self) -> str:
        """``"version 1 of 2 (superseded 2026-07-08T…Z)"``; ``"only version"`` for single-version documents."""
        state = f"superseded {self.valid_to}" if self.valid_to else "current"
        if self.version_count <= 1:
            return f"only version ({state})"
        return f"version {self.version_number} of {self.version_count} ({state})"

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "doc_id": self.doc_id, "version_id": self.version_id, "title": self.title,
                "publisher": self.publisher, "author": self.author, "published": self.published,
                "doctype": self.doctype, "language": self.language, "url": self.url, "retrieved": self.retrieved,
                "snapshot_sha256": self.snapshot_sha, "version": self.version_label,
                "version_number": self.version_number, "version_count": self.version_count,
                "valid_from": self.valid_from, "valid_to": self.valid_to or None,
                "effective_date": self.effective_date, "summary_of": list(self.summary_of)}


@dataclass
class CitedQuote:
    """A verified citation of an answer with its pinpoint and the source it belongs to."""

    citation: Citation
    source: SourceEntry
    pinpoint: Pinpoint
    quote_language: str
    question_language: str

    @property
    def n(self) -> int:
        return self.citation.n

    @property
    def quote(self) -> str:
        return self.citation.quote

    @property
    def foreign(self) -> bool:
        """The quote is in another language than the question (shown verbatim, marked, not translated)."""
        return not same_language(self.quote_language, self.question_language)

    def language_note(self) -> str:
        """The translation-aid line: the quote's language, and that it is verbatim."""
        note = f"Quote language: {language_name(self.quote_language)}; verbatim from the source"
        if self.foreign:
            note += (f", not translated (the question is in {language_name(self.question_language)}; "
                     "no paraphrase is presented as a quote)")
        return note

    def to_json(self) -> dict[str, Any]:
        """The ``kb ask --json`` citation, unchanged, plus the export's pinpoint and verification fields."""
        return {**self.citation.to_json(), "source_ref": self.source.ref, "pinpoint": self.pinpoint.to_json(),
                "quote_language": self.quote_language, "verbatim": True,
                "language_differs_from_question": self.foreign, "snapshot_sha256": self.source.snapshot_sha,
                "verified": True}


@dataclass
class ExportEntry:
    """One question with its answer and verified quotes."""

    answer: Answer
    quotes: list[CitedQuote] = field(default_factory=list)

    @property
    def question(self) -> str:
        return self.answer.question

    @property
    def wording_note(self) -> str:
        """Who wrote the answer's wording: a model (only the quotes are verified) or nobody (verbatim quotes)."""
        a = self.answer
        if a.mode == "generated":
            return (f"Generated by {a.model}: the wording is machine-generated and may be wrong; each claim is "
                    "shown only with quotes that were verified verbatim in the sources (below).")
        if a.fallback_reason:
            return f"Extractive (generation was requested but fell back: {a.fallback_reason})."
        return ""

    def to_json(self) -> dict[str, Any]:
        out = self.answer.to_json()
        out["citations"] = [q.to_json() for q in self.quotes]
        return out


@dataclass
class CitedSummary:
    """Everything a rendered export shows."""

    meta: ExportMeta
    entries: list[ExportEntry]
    sources: list[SourceEntry]
    verified_at: str

    @property
    def quote_count(self) -> int:
        return sum(len(e.quotes) for e in self.entries)

    def footer(self) -> str:
        """The statement every format ends with."""
        made = f"Generated {self.meta.created} by `kb export` from the index {self.meta.index_label()}. "
        models = sorted({e.answer.model or "" for e in self.entries if e.answer.mode == "generated"})
        if models:
            made += (f"The wording of {sum(e.answer.mode == 'generated' for e in self.entries)} answer(s) was "
                     f"machine-generated by {', '.join(models)}; only their quotes are verified. ")
        if not self.quote_count:
            return made + "It contains no quotes (no question was answered from the sources)."
        return made + (f"Every quote ({self.quote_count}) was verified against the stored snapshot at export time "
                       f"({self.verified_at}): {VERIFICATION_METHOD}.")

    def short_footer(self) -> str:
        """The one-line page footer of DOCX and PDF."""
        made = (f"Cited summary generated {self.meta.created} from index {self.meta.data_dir} "
                f"(collection {self.meta.collection}). ")
        if not self.quote_count:
            return made + "It contains no quotes."
        return made + f"All {self.quote_count} quotes verified against the stored snapshots at export time."

    def all_text(self) -> str:
        """Every string a renderer may show (for font coverage checks)."""
        parts: list[str] = [self.footer()]
        for e in self.entries:
            parts += [e.question, e.answer.answer, e.wording_note]
            for q in e.quotes:
                parts += [q.quote, q.citation.title]
                parts += [str(a.get("title", "")) + str(a.get("publisher", "")) for a in q.citation.also_reported_by]
        for s in self.sources:
            parts += [s.title, s.publisher, s.author, s.url, s.published, s.effective_date]
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"format": SCHEMA, "created": self.meta.created, "index": self.meta.to_json(),
                "verification": {"verified_at": self.verified_at, "quotes_verified": self.quote_count,
                                 "method": VERIFICATION_METHOD},
                "questions": [e.to_json() for e in self.entries],
                "bibliography": [s.to_json() for s in self.sources],
                "footer": self.footer()}


# -- building -----------------------------------------------------------------------------------
def export_meta(settings: Settings, registry: Registry, embedder_id: str | None = None,
                created: str | None = None) -> ExportMeta:
    """Export metadata for an index; the embedder id is read from the store when not given."""
    if not embedder_id:
        embedder_id = _stored_embedder(settings) or settings.embed_model
    # Named, never located: an export leaves the machine, so it carries the data directory's and the
    # registry's names, not local absolute paths.
    return ExportMeta(created=created or now_iso(), data_dir=Path(settings.data_dir).resolve().name,
                      registry=Path(registry.path).name, collection=settings.collection,
                      store=settings.store_mode, embedder=embedder_id, generation=registry.generation())


def display_url(url: str) -> str:
    """A URL as an export shows it: a local file by its name only (``local file demo-brief.md``), since
    the absolute path means nothing to a reader and tells them about this machine."""
    if url.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        return f"local file {Path(unquote(urlsplit(url).path)).name}"
    return url


def _stored_embedder(settings: Settings) -> str | None:
    """The embedder recorded on the collection (None when the store cannot be opened)."""
    if settings.store_mode == "embedded" and not settings.chroma_dir.exists():
        return None  # opening would create an empty store beside a registry-only copy
    try:
        from kb.vectors.store import open_store

        return open_store(settings, create=False).embedder_id
    except Exception:  # noqa: BLE001 - metadata only; the settings' model name is the fallback
        return None


def _as_answers(items: Iterable[Answer | tuple[str, Answer]]) -> list[Answer]:
    out = []
    for item in items:
        if isinstance(item, tuple):
            question, ans = item
            if question and question.strip() != ans.question.strip():
                raise ExportError(f"the question {question!r} does not match its answer's question {ans.question!r}")
            out.append(ans)
        else:
            out.append(item)
    return out


class _Verifier:
    """Reads each version once: re-hashes its raw snapshot and loads its hash-checked text."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.cache: dict[str, tuple[Any, str] | str] = {}

    def load(self, version_id: str) -> tuple[Any, str]:
        """``(VersionRow, text)`` or raises ``ExportError`` with the reason."""
        if version_id not in self.cache:
            self.cache[version_id] = self._load(version_id)
        got = self.cache[version_id]
        if isinstance(got, str):
            raise ExportError(got)
        return got

    def _load(self, version_id: str) -> tuple[Any, str] | str:
        v = self.registry.version(version_id)
        if v is None:
            return f"version {version_id} is not in the registry {self.registry.path}"
        if not v.snapshot_sha:
            return f"version {version_id} has no raw snapshot recorded, so its quotes cannot be verified"
        try:
            self.registry.verify_snapshot(v.snapshot_sha)
            text = self.registry.version_text(version_id)
            check_rederived(self.registry, version_id, text)
        except KBError as exc:
            return str(exc)
        return v, text


def _source_entry(registry: Registry, v: Any, ref: int, citation: Citation) -> SourceEntry:
    doc = registry.document(v.doc_id) or {}
    versions = [x for x in registry.versions(v.doc_id) if x.status == "indexed" or x.version_id == v.version_id]
    ids = [x.version_id for x in versions]
    number = ids.index(v.version_id) + 1 if v.version_id in ids else len(ids) + 1
    author = doc.get("author") or (v.meta or {}).get("author") or ""
    return SourceEntry(
        ref=ref, doc_id=v.doc_id, version_id=v.version_id, title=v.title or doc.get("title") or citation.title,
        publisher=doc.get("publisher") or citation.publisher or "", author=str(author or ""),
        published=v.published or doc.get("published") or citation.published or "",
        doctype=doc.get("doctype") or citation.doctype or "other", language=v.language or doc.get("language") or "und",
        url=doc.get("url") or citation.url, retrieved=v.retrieved, snapshot_sha=v.snapshot_sha or "",
        version_number=number, version_count=max(len(ids), number),
        valid_from=iso_of_epoch(v.valid_from),
        valid_to="" if v.valid_to >= FOREVER else iso_of_epoch(v.valid_to),
        effective_date=v.effective_date or "",
        summary_of=tuple(u for u in (v.meta or {}).get("summary_of", []) if isinstance(u, str)))


def _describe(qi: int, c: Citation) -> str:
    quote = c.quote if len(c.quote) <= 80 else c.quote[:77] + "..."
    return f"citation [{c.n}] of question {qi} ({c.title or c.url}, version {c.version_id}, quote {quote!r})"


def _check_answer(qi: int, ans: Answer) -> list[str]:
    """Structural problems: an answer without citations, markers without a citation."""
    problems = []
    numbers = [c.n for c in ans.citations]
    if not ans.abstained and not ans.citations:
        problems.append(f"question {qi} ({ans.question!r}) has an answer without citations; "
                        "an uncited answer cannot be exported")
    if len(set(numbers)) != len(numbers):
        problems.append(f"question {qi} has duplicate citation numbers {numbers}")
    for claim in ans.claims:
        if not claim.citations or not set(claim.citations) <= set(numbers):
            problems.append(f"question {qi}: the claim {claim.text[:60]!r} cites {claim.citations}, not all of "
                            f"which are citations of the answer {numbers}")
    for m in MARKER.finditer(ans.answer):
        if int(m.group(1)) not in numbers:
            problems.append(f"question {qi}: the answer refers to [{m.group(1)}] but has no citation {m.group(1)}")
    return problems


def build_summary(answers: Iterable[Answer | tuple[str, Answer]], registry: Registry, meta: ExportMeta) -> CitedSummary:
    """Verify every quote against the registry and assemble the export model (``ExportError`` on failure)."""
    items = _as_answers(answers)
    if not items:
        raise ExportError("nothing to export: no question was given")
    verifier = _Verifier(registry)
    failures: list[str] = []
    sources: dict[str, SourceEntry] = {}
    entries: list[ExportEntry] = []
    for qi, ans in enumerate(items, start=1):
        failures += _check_answer(qi, ans)
        entry = ExportEntry(answer=ans)
        for c in ans.citations:
            try:
                v, text = verifier.load(c.version_id)
            except ExportError as exc:
                failures.append(f"{_describe(qi, c)}: {exc}")
                continue
            if v.doc_id != c.doc_id:
                failures.append(f"{_describe(qi, c)}: version {c.version_id} belongs to document {v.doc_id}, "
                                f"not {c.doc_id}")
                continue
            if not c.quote or not (0 <= c.start < c.end <= len(text)) or text[c.start:c.end] != c.quote:
                failures.append(f"{_describe(qi, c)}: the quote is not the stored text at characters "
                                f"{c.start}-{c.end} of that version")
                continue
            if c.version_id not in sources:
                sources[c.version_id] = _source_entry(registry, v, len(sources) + 1, c)
            src = sources[c.version_id]
            qlang = quote_language(c.quote, c.language or src.language)
            entry.quotes.append(CitedQuote(citation=c, source=src,
                                           pinpoint=compute_pinpoint(text, c.start, c.end, v.meta, src.doctype),
                                           quote_language=qlang, question_language=ans.question_language))
        entries.append(entry)
    if failures:
        raise ExportError(f"export refused: {len(failures)} quote(s) or answer(s) failed verification against "
                          "the stored snapshots (nothing was written):\n  - " + "\n  - ".join(failures))
    return CitedSummary(meta=meta, entries=entries, sources=list(sources.values()), verified_at=now_iso())


def split_markers(text: str, numbers: Sequence[int]) -> list[str | int]:
    """Answer text cut into literal strings and citation numbers (only numbers that exist)."""
    out: list[str | int] = []
    pos = 0
    for m in MARKER.finditer(text):
        n = int(m.group(1))
        if n not in numbers:
            continue
        if m.start() > pos:
            out.append(text[pos:m.start()])
        out.append(n)
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out
