"""``python -m kb ask`` and ``python -m kb eval``, and the filter arguments they share with ``export``."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from kb.cli.framework import EXIT_OK, EXIT_PARTIAL, Command, print_json
from kb.errors import KBError, UsageError
from kb.settings import Settings

if TYPE_CHECKING:
    from kb.answer.engine import Engine
    from kb.retrieval.filters import Filters

LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?")


# -- shared argument groups ----------------------------------------------------------------------
def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """Filters shared by ask, eval and export."""
    g = p.add_argument_group("filters")
    g.add_argument("--lang", metavar="CODE", help="only passages or documents in these languages (ISO 639-1, comma-separated)")
    g.add_argument("--doctype", metavar="T", help="only these document types: news, tos, court, blog, other")
    g.add_argument("--source", metavar="NAME", help="only these sources (names from sources.yaml, comma-separated)")
    g.add_argument("--publisher", metavar="P", help="only publishers whose name contains P (case-insensitive)")
    g.add_argument("--since", metavar="DATE", help="only documents published on or after DATE (YYYY-MM-DD)")
    g.add_argument("--until", metavar="DATE", help="only documents published on or before DATE (YYYY-MM-DD)")
    g.add_argument("--as-of", metavar="DATE", dest="as_of",
                   help="answer from the versions the index held at DATE (date or ISO-8601 date-time); default: latest")


def filters_from_args(args: argparse.Namespace) -> Filters:
    """Validated ``Filters`` from parsed arguments (``UsageError`` on a bad date)."""
    from kb.retrieval.filters import Filters
    from kb.times import parse_when

    for name in ("since", "until", "as_of"):
        value = getattr(args, name, None)
        if value:
            try:
                parse_when(value)
            except ValueError:
                raise UsageError(f"--{name.replace('_', '-')} {value!r} is not a date; use YYYY-MM-DD or an "
                                 "ISO-8601 date-time") from None
    for code in (args.lang or "").split(","):
        if code.strip() and not LANGUAGE_CODE.fullmatch(code.strip()):
            raise UsageError(f"--lang {code.strip()!r} is not a language code; use ISO 639-1 codes such as en, hi, zh "
                             "(comma-separated)")
    return Filters(language=args.lang, doctype=args.doctype, publisher=args.publisher, source=args.source,
                   since=args.since, until=args.until, as_of=args.as_of)


def load_engine(settings: Settings) -> Engine:
    """The loaded engine (model, store, registry, retriever) for these settings."""
    from kb.answer.engine import get_engine

    return get_engine(settings)


# -- ask -----------------------------------------------------------------------------------------
def _ask_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="?", help="the question, in any language")
    p.add_argument("--batch", metavar="FILE", help="one question per line, or JSONL with a 'question' field ('-' = stdin)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (one object per question)")
    p.add_argument("--top-k", type=int, default=8, metavar="N", help="how many passages to retrieve (default 8)")
    p.add_argument("--mode", choices=("generated", "extractive"),
                   help="generated: an LLM writes the answer, every claim with verified quotes (default when KB_LLM "
                        "names a backend); extractive: verbatim quotes only (default otherwise)")
    p.add_argument("--conversation", action="store_true",
                   help="with --batch: the questions are one conversation, so a follow-up (\"And when did he "
                        "testify?\") is resolved against the question before it (resolved_question in the JSON)")
    add_filter_arguments(p)


def read_batch(path: str) -> Iterator[str]:
    """Questions from a text file (one a line) or JSONL (``question`` field)."""
    fh = sys.stdin if path == "-" else open(path, encoding="utf-8")
    try:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path}: a line is not valid JSON ({exc}); fix it or use one question per line") from None
                if "question" not in obj:
                    raise UsageError(f"{path}: a JSON line has no 'question' field")
                yield str(obj["question"])
            else:
                yield line
    finally:
        if fh is not sys.stdin:
            fh.close()


def format_answer(ans: Any) -> str:
    """Human-readable answer with its numbered sources."""
    lines = [ans.answer]
    if ans.mode == "generated":
        lines.append(f"(generated by {ans.model}; every quote below verified verbatim in its source)")
    elif ans.fallback_reason:
        lines.append(f"(extractive: {ans.fallback_reason})")
    if ans.citations:
        lines.append("")
        for c in ans.citations:
            when = f", {c.published}" if c.published else ""
            lines.append(f"[{c.n}] {c.title or c.url} — {c.publisher or 'unknown publisher'}{when}")
            lines.append(f"    {c.url}  (characters {c.start}-{c.end})")
            for a in c.also_reported_by:
                lines.append(f"    also reported by: {a.get('publisher') or a.get('title')} {a.get('url', '')}")
    return "\n".join(lines)


def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    from kb.generate.generator import ask

    if args.question is not None and not args.question.strip():
        raise UsageError("the question is empty; write a question, e.g. kb ask \"Which court did Musk testify in?\"")
    if args.question is not None and args.batch:
        raise UsageError("give either a QUESTION or --batch FILE, not both")
    if args.question is None and not args.batch:
        raise UsageError("give a QUESTION, or --batch FILE with one question per line")
    if args.top_k < 1:
        raise UsageError("--top-k must be 1 or more")
    if args.batch and not args.json:
        raise UsageError("--batch prints JSON lines; add --json")
    if args.conversation and not args.batch:
        raise UsageError("--conversation needs --batch FILE with the conversation's questions in order")
    if args.batch and args.batch != "-" and not Path(args.batch).is_file():
        raise UsageError(f"--batch {args.batch}: no such file")
    filters = filters_from_args(args)
    if args.mode != "extractive":
        from kb.generate.generator import backend_for

        backend_for(settings)          # an incomplete KB_LLM setting is a usage error before anything loads
    engine = load_engine(settings)
    if not args.batch:
        ans = ask(engine, args.question, filters=filters, top_k=args.top_k, mode=args.mode, settings=settings)
        if args.json:
            print_json(ans.to_json(), indent=None)
        else:
            print(format_answer(ans))
        return EXIT_OK
    from kb.answer.followup import PriorTurn
    from kb.generate.generator import prior_turn

    failed = 0
    previous: list[PriorTurn] = []
    for q in read_batch(args.batch):
        try:
            ans = ask(engine, q, filters=filters, top_k=args.top_k, mode=args.mode, settings=settings,
                      previous=previous[-1:])
            if args.conversation:
                previous.append(prior_turn(ans))
            print_json(ans.to_json(), indent=None)
        except KBError as exc:
            failed += 1
            print(f"kb: question {q[:60]!r} failed: {exc}", file=sys.stderr)
    return EXIT_PARTIAL if failed else EXIT_OK


# -- eval ----------------------------------------------------------------------------------------
def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("questions", help="JSONL: question, lang, supporting, keywords, unanswerable")
    p.add_argument("--json", action="store_true", help="print the metrics (and per-question rows) as JSON")
    p.add_argument("--top-k", type=int, default=8, metavar="N", help="passages to retrieve (default 8)")
    p.add_argument("--corpus-manifest", metavar="TSV", help="MANIFEST.tsv mapping file names to URLs "
                   "(default: ../shared/corpus/MANIFEST.tsv when present)")
    p.add_argument("--details", action="store_true", help="also print one line per question")
    p.add_argument("--calibrate", action="store_true",
                   help="sweep the abstention thresholds over these questions instead (prints the best setting)")


def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    from kb.evaluate import evaluate, format_report, load_questions

    path = Path(args.questions)
    if not path.is_file():
        raise UsageError(f"{path}: no such file; give a JSONL file of questions")
    try:
        questions = load_questions(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    engine = load_engine(settings)
    if args.calibrate:
        from kb.evaluate import calibrate, format_calibration

        cal = calibrate(engine, questions)
        if args.json:
            print_json(cal)
        else:
            print(format_calibration(cal))
        return EXIT_OK
    report = evaluate(engine, questions, top_k=args.top_k,
                      manifest=Path(args.corpus_manifest) if args.corpus_manifest else None)
    if args.json:
        print_json(report)
    else:
        print(format_report(report, details=args.details))
    return EXIT_OK


ASK = Command("ask", "answer a question from the index, with verified citations", _ask_arguments, run_ask)
EVAL = Command("eval", "retrieval, citation, answer-containment and abstention metrics over a question set",
               _eval_arguments, run_eval)
