"""``ingest verify``: the evidence check. Every snapshot re-hashed, every stored version text against its
SHA-256, every chunk against its offsets, and the registry against the vector store.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import KBError, NoIndex, SnapshotError
from kb.evidence.rederive import rederive_text
from kb.registry import Registry, open_registry, registry_exists
from kb.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    """What ``ingest verify`` checked and every mismatch it found."""

    snapshots: int = 0
    versions: int = 0
    chunks: int = 0
    pending_versions: int = 0
    rederived: int = 0
    store_chunks: int | None = None
    problems: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, kind: str, item: str, error: str) -> None:
        self.problems.append({"kind": kind, "item": item, "error": error})

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": not self.problems}


def _check_versions(reg: Registry, rep: VerifyReport) -> None:
    """Every version's text against its SHA-256, its snapshot reference, and its chunks' offsets."""
    snapshots = {r["sha256"] for r in reg.snapshots()}
    for row in reg.stored_versions():
        rep.versions += 1
        vid, text = row["version_id"], row["text"]
        if row["status"] == "pending":
            rep.pending_versions += 1
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != row["text_sha"]:
            rep.problem("version-text", vid, f"the stored text of version {vid} (document {row['doc_id']}) no longer "
                                             "matches its SHA-256: it was altered; re-ingest its source")
            continue
        if row["snapshot_sha"] and row["snapshot_sha"] not in snapshots:
            rep.problem("snapshot-missing", vid, f"version {vid} refers to snapshot {row['snapshot_sha']}, which is "
                                                 "not in the registry; re-ingest its source")
        if row["snapshot_sha"] and row["snapshot_sha"] in snapshots:
            _rederive(reg, row, rep)
        for c in reg.chunks(vid):
            rep.chunks += 1
            if text[c.start:c.end] != c.text:
                rep.problem("chunk-offsets", c.chunk_id, f"chunk {c.chunk_id} is not the text of version {vid} "
                                                         f"at [{c.start}, {c.end}); re-ingest its source")


def _rederive(reg: Registry, row: dict[str, Any], rep: VerifyReport) -> None:
    """Extract the version's text again from its raw snapshot and compare it with the stored text."""
    vid, sha = row["version_id"], row["snapshot_sha"]
    try:
        reg.verify_snapshot(sha)
    except SnapshotError:
        return  # reported with the snapshots
    try:
        text = rederive_text(reg, vid)
    except SnapshotError as exc:
        rep.problem("version-rederive", vid, str(exc))
        return
    rep.rederived += 1
    if text != row["text"]:
        rep.problem("version-rederive", vid, f"the stored text of version {vid} (document {row['doc_id']}) differs "
                                             f"from the text extracted again from its snapshot {sha[:12]}: the stored "
                                             "text was altered, or the extractor changed; re-ingest its source")


def repair_snapshots(settings: Settings) -> list[str]:
    """Fetch again the items whose snapshot fails its hash and store the bytes when they match it again.

    Returns what was repaired (one line each); a snapshot whose source now serves other bytes stays
    reported by ``verify`` and is replaced by the next ``ingest run``'s new version."""
    from ingest.fetch import FetchError, fetch_url, read_file

    reg = open_registry(settings)
    done: list[str] = []
    try:
        for snap in reg.snapshots():
            try:
                reg.verify_snapshot(snap["sha256"])
                continue
            except SnapshotError:
                pass
            for loc in reg.locations_of_snapshot(snap["sha256"]):
                try:
                    got = read_file(Path(loc), settings) if not loc.startswith(("http://", "https://")) \
                        else fetch_url(loc, settings)
                except FetchError as exc:
                    log.warning("cannot fetch %s again: %s", loc, exc)
                    continue
                if hashlib.sha256(got.content).hexdigest() == snap["sha256"]:
                    reg.save_snapshot(got.content, snap["url"], snap["retrieved"], snap["content_type"] or "")
                    done.append(f"snapshot {snap['sha256'][:12]} restored from {loc}")
                    break
    finally:
        reg.close()
    return done


def _check_store(settings: Settings, reg: Registry, rep: VerifyReport) -> None:
    """Indexed chunks have vectors; the store holds no chunk the registry does not know."""
    from kb.vectors.store import open_store

    indexed = reg.indexed_chunk_ids()
    known = reg.all_chunk_ids()
    try:
        ids = open_store(settings, create=False).all_ids()
    except KBError as exc:
        if not known:
            rep.notes.append(f"no vector store yet ({exc})")
            return
        rep.problem("store", str(settings.chroma_dir if not settings.chroma_host else settings.chroma_host),
                    f"cannot open the vector store to compare it with the registry: {exc}")
        return
    rep.store_chunks = len(ids)
    if len(ids) != len(set(ids)):
        rep.problem("store-duplicates", settings.collection, f"{len(ids) - len(set(ids))} chunk id(s) appear twice")
    have = set(ids)
    for cid in sorted(indexed - have):
        rep.problem("vector-missing", cid, f"chunk {cid} is indexed in the registry but has no vector in the store; "
                                           "run `python -m ingest run` to restore it")
    orphans = sorted(have - known)
    if orphans:
        rep.problem("vector-orphans", f"{len(orphans)} chunk(s)",
                    f"the store holds {len(orphans)} vector(s) the registry does not know (first: {orphans[0]}); "
                    "`python -m ingest prune --yes` removes them")


def verify_index(settings: Settings, store: bool = True) -> VerifyReport:
    """Re-hash every snapshot and stored version text, check chunk offsets and (optionally) the store."""
    rep = VerifyReport()
    if not registry_exists(settings):
        raise NoIndex(f"no index in {settings.data_dir} yet; build it with `python -m ingest run`")
    reg = open_registry(settings, readonly=True)
    try:
        for row in reg.snapshots():
            rep.snapshots += 1
            try:
                reg.verify_snapshot(row["sha256"])
            except SnapshotError as exc:
                rep.problem("snapshot", row["url"], str(exc))
        _check_versions(reg, rep)
        if store:
            _check_store(settings, reg, rep)
    finally:
        reg.close()
    if rep.pending_versions:
        rep.notes.append(f"{rep.pending_versions} version(s) are pending (an ingest is running or was interrupted); "
                         "`python -m ingest run` finishes them")
    return rep
