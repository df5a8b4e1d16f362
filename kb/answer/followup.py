"""Follow-up questions: resolve "And when did he testify?" against the conversation before retrieval.

Without an LLM there is no rewriting: a question that reads as a follow-up (it opens with a
connective such as "and"/"y"/"और"/"那", points back with a pronoun such as "he"/"él"/"उन्होंने"/"他", or is
too short to stand alone) gets the previous turn's subject terms appended (its names and content words
that the follow-up does not already have), and the documents the previous answer cited win close
retrieval calls (``Retriever.search(prefer_docs=...)``). A question with a name of its own and no
pointer back stands alone. The answer keeps the follow-up's own language.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

from kb.text.titles import without_label
from kb.text.tokenize import stopwords

#: Words that open a follow-up, per language (casefolded; matched at the start of the question).
CONNECTIVES: dict[str, tuple[str, ...]] = {
    "en": ("and", "also", "what about", "how about", "then", "so", "but"),
    "es": ("y", "también", "entonces", "pero", "¿y", "y qué"),
    "fr": ("et", "alors", "aussi", "mais", "et qu"),
    "de": ("und", "also", "aber", "was ist mit", "und was"),
    "pt": ("e", "também", "então", "mas"),
    "it": ("e", "anche", "allora", "ma"),
    "hi": ("और", "तो", "फिर", "लेकिन", "तथा"),
    "zh": ("那", "那么", "还有", "另外", "而"),
    "ja": ("それで", "では", "じゃあ", "また", "そして"),
    "ru": ("а", "и", "тогда", "но"),
    "ar": ("و", "ثم", "لكن"),
}
#: Words that point back at something named before (casefolded, whole words; CJK: substrings).
POINTERS: dict[str, frozenset[str]] = {
    "en": frozenset("he she it they him her his its their them this that these those there then".split()),
    "es": frozenset("él ella ellos ellas su sus eso esto ese esa allí entonces lo le les".split()),
    "fr": frozenset("il elle ils elles lui leur leurs son sa ses cela ça ce cet cette là".split()),
    "de": frozenset("er sie es ihn ihm ihr ihre sein seine dies das dort damals dann".split()),
    "pt": frozenset("ele ela eles elas dele dela isso isto lá então".split()),
    "it": frozenset("lui lei loro suo sua suoi questo quello lì allora".split()),
    "hi": frozenset("वह वे उन्होंने उसने उनका उसका उनकी उसकी उनके उसके उन्हें उसे इसे यह इसका इसकी वहाँ तब".split()),
    "ru": frozenset("он она оно они его её ее их ему ей им это этот эта там тогда".split()),
    "ar": frozenset("هو هي هم ذلك هذا هذه تلك هناك".split()),
}
CJK_POINTERS: dict[str, tuple[str, ...]] = {
    "zh": ("他", "她", "它", "这", "那", "其", "此"),
    "ja": ("彼", "彼女", "それ", "その", "これ", "この", "あの"),
}
#: A question with at most this many content words cannot stand alone.
SHORT = 2
#: At most this many subject terms are carried over.
MAX_TERMS = 6
#: Question words that are never a subject (beyond the stop-word lists).
_QUESTION_WORDS = frozenset(
    "what when where which who whom whose why how did does do is are was were say said tell "
    "qué cuándo dónde quién cuál cómo dijo "
    "quoi quand où qui quel quelle comment dit "
    "was wann wo wer welche wie sagte "
    "quando onde quem qual como disse "
    "क्या कब कहाँ कौन किस कैसे कहा बारे "
    "что когда где кто какой как сказал "
    "ماذا متى أين من كيف قال".split())
_LATIN_NAME = re.compile(r"\b(?:[A-Z][\w'’.-]*[a-z0-9]|[A-Za-z]*[A-Z]{2,}[\w-]*)\b")
_HAN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


@dataclass
class PriorTurn:
    """What a follow-up may lean on: the previous question (as resolved) and the documents it cited."""

    question: str
    language: str
    cited_docs: frozenset[str] = frozenset()
    #: Titles (with their language) of the documents the answer cited, best first.
    cited_titles: tuple[tuple[str, str], ...] = ()


@dataclass
class Resolution:
    """A question as retrieval will see it."""

    question: str                   # as asked
    resolved: str                   # as searched (the question itself when it stands alone)
    follow_up: bool = False
    terms: list[str] = field(default_factory=list)       # carried over from the previous turn
    prefer_docs: frozenset[str] = frozenset()            # the previous answer's cited documents

    @property
    def display(self) -> str:
        """"Searching for: …" text: the question plus what was carried over."""
        return searched_display(self.question, self.resolved)


def searched_display(question: str, resolved: str | None) -> str:
    """``And when did he testify? (+ Musk · distillation · court)`` for a resolved follow-up."""
    extra = (resolved or "")[len(question):].split() if (resolved or "").startswith(question) else []
    return f"{question} (+ {' · '.join(extra)})" if extra else (resolved or question)


def _strip_punct(word: str) -> str:
    cut = [i for i, ch in enumerate(word) if not unicodedata.category(ch).startswith(("P", "S"))]
    return word[cut[0]:cut[-1] + 1] if cut else ""


def _words(text: str) -> list[str]:
    """Whitespace-separated words without surrounding punctuation (combining marks kept: Devanagari)."""
    words = (_strip_punct(w) for w in text.split())
    return [w for w in words if w and not w.isdigit()]


def content_terms(question: str, language: str) -> list[str]:
    """The question's names and content words in order (no stop or question words; CJK: Latin names
    and runs of two or more Han/kana characters outside the pointer words)."""
    stops = stopwords(language) | stopwords("en")
    out: list[str] = []
    for w in _words(question):
        folded = w.casefold()
        if folded in stops or folded in _QUESTION_WORDS or folded in POINTERS.get(language, frozenset()):
            continue
        if _HAN.search(w):
            from kb.text.tokenize import tokenize  # jieba words for Chinese, bigrams for Japanese

            toks = [t for t in tokenize(w, language) if len(t) >= 2 and t not in CJK_POINTERS.get(language, ())]
            out.extend(t for t in toks if t not in stops)
            continue
        if len(w) > 1:
            out.append(w)
    return list(dict.fromkeys(out))


def _names(question: str) -> list[str]:
    """Capitalised or upper-case Latin words after the first word (names: Musk, OpenAI, xAI's Grok)."""
    words = _LATIN_NAME.findall(question)
    first = _words(question)[:1]
    return [w for w in words if not (first and w == first[0] and not any(c.isupper() for c in w[1:]))]


def is_follow_up(question: str, language: str) -> bool:
    """Does the question lean on what came before (connective, pointer word, or too short)?"""
    q = question.strip().lstrip("¿¡«\"“'").casefold()
    for c in CONNECTIVES.get(language, ()) + CONNECTIVES["en"]:
        if q.startswith(c) and (len(q) == len(c) or not q[len(c)].isalnum() or _HAN.match(c)):
            return True
    words = {w.casefold() for w in _words(question)}
    pointer = bool(words & POINTERS.get(language, frozenset())) or any(
        p in question for p in CJK_POINTERS.get(language, ()))
    if pointer and not _names(question):
        return True
    return len(content_terms(question, language)) <= SHORT and not _names(question)


def resolve(question: str, language: str, previous: Sequence[PriorTurn]) -> Resolution:
    """The question as retrieval should see it, given the earlier turns (most recent last)."""
    question = question.strip()
    if not previous or not is_follow_up(question, language):
        return Resolution(question, question)
    prior = previous[-1]
    have = {t.casefold() for t in content_terms(question, language)}
    # The subject, not the predicate: the earlier question's names, then the words of the title of the
    # document its answer cited first ("And which law governs them?" after a question about cancelling
    # Anthropic's consumer terms carries "Anthropic Consumer Terms Service", not "cancelling").
    # Without a cited document, the earlier question's content words stand in for the title.
    title_terms = (content_terms(without_label(prior.cited_titles[0][0]), prior.cited_titles[0][1])
                   if prior.cited_titles
                   else content_terms(prior.question, prior.language))
    carried: list[str] = []
    for t in [*_names(prior.question), *title_terms]:
        if t.casefold() not in have and t.casefold() not in {c.casefold() for c in carried}:
            carried.append(t)
    terms = carried[:MAX_TERMS]
    resolved = f"{question} {' '.join(terms)}" if terms else question
    return Resolution(question, resolved, True, terms, prior.cited_docs)
