"""LLM backends through llama-index's LLM classes: any OpenAI-compatible server (``OpenAILike``) or
Ollama's own API (``Ollama``). One call shape for both: ``stream(messages, schema)`` yields text deltas.

The API key lives only inside the client; every error that leaves this module has it redacted.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Iterator

from kb.errors import ConfigError, KBError
from kb.settings import Settings

log = logging.getLogger(__name__)

#: Tokens the model may write (claims are short; a longer reply is truncated and parsed as far as it got).
MAX_OUTPUT_TOKENS = 700
#: One retry on a connection failure or a 5xx (bounded; a timeout is not retried).
RETRIES = 1


class LLMError(KBError):
    """The LLM could not give a usable reply (down, timeout, refused, context overflow); the answer falls back."""


@dataclass
class LLMBackend:
    """A configured LLM: its label for answers and exports, and the llama-index client behind it."""

    kind: str           # "openai-compatible" | "ollama"
    model: str
    base_url: str
    client: Any
    secret: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.model}"

    def redact(self, text: str) -> str:
        """``text`` with the API key (and any bearer token) removed."""
        if self.secret:
            text = text.replace(self.secret, "[key hidden]")
        return re.sub(r"(?i)(bearer\s+|api[_-]?key[\"'=:\s]+)[A-Za-z0-9._\-]{8,}", r"\1[key hidden]", text)

    def stream(self, messages: list[Any], schema: dict[str, Any]) -> Iterator[str]:
        """Text deltas of the model's reply, JSON-schema constrained where the server supports it."""
        try:
            if self.kind == "ollama":
                responses = self.client.stream_chat(messages, format=schema)
            else:
                responses = self._openai_stream(messages, schema)
            for r in responses:
                delta = getattr(r, "delta", None)
                if delta:
                    yield str(delta)
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - httpx/openai/ollama raise many types; all mean "no reply"
            raise LLMError(self.describe_failure(exc)) from None

    def _openai_stream(self, messages: list[Any], schema: dict[str, Any]) -> Iterator[Any]:
        fmt = {"type": "json_schema", "json_schema": {"name": "claims", "schema": schema, "strict": True}}
        try:
            yield from self.client.stream_chat(messages, response_format=fmt)
        except Exception as exc:
            if _status(exc) == 400 and "response_format" in str(exc).lower():
                log.info("%s does not take a JSON schema; asking without one", self.base_url)
                yield from self.client.stream_chat(messages)
            else:
                raise

    def describe_failure(self, exc: BaseException) -> str:
        """What went wrong, in words a user can act on (never with the key)."""
        name = type(exc).__name__
        text = self.redact(str(exc))[:300]
        status = _status(exc)
        if "Timeout" in name or "timed out" in text.lower():
            why = "did not answer in time (KB_LLM_TIMEOUT)"
        elif "Connect" in name or "connection" in text.lower():
            why = "cannot be reached"
        elif status in (401, 403):
            why = f"refused the request ({status}: check KB_LLM_API_KEY)"
        elif status == 404:
            why = f"does not know the model {self.model!r} or the path (404: check KB_LLM_MODEL and KB_LLM_BASE_URL)"
        elif status == 400 and re.search(r"context|too long|exceed", text, re.I):
            why = "says the prompt exceeds the model's context (lower KB_LLM_CONTEXT)"
        else:
            why = f"failed ({name}{f' {status}' if status else ''}: {text})"
        return f"the LLM server at {self.base_url} {why}"


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return int(code) if isinstance(code, int) else None


def make_backend(settings: Settings) -> LLMBackend | None:
    """The backend ``KB_LLM`` names, or ``None`` for ``extractive``; ``ConfigError`` when it is incomplete."""
    if settings.llm == "extractive":
        return None
    if not settings.llm_model:
        raise ConfigError(f"KB_LLM={settings.llm} needs KB_LLM_MODEL (the model name the server knows, "
                          "e.g. smollm2-135m-instruct)")
    key = settings.llm_api_key or ""
    if settings.llm == "ollama":
        from llama_index.llms.ollama import Ollama

        base = settings.llm_base_url or "http://127.0.0.1:11434"
        headers = {"Authorization": f"Bearer {key}"} if key else None
        ollama: Any = Ollama(model=settings.llm_model, base_url=base, request_timeout=settings.llm_timeout,
                             context_window=settings.llm_context, temperature=0.1, headers=headers,
                             additional_kwargs={"num_predict": MAX_OUTPUT_TOKENS})
        return LLMBackend("ollama", settings.llm_model, base, ollama, key)
    if not settings.llm_base_url:
        raise ConfigError("KB_LLM=openai-compatible needs KB_LLM_BASE_URL (the server's URL up to /v1, "
                          "e.g. http://127.0.0.1:8765/v1 for `make llm-server`)")
    from llama_index.llms.openai_like import OpenAILike

    client = OpenAILike(model=settings.llm_model, api_base=settings.llm_base_url, api_key=key or "not-needed",
                        is_chat_model=True, is_function_calling_model=False, context_window=settings.llm_context,
                        max_tokens=MAX_OUTPUT_TOKENS, temperature=0.1, timeout=settings.llm_timeout,
                        max_retries=RETRIES)
    return LLMBackend("openai-compatible", settings.llm_model, settings.llm_base_url, client, key)
