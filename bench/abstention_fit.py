"""Fit the abstention model on XQuAD dev articles left out of the index in turn (article-grouped folds).

    python bench/abstention_fit.py collect [--data-dir data/xquad-folds] [--embed-cache FILE]
    python bench/abstention_fit.py fit [--data-dir data/xquad-folds] [--max-false 0.08]

Only the 18 **dev** articles of ``bench/xquad.py`` are used (the 6 test articles' questions are never
read; their 4 indexed articles stay in every index as distractors, as in the benchmark's index). The dev
articles are split into 6 folds of 3: fold 0 is ``DEV_LEFT_OUT`` (the benchmark's own index), the other
15 articles are grouped by a hash of their names. For each fold an index of 19 articles is built
without the fold's articles (the passage-vector cache makes that cheap), and every dev question of the
fold's articles, in all 7 languages, is an **unanswerable** example there; the same questions asked of
an index that holds their article are the **answerable** examples. So every dev article is, once,
an article the index does not have — 18 articles instead of the benchmark's 3.

``collect`` measures the evidence of every example (``kb.evaluate.measure_question``, the steps of
``kb eval --calibrate``, keeping the raw scores too) and writes ``evidence.jsonl``. ``fit`` standardises
the features of ``kb.answer.abstention.SUPPORT_FEATURES``, fits a class-balanced logistic regression
(scikit-learn, a bench-only dependency), reports leave-one-fold-out figures per language (the
threshold chosen on the other folds so that their false abstention is at most ``--max-false``) next to
the model currently in ``kb/answer/abstention.py``, and prints the constants fitted on all folds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np

from bench.xquad import DEV_LEFT_OUT, LANGS, TEST_ARTICLES, TEST_LEFT_OUT, articles, build_index, child_env, load_lang

N_FOLDS = 6


def folds() -> list[list[str]]:
    """Fold 0: the benchmark's left-out dev articles; folds 1-5: the other 15 dev articles by name hash."""
    dev = [a for a in articles() if a not in TEST_ARTICLES]
    rest = sorted((a for a in dev if a not in DEV_LEFT_OUT), key=lambda a: hashlib.sha256(a.encode()).hexdigest())
    per = len(rest) // (N_FOLDS - 1)
    return [list(DEV_LEFT_OUT)] + [rest[i * per:(i + 1) * per] for i in range(N_FOLDS - 1)]


def fold_index(k: int, fold: Sequence[str]) -> list[str]:
    """The articles indexed in fold ``k``: all but the test split's left-out ones and the fold's own."""
    return [a for a in articles() if a not in TEST_LEFT_OUT and a not in fold]


# -- collect ---------------------------------------------------------------------------------------
def raw_evidence(engine: Any, question: str) -> dict[str, Any]:
    """The product's evidence for one question, plus the raw scores other features could be built from."""
    from kb.answer.abstention import SUPPORT_FEATURES, support
    from kb.evaluate import measure_question

    lang, ret, cands, ev = measure_question(engine, question)
    bg = _background(engine)
    cos = bg @ np.asarray(ret.query_vector, dtype=np.float32) if len(bg) and ret.query_vector is not None else np.zeros(1)
    qnums = _numbers(question)
    top_text = " ".join(p.text for p in ret.passages[:3])
    return {"bg_mean": round(float(cos.mean()), 4), "bg_std": round(float(cos.std()), 4),
            "bg_max": round(float(cos.max()), 4), "qnums": len(qnums),
            "num_hit": float(bool(qnums & _numbers(top_text))) if qnums else 0.0,
            "qlang": lang, "features": dict(zip(SUPPORT_FEATURES, ev.features())), "support": support(ev),
            "passage_dense": ev.passage_dense, "sentence_dense": ev.sentence_dense, "median_dense": ev.median_dense,
            "cross_lingual": ev.cross_lingual, "unknown": ev.unknown, "asked": ev.asked, "has_type": ev.has_type,
            "coverage": ret.coverage, "dense_scores": [round(x, 4) for x in ret.dense_scores[:20]],
            "hits": [[ret.passages[i].doc_id, None if h.dense is None else round(h.dense, 4)]
                     for i, h in enumerate(ret.hits[:8])],
            # the ranked passages' sentences only, as the product's evidence (``evidence_of``) takes them
            "cands": [[round(c.dense, 4), round(c.lex, 4), round(c.score, 4), c.rank]
                      for c in [c for c in cands if not c.lexical_only][:10]]}


def _numbers(text: str) -> set[str]:
    """Numbers of two or more digits in any script's digits (years, counts), as ASCII strings."""
    import re
    import unicodedata

    ascii_digits = "".join(str(unicodedata.digit(ch)) if ch.isdigit() else ch for ch in text)
    return {m.group(0).lstrip("0") for m in re.finditer(r"\d{2,}", ascii_digits.replace(",", ""))}


def _background(engine: Any) -> Any:
    """Up to 64 chunk vectors spread over the index (unit length): a question's background cosines."""
    got = getattr(engine, "_bench_background", None)
    if got is None:
        ids = engine.store.all_ids()
        step = max(1, len(ids) // 64)
        rows = engine.store.collection.get(ids=ids[::step][:64], include=["embeddings"])["embeddings"]
        got = np.asarray(rows, dtype=np.float32) if rows is not None and len(rows) else np.zeros((0, 1), np.float32)
        engine._bench_background = got
    return got


def collect(args: argparse.Namespace) -> int:
    from kb.answer.engine import Engine
    from kb.settings import load_settings

    data = args.data_dir.resolve()
    out_path = data / "evidence.jsonl"
    done: set[tuple[int, str, str]] = set()
    if out_path.is_file():
        for line in out_path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            done.add((r["fold"], r["lang"], r["id"]))
    by_lang = {lang: load_lang(lang) for lang in LANGS}
    fs = folds()
    dev_articles = {a for f in fs for a in f}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("a", encoding="utf-8") as fh:
        for k, fold in enumerate(fs):
            folder = data / f"fold-{k}"
            args.embed_cache.parent.mkdir(parents=True, exist_ok=True)
            env = child_env(folder, args.embed_cache.resolve(), args.threads)
            build_index(folder, env, chosen=fold_index(k, fold))
            indexed = set(fold_index(k, fold))
            # Fold 0 asks every dev question; the others ask their own articles' (unanswerable there), and
            # fold 1 also asks fold 0's articles (answerable there: fold 0 never indexes them).
            asked = dev_articles if k == 0 else set(fold) | (set(fs[0]) if k == 1 else set())
            settings = load_settings(env={**os.environ, "KB_DATA_DIR": str(folder / "index"),
                                          "KB_EMBED_CACHE": str(args.embed_cache.resolve())})
            engine = Engine(settings)
            engine.warm_up()
            t0, n = time.perf_counter(), 0
            for lang in LANGS:
                for qid, q in sorted(by_lang[lang].items()):
                    if q["gold_file"] not in asked or (k, lang, qid) in done:
                        continue
                    row = {"fold": k, "lang": lang, "id": qid, "article": q["gold_file"],
                           "unanswerable": q["gold_file"] not in indexed, **raw_evidence(engine, q["question"])}
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
                    if n % 200 == 0:
                        fh.flush()
                        print(f"  fold {k}: {n} questions, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            engine.close()
            print(f"fold {k} ({', '.join(fold)}): {n} questions in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


# -- fit -------------------------------------------------------------------------------------------
def load_rows(data: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (data / "evidence.jsonl").read_text(encoding="utf-8").splitlines()]
    fold_of = {a: k for k, f in enumerate(folds()) for a in f}
    for r in rows:
        r["group"] = fold_of[r["article"]]
    return rows


def derived(r: dict[str, Any]) -> dict[str, float]:
    """Every candidate feature, from the raw scores of one example (the product's own ones included)."""
    f = dict(r["features"])
    hits = [(d, s) for d, s in r["hits"] if s is not None]
    top_doc, top = (hits[0] if hits else ("", r["passage_dense"]))
    others = [s for d, s in hits if d != top_doc]
    f["doc_gap"] = top - max(others) if others else 0.0
    lex = [c[1] for c in r["cands"][:5]]
    f["lexical"] = (max(lex) if lex else 0.0) * r["coverage"]
    f["coverage"] = r["coverage"]
    ds = r["dense_scores"] or [r["passage_dense"]]
    f["top_gap"] = ds[0] - ds[1] if len(ds) > 1 else 0.0
    f["dense_spread"] = float(np.std(r["dense_scores"][:20])) if len(r["dense_scores"]) >= 8 else 0.0144
    cands = r["cands"]
    f["sentence_gap"] = cands[0][0] - cands[1][0] if len(cands) > 1 else 0.0
    if "bg_mean" in r:
        sd = max(r["bg_std"], 1e-3)
        f["passage_bg"] = (r["passage_dense"] - r["bg_mean"]) / sd
        f["sentence_bg"] = (r["sentence_dense"] - r["bg_mean"]) / sd
        f["bg_mean"] = r["bg_mean"]
        f["passage_over_bg_max"] = r["passage_dense"] - r["bg_max"]
        f["num_hit"] = r["num_hit"]
        f["num_miss"] = float(r["qnums"] > 0 and not r["num_hit"])
    for lang in LANGS[1:]:   # cross-lingual from this question language (English is the baseline)
        f[f"xl_{lang}"] = float(r["cross_lingual"] and r["qlang"] == lang)
    return f


def fit_model(X: Any, y: Any) -> tuple[Any, Any, Any, float]:
    """Standardise, fit a class-balanced logistic regression; (mean, scale, weights, bias)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(class_weight="balanced", C=1.0, max_iter=2000)
    model.fit((X - mean) / scale, y)
    return mean, scale, model.coef_[0], float(model.intercept_[0])


def predict(X: Any, params: tuple[Any, Any, Any, float]) -> Any:
    import numpy as np

    mean, scale, w, b = params
    z = ((X - mean) / scale) @ w + b
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def threshold_for(p_answerable: Any, max_false: float) -> float:
    """The highest support threshold that abstains on at most ``max_false`` of these answerable examples."""
    import numpy as np

    return float(np.quantile(p_answerable, max_false)) if len(p_answerable) else 0.5


def fit(args: argparse.Namespace) -> int:
    import numpy as np

    from kb.answer.abstention import SUPPORT_FEATURES

    rows = load_rows(args.data_dir.resolve())
    names = args.features.split(",") if args.features else list(SUPPORT_FEATURES)
    X = np.array([[derived(r)[n] for n in names] for r in rows], dtype=np.float64)
    y = np.array([0 if r["unanswerable"] else 1 for r in rows])
    groups = np.array([r["group"] for r in rows])
    langs = np.array([r["lang"] for r in rows])
    current = np.array([r["support"] for r in rows])
    print(f"{len(rows)} examples: {int(y.sum())} answerable, {int((1 - y).sum())} unanswerable, "
          f"{len(set(groups))} folds, features {names}")

    cv = np.zeros(len(rows))
    cut = np.zeros(len(rows))
    for g in sorted(set(groups)):
        train, test = groups != g, groups == g
        params = fit_model(X[train], y[train])
        cv[test] = predict(X[test], params)
        cut[test] = threshold_for(predict(X[train & (y == 1)], params), args.max_false)

    def table(title: str, p: Any, th: Any) -> None:
        print(f"\n{title}\n| lang | false abstention | correct abstention |\n| --- | --- | --- |")
        for lang in (*LANGS, "all"):
            m = np.ones(len(rows), bool) if lang == "all" else langs == lang
            fa = float(np.mean(p[m & (y == 1)] < th[m & (y == 1)]))
            ca = float(np.mean(p[m & (y == 0)] < th[m & (y == 0)]))
            print(f"| {lang} | {fa:.3f} | {ca:.3f} |")

    table(f"refitted, leave-one-fold-out (threshold per fold: false abstention <= {args.max_false} on the "
          "other folds)", cv, cut)
    table(f"current model in kb/answer/abstention.py, min_support {args.current_min_support}", current,
          np.full(len(rows), args.current_min_support))
    print("\ncalibration curve of the refitted model (leave-one-fold-out predictions): "
          "threshold -> false / correct abstention")
    for t in np.arange(0.05, 0.96, 0.05):
        print(f"  {t:.2f} -> {np.mean(cv[y == 1] < t):.3f} / {np.mean(cv[y == 0] < t):.3f}")
    params = fit_model(X, y)
    th = threshold_for(predict(X[y == 1], params), args.max_false)
    mean, scale, w, b = params
    print("\nfitted on all folds (paste into kb/answer/abstention.py):")
    print(f"SUPPORT_FEATURES = {tuple(names)}")
    print(f"SUPPORT_MEAN = {tuple(round(float(x), 4) for x in mean)}")
    print(f"SUPPORT_SCALE = {tuple(round(float(x), 4) for x in scale)}")
    print(f"SUPPORT_WEIGHTS = {tuple(round(float(x), 3) for x in w)}")
    print(f"SUPPORT_BIAS = {round(b, 3)}")
    print(f"min_support for false abstention <= {args.max_false}: {th:.2f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from kb.answer.abstention import Thresholds

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("collect", "fit"))
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data" / "xquad-folds")
    ap.add_argument("--embed-cache", type=Path,
                    default=Path(os.environ.get("KB_EMBED_CACHE", ROOT / "data" / "xquad-bench" / "embed_cache.sqlite")))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-false", type=float, default=0.08)
    ap.add_argument("--features", help="comma-separated feature names to fit (default: the product's own; "
                    "others: coverage, top_gap, sentence_gap, dense_spread (std of the 20 best dense cosines); from evidence collected since: passage_bg, sentence_bg, "
                    "bg_mean, passage_over_bg_max (cosines against 64 chunks spread over the index), num_hit, "
                    "num_miss (the question's numbers in the top passages))")
    ap.add_argument("--current-min-support", type=float, default=Thresholds().min_support)
    args = ap.parse_args(argv)
    return collect(args) if args.command == "collect" else fit(args)


if __name__ == "__main__":
    sys.exit(main())
