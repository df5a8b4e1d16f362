"""Usage errors of ``kb ask`` say what to write (exit 2); Chinese answers end in one full stop."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kb.answer.phrases import compose
from tests.fixtures.settings import ROOT


def kb(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KB_")}, "KB_DATA_DIR": str(data),
           "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.run([sys.executable, "-m", "kb", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("question", ["", "   ", "\t\n"], ids=["empty", "spaces", "whitespace"])
def test_an_empty_question_is_a_usage_error_with_an_example(question: str, tmp_path: Path) -> None:
    done = kb("ask", question, data=tmp_path / "data")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "the question is empty" in done.stderr and 'kb ask "' in done.stderr
    assert "not both" not in done.stderr and not done.stdout


@pytest.mark.parametrize("lang", ["klingon", "e", "en,xx1"])
def test_an_unknown_language_code_is_a_usage_error(lang: str, tmp_path: Path) -> None:
    done = kb("ask", "Which court?", "--lang", lang, data=tmp_path / "data")
    assert done.returncode == 2 and "is not a language code" in done.stderr, done.stderr


def test_conversation_needs_a_batch(tmp_path: Path) -> None:
    done = kb("ask", "And when?", "--conversation", data=tmp_path / "data")
    assert done.returncode == 2 and "--conversation needs --batch" in done.stderr


@pytest.mark.parametrize("quote,ending", [("禁止蒸馏。", "[1]"), ("禁止蒸馏", "[1]。"), ("Partly.", "[1]")])
def test_chinese_answers_end_in_one_full_stop(quote: str, ending: str) -> None:
    text = compose("zh", [(quote, 1)])
    assert text.endswith(f"“{quote}” {ending}") and "。”[1]。" not in text and "。” [1]。" not in text
