"""``ingest prune``: explicit retention. What removing the sources no longer in the sources file deletes
(``plan_prune``), and the deletion itself (``prune``), registry first, then vectors and snapshot files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from kb.errors import ConfigError, KBError
from kb.registry import Registry, open_registry
from kb.registry.database import NewChunk
from kb.settings import Settings
from kb.times import now_iso


@dataclass
class PrunePlan:
    """What pruning the sources no longer in the sources file removes."""

    sources: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)      # copies elsewhere that become canonical
    orphan_vectors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.sources or self.documents or self.orphan_vectors)

    def summary(self) -> dict[str, Any]:
        return {"sources": self.sources, "documents": len(self.documents), "versions": len(self.versions),
                "chunks": len(self.chunks), "snapshots": len(self.snapshots), "promoted": len(self.promoted),
                "orphan_vectors": len(self.orphan_vectors)}


def removed_sources(reg: Registry, known: Iterable[str]) -> list[str]:
    """Source names the registry has (as sources or on documents) that the sources file no longer lists."""
    known = set(known)
    names = {r["name"] for r in reg.sources()} | reg.document_sources()
    return sorted(names - known)


def plan_prune(settings: Settings, known: Iterable[str], only: Iterable[str] | None = None) -> PrunePlan:
    """What ``prune`` would delete; ``only`` restricts it to some removed sources (ConfigError otherwise)."""
    known = set(known)
    reg = open_registry(settings)
    try:
        gone = removed_sources(reg, known)
        if only:
            still = sorted(set(only) & known)
            if still:
                raise ConfigError(f"{', '.join(still)} still in the sources file; remove it there first, then prune")
            unknown = sorted(set(only) - set(gone))
            if unknown:
                raise ConfigError(f"no removed source named {', '.join(unknown)}; removed sources: "
                                  f"{', '.join(gone) or 'none'}")
            gone = sorted(set(only))
        plan = PrunePlan(sources=gone)
        plan.documents = reg.doc_ids_of_sources(gone) if gone else []
        if plan.documents:
            for d in plan.documents:
                plan.versions += [v.version_id for v in reg.versions(d)]
            plan.chunks = reg.chunk_ids_of(plan.documents)
            plan.snapshots = reg.snapshot_shas_only_of(plan.documents)
            plan.promoted = reg.copies_outside(plan.documents)
        plan.orphan_vectors = _orphan_vectors(settings, reg)
        return plan
    finally:
        reg.close()


def _orphan_vectors(settings: Settings, reg: Registry) -> list[str]:
    """Vectors in the store whose chunk the registry does not know (left by a prune that was interrupted)."""
    from kb.vectors.store import open_store

    try:
        ids = open_store(settings, create=False).all_ids()
    except KBError:
        return []
    return sorted(set(ids) - reg.all_chunk_ids())


def _promote(reg: Registry, plan: PrunePlan) -> list[str]:
    """Make the copies of pruned documents canonical: their current version gets chunks, status pending.

    Returns the promoted doc ids; the caller indexes them (``Ingestor.finish_pending``)."""
    from ingest.chunking import chunk_text
    from kb.text.language import detect_language

    gone = set(plan.documents)
    canonical_for: dict[str, str] = {}
    promoted: list[str] = []
    with reg.transaction():
        for doc_id in plan.promoted:
            old = (reg.document(doc_id) or {}).get("duplicate_of")
            if old is None:
                continue
            if old in canonical_for:   # another copy of the same pruned document is canonical now
                reg.set_duplicate_of(doc_id, canonical_for[old])
                continue
            canonical_for[old] = doc_id
            reg.set_duplicate_of(doc_id, None)
            current = reg.current_version(doc_id)
            if current is None or reg.chunks(current.version_id):
                continue
            text = reg.version_text(current.version_id)
            reg.rechunk_pending(current.version_id, doc_id,
                                [NewChunk(c.seq, c.start, c.end, detect_language(c.text), c.text) for c in chunk_text(text)])
            promoted.append(doc_id)
    assert not gone & set(promoted)
    return promoted


def prune(settings: Settings, plan: PrunePlan, keep_snapshots: bool = False) -> PrunePlan:
    """Delete what the plan lists, registry first (one transaction), then vectors and snapshot files.

    Holds the ingest lock. Interrupted after the registry commit, it leaves only vectors and files
    nobody refers to, which the next ``prune`` (or ``verify``) finds."""
    from ingest.lock import run_lock
    from ingest.pipeline import Ingestor
    from kb.vectors.store import open_store

    with run_lock(settings):
        reg = open_registry(settings)
        try:
            promoted = _promote(reg, plan) if plan.promoted else []
            reg.delete_documents(plan.documents, plan.sources, [] if keep_snapshots else plan.snapshots,
                                 note={"at": now_iso(), **plan.summary()})
        finally:
            reg.close()
        vectors = list(plan.chunks) + list(plan.orphan_vectors)
        if vectors:
            try:
                store = open_store(settings, create=False)
            except KBError:
                store = None
            if store is not None:
                store.delete(vectors)
        if not keep_snapshots:
            reg = open_registry(settings)
            for sha in plan.snapshots:
                reg.snapshot_path(sha).unlink(missing_ok=True)
            reg.close()
        if promoted:
            ing = Ingestor(settings, progress=False)
            ing.finish_pending()
            ing.registry.close()
    return plan
