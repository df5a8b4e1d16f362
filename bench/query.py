"""Query latency: hybrid retrieval and full answers vs a plain Chroma query, at corpus size and at 100k chunks.

    python bench/query.py [--data-dir DIR] [--synthetic 100000] [--synthetic-dir data/bench-synthetic]
                          [--questions FILE ...] [--repeat 2] [--skip-corpus] [--chroma-pid PID] [--json]

    # 1M chunks on a Chroma server (the store is chosen by KB_CHROMA_HOST/KB_CHROMA_PORT as in the app):
    chroma run --path data/bench-1m/chroma --port 8123 &
    KB_CHROMA_HOST=127.0.0.1 KB_CHROMA_PORT=8123 python bench/query.py --skip-corpus --synthetic 1000000 \
        --synthetic-dir data/bench-1m --chroma-pid $!

- Corpus size: the index in ``--data-dir`` (default ``KB_DATA_DIR`` or ``data``), questions from the
  shared dev set and ``tests/fixtures/questions_extra.jsonl``.
- Synthetic: ``N`` chunks of generated text (a Zipf-distributed made-up vocabulary, so BM25 has real
  posting lists) with random unit vectors, written to their own data dir (registry + Chroma
  collection) once and reused by later runs.
- For every question, in the same run and on the same collection: a plain ``collection.query`` (top 8,
  no filter) and ``Retriever.search`` (dense + BM25 + fusion + filters + dedup), both given the same
  precomputed query vector; query embedding is timed separately; then a full ``Engine.ask``.
The synthetic index is built in a child process; the measuring process reports its RSS after the
catalogue and BM25 are loaded and the questions asked (``rss_mib``, peak ``peak_rss_mib``), and the
Chroma server's RSS when ``--chroma-pid`` is given. Prints p50/p95 per stage; ``--json`` prints the numbers as one object. Goal: retrieval p95 at 100k
no more than 2x the plain Chroma p95.
"""
from __future__ import annotations

import argparse
import hashlib
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

from kb.answer.engine import Engine
from kb.registry import Registry
from kb.registry.database import DocumentRecord, NewChunk, NewVersion
from kb.registry.ids import chunk_id_for
from kb.retrieval.filters import Filters
from kb.settings import Settings, load_settings
from kb.times import FOREVER

SHARED = Path(os.environ.get("KB_SHARED_DIR", ROOT.parent / "shared"))
CHUNKS_PER_DOC = 100
#: Documents per Chroma ``add`` call while building the synthetic index (2,000 chunks: under Chroma's
#: maximum batch of 5,461).
BATCH_DOCS = 20


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return 1000.0 * ordered[max(0, min(len(ordered) - 1, int(round(q * (len(ordered) - 1)))))]


def load_questions(paths: list[Path]) -> list[str]:
    out = []
    for p in paths:
        if p.is_file():
            out += [json.loads(line)["question"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


# -- synthetic index -------------------------------------------------------------------------------
def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "pa", "qu", "or", "en", "al", "is", "ut",
            "br", "st", "tr", "gh"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syll, size=int(rng.integers(2, 5)))))
    return sorted(words)


def _chunk_text(rng: np.random.Generator, vocab: list[str], probs: np.ndarray) -> str:
    words = rng.choice(len(vocab), size=int(rng.integers(60, 120)), p=probs)
    sentences, cur = [], []
    for i, w in enumerate(words, start=1):
        cur.append(vocab[w])
        if i % 15 == 0:
            sentences.append(" ".join(cur).capitalize() + ".")
            cur = []
    if cur:
        sentences.append(" ".join(cur).capitalize() + ".")
    return " ".join(sentences)


def build_synthetic(settings: Settings, n: int, dim: int, embedder_id: str, seed: int = 7) -> None:
    """Write ``n`` synthetic chunks (registry + Chroma) into ``settings.data_dir`` unless already there."""
    from kb.vectors.store import open_store

    reg = Registry(settings.registry_path)
    have = reg.chunk_count()
    store = open_store(settings, embedder_id, dim)
    if have == n and store.count() == n:
        reg.close()
        return
    if have or store.count():
        raise SystemExit(f"{settings.data_dir} holds another synthetic index ({have} chunks); delete it first")
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng, 20000)
    ranks = np.arange(1, len(vocab) + 1)
    probs = (1.0 / ranks) / (1.0 / ranks).sum()
    langs = ["en", "es", "fr", "de", "hi", "zh"]
    doctypes = ["news", "tos", "court", "blog"]
    t0 = time.perf_counter()
    n_docs = (n + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC
    pending: dict[str, list[Any]] = {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
    for d in range(n_docs):
        doc_id = hashlib.sha256(f"synthetic-{d}".encode()).hexdigest()[:16]
        texts = [_chunk_text(rng, vocab, probs) for _ in range(min(CHUNKS_PER_DOC, n - d * CHUNKS_PER_DOC))]
        body, spans, pos = [], [], 0
        for t in texts:
            spans.append((pos, pos + len(t)))
            body.append(t)
            pos += len(t) + 2
        text = "\n\n".join(body)
        sha = hashlib.sha256(text.encode()).hexdigest()
        vid = sha[:20]
        published = f"20{20 + d % 7}-{1 + d % 12:02d}-{1 + d % 28:02d}"
        pts = int(time.mktime(time.strptime(published, "%Y-%m-%d")))
        lang, doctype = langs[d % len(langs)], doctypes[d % len(doctypes)]
        url = f"https://synthetic.example/doc/{d}"
        with reg.transaction():
            reg.upsert_document(DocumentRecord(
                doc_id=doc_id, source=f"synthetic-{d % 10}", url=url, location=url, title=f"Synthetic document {d}",
                publisher=f"Publisher {d % 50}", author="", doctype=doctype, language=lang, published=published,
                checked="2026-01-01T00:00:00Z"))
            reg.add_version(NewVersion(
                version_id=vid, doc_id=doc_id, text=text, text_sha=sha, snapshot_sha=None,
                retrieved="2026-01-01T00:00:00Z", valid_from=1767225600, title=f"Synthetic document {d}", language=lang,
                published=published, status="indexed"),
                [NewChunk(i, s, e, lang, t) for i, ((s, e), t) in enumerate(zip(spans, texts))])
        vecs = rng.standard_normal((len(texts), dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        metas = [{"doc_id": doc_id, "version_id": vid, "source": f"synthetic-{d % 10}", "url": url,
                  "title": f"Synthetic document {d}", "publisher": f"Publisher {d % 50}", "doctype": doctype,
                  "language": lang, "doc_language": lang, "published": published, "published_ts": pts,
                  "retrieved": "2026-01-01T00:00:00Z", "valid_from": 1767225600, "valid_to": FOREVER,
                  "start": s, "end": e, "seq": i} for i, (s, e) in enumerate(spans)]
        pending["ids"] += [chunk_id_for(vid, i) for i in range(len(texts))]
        pending["embeddings"].append(vecs)
        pending["documents"] += texts
        pending["metadatas"] += metas
        if (d + 1) % BATCH_DOCS == 0 or d == n_docs - 1:
            store.collection.add(ids=pending["ids"], embeddings=np.concatenate(pending["embeddings"]),
                                 documents=pending["documents"], metadatas=pending["metadatas"])
            pending = {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
        if d % 500 == 0:
            print(f"  synthetic: {min(n, (d + 1) * CHUNKS_PER_DOC)}/{n} chunks, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    reg.bump_generation()
    reg.close()


def synthetic_questions(settings: Settings, k: int, seed: int = 11) -> list[str]:
    """Questions made of words sampled from random synthetic chunks."""
    reg = Registry(settings.registry_path)
    rng = np.random.default_rng(seed)
    n = reg.chunk_count()
    out = []
    for i in rng.integers(0, n, size=k):
        text = reg.chunk_text_at(int(i))
        words = text.replace(".", "").split()
        out.append("What does " + " ".join(rng.choice(words, size=6, replace=False)) + " mean?")
    reg.close()
    return out


# -- measurement -------------------------------------------------------------------------------------
def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process now, in MiB (0 when /proc is not there)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure(engine: Engine, questions: list[str], repeat: int, label: str,
            server_pid: int | None = None) -> dict[str, Any]:
    """Plain Chroma query vs hybrid retrieval vs full answer, per question, same collection, same run."""
    rss_before = rss_mib()
    t = time.perf_counter()
    engine.retriever.load()  # catalogue + BM25 (from the on-disk cache when present)
    load_s = time.perf_counter() - t
    engine.warm_up()
    plain, retrieval, embed, answer = [], [], [], []
    stages: dict[str, list[float]] = {}
    coll = engine.store.collection
    for _ in range(repeat):
        for q in questions:
            t = time.perf_counter()
            vec = engine.embedder.embed_query(q)
            embed.append(time.perf_counter() - t)
            t = time.perf_counter()
            coll.query(query_embeddings=[np.asarray(vec, dtype=np.float32)], n_results=8,
                       include=["documents", "metadatas", "distances"])
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            got = engine.retriever.search(q, "en", Filters(), top_k=8, query_vector=vec)
            retrieval.append(time.perf_counter() - t)
            for stage, secs in got.timings.items():
                if stage != "embed":  # the vector was given: no embedding inside the search
                    stages.setdefault(stage, []).append(secs)
            t = time.perf_counter()
            engine.ask(q)
            answer.append(time.perf_counter() - t)
    row: dict[str, Any] = {"label": label, "store": engine.settings.store_mode, "chunks": engine.store.count(),
                           "questions": len(questions), "repeat": repeat, "bm25_load_s": round(load_s, 3),
                           "rss_before_load_mib": rss_before, "rss_mib": rss_mib(), "peak_rss_mib": peak_rss_mib()}
    if server_pid:
        row["chroma_server_rss_mib"] = rss_mib(server_pid)
    for name, vals in (("plain_chroma", plain), ("retrieval", retrieval), ("embed_query", embed), ("answer", answer)):
        row[f"{name}_p50_ms"] = round(pct(vals, 0.5), 1)
        row[f"{name}_p95_ms"] = round(pct(vals, 0.95), 1)
    row["retrieval_stages_p95_ms"] = {k: round(pct(v, 0.95), 1) for k, v in stages.items()}
    row["retrieval_max_ms"] = round(1000 * max(retrieval, default=0.0), 1)
    row["plain_chroma_max_ms"] = round(1000 * max(plain, default=0.0), 1)
    row["retrieval_vs_plain_p95"] = round(row["retrieval_p95_ms"] / max(row["plain_chroma_p95_ms"], 1e-6), 2)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, help="the corpus index (default: KB_DATA_DIR or data)")
    ap.add_argument("--synthetic", type=int, default=100_000, help="synthetic chunks (0 to skip)")
    ap.add_argument("--synthetic-dir", type=Path, default=ROOT / "data" / "bench-synthetic")
    ap.add_argument("--questions", type=Path, nargs="*",
                    default=[SHARED / "eval" / "dev_questions.jsonl", ROOT / "tests" / "fixtures" / "questions_extra.jsonl"])
    ap.add_argument("--synthetic-questions", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--chroma-pid", type=int, help="the Chroma server's pid, to report its RSS (KB_CHROMA_HOST set)")
    ap.add_argument("--skip-corpus", action="store_true", help="only the synthetic index")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    base = load_settings()
    if args.build_only:
        from kb.vectors.embedding import make_embedder

        syn = base.with_(data_dir=args.synthetic_dir, collection="synthetic")
        emb = make_embedder(syn)
        build_synthetic(syn, args.synthetic, emb.dim, emb.model_id)
        return 0
    rows = []
    corpus = base.with_(data_dir=args.data_dir) if args.data_dir else base
    if args.skip_corpus:
        pass
    elif corpus.registry_path.exists():
        questions = load_questions(args.questions)
        eng = Engine(corpus)
        rows.append(measure(eng, questions, args.repeat, "corpus"))
        eng.close()
    else:
        print(f"no index in {corpus.data_dir}; run `python -m ingest run` first (skipping corpus size)", file=sys.stderr)
    if args.synthetic:
        import subprocess

        syn = base.with_(data_dir=args.synthetic_dir, collection="synthetic")
        # Built in a child process, so this process's memory figures are those of an app, not of the build.
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build-only", "--synthetic", str(args.synthetic),
                        "--synthetic-dir", str(args.synthetic_dir)], check=True)
        print(f"  synthetic index ready ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        eng = Engine(syn)
        rows.append(measure(eng, synthetic_questions(syn, args.synthetic_questions), args.repeat,
                            f"synthetic {args.synthetic}", args.chroma_pid))
        eng.close()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if args.json:
        print(json.dumps({"rows": rows, "cpus": os.cpu_count(), "load_avg_1m": load}, indent=2))
        return 0
    cols = ["label", "chunks", "plain_chroma_p50_ms", "plain_chroma_p95_ms", "retrieval_p50_ms", "retrieval_p95_ms",
            "retrieval_vs_plain_p95", "embed_query_p50_ms", "answer_p50_ms", "answer_p95_ms", "bm25_load_s",
            "rss_mib", "peak_rss_mib", "chroma_server_rss_mib", "retrieval_stages_p95_ms"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    print(f"({os.cpu_count()} CPUs, 1-min load average {load:.1f}; times exclude model loading)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
