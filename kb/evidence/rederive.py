"""Re-derive a version's text from its raw snapshot: the check behind ``ingest verify`` and every export.

A stored text edited together with its hash in the registry passes a hash check; it does not pass
this one, because the text is extracted again from the bytes whose SHA-256 names the snapshot."""
from __future__ import annotations

from kb.errors import SnapshotError
from kb.evidence.extract import ExtractError, extract_document
from kb.evidence.raw import FetchResult
from kb.registry import Registry


def rederive_text(reg: Registry, version_id: str) -> str:
    """The text extracted again from the version's raw snapshot (``SnapshotError`` when that is impossible)."""
    version = reg.version(version_id)
    if version is None:
        raise SnapshotError(f"version {version_id} is not in the registry")
    if not version.snapshot_sha:
        raise SnapshotError(f"version {version_id} has no raw snapshot recorded, so its text cannot be re-derived")
    data = reg.read_snapshot(version.snapshot_sha)  # re-hashes it
    snap = reg.snapshot(version.snapshot_sha) or {}
    doc = reg.document(version.doc_id) or {}
    location = str(doc.get("location") or "")
    is_file = not location.startswith(("http://", "https://"))
    url = str(snap.get("url") or location)
    result = FetchResult(url=url, final_url=url, status=200, content=data,
                         content_type=str(snap.get("content_type") or ""),
                         encoding=version.meta.get("declared_charset") or None, etag=None, last_modified=None,
                         not_modified=False, retrieved=str(snap.get("retrieved") or ""))
    try:
        return extract_document(result, location if is_file else None).text
    except ExtractError as exc:
        raise SnapshotError(f"the snapshot of version {version_id} no longer extracts ({exc})") from exc


def check_rederived(reg: Registry, version_id: str, stored: str) -> None:
    """``SnapshotError`` unless ``stored`` is exactly the text re-derived from the version's snapshot."""
    if rederive_text(reg, version_id) != stored:
        raise SnapshotError(f"the stored text of version {version_id} differs from the text extracted again from "
                            "its raw snapshot: the stored text was altered, or the extractor changed; "
                            "re-ingest its source")
