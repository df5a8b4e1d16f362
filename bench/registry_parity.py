"""Same answers on SQLite and PostgreSQL: ingest ``../shared`` twice (one registry of each kind) and
compare ``kb ask --json`` over the dev questions, answer text and citations (document, version, offsets).

    python bench/registry_parity.py [--questions FILE ...] [--keep DIR]

Starts a throwaway PostgreSQL cluster (``tests/fixtures/postgres.py``; the Debian ``postgresql``
package), uses the test embedding cache so the shared corpus is embedded at most once, and prints
how many answers are identical. Benchmarks are not tests.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.postgres import start_postgres, stop_postgres
from tests.fixtures.settings import SHARED, TEST_CACHE, shared_sources_yaml

DEFAULT_QUESTIONS = (SHARED / "eval" / "dev_questions.jsonl", ROOT / "tests" / "fixtures" / "questions_extra.jsonl")


def _env(data: Path, registry_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env |= {"KB_DATA_DIR": str(data), "KB_EMBED_CACHE": str(TEST_CACHE), "HF_HUB_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False"}
    if registry_url:
        env["KB_REGISTRY_URL"] = registry_url
    return env


def _run(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def _key(answer: dict[str, Any]) -> tuple[Any, ...]:
    return (answer["answer"], answer["abstained"],
            tuple((c["doc_id"], c["version_id"], c["start"], c["end"]) for c in answer["citations"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=Path, nargs="*", default=list(DEFAULT_QUESTIONS))
    ap.add_argument("--keep", type=Path, help="keep the two data dirs here instead of a temporary folder")
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for p in args.questions if p.exists()
                 for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    root = args.keep or Path(tempfile.mkdtemp(prefix="kb-parity-"))
    root.mkdir(parents=True, exist_ok=True)
    server = start_postgres()
    try:
        url = server.create_database("parity")
        answers: dict[str, list[dict[str, Any]]] = {}
        for kind, registry_url in (("sqlite", None), ("postgresql", url)):
            data = root / kind
            env = _env(data, registry_url)
            sources = shared_sources_yaml(SHARED, root / "sources.yaml")
            _run(["-m", "ingest", "run", "--sources", str(sources), "--quiet"], env)
            out = _run(["-m", "kb", "ask", "--batch", "-", "--json"], env, stdin="\n".join(questions) + "\n")
            answers[kind] = [json.loads(line) for line in out.splitlines() if line.strip()]
    finally:
        stop_postgres(server)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    same = sum(_key(a) == _key(b) for a, b in zip(answers["sqlite"], answers["postgresql"]))
    print(f"{len(questions)} questions: {same} identical answers and citations on SQLite and PostgreSQL")
    for a, b in zip(answers["sqlite"], answers["postgresql"]):
        if _key(a) != _key(b):
            print(f"  differs: {a['question'][:80]!r}")
    return 0 if same == len(questions) else 1


if __name__ == "__main__":
    sys.exit(main())
