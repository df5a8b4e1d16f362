"""``python -m ingest``: the only place in ingest that prints; exit codes 0 ok, 1 some items failed, 2 bad input."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from kb.errors import ConfigError, KBError
from kb.registry import Registry
from kb.settings import Settings, load_settings

Command = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    """Register a subcommand handler."""
    def wrap(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn
    return wrap


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


@command("run")
def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest sources.yaml once."""
    from ingest.pipeline import run_ingest
    from ingest.sources import load_sources

    sources = load_sources(args.sources)
    unknown = set(args.only or []) - {s.name for s in sources}
    if unknown:
        raise ConfigError(f"--only names unknown source(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(s.name for s in sources)}")
    report = run_ingest(settings, sources, only=args.only, progress=not args.quiet,
                        sources_file=str(args.sources), wait_for_lock=args.wait)
    if args.json:
        _print_json(report.to_json())
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


def status_json(settings: Settings) -> dict[str, Any]:
    """The ``ingest status --json`` object."""
    if not settings.registry_path.exists():
        raise KBError(f"no index in {settings.data_dir} yet; build it with `python -m ingest run`")
    reg = Registry(settings.registry_path, readonly=True)
    docs = reg.documents()
    canonical = [d for d in docs if not d["duplicate_of"]]
    current = reg.query("SELECT v.version_id, v.n_chunks, v.language, d.doctype FROM versions v JOIN documents d "
                        "USING(doc_id) WHERE v.status='indexed' AND d.duplicate_of IS NULL")
    embedder = None
    store_mode = settings.store_mode
    try:
        from kb.store import open_store
        store = open_store(settings, create=False)
        embedder = store.embedder_id
        n_chunks = store.count()
    except KBError:
        n_chunks = sum(r["n_chunks"] for r in current)
    per_source = Counter(d["source"] for d in docs)
    return {
        "documents": len(canonical),
        "versions": reg.query("SELECT COUNT(*) FROM versions v JOIN documents d USING(doc_id) "
                              "WHERE d.duplicate_of IS NULL")[0][0],
        "chunks": n_chunks,
        "duplicates": len(docs) - len(canonical),
        "by_language": dict(Counter(d["language"] or "und" for d in canonical).most_common()),
        "by_doctype": dict(Counter(d["doctype"] or "other" for d in canonical).most_common()),
        "embedder": embedder,
        "store": store_mode,
        "sources": [{"name": s["name"], "documents": per_source.get(s["name"], 0), "last_run": s["last_run"],
                     "last_success": s["last_success"], "consecutive_failures": s["consecutive_failures"],
                     "last_error": s["last_error"], "removed": bool(s["removed_at"])} for s in reg.sources()],
    }


@command("status")
def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """What is in the index, last runs and source health."""
    st = status_json(settings)
    if args.json:
        _print_json(st)
        return 0
    print(f"{st['documents']} documents, {st['versions']} versions, {st['chunks']} chunks, "
          f"{st['duplicates']} duplicates; store {st['store']}; embedder {st['embedder']}")
    print("languages: " + ", ".join(f"{k} {v}" for k, v in st["by_language"].items()))
    print("doctypes:  " + ", ".join(f"{k} {v}" for k, v in st["by_doctype"].items()))
    for s in st["sources"]:
        health = "ok" if not s["consecutive_failures"] else f"{s['consecutive_failures']} failed run(s)"
        print(f"  {s['name']:32} {s['documents']:4} docs  last run {s['last_run'] or '-'}  {health}")
        if s["last_error"]:
            print(f"      last error: {s['last_error']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ingest", description=(
        "Fetch, extract, deduplicate, chunk and embed the sources of sources.yaml into the knowledge base. "
        "Settings come from KB_* environment variables (see README)."))
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="ingest every source once (progress on stderr)")
    r.add_argument("--sources", type=Path, default=Path("sources.yaml"), help="sources file (default: sources.yaml)")
    r.add_argument("--only", nargs="+", metavar="NAME", help="ingest only these sources")
    r.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--wait", action="store_true", help="wait for a running ingest instead of exiting")
    s = sub.add_parser("status", help="what is in the index, last runs, source health")
    s.add_argument("--json", action="store_true", help="print JSON on stdout")
    for extra in EXTRA_PARSERS:
        extra(sub)
    return p


#: Other modules (watch, verify, prune) add their subparsers here.
EXTRA_PARSERS: list[Callable[[Any], None]] = []


def _load_extensions() -> None:
    import importlib

    for mod in ("ingest.maintenance",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    _load_extensions()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        return COMMANDS[args.command](args, settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to finish the job", file=sys.stderr)
        return 1
