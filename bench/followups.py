"""Follow-up questions: is the second question of a pair answered right with the first, and without it?

    python bench/followups.py --data-dir DIR [--pairs tests/fixtures/followups.jsonl] [--json]

``DIR`` is an index of ``../shared`` (``python -m ingest run`` over its corpus and seeds). Each pair
(ours, written for this: en es de fr pt hi zh ja) has a first question that names the subject and a
follow-up that does not ("And which law governs them?"). Right = not abstained and a keyword of the
expected fact in the answer or a quote. Three figures per pair: the follow-up alone (the floor: it
should mostly fail), after its first question (the feature), and how often a follow-up is detected.
Then a check that resolution does not hurt questions that stand alone: ``../shared/eval/
dev_questions.jsonl`` asked one after another as one conversation vs each alone (containment both ways).
Extractive answers; benchmarks are not tests.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from kb.answer.engine import Engine
from kb.answer.followup import PriorTurn
from kb.generate.generator import ask, prior_turn
from kb.models import Answer
from kb.settings import load_settings

SHARED = Path(os.environ.get("KB_SHARED_DIR", ROOT.parent / "shared"))


def right(ans: Answer, keywords: list[str]) -> bool:
    """Not abstained, and a keyword in the answer text or one of its quotes (casefolded)."""
    if ans.abstained:
        return False
    text = " ".join([ans.answer, *(c.quote for c in ans.citations)]).casefold()
    return any(k.casefold() in text for k in keywords)


def run_pairs(engine: Engine, pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in pairs:
        alone = ask(engine, p["follow_up"], mode="extractive")
        first = ask(engine, p["first"], mode="extractive")
        after = ask(engine, p["follow_up"], mode="extractive", previous=[prior_turn(first)])
        rows.append({"id": p["id"], "lang": p["lang"], "alone": right(alone, p["keywords"]),
                     "with_first": right(after, p["keywords"]), "detected": after.resolved_question is not None,
                     "first_right": not first.abstained, "searched": after.resolved_question})
    return rows


def run_standalone(engine: Engine, path: Path) -> dict[str, Any]:
    questions = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [q for q in questions if q.get("keywords") and not q.get("unanswerable")]
    alone_ok = conv_ok = resolved = 0
    previous: list[PriorTurn] = []
    for q in questions:
        a = ask(engine, q["question"], mode="extractive")
        c = ask(engine, q["question"], mode="extractive", previous=previous[-1:])
        previous.append(prior_turn(c))
        alone_ok += right(a, q["keywords"])
        conv_ok += right(c, q["keywords"])
        resolved += c.resolved_question is not None
    n = len(questions)
    return {"n": n, "alone": alone_ok / n if n else 0.0, "in_conversation": conv_ok / n if n else 0.0,
            "treated_as_follow_up": resolved / n if n else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, help="an index of ../shared (default KB_DATA_DIR)")
    ap.add_argument("--pairs", type=Path, default=ROOT / "tests" / "fixtures" / "followups.jsonl")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    settings = load_settings()
    if args.data_dir:
        settings = settings.with_(data_dir=args.data_dir)
    engine = Engine(settings)
    engine.warm_up()
    pairs = [json.loads(line) for line in args.pairs.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = run_pairs(engine, pairs)
    dev = SHARED / "eval" / "dev_questions.jsonl"
    standalone = run_standalone(engine, dev) if dev.exists() else None
    n = len(rows)
    summary = {"pairs": n, "alone": sum(r["alone"] for r in rows) / n,
               "with_first": sum(r["with_first"] for r in rows) / n,
               "detected": sum(r["detected"] for r in rows) / n,
               "by_language": {}, "standalone_dev_questions": standalone}
    for lang in sorted({r["lang"] for r in rows}):
        mine = [r for r in rows if r["lang"] == lang]
        summary["by_language"][lang] = {"n": len(mine), "alone": sum(r["alone"] for r in mine) / len(mine),
                                        "with_first": sum(r["with_first"] for r in mine) / len(mine)}
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        print(f"{r['id']} {r['lang']}  alone {'✓' if r['alone'] else '✗'}  with first "
              f"{'✓' if r['with_first'] else '✗'}  searched: {r['searched']}")
    print(f"\n{n} pairs: right alone {summary['alone']:.2f}, right after the first question "
          f"{summary['with_first']:.2f}, follow-up detected {summary['detected']:.2f}")
    for lang, s in summary["by_language"].items():
        print(f"  {lang}: n={s['n']}  alone {s['alone']:.2f}  with first {s['with_first']:.2f}")
    if standalone:
        print(f"stand-alone dev questions (n={standalone['n']}): containment alone {standalone['alone']:.2f}, "
              f"asked as one conversation {standalone['in_conversation']:.2f}, treated as follow-ups "
              f"{standalone['treated_as_follow_up']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
