"""JSON export: the ``kb ask --json`` objects, each citation extended with its pinpoint, plus a bibliography."""
from __future__ import annotations

import json

from kb.export.model import CitedSummary


def render_json(summary: CitedSummary) -> bytes:
    """The summary as UTF-8 JSON (schema ``kb-export/1``)."""
    return (json.dumps(summary.to_json(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
