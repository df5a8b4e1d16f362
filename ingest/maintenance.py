"""``python -m ingest watch | verify | prune``: scheduled runs, evidence checks, explicit retention.

Registered with ``ingest.cli`` on import (``_load_extensions``): each command is a ``@command`` handler
and adds its subparser through ``EXTRA_PARSERS``. The work itself is in plain functions
(``verify_index``, ``plan_prune``, ``prune``, ``ingest.scheduler.Watcher``) that return data; only
the command handlers print. Exit codes as for ``run``: 0 ok, 1 problems found or a run failed,
2 bad invocation.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ingest.cli import EXTRA_PARSERS, _print_json, command
from kb.errors import ConfigError, KBError, SnapshotError
from kb.registry import Registry, iso, utcnow
from kb.settings import Settings

# -- verify ---------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What ``ingest verify`` checked and every mismatch it found."""

    snapshots: int = 0
    versions: int = 0
    chunks: int = 0
    pending_versions: int = 0
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
    snapshots = {r[0] for r in reg.query("SELECT sha256 FROM snapshots")}
    for row in reg.query("SELECT version_id, doc_id, text, text_sha, snapshot_sha, status FROM versions"):
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
        for c in reg.query('SELECT chunk_id, start, "end", text FROM chunks WHERE version_id=?', (vid,)):
            rep.chunks += 1
            if text[c["start"]:c["end"]] != c["text"]:
                rep.problem("chunk-offsets", c["chunk_id"], f"chunk {c['chunk_id']} is not the text of version {vid} "
                                                            f"at [{c['start']}, {c['end']}); re-ingest its source")


def _check_store(settings: Settings, reg: Registry, rep: VerifyReport) -> None:
    """Indexed chunks have vectors; the store holds no chunk the registry does not know."""
    from kb.store import open_store

    indexed = reg.indexed_chunk_ids()
    known = {r[0] for r in reg.query("SELECT chunk_id FROM chunks")}
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
    if not settings.registry_path.exists():
        raise KBError(f"no index in {settings.data_dir} yet; build it with `python -m ingest run`")
    reg = Registry(settings.registry_path, readonly=True)
    try:
        for row in reg.query("SELECT sha256, url FROM snapshots ORDER BY sha256"):
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


def _verify_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="re-hash every snapshot and stored text; compare registry and store")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--no-store", action="store_true", help="skip the registry/vector-store comparison")


@command("verify")
def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Evidence check: exit 1 when a snapshot, a version text, a chunk or a vector does not match."""
    rep = verify_index(settings, store=not args.no_store)
    if args.json:
        _print_json(rep.to_json())
    else:
        store = "" if rep.store_chunks is None else f", {rep.store_chunks} vectors"
        print(f"checked {rep.snapshots} snapshots, {rep.versions} versions, {rep.chunks} chunks{store}: "
              + ("all match" if not rep.problems else f"{len(rep.problems)} problem(s)"))
        for p in rep.problems:
            print(f"  ! {p['kind']}: {p['item']}: {p['error']}")
        for n in rep.notes:
            print(f"  note: {n}")
    return rep.exit_code


# -- prune ----------------------------------------------------------------------------------------


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
    names = {r["name"] for r in reg.sources()} | {r[0] for r in reg.query("SELECT DISTINCT source FROM documents")}
    return sorted(names - known)


def plan_prune(settings: Settings, known: Iterable[str], only: Iterable[str] | None = None) -> PrunePlan:
    """What ``prune`` would delete; ``only`` restricts it to some removed sources (ConfigError otherwise)."""
    known = set(known)
    reg = Registry(settings.registry_path)
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
        if gone:
            marks = ",".join("?" * len(gone))
            plan.documents = [r[0] for r in reg.query(f"SELECT doc_id FROM documents WHERE source IN ({marks})", gone)]
        if plan.documents:
            docs = set(plan.documents)
            for d in plan.documents:
                plan.versions += [v.version_id for v in reg.versions(d)]
                plan.chunks += [r[0] for r in reg.query("SELECT chunk_id FROM chunks WHERE doc_id=?", (d,))]
            marks = ",".join("?" * len(docs))
            mine = {r[0] for r in reg.query("SELECT DISTINCT snapshot_sha FROM versions WHERE snapshot_sha IS NOT NULL "
                                            f"AND doc_id IN ({marks})", list(docs))}
            used_elsewhere = {r[0] for r in reg.query("SELECT DISTINCT snapshot_sha FROM versions WHERE snapshot_sha "
                                                      f"IS NOT NULL AND doc_id NOT IN ({marks})", list(docs))}
            plan.snapshots = sorted(mine - used_elsewhere)
            plan.promoted = [r[0] for r in reg.query(
                f"SELECT doc_id FROM documents WHERE duplicate_of IN ({marks}) AND doc_id NOT IN ({marks}) "
                "ORDER BY first_seen, doc_id", list(docs) * 2)]
        plan.orphan_vectors = _orphan_vectors(settings, reg)
        return plan
    finally:
        reg.close()


def _orphan_vectors(settings: Settings, reg: Registry) -> list[str]:
    """Vectors in the store whose chunk the registry does not know (left by a prune that was interrupted)."""
    from kb.store import open_store

    try:
        ids = open_store(settings, create=False).all_ids()
    except KBError:
        return []
    known = {r[0] for r in reg.query("SELECT chunk_id FROM chunks")}
    return sorted(set(ids) - known)


def _promote(reg: Registry, plan: PrunePlan) -> list[str]:
    """Make the copies of pruned documents canonical: their current version gets chunks, status pending.

    Returns the promoted doc ids; the caller indexes them (``Ingestor.finish_pending``)."""
    from ingest.chunking import chunk_text
    from kb.language import detect_language
    from kb.settings import FOREVER

    gone = set(plan.documents)
    canonical_for: dict[str, str] = {}
    promoted: list[str] = []
    with reg.transaction() as db:
        for doc_id in plan.promoted:
            old = reg.document(doc_id)["duplicate_of"]  # type: ignore[index]
            if old in canonical_for:   # another copy of the same pruned document is canonical now
                db.execute("UPDATE documents SET duplicate_of=? WHERE doc_id=?", (canonical_for[old], doc_id))
                continue
            canonical_for[old] = doc_id
            db.execute("UPDATE documents SET duplicate_of=NULL, duplicate_kind=NULL, duplicate_score=NULL "
                       "WHERE doc_id=?", (doc_id,))
            row = db.execute("SELECT version_id, text FROM versions WHERE doc_id=? AND valid_to=? AND status='indexed'",
                             (doc_id, FOREVER)).fetchone()
            if row is None or db.execute("SELECT 1 FROM chunks WHERE version_id=?", (row[0],)).fetchone():
                continue
            chunks = chunk_text(row[1])
            db.executemany('INSERT INTO chunks (chunk_id, version_id, doc_id, seq, start, "end", language, text)'
                           " VALUES (?,?,?,?,?,?,?,?)",
                           [(f"{row[0]}-{c.seq:04d}", row[0], doc_id, c.seq, c.start, c.end, detect_language(c.text),
                             c.text) for c in chunks])
            db.execute("UPDATE versions SET status='pending', n_chunks=? WHERE version_id=?", (len(chunks), row[0]))
            promoted.append(doc_id)
    assert not gone & set(promoted)
    return promoted


def prune(settings: Settings, plan: PrunePlan, keep_snapshots: bool = False) -> PrunePlan:
    """Delete what the plan lists, registry first (one transaction), then vectors and snapshot files.

    Holds the ingest lock. Interrupted after the registry commit, it leaves only vectors and files
    nobody refers to, which the next ``prune`` (or ``verify``) finds."""
    from ingest.lock import run_lock
    from ingest.pipeline import Ingestor
    from kb.store import open_store

    with run_lock(settings):
        reg = Registry(settings.registry_path)
        try:
            promoted = _promote(reg, plan) if plan.promoted else []
            docs = plan.documents
            with reg.transaction() as db:
                for part in _parts(docs):
                    marks = ",".join("?" * len(part))
                    db.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part)
                    db.execute(f"DELETE FROM versions WHERE doc_id IN ({marks})", part)
                    db.execute(f"DELETE FROM documents WHERE doc_id IN ({marks})", part)
                for part in _parts(plan.sources):
                    db.execute(f"DELETE FROM sources WHERE name IN ({','.join('?' * len(part))})", part)
                if not keep_snapshots:
                    for part in _parts(plan.snapshots):
                        db.execute(f"DELETE FROM snapshots WHERE sha256 IN ({','.join('?' * len(part))})", part)
                db.execute("INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE SET "
                           "value=CAST(value AS INTEGER)+1")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_prune', ?)",
                           (json.dumps({"at": iso(utcnow()), **plan.summary()}),))
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
            reg = Registry(settings.registry_path)
            for sha in plan.snapshots:
                reg.snapshot_path(sha).unlink(missing_ok=True)
            reg.close()
        if promoted:
            ing = Ingestor(settings, progress=False)
            ing.finish_pending()
            ing.registry.close()
    return plan


def _parts(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def _prune_parser(sub: Any) -> None:
    p = sub.add_parser("prune", help="delete sources no longer in the sources file (explicit: --yes)")
    p.add_argument("--sources", type=Path, default=Path("sources.yaml"), help="sources file (default: sources.yaml)")
    p.add_argument("--source", nargs="+", metavar="NAME", help="prune only these removed sources")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.add_argument("--keep-snapshots", action="store_true", help="keep the raw snapshots (evidence) of pruned versions")
    p.add_argument("--json", action="store_true", help="print the plan (and what was done) as JSON on stdout")


@command("prune")
def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Remove the documents of sources no longer in the sources file; never without --yes or a typed 'yes'."""
    from ingest.sources import load_sources

    if not settings.registry_path.exists():
        raise KBError(f"no index in {settings.data_dir} yet; nothing to prune")
    if args.dry_run and args.yes:
        raise ConfigError("--dry-run and --yes contradict each other; choose one")
    sources = load_sources(args.sources)
    plan = plan_prune(settings, [s.name for s in sources], args.source)
    s = plan.summary()
    out = sys.stderr if args.json else sys.stdout
    if plan.empty:
        print(f"nothing to prune: every source in the index is in {args.sources}", file=out)
        if args.json:
            _print_json({"pruned": False, **s})
        return 0
    print(f"sources no longer in {args.sources}: {', '.join(plan.sources) or 'none'}", file=out)
    print(f"  {s['documents']} documents, {s['versions']} versions, {s['chunks']} chunks, "
          f"{s['snapshots']} snapshots" + ("" if not args.keep_snapshots else " (kept)")
          + (f"; {s['promoted']} copies elsewhere become canonical" if s["promoted"] else "")
          + (f"; {s['orphan_vectors']} orphan vectors" if s["orphan_vectors"] else ""), file=out)
    if args.dry_run:
        print("dry run: nothing deleted", file=out)
        if args.json:
            _print_json({"pruned": False, **s})
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("nothing deleted: re-run with --yes to delete this, or --dry-run to only list it", file=sys.stderr)
            return 2
        answer = input("delete this from the index? type 'yes' to confirm: ").strip().lower()
        if answer != "yes":
            print("nothing deleted", file=out)
            return 0
    prune(settings, plan, keep_snapshots=args.keep_snapshots)
    print(f"pruned {', '.join(plan.sources) or 'orphan vectors'}", file=out)
    if args.json:
        _print_json({"pruned": True, **s})
    return 0


# -- watch ----------------------------------------------------------------------------------------


def _watch_parser(sub: Any) -> None:
    p = sub.add_parser("watch", help="re-ingest each source at its refresh interval until stopped")
    p.add_argument("--sources", type=Path, default=Path("sources.yaml"), help="sources file (default: sources.yaml)")
    p.add_argument("--max-runs", type=int, metavar="N", help="stop after N source runs")
    p.add_argument("--for", dest="duration", metavar="DURATION", help="stop after this long (e.g. 90s, 30m, 12h)")
    p.add_argument("--json", action="store_true", help="print each run's report as one JSON line on stdout")


@command("watch")
def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    """Scheduled re-ingestion; SIGTERM/SIGINT stop it after the run in progress."""
    from ingest.scheduler import WatchEvent, Watcher
    from ingest.sources import parse_duration

    if args.max_runs is not None and args.max_runs < 1:
        raise ConfigError("--max-runs must be 1 or more")
    duration = parse_duration(args.duration, "--for") if args.duration else None
    failed_runs = 0

    def show(e: WatchEvent) -> None:
        nonlocal failed_runs
        if e.kind == "error" or (e.report is not None and e.report.failed):
            failed_runs += 1
        print(f"{iso(utcnow())} watch: {e.message}", file=sys.stderr, flush=True)
        if args.json and e.report is not None:
            sys.stdout.write(json.dumps(e.report.to_json(), ensure_ascii=False) + "\n")
            sys.stdout.flush()

    watcher = Watcher(settings, args.sources, max_runs=args.max_runs, duration=duration, on_event=show)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    print(f"{iso(utcnow())} watch: {len(watcher.sources)} source(s) from {args.sources}, data in {settings.data_dir}"
          + (f", stopping after {args.max_runs} run(s)" if args.max_runs else "")
          + (f", stopping after {args.duration}" if duration else ""), file=sys.stderr, flush=True)
    try:
        watcher.run()
    except KeyboardInterrupt:
        watcher.stop()
    # A bounded watch (--max-runs/--for) reports failures like `run` does; a daemon stopped by a signal exits 0.
    return 1 if failed_runs and (args.max_runs or duration) else 0


EXTRA_PARSERS.extend([_watch_parser, _verify_parser, _prune_parser])
