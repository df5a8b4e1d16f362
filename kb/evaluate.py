"""``python -m kb eval``: retrieval hit rates, quote validity, keyword accuracy, answer containment,
abstention and latency, overall and per language, with bootstrap confidence intervals.

A question file is JSONL with ``question``, ``lang``, ``supporting`` (file names without their
extension), ``keywords``, ``unanswerable`` and optionally ``gold_answer_en`` / ``gold_answer``,
``gold_evidence`` (the passage that holds the answer: a string or a list) and ``gold_span`` (the exact
answer or evidence span inside it).
Retrieved passages are mapped back to those file names through the registry: the file a version was
read from (its location) when ingest kept it, else the corpus ``MANIFEST.tsv`` by URL and title (two
versions of one URL differ by title), else by URL.

Answer containment: an answerable question counts when any of its gold strings (``keywords`` plus
``gold_answer_en`` / ``gold_answer``) appears, case-insensitively and with whitespace collapsed, in
the answer text or in one of its cited quotes; an abstention never contains the answer. Questions
without any gold string are left out of that rate.

Evidence hits (as privacy-policy benchmarks score a quote): ``evidence_hit`` counts an answered question
when a cited quote overlaps a ``gold_evidence`` passage; ``span_hit`` when a quote overlaps a
``gold_span`` (inside a gold passage, when the question gives one). Two texts overlap when one holds the
other or they share a run of ``OVERLAP_CHARS`` characters (after ``normalise``). Questions without
those fields are left out of the rate.

Confidence intervals are percentile bootstraps (``BOOTSTRAP_RESAMPLES`` resamples, fixed seed) that
resample questions; rows sharing a question ``id`` (one question asked in several languages) are
resampled together, so the overall interval does not pretend translations are independent.
"""
from __future__ import annotations

import csv
import json
import statistics
import time
import unicodedata
from pathlib import Path
from typing import Any, Iterable, Sequence

HIT_AT = (1, 5)
#: Bootstrap settings for the 95% intervals (fixed seed: the same rows always give the same interval).
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20240917
CI_LEVEL = 0.95
#: Rates that get a per-language row and a confidence interval.
RATE_METRICS = ("hit@1", "hit@5", "mrr", "answer_containment", "evidence_hit", "span_hit", "keyword_accuracy",
                "false_abstention", "correct_abstention")
#: Rates over only the questions that give what they need (a gold string, a gold passage, a gold span).
OPTIONAL_RATES = ("answer_containment", "evidence_hit", "span_hit")
#: The shared run of characters that makes a quote overlap a gold passage or span.
OVERLAP_CHARS = 30


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


def normalise(text: str) -> str:
    """Text for containment checks: NFKC, case-folded, every run of whitespace one space."""
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


def gold_strings(question: dict[str, Any]) -> list[str]:
    """The strings any of which shows an answer is right: ``keywords``, ``gold_answer_en``, ``gold_answer``."""
    out: list[str] = []
    for key in ("keywords", "gold_answer_en", "gold_answer"):
        for v in _as_list(question.get(key)):
            if isinstance(v, str) and normalise(v) and v not in out:
                out.append(v)
    return out


def contains_gold(texts: Iterable[str], golds: Sequence[str]) -> bool:
    """Whether any gold string occurs in any of the texts (both sides through ``normalise``)."""
    wanted = [g for g in (normalise(x) for x in golds) if g]
    haystacks = [normalise(t) for t in texts if t]
    return any(g in h for g in wanted for h in haystacks)


def _as_list(value: Any) -> list[Any]:
    """A question field that holds one value or a list of them, as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _strings(value: Any) -> list[str]:
    return [n for n in (normalise(v) for v in _as_list(value) if isinstance(v, str)) if n]


def overlaps(a: str, b: str, min_chars: int = OVERLAP_CHARS) -> bool:
    """Whether two normalised texts overlap: one holds the other, or they share ``min_chars`` in a row."""
    if not a or not b:
        return False
    if a in b or b in a:
        return True
    from difflib import SequenceMatcher

    m = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return m.size >= min_chars


def evidence_hits(question: dict[str, Any], quotes: Sequence[str], abstained: bool) -> tuple[bool | None, bool | None]:
    """(evidence_hit, span_hit) of one answer: None when the question gives no gold passage / span."""
    passages, spans = _strings(question.get("gold_evidence")), _strings(question.get("gold_span"))
    if question.get("unanswerable"):
        return None, None
    said = [n for n in (normalise(q) for q in quotes) if n]
    in_passage = [q for q in said if any(overlaps(q, p) for p in passages)]
    evidence = (not abstained and bool(in_passage)) if passages else None
    pool = in_passage if passages else said
    span = (not abstained and any(overlaps(q, s, min(OVERLAP_CHARS, len(s))) for q in pool for s in spans)) \
        if spans else None
    return evidence, span


def bootstrap_ci(values: Sequence[float], clusters: Sequence[Any] | None = None,
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                 level: float = CI_LEVEL) -> list[float] | None:
    """Percentile bootstrap interval ``[low, high]`` of the mean of ``values`` (None when empty).

    With ``clusters`` (one key per value), whole clusters are resampled and the statistic is the
    pooled mean (sum over count) of the drawn clusters; without, every value is its own cluster.
    """
    import numpy as np

    if len(values) == 0:
        return None
    vals = np.asarray(values, dtype=np.float64)
    if clusters is None:
        keys = np.arange(len(vals))
    else:
        if len(clusters) != len(vals):
            raise ValueError("clusters must have one key per value")
        index: dict[Any, int] = {}
        keys = np.array([index.setdefault(c, len(index)) for c in clusters])
    m = int(keys.max()) + 1
    sums = np.bincount(keys, weights=vals, minlength=m)
    counts = np.bincount(keys, minlength=m).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, m, size=(resamples, m))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return [float(low), float(high)]


def metric_values(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, Any]]]:
    """Per-question values (value, question id) behind each rate in ``RATE_METRICS``."""
    keyed = [{**r, "id": r.get("id") or f"#{i}"} for i, r in enumerate(rows)]  # a missing id is its own cluster
    answerable = [r for r in keyed if not r["unanswerable"]]
    unanswerable = [r for r in keyed if r["unanswerable"]]

    def hit(r: dict[str, Any], k: int) -> float:
        return 1.0 if r.get("rank") and r["rank"] <= k else 0.0

    return {
        **{f"hit@{k}": [(hit(r, k), r["id"]) for r in answerable] for k in HIT_AT},
        "mrr": [((1.0 / r["rank"]) if r.get("rank") else 0.0, r["id"]) for r in answerable],
        "answer_containment": [(float(bool(r["contained"])), r["id"]) for r in answerable
                               if r.get("contained") is not None],
        "evidence_hit": [(float(bool(r["evidence_hit"])), r["id"]) for r in answerable
                         if r.get("evidence_hit") is not None],
        "span_hit": [(float(bool(r["span_hit"])), r["id"]) for r in answerable if r.get("span_hit") is not None],
        "keyword_accuracy": [(float(bool(r.get("keyword"))), r["id"]) for r in answerable],
        "false_abstention": [(float(bool(r["abstained"])), r["id"]) for r in answerable],
        "correct_abstention": [(float(bool(r["abstained"])), r["id"]) for r in unanswerable],
    }


def rates(rows: Sequence[dict[str, Any]], ci: bool = True) -> dict[str, Any]:
    """Every rate of ``RATE_METRICS`` (None when it has no question) and, with ``ci``, its 95% interval."""
    out: dict[str, Any] = {}
    intervals: dict[str, list[float] | None] = {}
    for name, pairs in metric_values(rows).items():
        out[name] = (sum(v for v, _ in pairs) / len(pairs)) if pairs else None
        if name in OPTIONAL_RATES:  # the others count the answerable or the unanswerable questions
            out[f"{name}_n"] = len(pairs)
        if ci:
            intervals[name] = bootstrap_ci([v for v, _ in pairs], [c for _, c in pairs])
    if ci:
        out["ci95"] = intervals
    return out


def evaluate(engine: Any, questions: list[dict[str, Any]], top_k: int = 8,
             manifest: Path | None = None) -> dict[str, Any]:
    """Run every question through ``engine.ask`` and compute the metrics."""
    from kb.answer.citations import verify_citations
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
        golds = gold_strings(q)
        contained = None
        if not q["unanswerable"] and golds:
            contained = (not ans.abstained) and contains_gold([ans.answer, *(c.quote for c in ans.citations)], golds)
        evidence_hit, span_hit = evidence_hits(q, [c.quote for c in ans.citations], ans.abstained)
        rows.append({
            "id": q["id"], "lang": q.get("lang", ""), "question_language": ans.question_language,
            "unanswerable": q["unanswerable"], "abstained": ans.abstained,
            "reason": getattr(ans, "reason", ""),
            "rank": first, "top_files": files[:5], "citations": len(ans.citations), "verified": len(kept),
            "keyword": (not q["unanswerable"]) and not ans.abstained and _has_keyword(evidence, q.get("keywords", [])),
            "contained": contained, "evidence_hit": evidence_hit, "span_hit": span_hit,
            "latency": latency, "retrieval": sum(v for k, v in ans.timings.items()
                                                 if k in ("filter", "bm25", "embed", "dense", "fuse", "texts")),
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
    overall = rates(rows)
    for name in OPTIONAL_RATES:
        metrics[name] = overall[name]
        metrics[f"{name}_n"] = overall[f"{name}_n"]
    metrics["ci95"] = overall["ci95"]
    metrics["bootstrap"] = {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "level": CI_LEVEL,
                            "unit": "question id"}
    by_lang: dict[str, dict[str, Any]] = {}
    for lang in sorted({r["lang"] for r in rows}):
        every = [r for r in rows if r["lang"] == lang]
        sub = [r for r in every if not r["unanswerable"]]
        lat_l = [r["latency"] for r in every]
        by_lang[lang] = {"n": len(sub), "questions": len(every), "answerable": len(sub),
                         "unanswerable": len(every) - len(sub), **rates(every),
                         "latency_p50_s": _pct(lat_l, 0.5), "latency_p95_s": _pct(lat_l, 0.95)}
    metrics["by_language"] = by_lang
    if answerable and not metrics["latency_p50_s"]:
        metrics["latency_p50_s"] = statistics.median(lat)
    return {"metrics": metrics, "questions": rows}


def _fmt_rate(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def format_report(report: dict[str, Any], details: bool = False) -> str:
    """A plain-text table of the metrics (and optionally one line per question)."""
    m = report["metrics"]
    ci = m.get("ci95", {})
    lines = [
        f"questions            {m['questions']} ({m['answerable']} answerable, {m['unanswerable']} unanswerable)",
        f"hit@1                {_fmt_rate(m['hit@1'], ci.get('hit@1'))}",
        f"hit@5                {_fmt_rate(m['hit@5'], ci.get('hit@5'))}",
        f"MRR                  {_fmt_rate(m['mrr'], ci.get('mrr'))}",
        f"quotes verified      {m['quotes_verified']:.3f} of {m['citations']} citations",
        f"keyword accuracy     {_fmt_rate(m['keyword_accuracy'], ci.get('keyword_accuracy'))}",
        (f"answer containment   {_fmt_rate(m.get('answer_containment'), ci.get('answer_containment'))}"
         f" (n={m.get('answer_containment_n', 0)})"),
        *[f"{label:<21}{_fmt_rate(m.get(name), ci.get(name))} (n={m[f'{name}_n']})"
          for name, label in (("evidence_hit", "quote in gold passage"), ("span_hit", "quote on gold span"))
          if m.get(f"{name}_n")],
        f"correct abstention   {_fmt_rate(m['correct_abstention'], ci.get('correct_abstention'))}",
        f"false abstention     {_fmt_rate(m['false_abstention'], ci.get('false_abstention'))}",
        f"answer latency       p50 {m['latency_p50_s'] * 1000:.0f} ms, p95 {m['latency_p95_s'] * 1000:.0f} ms",
        f"retrieval latency    p50 {m['retrieval_p50_s'] * 1000:.0f} ms, p95 {m['retrieval_p95_s'] * 1000:.0f} ms",
        "hit@5 by language    " + ", ".join(f"{k} {_fmt_rate(v['hit@5'])} (n={v['n']})"
                                            for k, v in m["by_language"].items()),
        "",
        (f"95% intervals: bootstrap over questions ({m.get('bootstrap', {}).get('resamples', BOOTSTRAP_RESAMPLES)} "
         "resamples, fixed seed)"),
        f"{'lang':>4} {'ans':>4} {'una':>4}  " + "  ".join(f"{h:<18}" for h in
                                                           ("hit@1", "hit@5", "MRR", "containment",
                                                            "false abstention", "correct abstention")),
    ]
    for lang, v in m["by_language"].items():
        c = v.get("ci95", {})
        cells = [_fmt_rate(v.get(k), c.get(k)) for k in ("hit@1", "hit@5", "mrr", "answer_containment",
                                                          "false_abstention", "correct_abstention")]
        lines.append(f"{lang or '-':>4} {v.get('answerable', v['n']):>4} {v.get('unanswerable', 0):>4}  "
                     + "  ".join(f"{x:<18}" for x in cells))
    if details:
        lines.append("")
        for r in report["questions"]:
            flag = ("ABSTAIN" if r["abstained"] else "answer ") + ("*" if r["abstained"] != r["unanswerable"] else " ")
            cont = "-" if r.get("contained") is None else int(r["contained"])
            ev = "" if r.get("evidence_hit") is None else f" ev={int(r['evidence_hit'])}"
            sp = "" if r.get("span_hit") is None else f" span={int(r['span_hit'])}"
            lines.append(f"{r['id']:>5} {r['lang']:>2} rank={r['rank']!s:>4} {flag} kw={int(r['keyword'])} "
                         f"in={cont}{ev}{sp} {r['latency'] * 1000:5.0f}ms {r['reason'] or ''} | {r['top_files'][:3]}")
    return "\n".join(lines)


# -- abstention calibration ------------------------------------------------------------------------
def measure_question(engine: Any, question: str, top_k: int = 8) -> tuple[str, Any, list[Any], Any]:
    """One question's language, retrieval, candidate sentences and abstention evidence (no decision)."""
    from kb.answer.abstention import evidence_of
    from kb.answer.engine import question_language
    from kb.answer.scoring import select_sentences
    from kb.retrieval.filters import Filters

    lang = question_language(question)
    ret = engine.retriever.search(question, lang, Filters(), top_k=top_k)
    cands = select_sentences(question, lang, ret, engine)
    return lang, ret, cands, evidence_of(question, ret, cands, lang, engine.retriever.bm25.idf)


def collect_evidence(engine: Any, questions: list[dict[str, Any]], top_k: int = 8) -> list[tuple[dict, Any]]:
    """The abstention evidence of every question (retrieval and sentence selection, no decision)."""
    engine.warm_up()
    return [(q, measure_question(engine, q["question"], top_k)[3]) for q in questions]


def _grid(lo: float, hi: float, step: float) -> list[float]:
    n = int(round((hi - lo) / step))
    return [round(lo + i * step, 4) for i in range(n + 1)]


def calibrate(engine: Any, questions: list[dict[str, Any]], max_false: float = 0.1) -> dict[str, Any]:
    """Sweep the abstention settings over labelled questions, and give the calibration curve.

    The curve: for each ``min_support`` from 0 to 1, the share of answerable questions abstained on
    (false) and of unanswerable ones (correct). The best setting maximises correct abstentions minus
    twice the false ones, with false abstentions at most ``max_false``; among equally good settings the
    lowest thresholds win (the least eager to abstain).
    """
    from dataclasses import asdict, replace

    from kb.answer.abstention import decide, support

    items = collect_evidence(engine, questions)
    ans = [ev for q, ev in items if not q["unanswerable"]]
    una = [ev for q, ev in items if q["unanswerable"]]

    def rates(th: Any) -> tuple[float, float]:
        correct = sum(1 for ev in una if decide(ev, th)) / (len(una) or 1)
        false = sum(1 for ev in ans if decide(ev, th)) / (len(ans) or 1)
        return correct, false

    base = engine.thresholds
    best = None
    curve = []
    for ms in _grid(0.0, 1.0, 0.05):
        c, f = rates(replace(base, min_support=ms, unknown_term_support=0.0, check_answer_type=False))
        curve.append({"min_support": ms, "correct_abstention": round(c, 4), "false_abstention": round(f, 4)})
        for ut in (0.0, 0.5, 0.8, 0.9, 1.01):
            for typ in (False, True):
                th = replace(base, min_support=ms, unknown_term_support=ut, check_answer_type=typ)
                c, f = rates(th)
                if f > max_false:
                    continue
                key = (c - 2 * f, -ms, -ut, typ)
                if best is None or key > best[0]:
                    best = (key, th, c, f)
    current = rates(base)
    return {
        "answerable": len(ans), "unanswerable": len(una), "curve": curve,
        "current": {"thresholds": asdict(base), "correct_abstention": current[0], "false_abstention": current[1]},
        "best": None if best is None else {"thresholds": asdict(best[1]), "correct_abstention": best[2],
                                           "false_abstention": best[3]},
        "questions": [{"id": q["id"], "lang": q.get("lang", ""), "unanswerable": q["unanswerable"],
                       "passage_dense": round(ev.passage_dense, 4), "sentence_dense": round(ev.sentence_dense, 4),
                       "median_dense": round(ev.median_dense, 4), "support": round(support(ev), 4),
                       "unknown": ev.unknown, "asked": ev.asked, "has_type": ev.has_type,
                       "decision": decide(ev, base) or "answer"} for q, ev in items],
    }


def format_calibration(report: dict[str, Any]) -> str:
    """Plain-text calibration summary: the curve, the current and the best setting, one line per question."""
    def line(name: str, block: dict[str, Any] | None) -> str:
        if not block:
            return f"{name:8} no setting keeps false abstentions within bounds"
        t = block["thresholds"]
        return (f"{name:8} support>={t['min_support']:.2f} unknown-word support>={t['unknown_term_support']:.2f} "
                f"type-check={t['check_answer_type']}: correct abstention {block['correct_abstention']:.3f}, "
                f"false abstention {block['false_abstention']:.3f}")
    rows = [f"{report['answerable']} answerable, {report['unanswerable']} unanswerable questions",
            line("current", report["current"]), line("best", report["best"]), "",
            "calibration curve (support rule alone): min_support -> false / correct abstention"]
    rows += [f"  {p['min_support']:.2f} -> {p['false_abstention']:.3f} / {p['correct_abstention']:.3f}"
             for p in report["curve"]]
    rows += ["", "   id lang U  passage sentence median support type  unknown  -> decision"]
    for r in report["questions"]:
        rows.append(f"{r['id']:>5} {r['lang']:>4} {'U' if r['unanswerable'] else '-'}  {r['passage_dense']:.3f}   "
                    f"{r['sentence_dense']:.3f}  {r['median_dense']:.3f}  {r['support']:.2f}  "
                    f"{(r['asked'] or '-')[:4]:>4}{'' if r['has_type'] else '!'} "
                    f"{','.join(r['unknown'])[:20]:>8} -> {r['decision'][:60]}")
    return "\n".join(rows)
