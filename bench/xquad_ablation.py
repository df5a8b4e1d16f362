"""Ablation of the answer step on the XQuAD benchmark: what each change of this wave does, per language.

    python bench/xquad_ablation.py [--split dev|test] [--limit N] [--json]

Uses the index and the fixed split of ``bench/xquad.py`` (build it first with that script). The same
questions are answered in one process under each variant, from the first wave's rule to today's:

1. ``first wave``: fixed cosine floors (passage 0.83, sentence 0.80), every unknown English word, unscaled
   lexical weight 0.35 and rank weight 0.05, answer type read from the three leading quotes;
2. ``+ support model``: the floors replaced by the support model (relative cosines, language-aware);
3. ``+ coverage-scaled lexical term``: today's sentence weights;
4. ``+ names-only unknown terms, type window 5``;
5. ``+ quote widened to its neighbour sentence`` (``kb.answer.scoring.widen_quotes``; = today's answerer).

Containment: ``gold_answer_en`` in the answer or a quote; false abstention on answerable questions;
correct abstention on the questions about left-out articles.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import xquad as X

import kb.answer.abstention as abstention
import kb.answer.scoring as scoring
from kb.answer.engine import Engine
from kb.settings import load_settings


def _all_words(question: str, qlang: str, idf: Callable[[str], float]) -> list[str]:
    """The first wave's unknown-term rule: every English content word the index never saw."""
    if qlang not in ("en", "hi", "zh", "ja", "ko", "und"):
        return []
    return [t for t in dict.fromkeys(abstention.tokenize(question, "en"))
            if abstention._LATIN_WORD.match(t) and len(t) > 2 and t not in abstention._META and idf(t) <= 0]


def variants(base: abstention.Thresholds) -> list[tuple[str, dict[str, Any]]]:
    first = {"th": replace(base, min_support=0.0, unknown_term_support=1.01, min_passage_dense=0.83,
                           min_sentence_dense=0.80),
             "W_LEX": 0.35, "W_RANK": 0.05, "LEX_BY_COVERAGE": False, "unknown": _all_words, "TYPE_WINDOW": 3,
             "WIDEN_GAIN": 1.0}
    support = {**first, "th": replace(base, unknown_term_support=1.01)}
    weights = {**support, "W_LEX": scoring.W_LEX, "W_RANK": scoring.W_RANK, "LEX_BY_COVERAGE": True}
    names = {**weights, "th": base, "unknown": abstention.unknown_terms, "TYPE_WINDOW": abstention.TYPE_WINDOW}
    today = {**names, "WIDEN_GAIN": scoring.WIDEN_GAIN}
    return [("first wave", first), ("+ support model", support), ("+ coverage-scaled lexical term", weights),
            ("+ names-only unknown terms, type window 5", names), ("+ quote widened to its neighbour sentence", today)]


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def run(engine: Engine, questions: list[dict[str, Any]], left_out: set[str], v: dict[str, Any]) -> dict[str, Any]:
    saved = (scoring.W_LEX, scoring.W_RANK, scoring.LEX_BY_COVERAGE, scoring.WIDEN_GAIN, abstention.unknown_terms,
             abstention.TYPE_WINDOW, engine.thresholds)
    scoring.W_LEX, scoring.W_RANK, scoring.LEX_BY_COVERAGE = v["W_LEX"], v["W_RANK"], v["LEX_BY_COVERAGE"]
    scoring.WIDEN_GAIN = v["WIDEN_GAIN"]
    abstention.unknown_terms, abstention.TYPE_WINDOW, engine.thresholds = v["unknown"], v["TYPE_WINDOW"], v["th"]
    try:
        rows: dict[str, dict[str, list[bool]]] = {}
        for q in questions:
            ans = engine.ask(q["question"])
            r = rows.setdefault(q["lang"], {"contained": [], "false": [], "correct": []})
            if q["gold_file"] in left_out:
                r["correct"].append(ans.abstained)
                continue
            gold = _norm(q["gold_answer_en"])
            texts = [ans.answer] + [c.quote for c in ans.citations]
            r["false"].append(ans.abstained)
            r["contained"].append(not ans.abstained and any(gold in _norm(t) for t in texts))
    finally:
        (scoring.W_LEX, scoring.W_RANK, scoring.LEX_BY_COVERAGE, scoring.WIDEN_GAIN, abstention.unknown_terms,
         abstention.TYPE_WINDOW, engine.thresholds) = saved

    def rate(xs: list[bool]) -> float | None:
        return round(sum(xs) / len(xs), 3) if xs else None

    out = {lang: {k: rate(vals) for k, vals in r.items()} for lang, r in rows.items()}
    out["overall"] = {k: rate([x for r in rows.values() for x in r[k]]) for k in ("contained", "false", "correct")}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--limit", type=int, default=100, help="question ids per language (0: all)")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data" / "xquad-bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    index = args.data_dir / "index"
    if not (index / "registry.sqlite").exists():
        sys.exit(f"no XQuAD index in {index}; build it with `python bench/xquad.py` first")
    os.environ["KB_DATA_DIR"] = str(index)
    os.environ.setdefault("KB_EMBED_CACHE", str(args.data_dir / "embed_cache.sqlite"))
    members, left_out = X.split_articles(args.split)
    by_lang = {lang: X.load_lang(lang) for lang in X.LANGS}
    ids = X.choose_ids(by_lang, members + left_out, args.limit)
    questions = [by_lang[lang][i] for lang in X.LANGS for i in ids]
    engine = Engine(load_settings())
    engine.warm_up()
    table = {name: run(engine, questions, set(left_out), v) for name, v in variants(engine.thresholds)}
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    langs = [*X.LANGS, "overall"]
    print(f"XQuAD {args.split} split, {len(ids)} question ids x {len(X.LANGS)} languages; "
          "cells: containment / false abstention / correct abstention")
    print(f"{'variant':44}" + "".join(f"{lang:>17}" for lang in langs))
    for name, res in table.items():
        cells = []
        for lang in langs:
            r = res.get(lang, {})
            cells.append("/".join("-" if r.get(k) is None else f"{r[k]:.2f}" for k in ("contained", "false", "correct")))
        print(f"{name:44}" + "".join(f"{c:>17}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
