"""``python -m kb``: ask, eval, and any subcommand another module registers.

Each subcommand is a ``Command`` (name, help, ``add_arguments(parser)``, ``run(args) -> exit code``)
in one registry. Modules named ``kb/cli_*.py`` are imported on start and may call ``register()``
(e.g. ``kb/cli_export.py`` for ``export``, ``kb/cli_diff.py`` for ``diff``), so new subcommands need
no edit here. This is the only place in ``kb`` that prints or turns errors into exit codes:
0 success; 1 finished but some items failed (listed); 2 bad invocation, configuration or index.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kb.errors import ConfigError, KBError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Command:
    """One subcommand of ``python -m kb``."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def register(cmd: Command) -> Command:
    """Add (or replace) a subcommand."""
    COMMANDS[cmd.name] = cmd
    return cmd


class UsageError(KBError):
    """A bad invocation (exit code 2)."""


def die(message: str, code: int = EXIT_USAGE) -> int:
    """Print one line to stderr and return the exit code."""
    print(f"kb: {message}", file=sys.stderr)
    return code


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


def filters_from_args(args: argparse.Namespace) -> Any:
    """Validated ``Filters`` from parsed arguments (``UsageError`` on a bad date)."""
    from kb.registry import parse_when
    from kb.retrieve import Filters

    for name in ("since", "until", "as_of"):
        value = getattr(args, name, None)
        if value:
            try:
                parse_when(value)
            except ValueError:
                raise UsageError(f"--{name.replace('_', '-')} {value!r} is not a date; use YYYY-MM-DD or an ISO-8601 date-time")
    return Filters(language=args.lang, doctype=args.doctype, publisher=args.publisher, source=args.source,
                   since=args.since, until=args.until, as_of=args.as_of)


def load_engine() -> Any:
    """Settings from the environment and the loaded engine (model, store, registry, retriever)."""
    from kb.answer import get_engine
    from kb.settings import load_settings

    return get_engine(load_settings())


# -- ask -----------------------------------------------------------------------------------------
def _ask_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="?", help="the question, in any language")
    p.add_argument("--batch", metavar="FILE", help="one question per line, or JSONL with a 'question' field ('-' = stdin)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (one object per question)")
    p.add_argument("--top-k", type=int, default=8, metavar="N", help="how many passages to retrieve (default 8)")
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
                    raise UsageError(f"{path}: a line is not valid JSON ({exc}); fix it or use one question per line")
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
    if ans.citations:
        lines.append("")
        for c in ans.citations:
            when = f", {c.published}" if c.published else ""
            lines.append(f"[{c.n}] {c.title or c.url} — {c.publisher or 'unknown publisher'}{when}")
            lines.append(f"    {c.url}  (characters {c.start}-{c.end})")
            for a in c.also_reported_by:
                lines.append(f"    also reported by: {a.get('publisher') or a.get('title')} {a.get('url', '')}")
    return "\n".join(lines)


def run_ask(args: argparse.Namespace) -> int:
    if bool(args.question) == bool(args.batch):
        raise UsageError("give either a QUESTION or --batch FILE (not both)")
    if args.top_k < 1:
        raise UsageError("--top-k must be 1 or more")
    if args.batch and not args.json:
        raise UsageError("--batch prints JSON lines; add --json")
    if args.batch and args.batch != "-" and not Path(args.batch).is_file():
        raise UsageError(f"--batch {args.batch}: no such file")
    filters = filters_from_args(args)
    engine = load_engine()
    if not args.batch:
        ans = engine.ask(args.question, filters=filters, top_k=args.top_k)
        print(json.dumps(ans.to_json(), ensure_ascii=False) if args.json else format_answer(ans))
        return EXIT_OK
    failed = 0
    for q in read_batch(args.batch):
        try:
            ans = engine.ask(q, filters=filters, top_k=args.top_k)
            print(json.dumps(ans.to_json(), ensure_ascii=False), flush=True)
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


def run_eval(args: argparse.Namespace) -> int:
    from kb.evaluate import evaluate, format_report, load_questions

    path = Path(args.questions)
    if not path.is_file():
        raise UsageError(f"{path}: no such file; give a JSONL file of questions")
    try:
        questions = load_questions(path)
    except ValueError as exc:
        raise UsageError(str(exc))
    engine = load_engine()
    if args.calibrate:
        from kb.evaluate import calibrate, format_calibration

        cal = calibrate(engine, questions)
        print(json.dumps(cal, ensure_ascii=False, indent=2) if args.json else format_calibration(cal))
        return EXIT_OK
    report = evaluate(engine, questions, top_k=args.top_k,
                      manifest=Path(args.corpus_manifest) if args.corpus_manifest else None)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_report(report, details=args.details))
    return EXIT_OK


register(Command("ask", "answer a question from the index, with verified citations", _ask_arguments, run_ask))
register(Command("eval", "retrieval, citation and abstention metrics over a question set", _eval_arguments, run_eval))


# -- entry point ---------------------------------------------------------------------------------
def load_plugins() -> None:
    """Import ``kb/cli_*.py`` modules so they can register their subcommands."""
    import kb

    for mod in pkgutil.iter_modules(kb.__path__):
        if mod.name.startswith("cli_"):
            importlib.import_module(f"kb.{mod.name}")


def build_parser() -> argparse.ArgumentParser:
    load_plugins()
    parser = argparse.ArgumentParser(prog="python -m kb", description="Ask the knowledge base; evaluate it.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args))
    except (UsageError, ConfigError) as exc:
        return die(str(exc))
    except KBError as exc:
        return die(str(exc))
    except KeyboardInterrupt:
        return die("interrupted", 130)
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
