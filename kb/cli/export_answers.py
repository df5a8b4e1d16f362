"""``python -m kb export``: a cited summary of one or more questions as md, docx, pdf or json.

    python -m kb export QUESTION [QUESTION ...] --format md|docx|pdf|json -o FILE [filters]
    python -m kb export --answers ASK.jsonl --format pdf -o FILE   # re-export saved `kb ask --json` output

Listed in ``kb.cli``. Exit codes: 0 written; 1 refused because a
quote failed verification (nothing written); 2 bad invocation or no index.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kb.cli.ask_eval import add_filter_arguments, filters_from_args, load_engine
from kb.cli.framework import EXIT_OK, EXIT_PARTIAL, Command
from kb.errors import UsageError
from kb.export import FORMATS, ExportError, check_export_target, export_answers, write_export
from kb.models import Answer, Citation, Claim, Passage
from kb.settings import Settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="*", help="one or more questions (each is answered, then all are exported)")
    p.add_argument("--format", "-f", choices=FORMATS, help="output format (default: from the -o file name)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write ('-' = stdout)")
    p.add_argument("--answers", metavar="FILE",
                   help="export saved answers instead of asking: JSON lines from `kb ask --json` ('-' = stdin)")
    p.add_argument("--top-k", type=int, default=8, metavar="N", help="how many passages to retrieve (default 8)")
    add_filter_arguments(p)


def answer_from_json(obj: dict[str, Any]) -> Answer:
    """An ``Answer`` from one ``kb ask --json`` object (its quotes are verified again at export)."""
    try:
        cites = [Citation(**{k: c.get(k, "" if k not in ("n", "start", "end") else 0) for k in _CITATION_FIELDS},
                          also_reported_by=list(c.get("also_reported_by") or [])) for c in obj.get("citations", [])]
        passages = [Passage(chunk_id=p["chunk_id"], doc_id=p.get("doc_id", ""), version_id="", text="", start=0, end=0,
                            url=p.get("url", ""), language=p.get("language", "und"), score=float(p.get("score", 0.0)))
                    for p in obj.get("passages", [])]
        return Answer(question=obj["question"], question_language=obj.get("question_language", "und"),
                      answer=obj["answer"], answer_language=obj.get("answer_language", "und"),
                      abstained=bool(obj.get("abstained")), citations=cites, passages=passages,
                      mode=str(obj.get("mode") or "extractive"), model=obj.get("model"),
                      claims=[Claim(text=str(c["text"]), citations=[int(n) for n in c.get("citations", [])])
                              for c in obj.get("claims") or []],
                      fallback_reason=obj.get("fallback_reason"))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"an answer is not in the `kb ask --json` form ({exc!r})") from exc


_CITATION_FIELDS = ("n", "doc_id", "version_id", "chunk_id", "title", "publisher", "url", "doctype", "language",
                    "published", "retrieved", "quote", "start", "end")


def _read_answers(path: str) -> list[Answer]:
    if path != "-" and not Path(path).is_file():
        raise UsageError(f"--answers {path}: no such file")
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append(answer_from_json(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{i}: not a JSON line ({exc})") from exc
    if not out:
        raise UsageError(f"--answers {path}: no answers in it")
    return out


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    suffix = Path(args.output).suffix.lower().lstrip(".")
    fmt = {"markdown": "md"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise UsageError(f"cannot tell the format from {args.output!r}; add --format {'|'.join(FORMATS)}")
    return fmt


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.output != "-":
        check_export_target(args.output)  # before any answering work
    fmt = _format(args)
    if bool(args.question) == bool(args.answers):
        raise UsageError("give one or more QUESTIONs or --answers FILE (not both)")
    if args.top_k < 1:
        raise UsageError("--top-k must be 1 or more")
    if args.answers:  # saved answers: only the registry is needed to verify and render them
        answers = _read_answers(args.answers)
        extra: dict[str, Any] = {}
    else:
        filters = filters_from_args(args)
        engine = load_engine(settings)
        answers = [engine.ask(q, filters=filters, top_k=args.top_k) for q in args.question]
        settings, extra = engine.settings, {"registry": engine.registry, "embedder_id": engine.embedder.model_id}
    for a in answers:
        if a.abstained:
            print(f"kb: note: no answer for {a.question[:60]!r} (the sources do not cover it); it is exported "
                  "as an abstention", file=sys.stderr)
    try:
        if args.output == "-":
            sys.stdout.buffer.write(export_answers(answers, fmt, settings, **extra))
            sys.stdout.buffer.flush()
            return EXIT_OK
        path = write_export(answers, fmt, Path(args.output), settings, **extra)
    except ExportError as exc:
        print(f"kb: export failed, nothing written: {exc}", file=sys.stderr)
        return EXIT_PARTIAL
    n = sum(len(a.citations) for a in answers)
    print(f"kb: wrote {path} ({fmt}; {len(answers)} question(s), {n} verified quote(s))", file=sys.stderr)
    return EXIT_OK


EXPORT = Command("export", "a cited summary (md, docx, pdf or json) with verified pinpoint quotes", add_arguments, run)
