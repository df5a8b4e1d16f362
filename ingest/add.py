"""Add sources without editing YAML: URLs, feeds and local files become entries of the managed file.

The managed file is ``sources.added.yaml`` beside the user's ``sources.yaml`` (same schema; the user's
own file is never rewritten). ``add_sources`` validates every input first (nothing is written when one
is bad), copies local files into ``<KB_DATA_DIR>/added/<sha256>/<name>`` (content-addressed; the file
name stays the document's fallback title), and appends the new entries in one atomic replace under a
small lock, so concurrent adds never lose each other's entries. ``python -m ingest add`` and the app's
Add sources page (through that command) both use it; ingesting the new entries is the caller's step.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import yaml

from ingest.lock import file_lock
from ingest.sources import (
    _NAME,
    MANAGED_NAME,
    Source,
    _BoundedLoader,
    load_all_sources,
    managed_path,
    parse_sources,
)
from kb.errors import UsageError
from kb.registry.ids import canonical_url
from kb.settings import Settings

#: File types a local file may have to be added (what extraction reads).
ADDED_EXTENSIONS = (".pdf", ".docx", ".html", ".htm", ".md", ".txt")
#: Folder of ``<KB_DATA_DIR>`` that holds the copies of added files.
ADDED_DIR = "added"
MAX_NAME = 60
_PAGE_SUFFIX = re.compile(r"\.(html?|php|aspx?|jsp)$")
HEADER = ("# Managed by `python -m ingest add` and the app's Add sources page: sources added without editing\n"
          "# YAML. Same schema as sources.yaml, read together with it. Edit or delete entries here if needed.\n")


@dataclass(frozen=True)
class Candidate:
    """One validated input: a URL (``url`` or ``feed``) or a local file (``path``)."""

    input: str
    kind: str          # url | feed | path
    target: str        # the URL, or the file's absolute path
    sha: str = ""      # a file's SHA-256


@dataclass
class AddResult:
    """What happened to one input: ``added`` to the managed file, or ``exists`` (already a source)."""

    input: str
    name: str
    status: str
    kind: str
    target: str        # the URL, or the path of the copy under <data>/added/
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- inputs ---------------------------------------------------------------------------------------
def check_url(url: str) -> str:
    """An http(s) URL with a host, stripped; anything else is a ``UsageError`` saying what to give."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or re.search(r"\s", url):
        raise UsageError(f"{url!r} is not an http(s) URL; give it as https://host/path")
    return url


def _looks_like_url(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text.strip()))


def check_file(text: str, settings: Settings) -> Candidate:
    """A local file that can be added: it exists, has a known type and is within ``KB_MAX_BYTES``."""
    path = Path(text).expanduser()
    if not path.exists():
        raise UsageError(f"{path}: no such file; give the path of a PDF, DOCX, HTML, Markdown or text file")
    if not path.is_file():
        raise UsageError(f"{path} is not a file; add a folder with a 'path:' entry in sources.yaml instead")
    ext = path.suffix.lower()
    if ext not in ADDED_EXTENSIONS:
        raise UsageError(f"{path.name}: cannot add {ext or 'files without an extension'}; only "
                         f"{', '.join(ADDED_EXTENSIONS)} files can be added (convert it to one of these)")
    size = path.stat().st_size
    if size > settings.max_bytes:
        raise UsageError(f"{path.name} is {size:,} bytes, over the {settings.max_bytes:,}-byte limit (KB_MAX_BYTES); "
                         "split the file or raise KB_MAX_BYTES")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return Candidate(text, "path", str(path.resolve()), sha)


def candidates(inputs: Sequence[str], settings: Settings, feed: bool = False) -> list[Candidate]:
    """Every input validated (a ``UsageError`` on the first bad one, before anything is written)."""
    wanted = [x.strip() for x in inputs if x and x.strip()]
    if not wanted:
        raise UsageError("nothing to add: give one or more URLs or files")
    out: list[Candidate] = []
    for text in wanted:
        if _looks_like_url(text):
            url = check_url(text)
            out.append(Candidate(text, "feed" if feed else "url", url))
        elif feed:
            raise UsageError(f"{text!r}: --feed needs the feed's http(s) URL, not a file")
        else:
            out.append(check_file(text, settings))
    return out


# -- names ----------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9.]+", "-", text.lower())
    s = re.sub(r"-{2,}", "-", s).strip("-.")
    if len(s) > MAX_NAME:
        s = s[:MAX_NAME].rsplit("-", 1)[0] if "-" in s[:MAX_NAME] else s[:MAX_NAME]
        s = s.strip("-.")
    return s


def slug_for(c: Candidate) -> str:
    """A source name from a URL's host and path (``example.org-news-story``) or a file's name."""
    if c.kind == "path":
        base = _slug(Path(c.target).stem.replace(".", "-"))
    else:
        parts = urlsplit(c.target)
        host = (parts.hostname or "").lower().removeprefix("www.")
        if parts.port:
            host = f"{host}-{parts.port}"
        path = _PAGE_SUFFIX.sub("", parts.path.rstrip("/"))
        base = _slug(f"{host}-{path.replace('.', '-')}")
    if not base or not _NAME.match(base):
        base = f"source-{base}" if base else "source"
    return base


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3`` ... when taken."""
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _raw_entries(file: Path) -> list[Any]:
    """The entries of a sources file as written (disabled ones included), [] when absent or unreadable."""
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_BoundedLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    entries = data.get("sources") if isinstance(data, dict) else None
    return entries if isinstance(entries, list) else []


def _raw_names(file: Path) -> set[str]:
    return {str(e["name"]) for e in _raw_entries(file) if isinstance(e, dict) and e.get("name")}


# -- already a source? ------------------------------------------------------------------------------
def existing_source(c: Candidate, sources: Sequence[Source], added_dir: Path) -> str | None:
    """The name of a source that already covers this URL or file, else None.

    URLs compare canonicalised (``kb.registry.ids.canonical_url``); a file matches a ``path:`` entry of
    the same file, of a folder holding it, or of an earlier copy of the same bytes under ``added/``."""
    if c.kind in ("url", "feed"):
        key = canonical_url(c.target)
        for s in sources:
            if s.kind != "path" and any(canonical_url(t) == key for t in s.targets):
                return s.name
        return None
    original = Path(c.target)
    copy_dir = (added_dir / c.sha[:32]).resolve()
    for s in sources:
        if s.kind != "path":
            continue
        target = Path(s.targets[0]).resolve()
        if target == original or target.parent == copy_dir or target == copy_dir:
            return s.name
        if target.is_dir() and original.is_relative_to(target) and original.name not in s.exclude:
            return s.name
    return None


# -- writing ----------------------------------------------------------------------------------------
def copy_into_added(c: Candidate, settings: Settings) -> Path:
    """Copy a file to ``<data>/added/<sha>/<its name>`` (atomically; the same bytes land in one place)."""
    folder = settings.data_dir / ADDED_DIR / c.sha[:32]
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", Path(c.target).name).lstrip(".") or f"file{Path(c.target).suffix.lower()}"
    dest = folder / name
    if dest.exists() and hashlib.sha256(dest.read_bytes()).hexdigest() == c.sha:
        return dest.resolve()
    fd, tmp = tempfile.mkstemp(prefix=".copy-", dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(c.target, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest.resolve()


def write_managed(managed: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the managed file with these entries, atomically (temp file + ``os.replace``), never invalid."""
    data = {"sources": entries}
    text = HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    parse_sources(yaml.safe_load(text), managed)  # what is written must load
    fd, tmp = tempfile.mkstemp(prefix=f".{managed.name}.", suffix=".tmp", dir=managed.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, managed)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lock_path(managed: Path) -> Path:
    return managed.with_name(f".{managed.name}.lock")


def add_sources(settings: Settings, sources_file: Path | str, inputs: Sequence[str], *, doctype: str | None = None,
                publisher: str | None = None, language: str | None = None, name: str | None = None,
                feed: bool = False) -> list[AddResult]:
    """Append the inputs that are not sources yet to the managed file; one ``AddResult`` per input.

    Raises ``UsageError`` for a bad input and ``ConfigError`` for a broken sources or managed file;
    nothing is written then."""
    user = Path(sources_file)
    managed = managed_path(user)
    found = candidates(inputs, settings, feed)
    if name is not None:
        if len(found) != 1:
            raise UsageError("--name names one source; give exactly one URL or file with it")
        if not _NAME.match(name):
            raise UsageError(f"--name {name!r} must be a lowercase slug (letters, digits, . _ -)")
    options = {k: v for k, v in (("doctype", doctype), ("publisher", publisher), ("language", language)) if v}
    # Check the options before anything is copied or written (the same validation as the sources file).
    parse_sources({"sources": [{"name": "check", "url": "https://example.org/", **options}]}, managed)
    added_dir = settings.data_dir / ADDED_DIR
    with file_lock(lock_path(managed)):
        current = load_all_sources(user, strict=True)   # a broken managed file is fixed first, not appended to
        sources = list(current.sources)
        entries = list(_raw_entries(managed)) if managed.exists() else []
        taken = _raw_names(user) | _raw_names(managed) | {s.name for s in sources}
        if name is not None and name in taken:
            raise UsageError(f"--name {name!r} is already a source name in {user} or {managed}; choose another")
        results: list[AddResult] = []
        for c in found:
            owner = existing_source(c, sources, added_dir)
            if owner is not None:
                results.append(AddResult(c.input, owner, "exists", c.kind, c.target, f"already a source: {owner}"))
                continue
            target = str(copy_into_added(c, settings)) if c.kind == "path" else c.target
            source_name = name or unique_name(slug_for(c), taken)
            taken.add(source_name)
            entry: dict[str, Any] = {"name": source_name, c.kind: target, **options}
            entries.append(entry)
            sources.extend(parse_sources({"sources": [entry]}, managed))
            results.append(AddResult(c.input, source_name, "added", c.kind, target,
                                     f"added {source_name} to {MANAGED_NAME}"))
        if any(r.status == "added" for r in results):
            write_managed(managed, entries)
    return results


def new_names(results: Sequence[AddResult]) -> list[str]:
    """The names of the sources that were added (to be ingested now)."""
    return [r.name for r in results if r.status == "added"]

