"""Calibrate the claim-to-quote similarity gate of generated answers (``CLAIM_MIN_SIMILARITY``) across
languages, on XQuAD's dev articles only, and report how it holds on the test articles.

A generated claim is a statement in the question's language; its quote is a sentence of an English
source. XQuAD gives that pair without an LLM: the question with its answer in language L
("Wie lautet ...? Ogród Saski.") against the English sentence holding the answer (positive), the
other sentences of the same paragraph (hard negatives: same topic, not the fact) and a sentence of
another article (easy negatives: what an injected or unrelated quote looks like).

    python bench/claim_calibration.py [--per-lang 60]

The threshold chosen is the highest that keeps at least ``KEEP`` of the dev positives in every
language (so no language is sacrificed); the script prints it, then the test-article figures.
Benchmarks are not tests: this prints figures and changes nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.xquad import LANGS, TEST_ARTICLES, XQUAD
from kb.settings import load_settings
from kb.text.sentences import sentence_spans
from kb.vectors.embedding import make_embedder

KEEP = 0.90
SEED = 20261202


def _body(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text[text.index("\n---\n", 3) + 5:].lstrip("\n")


def _pairs(split: str, per_lang: int) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    bodies = {p.stem: _body(p) for p in (XQUAD / "corpus").glob("*.md")}
    sentences = {a: [b[s:e] for s, e in sentence_spans(b)] for a, b in bodies.items()}
    out: list[dict[str, Any]] = []
    for lang in LANGS:
        rows = [json.loads(line) for line in (XQUAD / f"questions_{lang}.jsonl").open(encoding="utf-8")]
        rows = [r for r in rows if (r["gold_file"] in TEST_ARTICLES) == (split == "test")]
        rng.shuffle(rows)
        for r in rows[:per_lang]:
            art, body = r["gold_file"], bodies[r["gold_file"]]
            a0 = int(r["gold_answer_en_start"])
            para = (int(r["gold_paragraph_start"]), int(r["gold_paragraph_end"]))
            spans = sentence_spans(body, *para)
            pos = [body[s:e] for s, e in spans if s <= a0 < e]
            if not pos:
                continue
            hard = [body[s:e] for s, e in spans if not s <= a0 < e and len(body[s:e]) > 30]
            other = rng.choice([a for a in bodies if a != art])
            easy = rng.choice([s for s in sentences[other] if len(s) > 30])
            claim = f"{r['question'].strip()} {r['gold_answer'].strip()}."
            out.append({"lang": lang, "claim": claim, "pos": pos[0], "hard": hard[:2], "easy": easy})
    return out


def _score(rows: list[dict[str, Any]], emb: Any) -> dict[str, dict[str, list[float]]]:
    texts = sorted({t for r in rows for t in [r["pos"], r["easy"], *r["hard"]]})
    vecs = dict(zip(texts, emb.embed_passages(texts)))
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        q = np.asarray(emb.embed_query(r["claim"]), dtype=np.float32)
        q /= np.linalg.norm(q) or 1.0

        def cos(t: str, q: np.ndarray = q) -> float:
            v = vecs[t]
            return float(v @ q / (np.linalg.norm(v) or 1.0))

        d = out.setdefault(str(r["lang"]), {"pos": [], "hard": [], "easy": []})
        d["pos"].append(cos(str(r["pos"])))
        d["hard"] += [cos(str(h)) for h in r["hard"]]
        d["easy"].append(cos(str(r["easy"])))
    return out


def _report(title: str, scores: dict[str, dict[str, list[float]]], threshold: float) -> None:
    print(f"\n{title} (threshold {threshold:.3f})")
    print(f"{'lang':5} {'n':>4} {'kept: supporting':>17} {'kept: same paragraph':>21} {'kept: other article':>20}")
    for lang in LANGS:
        d = scores.get(lang)
        if not d:
            continue
        k = {key: float(np.mean(np.asarray(v) >= threshold)) if v else float("nan") for key, v in d.items()}
        print(f"{lang:5} {len(d['pos']):>4} {k['pos']:>17.2f} {k['hard']:>21.2f} {k['easy']:>20.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-lang", type=int, default=60, help="dev questions per language (default 60)")
    parser.add_argument("--test-per-lang", type=int, default=40, help="test questions per language (default 40)")
    args = parser.parse_args()
    if not XQUAD.is_dir():
        sys.exit(f"no XQuAD data at {XQUAD}; set KB_SHARED_DIR")
    settings = load_settings()
    emb = make_embedder(settings.with_(embed_cache=ROOT / "data" / "xquad-bench" / "claim_cache.sqlite"))
    dev = _score(_pairs("dev", args.per_lang), emb)
    # The highest threshold that keeps >= KEEP of the positives in every language.
    threshold = min(float(np.quantile(d["pos"], 1 - KEEP)) for d in dev.values())
    print(f"embedder: {emb.model_id}; chosen on dev: CLAIM_MIN_SIMILARITY = {threshold:.3f} "
          f"(keeps >= {KEEP:.0%} of supporting pairs in every language)")
    _report("dev articles", dev, threshold)
    test = _score(_pairs("test", args.test_per_lang), emb)
    _report("test articles (not used to choose)", test, threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
