"""``python -m ingest``: run, add, status, watch, verify, prune and migrate, listed explicitly (``kb.cli.framework``).

The only place in ingest that prints. The work itself is in plain functions that return data
(``run_ingest``, ``verify_index``, ``plan_prune``/``prune``, ``ingest.scheduler.Watcher``).
Exit codes: 0 ok; 1 some items failed, problems were found or a run stopped; 2 bad invocation or input.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ingest.prune import plan_prune, prune
from ingest.verify import repair_snapshots, verify_index
from kb.cli.framework import Command, print_json, run_cli
from kb.errors import ConfigError, KBError, NoIndex
from kb.registry import open_registry, registry_exists
from kb.settings import Settings
from kb.times import now_iso


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest sources.yaml once."""
    from ingest.pipeline import run_ingest

    sources = _load_sources(args.sources)
    unknown = set(args.only or []) - {s.name for s in sources}
    if unknown:
        raise ConfigError(f"--only names unknown source(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(s.name for s in sources)}")
    report = run_ingest(settings, sources, only=args.only, progress=not args.quiet,
                        sources_file=str(args.sources), wait_for_lock=args.wait)
    if args.json:
        print_json(report.to_json())
    else:
        _print_summary(report)
    return report.exit_code


def _print_summary(report: Any) -> None:
    t = report.totals()
    err = sys.stderr
    print(f"run {report.run_id}: {t['documents_new']} new, {t['documents_updated']} updated, "
          f"{t['documents_unchanged']} unchanged, {t['duplicates']} duplicates, "
          f"{t['chunks_embedded']} chunks embedded, {t['failed']} failed", file=err)
    for s in report.sources:
        print(f"  {s.name:32} {s.status:8} new {s.documents_new} upd {s.documents_updated} "
              f"same {s.documents_unchanged} dup {s.duplicates} failed {s.failed}", file=err)
        for e in s.errors:
            print(f"    ! {e['item']}: {e['error']}", file=err)
    for name in report.removed_sources:
        print(f"  source {name!r} is no longer in the sources file; its documents stay in the index "
              f"(remove them with `python -m ingest prune`)", file=err)


def source_origins(sources_file: Path | None) -> tuple[dict[str, str], list[str]]:
    """Which file (``sources.yaml`` or the managed ``sources.added.yaml``) each configured source comes
    from, and the problems reading them (status works without a sources file)."""
    from ingest.sources import load_all_sources

    if sources_file is None or not Path(sources_file).exists():
        return {}, []
    try:
        loaded = load_all_sources(sources_file)
    except ConfigError as exc:
        return {}, [str(exc)]
    return {name: str(file) for name, file in loaded.origin.items()}, loaded.problems


def status_json(settings: Settings, sources_file: Path | None = None) -> dict[str, Any]:
    """The ``ingest status --json`` object (each source's ``origin``: the sources file naming it, or null)."""
    if not registry_exists(settings):
        raise NoIndex(f"no index in {settings.data_dir} yet; build it with `python -m ingest run`")
    reg = open_registry(settings, readonly=True)
    docs = reg.documents()
    canonical = [d for d in docs if not d["duplicate_of"]]
    current = reg.current_canonical_versions()
    embedder = None
    store_mode = settings.store_mode
    try:
        from kb.vectors.store import open_store
        store = open_store(settings, create=False)
        embedder = store.embedder_id
        n_chunks = store.count()
    except KBError:
        n_chunks = sum(r["n_chunks"] for r in current)
    per_source = Counter(d["source"] for d in docs)
    origins, _ = source_origins(sources_file)
    return {
        "documents": len(canonical),
        "versions": reg.canonical_version_count(),
        "chunks": n_chunks,
        "duplicates": len(docs) - len(canonical),
        "by_language": dict(Counter(d["language"] or "und" for d in canonical).most_common()),
        "by_doctype": dict(Counter(d["doctype"] or "other" for d in canonical).most_common()),
        "embedder": embedder,
        "store": store_mode,
        "sources": [{"name": s["name"], "documents": per_source.get(s["name"], 0), "last_run": s["last_run"],
                     "last_success": s["last_success"], "consecutive_failures": s["consecutive_failures"],
                     "last_error": s["last_error"], "removed": bool(s["removed_at"]),
                     "origin": origins.get(s["name"])} for s in reg.sources()],
    }


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """What is in the index, last runs and source health."""
    st = status_json(settings, args.sources)
    for problem in source_origins(args.sources)[1]:
        print(f"ingest: warning: {problem}", file=sys.stderr, flush=True)
    if args.json:
        print_json(st)
        return 0
    print(f"{st['documents']} documents, {st['versions']} versions, {st['chunks']} chunks, "
          f"{st['duplicates']} duplicates; store {st['store']}; embedder {st['embedder']}")
    print("languages: " + ", ".join(f"{k} {v}" for k, v in st["by_language"].items()))
    print("doctypes:  " + ", ".join(f"{k} {v}" for k, v in st["by_doctype"].items()))
    for s in st["sources"]:
        health = "ok" if not s["consecutive_failures"] else f"{s['consecutive_failures']} failed run(s)"
        origin = f"  ({Path(s['origin']).name})" if s["origin"] else ""
        print(f"  {s['name']:32} {s['documents']:4} docs  last run {s['last_run'] or '-'}  {health}{origin}")
        if s["last_error"]:
            print(f"      last error: {s['last_error']}")
    return 0


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--no-store", action="store_true", help="skip the registry/vector-store comparison")
    p.add_argument("--repair", action="store_true",
                   help="first fetch again the items whose snapshot fails its hash, and restore matching bytes")


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Evidence check: exit 1 when a snapshot, a version text, a chunk or a vector does not match.

    Every version's text is extracted again from its raw snapshot and compared with the stored text."""
    if args.repair:
        if not registry_exists(settings):
            raise NoIndex(f"no index in {settings.data_dir} yet; build it with `python -m ingest run`")
        for line in repair_snapshots(settings):
            print(f"repaired: {line}", file=sys.stderr)
    rep = verify_index(settings, store=not args.no_store)
    if args.json:
        print_json(rep.to_json())
    else:
        store = "" if rep.store_chunks is None else f", {rep.store_chunks} vectors"
        print(f"checked {rep.snapshots} snapshots, {rep.versions} versions ({rep.rederived} extracted again from "
              f"their snapshots), {rep.chunks} chunks{store}: "
              + ("all match" if not rep.problems else f"{len(rep.problems)} problem(s)"))
        for p in rep.problems:
            print(f"  ! {p['kind']}: {p['item']}: {p['error']}")
        for n in rep.notes:
            print(f"  note: {n}")
    return rep.exit_code


def _load_sources(path: Path) -> list[Any]:
    """The sources of ``path`` and of the managed ``sources.added.yaml`` beside it; a broken managed file
    is reported on stderr and skipped (the user's own sources still run)."""
    from ingest.sources import load_all_sources

    loaded = load_all_sources(path)
    for problem in loaded.problems:
        print(f"ingest: warning: {problem}", file=sys.stderr, flush=True)
    return loaded.sources


def _sources_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sources", type=Path, default=None,
                   help="sources file (default: KB_SOURCES_FILE, else sources.yaml)")


def _sourced(run: Any) -> Any:
    """A command whose ``--sources`` defaults to the ``KB_SOURCES_FILE`` setting."""
    def with_sources(args: argparse.Namespace, settings: Settings) -> int:
        if getattr(args, "sources", None) is None:
            args.sources = settings.sources_file
        return int(run(args, settings))
    return with_sources


def _prune_arguments(p: argparse.ArgumentParser) -> None:
    _sources_argument(p)
    p.add_argument("--source", nargs="+", metavar="NAME", help="prune only these removed sources")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.add_argument("--keep-snapshots", action="store_true", help="keep the raw snapshots (evidence) of pruned versions")
    p.add_argument("--json", action="store_true", help="print the plan (and what was done) as JSON on stdout")


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Remove the documents of sources no longer in the sources file; never without --yes or a typed 'yes'."""
    from ingest.sources import load_all_sources

    if not registry_exists(settings):
        raise KBError(f"no index in {settings.data_dir} yet; nothing to prune")
    if args.dry_run and args.yes:
        raise ConfigError("--dry-run and --yes contradict each other; choose one")
    # strict: with a broken managed file its sources would look removed, and prune would delete them
    sources = load_all_sources(args.sources, strict=True).sources
    plan = plan_prune(settings, [s.name for s in sources], args.source)
    s = plan.summary()
    out = sys.stderr if args.json else sys.stdout
    if plan.empty:
        print(f"nothing to prune: every source in the index is in {args.sources}", file=out)
        if args.json:
            print_json({"pruned": False, **s})
        return 0
    print(f"sources no longer in {args.sources}: {', '.join(plan.sources) or 'none'}", file=out)
    print(f"  {s['documents']} documents, {s['versions']} versions, {s['chunks']} chunks, "
          f"{s['snapshots']} snapshots" + ("" if not args.keep_snapshots else " (kept)")
          + (f"; {s['promoted']} copies elsewhere become canonical" if s["promoted"] else "")
          + (f"; {s['orphan_vectors']} orphan vectors" if s["orphan_vectors"] else ""), file=out)
    if args.dry_run:
        print("dry run: nothing deleted", file=out)
        if args.json:
            print_json({"pruned": False, **s})
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
        print_json({"pruned": True, **s})
    return 0


def _migrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the schema versions before and after as JSON on stdout")


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the registry's pending schema migrations now, and report the schema version before and after.

    Every writer also applies them when it opens the registry; this does it explicitly (e.g. before an upgraded
    deployment's ingesters and apps start). On PostgreSQL concurrent migrators wait for each other."""
    from kb.registry.schema import LATEST

    reg = open_registry(settings, auto_migrate=False)
    try:
        before = reg.schema_version()
        applied = reg.migrate()
        after = reg.schema_version()
    finally:
        reg.close()
    report = {"registry": reg.where, "dialect": reg.dialect, "schema_version_before": before,
              "schema_version": after, "applied": applied, "latest": LATEST}
    if args.json:
        print_json(report)
    elif applied:
        print(f"registry {reg.where} ({reg.dialect}): schema version {before} -> {after} "
              f"(applied migration{'s' if len(applied) > 1 else ''} {', '.join(map(str, applied))})")
    else:
        print(f"registry {reg.where} ({reg.dialect}): schema version {after}, up to date")
    if after > LATEST:
        print(f"ingest: warning: the registry's schema version {after} is newer than this code's {LATEST}; "
              "upgrade this installation", file=sys.stderr)
    return 0


def _watch_arguments(p: argparse.ArgumentParser) -> None:
    _sources_argument(p)
    p.add_argument("--max-runs", type=int, metavar="N", help="stop after N source runs")
    p.add_argument("--for", dest="duration", metavar="DURATION", help="stop after this long (e.g. 90s, 30m, 12h)")
    p.add_argument("--json", action="store_true", help="print each run's report as one JSON line on stdout")


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    """Scheduled re-ingestion; SIGTERM/SIGINT stop it after the run in progress."""
    from ingest.scheduler import Watcher, WatchEvent
    from ingest.sources import parse_duration

    if args.max_runs is not None and args.max_runs < 1:
        raise ConfigError("--max-runs must be 1 or more")
    duration = parse_duration(args.duration, "--for") if args.duration else None
    failed_runs = 0

    def show(e: WatchEvent) -> None:
        nonlocal failed_runs
        if e.kind == "error" or (e.report is not None and e.report.failed):
            failed_runs += 1
        print(f"{now_iso()} watch: {e.message}", file=sys.stderr, flush=True)
        if args.json and e.report is not None:
            sys.stdout.write(json.dumps(e.report.to_json(), ensure_ascii=False) + "\n")
            sys.stdout.flush()

    watcher = Watcher(settings, args.sources, max_runs=args.max_runs, duration=duration, on_event=show)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    print(f"{now_iso()} watch: {len(watcher.sources)} source(s) from {args.sources}, data in {settings.data_dir}"
          + (f", stopping after {args.max_runs} run(s)" if args.max_runs else "")
          + (f", stopping after {args.duration}" if duration else ""), file=sys.stderr, flush=True)
    try:
        watcher.run()
    except KeyboardInterrupt:
        watcher.stop()
    # A bounded watch (--max-runs/--for) reports failures like `run` does; a daemon stopped by a signal exits 0,
    # one that stopped because another watcher took its lock exits 1 (so a supervisor notices).
    return 1 if watcher.lost_lock or (failed_runs and (args.max_runs or duration)) else 0


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from ingest.sources import DOCTYPES

    p.add_argument("inputs", nargs="+", metavar="URL|FILE",
                   help="http(s) URLs, or local .pdf .docx .html .htm .md .txt files (copied into KB_DATA_DIR/added/)")
    p.add_argument("--doctype", choices=DOCTYPES, help="document type of the new sources")
    p.add_argument("--publisher", help="publisher of the new sources (extracted when absent)")
    p.add_argument("--language", metavar="CODE", help="ISO 639-1 code of the new sources (detected when absent)")
    p.add_argument("--name", help="source name (one input only; derived from the URL or file name otherwise)")
    p.add_argument("--feed", action="store_true", help="the URLs are RSS/Atom feeds: every item becomes a document")
    _sources_argument(p)
    p.add_argument("--no-run", action="store_true", help="only write the entries; ingest them later")
    p.add_argument("--json", action="store_true", help="print what was added and the run report as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add URLs, feeds or files to the managed sources.added.yaml, then ingest them (unless --no-run)."""
    from ingest.add import add_sources, new_names
    from ingest.pipeline import run_ingest
    from ingest.sources import managed_path

    results = add_sources(settings, args.sources, args.inputs, doctype=args.doctype, publisher=args.publisher,
                          language=args.language, name=args.name, feed=args.feed)
    err = sys.stderr
    for r in results:
        print(f"{r.message}" + (f" ({r.kind} {r.target})" if r.status == "added" else f" ({r.input})"),
              file=err, flush=True)
    names = new_names(results)
    report = None
    if names and not args.no_run:
        print(f"ingesting {', '.join(names)} …", file=err, flush=True)
        report = run_ingest(settings, _load_sources(args.sources), only=names, progress=not args.quiet,
                            sources_file=str(args.sources), wait_for_lock=True)
    by_name = {s.name: s for s in report.sources} if report else {}
    out = []
    for r in results:
        item: dict[str, Any] = r.to_json()
        rep = by_name.get(r.name) if r.status == "added" else None
        if rep is not None:
            item.update(ingest_status=rep.status,
                        documents=rep.documents_new + rep.documents_updated + rep.documents_unchanged + rep.duplicates,
                        documents_new=rep.documents_new, duplicates=rep.duplicates, errors=rep.errors)
        out.append(item)
    if args.json:
        print_json({"sources_file": str(args.sources), "managed_file": str(managed_path(args.sources)),
                    "results": out, "run": report.to_json() if report else None})
    else:
        if report is not None:
            _print_summary(report)
        for item in out:
            if "ingest_status" not in item:
                continue
            if item["ingest_status"] == "failed":
                reasons = "; ".join(e["error"] for e in item["errors"]) or "no document could be ingested"
                print(f"{item['name']}: failed: {reasons}", file=err)
            else:
                print(f"{item['name']}: ingested {item['documents']} document(s)"
                      + (f", {len(item['errors'])} failed" if item["errors"] else ""), file=err)
    if report is not None and report.failed:
        print(f"the entries stay in {managed_path(args.sources)}: the next `python -m ingest run` or `watch` tries "
              "them again; edit that file to remove one", file=err)
    return report.exit_code if report else 0


def _run_arguments(p: argparse.ArgumentParser) -> None:
    _sources_argument(p)
    p.add_argument("--only", nargs="+", metavar="NAME", help="ingest only these sources")
    p.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--wait", action="store_true", help="wait for a running ingest instead of exiting")


def _status_arguments(p: argparse.ArgumentParser) -> None:
    _sources_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON on stdout")


COMMANDS: tuple[Command, ...] = (
    Command("run", "ingest every source once (progress on stderr)", _run_arguments, _sourced(cmd_run)),
    Command("add", "add URLs, feeds or files to sources.added.yaml and ingest them at once", _add_arguments,
            _sourced(cmd_add)),
    Command("status", "what is in the index, last runs, source health", _status_arguments, _sourced(cmd_status)),
    Command("watch", "re-ingest each source at its refresh interval until stopped", _watch_arguments,
            _sourced(cmd_watch)),
    Command("verify", "re-hash every snapshot and stored text; compare registry and store", _verify_arguments,
            cmd_verify),
    Command("prune", "delete sources no longer in the sources file (explicit: --yes)", _prune_arguments,
            _sourced(cmd_prune)),
    Command("migrate", "apply pending registry schema migrations; report the schema version before/after",
            _migrate_arguments, cmd_migrate),
)
DESCRIPTION = ("Fetch, extract, deduplicate, chunk and embed the sources of sources.yaml into the knowledge base. "
               "Settings come from KB_* environment variables (see README).")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m ingest`` with these arguments (``sys.argv`` by default); returns the exit code."""
    return run_cli("python -m ingest", DESCRIPTION, COMMANDS, argv)
