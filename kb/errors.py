"""Domain errors; the CLI and the app turn them into one line that says what to do."""
from __future__ import annotations


class KBError(Exception):
    """Base of every error the knowledge base raises on purpose."""


class ConfigError(KBError):
    """A setting or a sources file is wrong (exit code 2)."""


class StoreUnavailable(KBError):
    """The vector store or the registry cannot be reached or opened."""


class EmbedderMismatch(KBError):
    """The index was built with another embedding model than the one configured."""


class EmbedderUnavailable(KBError):
    """The embedding model cannot be loaded (offline, missing package or directory)."""


class CitationError(KBError):
    """A quote does not verify against the stored text of its document version."""


class SnapshotError(KBError):
    """A stored snapshot is missing or its content no longer matches its hash."""


class UsageError(KBError):
    """A bad invocation: a missing argument, a malformed date, a file that is not there (exit code 2)."""


class NotFound(KBError):
    """What was asked for is not in the index: an unknown document or version (exit code 2)."""


class NoIndex(StoreUnavailable):
    """There is no index to read yet; build it with ``python -m ingest run`` (exit code 2)."""


class EmbedServerError(EmbedderUnavailable):
    """The embeddings server (``KB_EMBED_URL``) failed; the message says what to do."""


class EmbedServerUnreachable(EmbedServerError):
    """The embeddings server cannot be reached, times out, or keeps failing (5xx, 429) after the retries."""


class EmbedServerAuth(EmbedServerError):
    """The embeddings server refused the key (401/403): check ``KB_EMBED_API_KEY``."""


class EmbedModelUnknown(EmbedServerError):
    """The embeddings server does not serve the model ``KB_EMBED_MODEL`` names."""


class EmbedBadResponse(EmbedServerError):
    """The embeddings server answered something unusable: another 4xx, bad JSON, a wrong count or dimension."""
