"""``python -m kb eval``: retrieval hit rates, quote validity, keyword accuracy, abstention, latency.

A question file is JSONL with ``question``, ``lang``, ``supporting`` (file names without ``.txt``),
``keywords`` and ``unanswerable``. Retrieved passages are mapped back to those file names through
the registry: the file a version was read from (its location) when ingest kept it, else the
corpus ``MANIFEST.tsv`` by URL and title (two versions of one URL differ by title), else by URL.
"""
from __future__ import annotations

import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from kb.cite import verify_citations

HIT_AT = (1, 5)


def load_questions(path: Path) -> list[dict[str, Any]]:
    """Questions from a JSONL file (``ValueError`` naming the line when one is malformed)."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{i}: not valid JSON ({exc})") from exc
        if not isinstance(obj, dict) or not obj.get("question"):
            raise ValueError(f"{path}:{i}: each line needs a 'question'")
        obj.setdefault("id", f"q{i:03d}")
        obj.setdefault("supporting", [])
        obj.setdefault("keywords", [])
        obj["unanswerable"] = bool(obj.get("unanswerable")) or not obj["supporting"]
        out.append(obj)
    return out


def _stem(value: str) -> str:
    name = value.rstrip("/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".txt") else name.rsplit(".", 1)[0] if "." in name else name


def default_manifest() -> Path | None:
    """``../shared/corpus/MANIFEST.tsv`` beside the project, when present."""
    import os

    shared = Path(os.environ.get("KB_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
    path = shared / "corpus" / "MANIFEST.tsv"
    return path if path.is_file() else None


class FileMapper:
    """Maps a (document, version) to the corpus file name it came from."""

    def __init__(self, registry: Any, manifest: Path | None = None, known: Iterable[str] = ()) -> None:
        self.registry = registry
        self.known = set(known)
        self.by_url: dict[str, list[dict[str, str]]] = {}
        manifest = manifest or default_manifest()
        if manifest and manifest.is_file():
            with manifest.open(encoding="utf-8") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    row["stem"] = _stem(row.get("file", ""))
                    self.known.add(row["stem"])
                    self.by_url.setdefault(row.get("url", "").rstrip("/"), []).append(row)
        self._cache: dict[str, str] = {}

    def stem(self, doc_id: str, version_id: str) -> str:
        if version_id not in self._cache:
            self._cache[version_id] = self._find(doc_id, version_id)
        return self._cache[version_id]

    def _find(self, doc_id: str, version_id: str) -> str:
        doc = self.registry.document(doc_id) or {}
        version = self.registry.version(version_id)
        meta = version.meta if version else {}
        for key in ("location", "path", "file", "source_path"):
            value = str(meta.get(key) or "")
            if value and _stem(value) in self.known:
                return _stem(value)
        url = str(doc.get("url") or "").rstrip("/")
        candidates = self.by_url.get(url, [])
        if version and len(candidates) > 1:
            title = (version.title or "").strip().casefold()
            for row in candidates:
                if title and row.get("title", "").strip().casefold() == title:
                    return row["stem"]
        location = str(doc.get("location") or "")
        if location and (_stem(location) in self.known or not candidates):
            return _stem(location)
        if candidates:
            return candidates[0]["stem"]
        return _stem(url) if url else doc_id


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q * (len(ordered) - 1)))))
    return ordered[k]


def _has_keyword(text: str, keywords: Sequence[str]) -> bool:
    low = text.casefold()
    return any(k.casefold() in low for k in keywords)


def evaluate(engine: Any, questions: list[dict[str, Any]], top_k: int = 8,
             manifest: Path | None = None) -> dict[str, Any]:
    """Run every question through ``engine.ask`` and compute the metrics."""
    known = {s for q in questions for s in q.get("supporting", [])}
    mapper = FileMapper(engine.registry, manifest, known)
    engine.warm_up()
    rows = []
    for q in questions:
        t = time.perf_counter()
        ans = engine.ask(q["question"], top_k=top_k)
        latency = time.perf_counter() - t
        files = [mapper.stem(p.doc_id, p.version_id) for p in ans.passages]
        supporting = set(q.get("supporting") or [])
        first = next((i for i, f in enumerate(files, start=1) if f in supporting), None)
        kept, _ = verify_citations(ans.citations, engine.registry.version_text, repair=False)
        evidence = ans.answer + " " + " ".join(c.quote for c in ans.citations)
        rows.append({
            "id": q["id"], "lang": q.get("lang", ""), "question_language": ans.question_language,
            "unanswerable": q["unanswerable"], "abstained": ans.abstained,
            "reason": getattr(ans, "reason", ""),
            "rank": first, "top_files": files[:5], "citations": len(ans.citations), "verified": len(kept),
            "keyword": (not q["unanswerable"]) and not ans.abstained and _has_keyword(evidence, q.get("keywords", [])),
            "latency": latency, "retrieval": sum(v for k, v in ans.timings.items()
                                                 if k in ("filter", "bm25", "embed", "dense", "fuse")),
            "answer": ans.answer[:300],
        })
    return summarise(rows)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-question rows into the report."""
    answerable = [r for r in rows if not r["unanswerable"]]
    unanswerable = [r for r in rows if r["unanswerable"]]
    n_ans = len(answerable) or 1
    cites = sum(r["citations"] for r in rows)
    lat = [r["latency"] for r in rows]
    ret = [r["retrieval"] for r in rows]
    metrics = {
        "questions": len(rows), "answerable": len(answerable), "unanswerable": len(unanswerable),
        **{f"hit@{k}": sum(1 for r in answerable if r["rank"] and r["rank"] <= k) / n_ans for k in HIT_AT},
        "mrr": sum(1.0 / r["rank"] for r in answerable if r["rank"]) / n_ans,
        "citations": cites,
        "quotes_verified": (sum(r["verified"] for r in rows) / cites) if cites else 1.0,
        "keyword_accuracy": sum(1 for r in answerable if r["keyword"]) / n_ans,
        "correct_abstention": (sum(1 for r in unanswerable if r["abstained"]) / len(unanswerable)) if unanswerable else None,
        "false_abstention": sum(1 for r in answerable if r["abstained"]) / n_ans,
        "latency_p50_s": _pct(lat, 0.5), "latency_p95_s": _pct(lat, 0.95),
        "retrieval_p50_s": _pct(ret, 0.5), "retrieval_p95_s": _pct(ret, 0.95),
    }
    by_lang: dict[str, dict[str, Any]] = {}
    for lang in sorted({r["lang"] for r in rows}):
        sub = [r for r in answerable if r["lang"] == lang]
        if sub:
            by_lang[lang] = {"n": len(sub), "hit@5": sum(1 for r in sub if r["rank"] and r["rank"] <= 5) / len(sub)}
    metrics["by_language"] = by_lang
    if answerable and not metrics["latency_p50_s"]:
        metrics["latency_p50_s"] = statistics.median(lat)
    return {"metrics": metrics, "questions": rows}


def format_report(report: dict[str, Any], details: bool = False) -> str:
    """A plain-text table of the metrics (and optionally one line per question)."""
    m = report["metrics"]
    ca = "n/a" if m["correct_abstention"] is None else f"{m['correct_abstention']:.3f}"
    lines = [
        f"questions            {m['questions']} ({m['answerable']} answerable, {m['unanswerable']} unanswerable)",
        f"hit@1                {m['hit@1']:.3f}",
        f"hit@5                {m['hit@5']:.3f}",
        f"MRR                  {m['mrr']:.3f}",
        f"quotes verified      {m['quotes_verified']:.3f} of {m['citations']} citations",
        f"keyword accuracy     {m['keyword_accuracy']:.3f}",
        f"correct abstention   {ca}",
        f"false abstention     {m['false_abstention']:.3f}",
        f"answer latency       p50 {m['latency_p50_s'] * 1000:.0f} ms, p95 {m['latency_p95_s'] * 1000:.0f} ms",
        f"retrieval latency    p50 {m['retrieval_p50_s'] * 1000:.0f} ms, p95 {m['retrieval_p95_s'] * 1000:.0f} ms",
        "hit@5 by language    " + ", ".join(f"{k} {v['hit@5']:.2f} (n={v['n']})" for k, v in m["by_language"].items()),
    ]
    if details:
        lines.append("")
        for r in report["questions"]:
            flag = ("ABSTAIN" if r["abstained"] else "answer ") + ("*" if r["abstained"] != r["unanswerable"] else " ")
            lines.append(f"{r['id']:>5} {r['lang']:>2} rank={r['rank']!s:>4} {flag} kw={int(r['keyword'])} "
                         f"{r['latency'] * 1000:5.0f}ms {r['reason'] or ''} | {r['top_files'][:3]}")
    return "\n".join(lines)


# -- abstention calibration ------------------------------------------------------------------------
def collect_evidence(engine: Any, questions: list[dict[str, Any]], top_k: int = 8) -> list[tuple[dict, Any]]:
    """The abstention evidence of every question (retrieval and sentence selection, no decision)."""
    from kb.answer import evidence_of, question_language, select_sentences
    from kb.retrieve import Filters

    engine.warm_up()
    out = []
    for q in questions:
        lang = question_language(q["question"])
        ret = engine.retriever.search(q["question"], lang, Filters(), top_k=top_k)
        cands = select_sentences(q["question"], lang, ret, engine)
        out.append((q, evidence_of(q["question"], ret, cands, lang, engine.retriever.bm25.idf)))
    return out


def _grid(lo: float, hi: float, step: float) -> list[float]:
    n = int(round((hi - lo) / step))
    return [round(lo + i * step, 4) for i in range(n + 1)]


def calibrate(engine: Any, questions: list[dict[str, Any]], max_false: float = 0.1) -> dict[str, Any]:
    """Sweep the abstention thresholds over labelled questions.

    The objective is correct abstentions minus twice the false ones, with false abstentions at most
    ``max_false``; among equally good settings the lowest thresholds win (the least eager to abstain).
    """
    from dataclasses import asdict, replace

    from kb.answer import decide

    items = collect_evidence(engine, questions)
    ans = [ev for q, ev in items if not q["unanswerable"]]
    una = [ev for q, ev in items if q["unanswerable"]]

    def rates(th: Any) -> tuple[float, float]:
        correct = sum(1 for ev in una if decide(ev, th)) / (len(una) or 1)
        false = sum(1 for ev in ans if decide(ev, th)) / (len(ans) or 1)
        return correct, false

    base = engine.thresholds
    best = None
    for pd in _grid(0.75, 0.87, 0.005):
        for sd in _grid(0.75, 0.87, 0.005):
            for ut in (0.0, 0.85, 0.87, 0.89, 0.91, 1.01):
                for typ in (False, True):
                    th = replace(base, min_passage_dense=pd, min_sentence_dense=sd, unknown_term_dense=ut,
                                 check_answer_type=typ)
                    c, f = rates(th)
                    if f > max_false:
                        continue
                    key = (c - 2 * f, -(pd + sd), -ut, typ)
                    if best is None or key > best[0]:
                        best = (key, th, c, f)
    current = rates(base)
    return {
        "answerable": len(ans), "unanswerable": len(una),
        "current": {"thresholds": asdict(base), "correct_abstention": current[0], "false_abstention": current[1]},
        "best": None if best is None else {"thresholds": asdict(best[1]), "correct_abstention": best[2],
                                           "false_abstention": best[3]},
        "questions": [{"id": q["id"], "lang": q.get("lang", ""), "unanswerable": q["unanswerable"],
                       "passage_dense": round(ev.passage_dense, 4), "sentence_dense": round(ev.sentence_dense, 4),
                       "unknown": ev.unknown, "asked": ev.asked, "has_type": ev.has_type,
                       "decision": decide(ev, base) or "answer"} for q, ev in items],
    }


def format_calibration(report: dict[str, Any]) -> str:
    """Plain-text calibration summary."""
    def line(name: str, block: dict[str, Any] | None) -> str:
        if not block:
            return f"{name:8} no setting keeps false abstentions within bounds"
        t = block["thresholds"]
        return (f"{name:8} passage>={t['min_passage_dense']:.3f} sentence>={t['min_sentence_dense']:.3f} "
                f"unknown-word<{t['unknown_term_dense']:.2f} type-check={t['check_answer_type']}: "
                f"correct abstention {block['correct_abstention']:.3f}, false abstention {block['false_abstention']:.3f}")
    rows = [f"{report['answerable']} answerable, {report['unanswerable']} unanswerable questions",
            line("current", report["current"]), line("best", report["best"]), "",
            "   id lang U  passage sentence type  unknown  -> decision"]
    for r in report["questions"]:
        rows.append(f"{r['id']:>5} {r['lang']:>4} {'U' if r['unanswerable'] else '-'}  {r['passage_dense']:.3f}   "
                    f"{r['sentence_dense']:.3f}  {(r['asked'] or '-')[:4]:>4}{'' if r['has_type'] else '!'} "
                    f"{','.join(r['unknown'])[:20]:>8} -> {r['decision'][:60]}")
    return "\n".join(rows)
