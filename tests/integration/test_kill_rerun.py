"""kill -9 an ingest at 20 seeded random moments, re-run it each time: the index equals an uninterrupted run's.

Each killed run starts on a fresh data directory with its own (empty) embedding cache, so the kills
land in every phase: start-up, fetching and extraction, the registry writes, embedding and the
vector-store writes. After each kill the same command is run again to completion; the resulting
registry and Chroma collection must hold exactly the documents, versions and chunk ids of the
uninterrupted baseline, every version ``indexed``, no duplicate and no missing vector (checked with
``get`` and with a full-size dense query, which also catches a vector segment that lost entries), and
``ingest verify`` finds nothing wrong.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ingest.verify import verify_index
from kb.registry import Registry
from kb.vectors.store import open_store
from tests.fixtures.faults import write_article
from tests.fixtures.registry_db import rows
from tests.fixtures.settings import ROOT, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KILLS = 20
SEED = 6


def write_corpus(folder: Path) -> None:
    """Eight short documents, one to three chunks each (15 chunks in all)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(8):
        write_article(folder / f"doc-{n}.txt", 700 + n, sentences=3 + 2 * (n % 3), words=14)


def env_for(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update({"KB_DATA_DIR": str(data), "KB_EMBED_THREADS": "2", "HF_HUB_OFFLINE": "1",
                "ANONYMIZED_TELEMETRY": "False"})   # no KB_EMBED_CACHE: a fresh cache inside each data dir
    return env


def ingest_cmd(sources: Path) -> list[str]:
    return [sys.executable, "-m", "ingest", "run", "--sources", str(sources), "--quiet"]


def index_state(data: Path) -> dict:
    """What must be identical to the baseline: ids in the registry and in the store, and their health."""
    settings = make_settings(data)
    reg = Registry(settings.registry_path, readonly=True)
    try:
        versions = {r[0]: r[1] for r in rows(reg, "SELECT version_id, status FROM versions")}
        chunks = sorted(r[0] for r in rows(reg, "SELECT chunk_id FROM chunks"))
        texts = {r[0]: r[1] for r in rows(reg, "SELECT chunk_id, text FROM chunks")}
        docs = sorted(r[0] for r in rows(reg, "SELECT doc_id FROM documents"))
    finally:
        reg.close()
    store = open_store(settings, create=False)
    ids = store.all_ids()
    got = store.collection.query(query_embeddings=[np.ones(384).tolist()], n_results=max(1, len(ids)),
                                 include=[])["ids"][0]
    return {"docs": docs, "versions": sorted(versions), "statuses": sorted(set(versions.values())),
            "chunks": chunks, "texts": texts, "store_ids": sorted(ids), "store_dups": len(ids) - len(set(ids)),
            "dense_ids": sorted(got)}


def phase_at_kill(data: Path) -> str:
    """Where the killed run was: judged from what it left behind."""
    path = data / "registry.sqlite"
    if not path.exists():
        return "start-up"
    try:
        reg = Registry(path, readonly=True)
        statuses = Counter(r[0] for r in rows(reg, "SELECT status FROM versions"))
        snaps = rows(reg, "SELECT COUNT(*) FROM snapshots")[0][0]
        reg.close()
    except Exception:  # noqa: BLE001 - a registry killed while being created
        return "start-up"
    if statuses.get("pending"):
        return "embedding/storing"
    if statuses.get("indexed", 0) == 8:
        return "finishing"
    if statuses.get("indexed") or snaps:
        return "between documents"
    return "start-up"


def test_kill_at_random_moments_then_rerun_equals_an_uninterrupted_run(tmp_path) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - name: corpus\n    path: {corpus}\n    doctype: court\n", encoding="utf-8")

    # Two uninterrupted runs into fresh data dirs: the first fills the shared embedding cache (on a fresh
    # machine it embeds for real), the second is timed, because every run after it reads its vectors from
    # that cache too, and kill moments must be drawn over the length of such a run.
    for name in ("warm-up", "baseline"):
        base = tmp_path / name / "data"
        t0 = time.monotonic()
        proc = subprocess.Popen(ingest_cmd(sources), cwd=ROOT, env=env_for(base), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        started = None  # when the registry appears: the end of start-up (imports, model load)
        while proc.poll() is None:
            if started is None and (base / "registry.sqlite").exists():
                started = time.monotonic() - t0
            time.sleep(0.02)
        full = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr.read()
    started = started if started is not None else 0.3
    expected = index_state(base)
    assert expected["statuses"] == ["indexed"] and len(expected["docs"]) == 8
    assert expected["store_ids"] == expected["chunks"] == expected["dense_ids"] and len(expected["chunks"]) >= 12

    # Moments are drawn (seeded) over the length of a full run. Machine load changes that length: a run
    # that finishes before its kill is not counted, and its duration becomes the range for the next draws.
    rng = random.Random(SEED)
    span = full
    phases: Counter[str] = Counter()
    kills = misses = 0
    while kills < KILLS:
        assert misses <= KILLS, f"{misses} runs finished before their kill moment; kills by phase: {dict(phases)}"
        # One kill in four anywhere in the run (start-up included), the others after start-up, where the
        # registry and store are written: how long start-up takes must not decide what the test covers.
        low = 0.3 if (kills + misses) % 4 == 0 else min(started, span * 0.9)
        moment = rng.uniform(low, span)
        data = tmp_path / f"run-{kills + misses:02d}" / "data"
        t0 = time.monotonic()
        proc = subprocess.Popen(ingest_cmd(sources), cwd=ROOT, env=env_for(data), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0
            misses += 1
            span = time.monotonic() - t0
            continue
        kills += 1
        phases[phase_at_kill(data)] += 1

        rerun = subprocess.run(ingest_cmd(sources), cwd=ROOT, env=env_for(data), capture_output=True, text=True,
                               timeout=600)
        assert rerun.returncode == 0, f"re-run after a kill at {moment:.2f}s failed: {rerun.stderr}"
        state = index_state(data)
        for key in ("docs", "versions", "statuses", "chunks", "texts", "store_ids", "dense_ids"):
            assert state[key] == expected[key], f"kill #{kills} at {moment:.2f}s: {key} differs from the baseline"
        assert state["store_dups"] == 0
        check = verify_index(make_settings(data))
        assert not check.problems and not check.pending_versions, (kills, moment, check.problems)

    print(f"\nbaseline run {full:.1f}s; {kills} kills by phase: {dict(phases)}; {misses} runs ended before their kill")
    assert phases["embedding/storing"] >= 5, f"too few kills landed while embedding: {dict(phases)}"
