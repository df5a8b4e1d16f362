"""Generated answers: time to the first verified claim and to the full answer, tokens/s, and the share
of claims verification drops, for the backend ``KB_LLM*`` names (default: starts the local SmolLM2
server of ``scripts/serve_local_llm.py`` itself).

    python bench/generate.py [--data-dir DIR] [--questions FILE ...] [--ctx 2048]
    KB_LLM=openai-compatible KB_LLM_BASE_URL=... KB_LLM_MODEL=... python bench/generate.py --use-env

Questions: ``../shared/eval/dev_questions.jsonl`` and ``tests/fixtures/questions_extra.jsonl``. The
extractive answer of each question is timed in the same run as the baseline. Tokens/s counts the
streamed deltas (llama.cpp's server sends one token per delta) over the generation time. Prints
p50/p95 and the backend and model by name; ``--json`` prints one object. Benchmarks are not tests.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np

from kb.answer.engine import Engine, answer_question
from kb.generate.generator import backend_for, generate_answer
from kb.settings import load_settings

SHARED = Path(os.environ.get("KB_SHARED_DIR", ROOT.parent / "shared"))
DEFAULT_QUESTIONS = (SHARED / "eval" / "dev_questions.jsonl", ROOT / "tests" / "fixtures" / "questions_extra.jsonl")


def _questions(paths: list[Path]) -> list[str]:
    out = []
    for p in paths:
        if p.exists():
            out += [json.loads(line)["question"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="the index (default KB_DATA_DIR)")
    parser.add_argument("--questions", type=Path, nargs="*", default=list(DEFAULT_QUESTIONS))
    parser.add_argument("--limit", type=int, default=0, help="at most this many questions (0: all)")
    parser.add_argument("--ctx", type=int, default=2048, help="context window of the local server (tokens)")
    parser.add_argument("--use-env", action="store_true", help="use the KB_LLM* backend instead of starting one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    if args.data_dir:
        settings = settings.with_(data_dir=args.data_dir)
    proc = None
    if not args.use_env:
        from tests.fixtures.llm_servers import start_local_llm

        proc, base = start_local_llm(ctx=args.ctx)
        settings = settings.with_(llm="openai-compatible", llm_base_url=base, llm_model="smollm2-135m-instruct",
                                  llm_context=args.ctx, llm_timeout=300.0)
    try:
        backend = backend_for(settings)
        if backend is None:
            sys.exit("KB_LLM=extractive: set KB_LLM, KB_LLM_BASE_URL and KB_LLM_MODEL, or drop --use-env")
        engine = Engine(settings)
        engine.warm_up()
        questions = _questions(args.questions)[: args.limit or None]
        first, total, extractive, rates = [], [], [], []
        seen = dropped = generated = 0
        for q in questions:
            t = time.perf_counter()
            answer_question(q, engine)
            extractive.append(time.perf_counter() - t)
            t = time.perf_counter()
            ans = generate_answer(q, engine, backend)
            total.append(time.perf_counter() - t)
            tm = ans.timings
            if ans.mode == "generated":
                generated += 1
                first.append(tm["first_claim"])
            seen += int(tm.get("claims_seen", 0))
            dropped += int(tm.get("claims_dropped", 0))
            if tm.get("generate"):
                rates.append(tm.get("deltas", 0.0) / tm["generate"])
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    result: dict[str, Any] = {
        "backend": backend.kind, "model": backend.model, "questions": len(questions), "generated": generated,
        "first_claim_p50_s": _pct(first, 50), "first_claim_p95_s": _pct(first, 95),
        "answer_p50_s": _pct(total, 50), "answer_p95_s": _pct(total, 95),
        "extractive_p50_s": _pct(extractive, 50), "extractive_p95_s": _pct(extractive, 95),
        "tokens_per_s_p50": _pct(rates, 50), "claims_seen": seen, "claims_dropped": dropped,
        "dropped_share": dropped / seen if seen else float("nan"),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"backend {result['backend']}, model {result['model']}: {len(questions)} questions, "
          f"{generated} answered with generated claims (the rest fell back to extractive)")
    print(f"  time to first verified claim  p50 {result['first_claim_p50_s']:.2f} s  p95 {result['first_claim_p95_s']:.2f} s")
    print(f"  full generated answer         p50 {result['answer_p50_s']:.2f} s  p95 {result['answer_p95_s']:.2f} s")
    print(f"  extractive answer (baseline)  p50 {result['extractive_p50_s']:.2f} s  p95 {result['extractive_p95_s']:.2f} s")
    print(f"  generation speed              p50 {result['tokens_per_s_p50']:.1f} tokens/s")
    print(f"  claims dropped by verification {dropped}/{seen} ({result['dropped_share']:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
