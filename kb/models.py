"""Plain data shared by ingest, retrieval, answers, exports and the UI: no I/O here."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Passage:
    """One retrieved chunk of a document version."""

    chunk_id: str
    doc_id: str
    version_id: str
    text: str
    start: int
    end: int
    url: str = ""
    title: str = ""
    publisher: str = ""
    doctype: str = "other"
    language: str = "und"
    published: str = ""
    retrieved: str = ""
    source: str = ""
    score: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``passages`` entry of the ``kb ask --json`` contract."""
        return {"chunk_id": self.chunk_id, "doc_id": self.doc_id, "url": self.url,
                "language": self.language, "score": round(float(self.score), 6)}


@dataclass
class Citation:
    """A verified quote: ``quote == stored_text(version_id)[start:end]``."""

    n: int
    doc_id: str
    version_id: str
    chunk_id: str
    title: str
    publisher: str
    url: str
    doctype: str
    language: str
    published: str
    retrieved: str
    quote: str
    start: int
    end: int
    also_reported_by: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Claim:
    """One generated statement and the numbers of the verified citations that back it."""

    text: str
    citations: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "citations": list(self.citations)}


@dataclass
class Answer:
    """An answer with its citations, or an abstention."""

    question: str
    question_language: str
    answer: str
    answer_language: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reason: str = ""  # why it abstained (for eval and logs; not part of the JSON contract)
    mode: str = "extractive"              # "generated" when an LLM wrote the wording, else "extractive"
    model: str | None = None              # "<backend> <model>" when generated
    claims: list[Claim] = field(default_factory=list)
    fallback_reason: str | None = None    # why a requested generation became extractive
    resolved_question: str | None = None  # a follow-up as searched (the question + carried terms), else None

    def to_json(self) -> dict[str, Any]:
        """The ``kb ask --json`` contract (DESIGN.md)."""
        return {
            "question": self.question,
            "question_language": self.question_language,
            "answer": self.answer,
            "answer_language": self.answer_language,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "passages": [p.to_json() for p in self.passages],
            "mode": self.mode,
            "model": self.model,
            "claims": [c.to_json() for c in self.claims],
            "fallback_reason": self.fallback_reason,
            "resolved_question": self.resolved_question,
        }
