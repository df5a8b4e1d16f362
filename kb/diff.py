"""What changed between two versions of a document, paragraph by paragraph.

``compare_versions(registry, "https://x.ai/legal/acceptable-use-policy")`` compares the current version
with the one before it; ``from_``/``to`` pick the versions the index held at two moments (a date or an
ISO-8601 date-time, as for ``--as-of``) or name version ids. Paragraphs are blank-line separated blocks
of the stored version text (list blocks are split per item); every change carries the character
offsets of its paragraphs in the stored texts, so the app can cite either side verbatim.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kb.errors import NotFound
from kb.registry import Registry, VersionRow
from kb.times import parse_when

#: Two paragraphs at least this similar (difflib ratio over words) count as one changed paragraph.
SAME_PARAGRAPH = 0.5
_BLOCK = re.compile(r"\S.*(?:\n[^\S\n]*\S.*)*")   # lines up to the next blank line
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|[a-z][.)])\s+")
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)")
_WORD = re.compile(r"\s+|\S+\s*")   # a word with the spaces after it (leading spaces alone)


class DiffError(NotFound):
    """The document or the versions to compare cannot be found."""


@dataclass
class Paragraph:
    """A paragraph of a version text: ``text == version_text[start:end]``."""

    text: str
    start: int
    end: int

    @property
    def key(self) -> str:
        """The words that matter: list markers, emphasis marks and spacing do not."""
        return " ".join(_EMPHASIS.sub("", _LIST_ITEM.sub("", self.text, count=1)).split())


@dataclass
class ParagraphChange:
    """One added, removed or changed paragraph (``old``/``new`` empty on the side where it is absent)."""

    op: str                       # "added" | "removed" | "changed"
    old: str = ""
    new: str = ""
    old_start: int = -1
    old_end: int = -1
    new_start: int = -1
    new_end: int = -1
    #: For "changed": word-level segments [("equal"|"insert"|"delete", text), ...] from old to new.
    words: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["words"] = [list(w) for w in self.words]
        return d


@dataclass
class VersionInfo:
    """The identity and validity of one compared version."""

    version_id: str
    retrieved: str
    valid_from: int
    valid_to: int
    title: str
    effective_date: str
    snapshot_sha: str | None

    @classmethod
    def of(cls, v: VersionRow) -> VersionInfo:
        return cls(v.version_id, v.retrieved, v.valid_from, v.valid_to, v.title, v.effective_date, v.snapshot_sha)


@dataclass
class VersionDiff:
    """Two versions of one document and the paragraph changes between them."""

    doc_id: str
    url: str
    title: str
    versions: int                 # how many indexed versions the document has
    old: VersionInfo | None
    new: VersionInfo | None
    changes: list[ParagraphChange]
    unchanged: int = 0            # paragraphs identical in both versions
    note: str = ""                # why nothing was compared, when old and new are the same version

    def counts(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "changed": 0}
        for c in self.changes:
            out[c.op] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "url": self.url, "title": self.title, "versions": self.versions,
                "from": asdict(self.old) if self.old else None, "to": asdict(self.new) if self.new else None,
                "counts": {**self.counts(), "unchanged": self.unchanged}, "note": self.note,
                "changes": [c.to_json() for c in self.changes]}


# -- paragraphs --------------------------------------------------------------------------------
def paragraphs(text: str) -> list[Paragraph]:
    """Blank-line separated blocks with their offsets; a block of list items gives one paragraph per item."""
    out: list[Paragraph] = []
    for m in _BLOCK.finditer(text):
        lines = [(lm.start() + m.start(), lm.end() + m.start()) for lm in re.finditer(r"[^\n]+", m.group(0))]
        if len(lines) > 1 and sum(1 for s, e in lines if _LIST_ITEM.match(text[s:e])) >= len(lines) / 2:
            items: list[list[int]] = []
            for s, e in lines:
                if _LIST_ITEM.match(text[s:e]) or not items:
                    items.append([s, e])
                else:
                    items[-1][1] = e          # a continuation line belongs to the item above
            spans = items
        else:
            spans = [[m.start(), m.end()]]
        for s, e in spans:
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if s < e:
                out.append(Paragraph(text[s:e], s, e))
    return out


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Word-level segments turning ``old`` into ``new``: ("equal"|"delete"|"insert", text)."""
    a, b = _WORD.findall(old), _WORD.findall(new)
    out: list[tuple[str, str]] = []
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            out.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("insert", "".join(b[j1:j2])))
    return out


def _mark(op: str, text: str) -> str:
    """``[-removed words-]`` or ``{+added words+}``, keeping the spacing after them."""
    core = text.strip()
    space = " " if text[-1:].isspace() else ""
    return (f"[-{core}-]" if op == "delete" else f"{{+{core}+}}") + space if core else text


def mark_words(words: list[tuple[str, str]]) -> str:
    """A changed paragraph as one line of text with ``[-removed-]`` and ``{+added+}`` words."""
    out = ""
    for op, text in words:
        piece = text if op == "equal" else _mark(op, text)
        if out and not out[-1].isspace() and op == "insert":
            out += " "
        out += piece
    return out


def _similarity(a: Paragraph, b: Paragraph) -> float:
    return difflib.SequenceMatcher(None, a.key.split(), b.key.split(), autojunk=False).ratio()


def _changed(a: Paragraph, b: Paragraph) -> ParagraphChange:
    return ParagraphChange("changed", a.text, b.text, a.start, a.end, b.start, b.end, word_diff(a.text, b.text))


def _removed(a: Paragraph) -> ParagraphChange:
    return ParagraphChange("removed", old=a.text, old_start=a.start, old_end=a.end)


def _added(b: Paragraph) -> ParagraphChange:
    return ParagraphChange("added", new=b.text, new_start=b.start, new_end=b.end)


def _pair_block(olds: list[Paragraph], news: list[Paragraph]) -> list[ParagraphChange]:
    """Changes for a replaced run of paragraphs: similar pairs in order are 'changed', the rest added/removed."""
    out: list[ParagraphChange] = []
    j = 0
    for a in olds:
        best, best_k = 0.0, -1
        for k in range(j, len(news)):
            score = _similarity(a, news[k])
            if score > best:
                best, best_k = score, k
        if best >= SAME_PARAGRAPH:
            out.extend(_added(b) for b in news[j:best_k])
            out.append(_changed(a, news[best_k]))
            j = best_k + 1
        else:
            out.append(_removed(a))
    out.extend(_added(b) for b in news[j:])
    return out


def diff_texts(old: str, new: str) -> tuple[list[ParagraphChange], int]:
    """Paragraph changes from ``old`` to ``new`` text, and how many paragraphs stayed the same."""
    a, b = paragraphs(old), paragraphs(new)
    sm = difflib.SequenceMatcher(None, [p.key for p in a], [p.key for p in b], autojunk=False)
    changes: list[ParagraphChange] = []
    same = 0
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            same += i2 - i1
        elif op == "delete":
            changes.extend(_removed(p) for p in a[i1:i2])
        elif op == "insert":
            changes.extend(_added(p) for p in b[j1:j2])
        else:
            changes.extend(_pair_block(a[i1:i2], b[j1:j2]))
    return changes, same


# -- finding the document and its versions ------------------------------------------------------
def _url_key(url: str) -> str:
    """A loose URL identity: lower-case scheme and host, no fragment, no trailing slash."""
    p = urlsplit(url.strip())
    return urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path.rstrip("/") or "/", p.query, ""))


def find_document(registry: Registry, doc_id_or_url: str) -> dict[str, Any]:
    """A document by id, cited URL, fetched URL or file path; raises DiffError naming the fix."""
    wanted = doc_id_or_url.strip()
    doc = registry.document(wanted)
    if doc:
        return doc
    rows = registry.documents_at(wanted)
    if not rows and not re.match(r"^[a-z]+://", wanted, re.I) and Path(wanted).exists():
        rows = registry.documents_at(str(Path(wanted).resolve()))
    if not rows and re.match(r"^[a-z]+://", wanted, re.I):
        key = _url_key(wanted)
        rows = [r for r in registry.documents() if _url_key(r["url"]) == key or _url_key(r["location"]) == key]
    if not rows:
        raise DiffError(f"no document with id, URL or path {wanted!r} in the index; list documents with "
                        "`python -m ingest status` or check the URL")
    # Several documents may cite one URL (e.g. copies of a page): prefer the canonical one with most versions.
    docs = sorted((dict(r) for r in rows), key=lambda d: (d["duplicate_of"] is not None,
                                                         -len(registry.versions(d["doc_id"])), d["doc_id"]))
    return docs[0]


def _pick(versions: list[VersionRow], when: str | None, what: str) -> VersionRow:
    """The version named by id (prefix) or held by the index at ``when`` (latest when None)."""
    if when is None:
        return versions[-1]
    named = [v for v in versions if v.version_id.startswith(when.strip())] if len(when.strip()) >= 6 else []
    if len(named) == 1:
        return named[0]
    try:
        at = parse_when(when)
    except ValueError as exc:
        raise DiffError(f"--{what} {when!r} is neither a date (YYYY-MM-DD or ISO-8601) nor a version id") from exc
    held = [v for v in versions if v.valid_from <= at]
    if not held:
        first = versions[0].retrieved
        raise DiffError(f"--{what} {when}: the index held no version of this document yet (first retrieved {first})")
    return held[-1]


def compare_versions(registry: Registry, doc_id_or_url: str, from_: str | None = None,
                     to: str | None = None) -> VersionDiff:
    """Paragraph changes between two indexed versions (default: the one before the current, and the current)."""
    doc = find_document(registry, doc_id_or_url)
    versions = [v for v in registry.versions(doc["doc_id"]) if v.status == "indexed"]
    base = VersionDiff(doc["doc_id"], doc["url"], doc["title"] or "", len(versions), None, None, [])
    if not versions:
        return base
    new = _pick(versions, to, "to")
    if from_ is None:
        older = [v for v in versions if v.valid_from < new.valid_from]
        old = older[-1] if older else new
    else:
        old = _pick(versions, from_, "from")
    base.old, base.new = VersionInfo.of(old), VersionInfo.of(new)
    base.title = new.title or base.title
    if old.version_id != new.version_id:
        base.changes, base.unchanged = diff_texts(registry.version_text(old.version_id),
                                                  registry.version_text(new.version_id))
    else:
        base.unchanged = len(paragraphs(registry.version_text(new.version_id)))
        base.note = ("the only version" if len(versions) == 1 else
                     "the first version: nothing earlier to compare" if new.version_id == versions[0].version_id
                     and from_ is None else "the same version on both sides")
    return base


def diff_versions(registry: Registry, doc_id_or_url: str, from_: str | None = None,
                  to: str | None = None) -> list[ParagraphChange]:
    """Just the paragraph changes of ``compare_versions`` (for the app's sources page)."""
    return compare_versions(registry, doc_id_or_url, from_, to).changes


def version_history(registry: Registry, doc_id_or_url: str) -> list[VersionInfo]:
    """Every indexed version of a document, oldest first (to offer choices in a UI)."""
    doc = find_document(registry, doc_id_or_url)
    return [VersionInfo.of(v) for v in registry.versions(doc["doc_id"]) if v.status == "indexed"]
