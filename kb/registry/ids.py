"""Deterministic ids, built only here: a document's from its canonical URL (or absolute path), a
version's from its document and text hash, a chunk's from its version and position.

Re-ingesting unchanged sources therefore produces the same ids, and no embedding work.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING = re.compile(r"^(utm_|fbclid$|gclid$|mc_|ref$|ref_src$)")
_HTTP = re.compile(r"^https?://")


def text_sha(text: str) -> str:
    """SHA-256 hex digest of a text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no tracking parameters, no trailing slash, no default port."""
    parts = urlsplit(url.strip())
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    path = parts.path.rstrip("/") or "/"
    host = (parts.hostname or "").lower()
    if parts.port and not ((parts.scheme == "http" and parts.port == 80) or (parts.scheme == "https" and parts.port == 443)):
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), host, path, query, ""))


def doc_id_for(location: str) -> str:
    """A document's id from its URL (canonicalised) or its file path (made absolute)."""
    key = canonical_url(location) if _HTTP.match(location) else str(Path(location).resolve())
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def version_id_for(doc_id: str, sha: str, valid_from: int | None = None) -> str:
    """A version's id from its document and text hash; ``valid_from`` tells apart a text that came back."""
    key = f"{doc_id}:{sha}" if valid_from is None else f"{doc_id}:{sha}:{valid_from}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def chunk_id_for(version_id: str, seq: int) -> str:
    """A chunk's id: its version and its position in it."""
    return f"{version_id}-{seq:04d}"
