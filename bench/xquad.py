"""XQuAD benchmark: cross-lingual questions over English Wikipedia articles, with a fixed split.

    python bench/xquad.py [--split dev|test] [--langs en,hi,...] [--limit N] [--data-dir DIR] [--json]

The 24 XQuAD articles of ``$KB_SHARED_DIR/eval/xquad`` (default: the ``shared`` folder beside the
repository) are split once and for all (do not change it; never look at the test questions or
their results while tuning anything):

- test: the 6 articles of ``TEST_ARTICLES``; ``TEST_LEFT_OUT`` of them are not indexed, so their
  questions must be abstained on;
- dev: the other 18; ``DEV_LEFT_OUT`` of them are not indexed.

The index holds the 19 remaining articles (both splits share it). It is built under the data dir
(default ``data/xquad-bench/``): ``corpus/`` (copies of the articles), ``sources.yaml`` and the index
itself in ``index/`` (``KB_DATA_DIR``), with the passage-vector cache in ``KB_EMBED_CACHE`` (default
``data/xquad-bench/embed_cache.sqlite``, shared by every data dir). An index already built from the
same files by the same ``ingest`` code is reused; otherwise ``index/`` is rebuilt from scratch.

For each language, the split's questions (``--limit N``: a deterministic subsample of N question ids,
spread evenly over the split's articles, the same ids in every language) go into a question file:
answerable ones with ``supporting=[article file stem]`` and ``keywords=[gold_answer_en]``, questions
about left-out articles with ``unanswerable=true`` and ``supporting=[]``. ``gold_answer`` (the
translated answer) is deliberately not written: the quotes are English, and a short translated answer
could match the answer's connecting words. Each file goes through ``python -m kb eval FILE --json``
(only the command-line contracts are used), and the script prints per language: answer containment
(``gold_answer_en`` in the answer or a cited quote), quote in paragraph (a cited quote overlaps the
gold paragraph: the check privacy-policy benchmarks make with their evidence segments), quote on span
(a quote from the gold paragraph that holds the gold answer span or shares 30 characters with it), hit@1, hit@5, false abstention, correct
abstention on the left-out articles, with bootstrap 95% intervals, answer latency, and an overall row
(intervals resample question ids, so the 7 translations of a question move together).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kb.settings import DEFAULT_CHUNK_CONTEXT

SHARED = Path(os.environ.get("KB_SHARED_DIR", ROOT.parent / "shared"))
XQUAD = SHARED / "eval" / "xquad"

LANGS = ("en", "hi", "zh", "es", "de", "ru", "ar")
#: The fixed split (decided before any tuning; do not change).
TEST_ARTICLES = ("1973_oil_crisis", "Intergovernmental_Panel_on_Climate_Change", "Black_Death",
                 "Packet_switching", "Doctor_Who", "Geology")
TEST_LEFT_OUT = ("1973_oil_crisis", "Intergovernmental_Panel_on_Climate_Change")
DEV_LEFT_OUT = ("Force", "Victoria_and_Albert_Museum", "Fresno_California")
N_ARTICLES, N_INDEXED = 24, 19

RESAMPLES, SEED = 1000, 20240917
METRICS = ("answer_containment", "evidence_hit", "span_hit", "hit@1", "hit@5", "false_abstention",
           "correct_abstention")
HEADERS = {"answer_containment": "containment", "evidence_hit": "quote in para", "span_hit": "quote on span",
           "hit@1": "hit@1", "hit@5": "hit@5",
           "false_abstention": "false abst.", "correct_abstention": "correct abst."}


# -- split -----------------------------------------------------------------------------------------
def articles() -> list[str]:
    """Every XQuAD article (file stem) in the shared corpus, checked against the fixed split."""
    found = sorted(p.stem for p in (XQUAD / "corpus").glob("*.md"))
    missing = [a for a in TEST_ARTICLES + DEV_LEFT_OUT if a not in found]
    if len(found) != N_ARTICLES or missing:
        sys.exit(f"{XQUAD / 'corpus'}: expected the {N_ARTICLES} XQuAD articles of the fixed split "
                 f"(found {len(found)}; missing {missing}); check KB_SHARED_DIR")
    return found


def split_articles(split: str) -> tuple[list[str], list[str]]:
    """(indexed, left out) articles of a split."""
    every = articles()
    if split == "test":
        members, left_out = list(TEST_ARTICLES), list(TEST_LEFT_OUT)
    else:
        members, left_out = [a for a in every if a not in TEST_ARTICLES], list(DEV_LEFT_OUT)
    return [a for a in members if a not in left_out], left_out


def indexed_articles() -> list[str]:
    out = [a for a in articles() if a not in TEST_LEFT_OUT + DEV_LEFT_OUT]
    assert len(out) == N_INDEXED, out
    return out


# -- index -----------------------------------------------------------------------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_fingerprint() -> str:
    """A hash of the ingest sources: an index built by other ingest code (chunking, ids) is not reused."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "ingest").rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def child_env(data_dir: Path, embed_cache: Path, threads: int) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               KB_DATA_DIR=str(data_dir / "index"), KB_EMBED_CACHE=str(embed_cache))
    env.setdefault("KB_EMBED_THREADS", str(threads))
    return env


def build_index(data_dir: Path, env: dict[str, str], rebuild: bool = False,
                chosen: Sequence[str] | None = None) -> dict[str, Any]:
    """Copy the indexed articles (the 19 of the split, or ``chosen``), write the sources file, ingest unless
    the same files are indexed."""
    corpus = data_dir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    wanted = {f"{a}.md": XQUAD / "corpus" / f"{a}.md" for a in (chosen or indexed_articles())}
    for old in corpus.iterdir():
        if old.name not in wanted:
            old.unlink()
    for name, src in wanted.items():
        dst = corpus / name
        if not dst.is_file() or _sha(dst) != _sha(src):
            shutil.copyfile(src, dst)
    sources = data_dir / "sources.yaml"
    sources.write_text("# Written by bench/xquad.py: the indexed XQuAD articles (English Wikipedia, CC BY-SA 4.0).\n"
                       "sources:\n  - name: xquad-wikipedia\n    path: corpus\n    doctype: other\n"
                       "    publisher: Wikipedia\n    language: en\n", encoding="utf-8")
    fingerprint = {name: _sha(corpus / name) for name in sorted(wanted)}
    code = code_fingerprint() + ":" + (env.get("KB_CHUNK_CONTEXT") or DEFAULT_CHUNK_CONTEXT)  # embedded with a chunk
    index = data_dir / "index"
    marker = index / "xquad-built.json"
    if marker.is_file() and (index / "registry.sqlite").is_file():
        built = json.loads(marker.read_text(encoding="utf-8"))
        if not rebuild and built.get("files") == fingerprint and built.get("code") == code:
            print(f"index: reusing {index} ({len(fingerprint)} articles)", file=sys.stderr)
            return built
    if index.exists():  # other files or other ingest code: start afresh (the vector cache makes it cheap)
        shutil.rmtree(index)
    index.mkdir(parents=True)
    print(f"index: ingesting {len(wanted)} articles into {data_dir / 'index'} ...", file=sys.stderr)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "ingest", "run", "--sources", str(sources), "--json", "--quiet"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode not in (0, 1):
        sys.exit(f"ingest failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    report = json.loads(out.stdout)
    if report["totals"].get("failed"):
        errors = [e for s in report["sources"] for e in s.get("errors", [])]
        sys.exit(f"ingest failed on {report['totals']['failed']} item(s): {errors}")
    built = {"files": fingerprint, "code": code, "ingest_totals": report["totals"], "ingest_seconds": time.perf_counter() - t0}
    marker.write_text(json.dumps(built, indent=2), encoding="utf-8")
    print(f"index: done in {built['ingest_seconds']:.0f} s, {report['totals']}", file=sys.stderr)
    return built


# -- questions -------------------------------------------------------------------------------------
def load_lang(lang: str) -> dict[str, dict[str, Any]]:
    path = XQUAD / f"questions_{lang}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


def choose_ids(by_lang: dict[str, dict[str, dict[str, Any]]], members: Sequence[str], limit: int) -> list[str]:
    """Question ids of the split's articles present in every language; with ``limit``, N of them spread
    round-robin over the articles, each article's ids in a fixed pseudo-random (hash) order."""
    common = set.intersection(*(set(q) for q in by_lang.values()))
    first = next(iter(by_lang.values()))
    per_article: dict[str, list[str]] = {a: [] for a in sorted(members)}
    for qid in common:
        article = first[qid]["gold_file"]
        if article in per_article:
            per_article[article].append(qid)
    for ids in per_article.values():
        ids.sort(key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    if not limit:
        return sorted(i for ids in per_article.values() for i in ids)
    chosen: list[str] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(ids) for ids in per_article.values()):
        for ids in per_article.values():
            if depth < len(ids) and len(chosen) < limit:
                chosen.append(ids[depth])
        depth += 1
    return chosen


_BODIES: dict[str, str] = {}


def article_body(name: str) -> str:
    """An article's text after its front matter (the dataset's paragraph and answer offsets count in it)."""
    if name not in _BODIES:
        text = (XQUAD / "corpus" / f"{name}.md").read_text(encoding="utf-8")
        _BODIES[name] = text.split("\n---\n", 1)[1].lstrip("\n") if text.startswith("---") else text
    return _BODIES[name]


def gold_evidence(r: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the gold paragraph, the gold answer span) as text, or None where the offsets do not hold."""
    body = article_body(r["gold_file"])
    start, answer = r.get("gold_answer_en_start"), r["gold_answer_en"]
    paragraph = body[r["gold_paragraph_start"]:r["gold_paragraph_end"]].strip() or None
    span = answer if isinstance(start, int) and body[start:start + len(answer)] == answer else None
    return paragraph, span


def write_questions(path: Path, rows: list[dict[str, Any]], left_out: Sequence[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            una = r["gold_file"] in left_out
            paragraph, span = (None, None) if una else gold_evidence(r)
            obj = {"id": r["id"], "lang": r["lang"], "question": r["question"], "article": r["gold_file"],
                   "supporting": [] if una else [r["gold_file"]],
                   "keywords": [] if una else [r["gold_answer_en"]],
                   "gold_answer_en": None if una else r["gold_answer_en"], "unanswerable": una,
                   "gold_evidence": paragraph, "gold_span": span}
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return len(rows)


# -- metrics ---------------------------------------------------------------------------------------
def _values(rows: Sequence[dict[str, Any]], metric: str) -> list[tuple[float, str]]:
    ans = [r for r in rows if not r["unanswerable"]]
    if metric in ("answer_containment", "evidence_hit", "span_hit"):
        key = "contained" if metric == "answer_containment" else metric
        return [(float(bool(r[key])), r["id"]) for r in ans if r.get(key) is not None]
    if metric.startswith("hit@"):
        k = int(metric[4:])
        return [(1.0 if r["rank"] and r["rank"] <= k else 0.0, r["id"]) for r in ans]
    if metric == "false_abstention":
        return [(float(r["abstained"]), r["id"]) for r in ans]
    if metric == "correct_abstention":
        return [(float(r["abstained"]), r["id"]) for r in rows if r["unanswerable"]]
    raise ValueError(metric)


def cluster_ci(pairs: Sequence[tuple[float, str]], resamples: int = RESAMPLES,
               seed: int = SEED) -> list[float] | None:
    """Percentile bootstrap 95% interval resampling question ids (all languages of an id together)."""
    if not pairs:
        return None
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for v, qid in pairs:
        sums[qid] = sums.get(qid, 0.0) + v
        counts[qid] = counts.get(qid, 0) + 1
    keys = list(sums)
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        draw = [keys[rng.randrange(len(keys))] for _ in keys]
        means.append(sum(sums[k] for k in draw) / sum(counts[k] for k in draw))
    means.sort()
    return [means[int(0.025 * (resamples - 1))], means[round(0.975 * (resamples - 1))]]


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def language_row(report: dict[str, Any]) -> dict[str, Any]:
    """One language's figures from its ``kb eval --json`` report."""
    m = report["metrics"]
    rows = report["questions"]
    ci = m.get("ci95", {})
    out = {"questions": m["questions"], "answerable": m["answerable"], "unanswerable": m["unanswerable"]}
    for name in METRICS:
        if name in m:
            value = m[name] if (m["unanswerable"] if name == "correct_abstention" else m["answerable"]) else None
            out[name] = value
            out[f"{name}_ci95"] = ci.get(name)
        else:  # an older kb eval without the metric: compute it from the rows
            pairs = _values(rows, name)
            out[name] = sum(v for v, _ in pairs) / len(pairs) if pairs else None
            out[f"{name}_ci95"] = cluster_ci(pairs)
    out["latency_p50_ms"] = m["latency_p50_s"] * 1000 if "latency_p50_s" in m else None
    out["latency_p95_ms"] = m["latency_p95_s"] * 1000 if "latency_p95_s" in m else None
    return out


def overall_row(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = [r for rep in reports.values() for r in rep["questions"]]
    out: dict[str, Any] = {"questions": len(rows), "answerable": sum(1 for r in rows if not r["unanswerable"]),
                           "unanswerable": sum(1 for r in rows if r["unanswerable"])}
    for name in METRICS:
        pairs = _values(rows, name)
        out[name] = sum(v for v, _ in pairs) / len(pairs) if pairs else None
        out[f"{name}_ci95"] = cluster_ci(pairs)
    lat = [r["latency"] * 1000 for r in rows if r.get("latency") is not None]
    out["latency_p50_ms"], out["latency_p95_ms"] = _pct(lat, 0.5), _pct(lat, 0.95)
    return out


def check_mapping(reports: dict[str, dict[str, Any]], indexed: Sequence[str]) -> list[str]:
    """Retrieved files that are not indexed article names (``kb eval`` could not map a passage to its file)."""
    known = set(indexed)
    return sorted({f for rep in reports.values() for r in rep["questions"] for f in r.get("top_files", [])
                   if f not in known})


def format_table(result: dict[str, Any]) -> str:
    def cell(row: dict[str, Any], name: str) -> str:
        v, ci = row.get(name), row.get(f"{name}_ci95")
        if v is None:
            return "n/a"
        return f"{v:.2f} [{ci[0]:.2f},{ci[1]:.2f}]" if ci else f"{v:.2f}"

    head = f"{'lang':<8}{'ans/una':>9}  " + "".join(f"{HEADERS[m]:<17}" for m in METRICS) + "p50/p95 ms"
    title = (f"XQuAD {result['split']} split: {len(result['indexed_articles'])} articles indexed, left out "
             f"{', '.join(result['left_out'])}; {result['limit'] or 'all'} question ids per language; "
             "95% bootstrap intervals")
    lines = [title, head, "-" * len(head)]
    for lang, row in [*result["languages"].items(), ("overall", result["overall"])]:
        lat = ("-" if row.get("latency_p50_ms") is None
               else f"{row['latency_p50_ms']:.0f}/{row['latency_p95_ms']:.0f}")
        lines.append(f"{lang:<8}{row['answerable']:>5}/{row['unanswerable']:<3}  "
                     + "".join(f"{cell(row, m):<17}" for m in METRICS) + lat)
    if result.get("unmapped_files"):
        lines.append(f"WARNING: retrieved passages not mapped to article files: {result['unmapped_files'][:5]}")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--langs", default=",".join(LANGS), help=f"comma-separated (default {','.join(LANGS)})")
    ap.add_argument("--limit", type=int, default=0, metavar="N",
                    help="N question ids per language (the same in every language; default: all)")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data" / "xquad-bench")
    ap.add_argument("--embed-cache", type=Path,
                    default=Path(os.environ.get("KB_EMBED_CACHE", ROOT / "data" / "xquad-bench" / "embed_cache.sqlite")))
    ap.add_argument("--threads", type=int, default=1, help="embedder threads when KB_EMBED_THREADS is unset (1)")
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--rebuild", action="store_true", help="run the ingest even if the index looks up to date")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = ap.parse_args(argv)
    if not (XQUAD / "corpus").is_dir():
        print(f"XQuAD data not found at {XQUAD}; set KB_SHARED_DIR", file=sys.stderr)
        return 2
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    bad = [x for x in langs if x not in LANGS]
    if bad or not langs:
        print(f"--langs: unknown {bad}; choose from {','.join(LANGS)}", file=sys.stderr)
        return 2
    data_dir = args.data_dir.resolve()
    args.embed_cache.parent.mkdir(parents=True, exist_ok=True)
    env = child_env(data_dir, args.embed_cache.resolve(), args.threads)
    built = build_index(data_dir, env, rebuild=args.rebuild)

    members, left_out = split_articles(args.split)
    by_lang = {lang: load_lang(lang) for lang in langs}
    ids = choose_ids(by_lang, members + left_out, args.limit)
    qdir = data_dir / "questions" / f"{args.split}-{args.limit or 'all'}"
    rdir = data_dir / "results" / f"{args.split}-{args.limit or 'all'}"
    rdir.mkdir(parents=True, exist_ok=True)
    reports: dict[str, dict[str, Any]] = {}
    for lang in langs:
        qfile = qdir / f"{lang}.jsonl"
        n = write_questions(qfile, [by_lang[lang][i] for i in ids], left_out)
        print(f"eval {lang}: {n} questions ...", file=sys.stderr)
        out = subprocess.run([sys.executable, "-m", "kb", "eval", str(qfile), "--json", "--top-k", str(args.top_k)],
                             cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"kb eval failed on {qfile} (exit {out.returncode}):\n{out.stderr[-3000:]}", file=sys.stderr)
            return 1
        reports[lang] = json.loads(out.stdout)
        (rdir / f"{lang}.json").write_text(out.stdout, encoding="utf-8")

    result = {
        "split": args.split, "limit": args.limit, "langs": langs, "question_ids": len(ids),
        "indexed_articles": indexed_articles(), "split_articles_indexed": members, "left_out": left_out,
        "index": {k: v for k, v in built.items() if k != "files"},
        "languages": {lang: language_row(rep) for lang, rep in reports.items()},
        "overall": overall_row(reports),
        "unmapped_files": check_mapping(reports, indexed_articles()),
        "results_dir": str(rdir),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
