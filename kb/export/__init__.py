"""Cited summaries for legal staff: questions, answers, verified pinpoint quotes and a bibliography.

One model (``CitedSummary``, built by ``build_summary``), four formats: ``md``, ``docx``, ``pdf``, ``json``.

    >>> data = export_answers([answer], "pdf", settings)          # bytes, e.g. for a download button
    >>> write_export([answer], "docx", Path("summary.docx"), settings)

Every quote is re-verified against the registry before anything is rendered; a failure raises
``ExportError`` naming the quote, and nothing is written.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from kb.errors import UsageError
from kb.export.model import (
    FORMATS,
    CitedQuote,
    CitedSummary,
    ExportEntry,
    ExportError,
    ExportMeta,
    SourceEntry,
    build_summary,
    export_meta,
)
from kb.export.pinpoint import Pinpoint, compute_pinpoint
from kb.models import Answer
from kb.registry import Registry, open_registry
from kb.settings import Settings

MEDIA_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json",
               "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
               "pdf": "application/pdf"}

__all__ = ["FORMATS", "MEDIA_TYPES", "CitedQuote", "CitedSummary", "ExportEntry", "ExportError", "ExportMeta",
           "Pinpoint", "SourceEntry", "build_summary", "compute_pinpoint", "export_answers", "export_meta",
           "render", "suggested_filename", "summarize", "write_atomically", "write_export"]


def _renderer(fmt: str) -> Callable[[CitedSummary], bytes]:
    if fmt == "md":
        from kb.export.render_md import render_markdown
        return render_markdown
    if fmt == "json":
        from kb.export.render_json import render_json
        return render_json
    if fmt == "docx":
        from kb.export.render_docx import render_docx
        return render_docx
    if fmt == "pdf":
        from kb.export.render_pdf import render_pdf
        return render_pdf
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def render(summary: CitedSummary, fmt: str) -> bytes:
    """The bytes of ``summary`` in ``fmt`` (md, docx, pdf or json)."""
    return _renderer(fmt)(summary)


def summarize(answers: Iterable[Answer | tuple[str, Answer]], settings: Settings, *,
              registry: Registry | None = None, embedder_id: str | None = None) -> CitedSummary:
    """Verify the answers' quotes against the index of ``settings`` and build the export model."""
    own = registry is None
    reg = registry or open_registry(settings, readonly=True)
    try:
        return build_summary(answers, reg, export_meta(settings, reg, embedder_id))
    finally:
        if own:
            reg.close()


def export_answers(answers: Iterable[Answer | tuple[str, Answer]], fmt: str, settings: Settings, *,
                   registry: Registry | None = None, embedder_id: str | None = None) -> bytes:
    """One call for the UI and the CLI: verify, then render one answer or a whole session to bytes."""
    renderer = _renderer(fmt)  # a bad format fails before any work
    return renderer(summarize(answers, settings, registry=registry, embedder_id=embedder_id))


def write_export(answers: Iterable[Answer | tuple[str, Answer]], fmt: str, path: Path, settings: Settings, *,
                 registry: Registry | None = None, embedder_id: str | None = None) -> Path:
    """Render and write atomically (no partial file is left when verification or rendering fails).

    The target must be a regular file or not exist yet, in a folder that exists: a device, a FIFO, a
    folder or a symlink is refused with ``UsageError`` (nothing is written through it). The temporary
    file is created exclusively (``mkstemp``) beside the target, so a file planted there is never used.
    """
    path = check_export_target(Path(path))
    data = export_answers(answers, fmt, settings, registry=registry, embedder_id=embedder_id)
    return write_atomically(path, data)


def write_atomically(target: str | Path, data: bytes, label: str = "-o") -> Path:
    """Write ``data`` to ``target`` atomically, after ``check_export_target`` (shared by every ``-o``).

    The temporary file is created exclusively (``mkstemp``) beside the target and renamed over it, so
    readers see the old file or the new one, never a part; it is removed when anything fails.
    """
    path = check_export_target(target, label)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as an ordinary new file would be, not mkstemp's 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def check_export_target(target: str | Path, label: str = "-o") -> Path:
    """The target of ``-o`` (or what ``label`` names) if it is safe to replace; ``UsageError`` otherwise."""
    if not str(target).strip():
        raise UsageError(f"{label} needs a file name (or '-' for standard output)")
    path = Path(target)
    if path.is_symlink():
        raise UsageError(f"{label} {path}: is a symbolic link; give the real file's path")
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise UsageError(f"{label} {path}: is {kind}; give a file name (or '-' for standard output)")
    if not path.parent.is_dir():
        raise UsageError(f"{label} {path}: the folder {path.parent} does not exist; create it first")
    return path


def suggested_filename(fmt: str, created: str | None = None) -> str:
    """A download name such as ``cited-summary-20260430T120000Z.pdf`` (now, or at ``created``)."""
    from kb.times import now_iso

    stamp = (created or now_iso()).replace("-", "").replace(":", "")
    return f"cited-summary-{stamp}.{fmt}"
