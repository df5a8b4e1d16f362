"""What a fetch returns: raw bytes with what the server said about them (shared by ingest and re-derivation)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FetchResult:
    """Raw bytes of a page or file, with what the server said about them."""

    url: str
    final_url: str
    status: int
    content: bytes
    content_type: str          # MIME type, lower case, without parameters
    encoding: str | None       # charset declared by the server, if any
    etag: str | None
    last_modified: str | None
    not_modified: bool
    retrieved: str             # ISO-8601 UTC, e.g. 2026-05-01T12:00:00Z
