"""Labelled document pairs for the duplicate detector, built from the real texts in ../shared.

Positives are what a crawler really meets: the same article re-wrapped, wrapped in other boilerplate,
syndicated with a credit line and a dropped paragraph, or served on ``www.`` and the bare host.
Negatives are distinct documents (two summaries of the same event included) and the version pairs of
``corpus/MANIFEST.tsv`` (a changed document is a new version, never a duplicate).
"""
from __future__ import annotations

import csv
import itertools
import os
import random
import textwrap
from dataclasses import dataclass
from pathlib import Path

SHARED = Path(os.environ.get("KB_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    duplicate: bool
    kind: str


def body(path: Path) -> str:
    """The text of a shared file without its front-matter block."""
    text = path.read_text(encoding="utf-8")
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        text = text[end + 4:] if end > 0 else text
    return text.strip()


def rewrap(text: str) -> str:
    paras = [p.replace("\n", " ") for p in text.split("\n\n")]
    return "\n\n".join(textwrap.fill(p, 64) for p in paras)


def with_boilerplate(text: str, rng: random.Random) -> str:
    head = rng.choice(["Home | World | Tech | Business | Subscribe", "Menu  Search  Sign in  Newsletter"])
    foot = rng.choice(["Share this article: X  Facebook  LinkedIn  Email\n\nCopyright 2026 Example Media Group.",
                       "Related stories\n\nMost read\n\nCookie settings  Privacy  Terms"])
    return f"{head}\n\n{text}\n\n{foot}"


def syndicated(text: str, rng: random.Random) -> str:
    paras = text.split("\n\n")
    if len(paras) > 4:
        paras.pop(rng.randrange(1, len(paras) - 1))
    return "This story originally appeared on a partner site.\n\n" + "\n\n".join(paras).replace("“", '"').replace("”", '"')


def documents(shared: Path = SHARED) -> dict[str, str]:
    files = sorted((shared / "corpus").glob("*.txt")) + sorted((shared / "seeds").glob("*.txt"))
    return {f.stem: body(f) for f in files}


def version_pairs(shared: Path = SHARED) -> list[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    with open(shared / "corpus" / "MANIFEST.tsv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row.get("version_group"):
                groups.setdefault(row["version_group"], []).append(Path(row["file"]).stem)
    return [tuple(v[:2]) for v in groups.values() if len(v) >= 2]  # type: ignore[misc]


def labelled_pairs(shared: Path = SHARED, seed: int = 7) -> list[Pair]:
    """All positive and negative pairs."""
    rng = random.Random(seed)
    docs = documents(shared)
    pairs: list[Pair] = []
    for name, text in docs.items():
        pairs.append(Pair(text, rewrap(text), True, "rewrapped"))
        pairs.append(Pair(text, with_boilerplate(text, rng), True, "boilerplate"))
        pairs.append(Pair(text, syndicated(text, rng), True, "syndicated"))
        pairs.append(Pair(text, text, True, "www-vs-bare-host"))
    for a, b in version_pairs(shared):
        pairs.append(Pair(docs[a], docs[b], False, "version-pair"))
    for a, b in itertools.combinations(sorted(docs), 2):
        if {a, b} not in [set(v) for v in version_pairs(shared)]:
            pairs.append(Pair(docs[a], docs[b], False, "distinct"))
    return pairs
