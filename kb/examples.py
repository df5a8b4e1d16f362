"""Example questions for the landing page, drawn from what is indexed, in the reader's language.

Each candidate names an indexed document (its title, publisher and type) in a template of the
reader's language; ``example_questions`` keeps only candidates the knowledge base actually answers
(not abstained, every quote verified), so a suggestion never leads to "the sources do not cover this".
"""
from __future__ import annotations

from typing import Callable, Iterable

from kb.listings import DocumentEntry
from kb.text.titles import without_label

#: Per language and document type: a question about one document. ``{title}`` is the document's
#: title (shortened), ``{publisher}`` its publisher. "*" is for any other type.
TEMPLATES: dict[str, dict[str, str]] = {
    "en": {"news": "What does {publisher} report in “{title}”?",
           "tos": "What do {publisher}'s terms forbid users to do with the output?",
           "court": "What did the court decide, according to “{title}”?",
           "*": "What does “{title}” say?"},
    "es": {"news": "¿Qué informa {publisher} en «{title}»?",
           "tos": "¿Qué prohíben las condiciones de {publisher} hacer con los resultados?",
           "court": "¿Qué decidió el tribunal, según «{title}»?",
           "*": "¿Qué dice «{title}»?"},
    "fr": {"news": "Que rapporte {publisher} dans « {title} » ?",
           "tos": "Qu'interdisent les conditions de {publisher} de faire avec les résultats ?",
           "court": "Qu'a décidé le tribunal, selon « {title} » ?",
           "*": "Que dit « {title} » ?"},
    "de": {"news": "Was berichtet {publisher} in „{title}“?",
           "tos": "Was verbieten die Bedingungen von {publisher} mit den Ausgaben zu tun?",
           "court": "Was hat das Gericht laut „{title}“ entschieden?",
           "*": "Was steht in „{title}“?"},
    "pt": {"news": "O que {publisher} relata em “{title}”?",
           "tos": "O que os termos de {publisher} proíbem fazer com os resultados?",
           "court": "O que o tribunal decidiu, segundo “{title}”?",
           "*": "O que diz “{title}”?"},
    "it": {"news": "Che cosa riporta {publisher} in «{title}»?",
           "tos": "Che cosa vietano i termini di {publisher} di fare con i risultati?",
           "court": "Che cosa ha deciso il tribunale, secondo «{title}»?",
           "*": "Che cosa dice «{title}»?"},
    "hi": {"news": "{publisher} “{title}” में क्या बताता है?",
           "tos": "{publisher} की शर्तें आउटपुट के साथ क्या करने से मना करती हैं?",
           "court": "“{title}” के अनुसार अदालत ने क्या फ़ैसला किया?",
           "*": "“{title}” में क्या कहा गया है?"},
    "zh": {"news": "{publisher}在《{title}》中报道了什么？",
           "tos": "{publisher}的条款禁止用户如何使用输出？",
           "court": "根据《{title}》，法院作出了什么裁决？",
           "*": "《{title}》说了什么？"},
    "ja": {"news": "{publisher}は「{title}」で何を報じていますか？",
           "tos": "{publisher}の規約は出力の何を禁止していますか？",
           "court": "「{title}」によると、裁判所は何を決定しましたか？",
           "*": "「{title}」には何が書かれていますか？"},
    "ru": {"news": "О чём сообщает {publisher} в «{title}»?",
           "tos": "Что условия {publisher} запрещают делать с результатами?",
           "court": "Что решил суд, согласно «{title}»?",
           "*": "О чём говорится в «{title}»?"},
    "ar": {"news": "ماذا ينقل {publisher} في «{title}»؟",
           "tos": "ماذا تحظر شروط {publisher} فعله بالمخرجات؟",
           "court": "ماذا قررت المحكمة وفقًا لـ«{title}»؟",
           "*": "ماذا يقول «{title}»؟"},
}
#: Longest title put into a question, in characters (cut at a word boundary).
MAX_TITLE = 70


def reader_language(locale: str | None) -> str:
    """``"hi-IN"`` → ``"hi"``; a language without templates (or none) → ``"en"``."""
    code = (locale or "").replace("_", "-").split("-")[0].strip().lower()
    return code if code in TEMPLATES else "en"


def _short(title: str) -> str:
    title = " ".join(without_label(title).split())
    if len(title) <= MAX_TITLE:
        return title
    cut = title[:MAX_TITLE].rsplit(" ", 1)[0]
    return (cut if len(cut) > MAX_TITLE // 2 else title[:MAX_TITLE]).rstrip(",;:") + "…"


def candidates(documents: Iterable[DocumentEntry], language: str) -> list[str]:
    """One question per document, taking document types in turn so every type shows; within a type,
    documents in the reader's language first, then the newest."""
    table = TEMPLATES.get(language, TEMPLATES["en"])
    by_type: dict[str, list[DocumentEntry]] = {}
    ordered = sorted(documents, key=lambda d: d.published or d.last_retrieved, reverse=True)
    for d in sorted(ordered, key=lambda d: d.language != language):
        if d.chunks > 0 and (d.title or d.publisher):
            by_type.setdefault(d.doctype or "other", []).append(d)
    out: list[str] = []
    seen: set[str] = set()
    queues = list(by_type.values())
    while any(queues):
        for queue in queues:
            if not queue:
                continue
            d = queue.pop(0)
            template = table.get(d.doctype, table["*"])
            if "{publisher}" in template and not d.publisher:
                template = table["*"]
            q = template.format(title=_short(d.title or d.publisher), publisher=d.publisher.strip())
            if q not in seen:
                seen.add(q)
                out.append(q)
    return out


def example_questions(documents: Iterable[DocumentEntry], language: str, answers: Callable[[str], bool],
                      n: int = 3, tries: int = 8) -> list[str]:
    """Up to ``n`` candidates that ``answers(question)`` confirms (at most ``tries`` are checked)."""
    kept: list[str] = []
    for q in candidates(documents, language)[:tries]:
        if answers(q):
            kept.append(q)
            if len(kept) == n:
                break
    return kept
