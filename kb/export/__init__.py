"""Cited summaries for legal staff: questions, answers, verified pinpoint quotes and a bibliography.

One model (``CitedSummary``, built by ``build_summary``), four formats: ``md``, ``docx``, ``pdf``, ``json``.

    >>> data = export_answers([answer], "pdf", settings)          # bytes, e.g. for a download button
    >>> write_export([answer], "docx", Path("summary.docx"), settings)

Every quote is re-verified against the registry before anything is rendered; a failure raises
``ExportError`` naming the quote, and nothing is written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

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
from kb.registry import Registry
from kb.settings import Settings

MEDIA_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json",
               "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
               "pdf": "application/pdf"}

__all__ = ["FORMATS", "MEDIA_TYPES", "CitedQuote", "CitedSummary", "ExportEntry", "ExportError", "ExportMeta",
           "Pinpoint", "SourceEntry", "build_summary", "compute_pinpoint", "export_answers", "export_meta",
           "render", "suggested_filename", "summarize", "write_export"]


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
    reg = registry or Registry(settings.registry_path, readonly=True)
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
    """Render and write atomically (no partial file is left when verification or rendering fails)."""
    data = export_answers(answers, fmt, settings, registry=registry, embedder_id=embedder_id)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def suggested_filename(fmt: str, created: str | None = None) -> str:
    """A download name such as ``cited-summary-20260430T120000Z.pdf`` (now, or at ``created``)."""
    from kb.times import now_iso

    stamp = (created or now_iso()).replace("-", "").replace(":", "")
    return f"cited-summary-{stamp}.{fmt}"
