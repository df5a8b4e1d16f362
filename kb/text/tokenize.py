"""Per-language tokenisation for BM25: one function for passages, one for questions.

Text is split into runs by script, and each run is handled the way its script needs:

- Latin, Cyrillic, Greek ...: NFKC + casefold, stop words of the text's language removed, Snowball
  stemming (nltk, cached per word), accents folded *after* stemming (``política`` -> ``polit``);
- Devanagari (and other Indic scripts): words keep their combining vowel signs and viramas (``\\w``
  alone would cut ``उपयोग`` apart), Hindi stop words removed, a light suffix stemmer;
- Han in Chinese text: ``jieba`` in search mode (words plus their sub-words);
- Japanese (kana present or ``lang='ja'``): kanji runs as character bigrams, katakana runs whole,
  hiragana (particles, inflections) dropped;
- numbers keep inner dots and commas (``3.3``, ``1,000``).

Questions are tokenised under their own language *and* the index's main languages (English by
default), because a Spanish question about "model scraping" must match English stems too.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from functools import cache, lru_cache
from typing import Iterable

# Combining marks are not ``\w`` in Python's ``re``; Indic vowel signs and viramas are marks.
_MARKS = ("\u0300-\u036F\u0483-\u0489\u0591-\u05C7\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED"
          "\u0900-\u0963\u0966-\u096F\u0971-\u0DFF\u0E31\u0E34-\u0E3A\u0E47-\u0E4E\u1AB0-\u1AFF\u1DC0-\u1DFF\u200C\u200D"
          "\u20D0-\u20FF\u3099\u309A\uFE20-\uFE2F")
_RUN = re.compile(rf"\d+(?:[.,]\d+)*|[\w{_MARKS}]+", re.UNICODE)

_SNOWBALL = {"hi": "hindi", "en": "english", "es": "spanish", "fr": "french", "de": "german", "pt": "portuguese",
             "it": "italian", "nl": "dutch", "sv": "swedish", "da": "danish", "no": "norwegian",
             "nb": "norwegian", "fi": "finnish", "ro": "romanian", "hu": "hungarian", "ru": "russian"}

#: Latin-script languages: for other languages their Latin words (names, English terms) are English.
_LATIN_LANGS = {"en", "es", "fr", "de", "pt", "it", "nl", "sv", "da", "no", "nb", "fi", "ro", "hu", "pl",
                "cs", "tr", "id", "ca", "af", "et", "lv", "lt", "sk", "sl", "hr", "sq", "tl", "vi", "sw", "cy"}

_HI_STOP = set("""
का की के को में से है हैं था थी थे हो होता होती होते हुआ हुई हुए और या पर ने भी तो यह ये वह वे इस उस इन उन
एक कि जो जिस जिन कौन क्या किस किसे किसी कुछ कोई कैसे कब कहाँ कहां क्यों कितना कितनी कितने किया करते करती
करना करने कर रहा रही रहे गया गई गए लिए साथ तक बाद अपने अपनी अपना उनके उसके इसके नहीं हम आप मैं तथा एवं
द्वारा वाले वाली वाला जैसे जब तब यदि अगर लेकिन परंतु किन्तु होने होगा होगी सकता सकती सकते दिया दी दिए
""".split())

_JA_STOP = {"こと", "もの", "ため", "よう", "これ", "それ", "あれ", "どれ", "どの", "何", "誰", "いつ", "どこ"}

_EXTRA_STOP = {
    # interrogatives and question scaffolding missing from the bm25s lists
    "en": {"whose", "would", "could", "according", "said", "say", "says", "tell", "also", "much", "many"},
    "es": {"cuál", "cuáles", "cuándo", "cuánto", "cuántos", "cuántas", "dónde", "quién", "quiénes", "qué",
           "cómo", "según"},
    "fr": {"quel", "quelle", "quels", "quelles", "quand", "combien", "comment", "pourquoi", "où", "qui",
           "selon", "est-ce"},
    "de": {"welche", "welcher", "welches", "welchen", "wann", "wie", "wieviel", "wo", "warum", "wer", "was",
           "laut", "hoch"},
    "pt": {"qual", "quais", "quando", "quanto", "quantos", "quantas", "onde", "quem", "como", "segundo",
           "porque"},
}

_STOP_CACHE: dict[str, frozenset[str]] = {}
_STOP_LOCK = threading.Lock()


def stopwords(lang: str) -> frozenset[str]:
    """Stop words of a language (casefolded); empty for languages without a list."""
    if lang in _STOP_CACHE:
        return _STOP_CACHE[lang]
    with _STOP_LOCK:
        import bm25s.stopwords as sw

        lists = {"en": sw.STOPWORDS_EN_PLUS, "es": sw.STOPWORDS_SPANISH, "fr": sw.STOPWORDS_FRENCH,
                 "de": sw.STOPWORDS_GERMAN, "pt": sw.STOPWORDS_PORTUGUESE, "it": sw.STOPWORDS_ITALIAN,
                 "nl": sw.STOPWORDS_DUTCH, "sv": sw.STOPWORDS_SWEDISH, "da": sw.STOPWORDS_DANISH,
                 "no": sw.STOPWORDS_NORWEGIAN, "ru": sw.STOPWORDS_RUSSIAN, "tr": sw.STOPWORDS_TURKISH,
                 "zh": sw.STOPWORDS_CHINESE, "ko": sw.STOPWORDS_KOREAN}
        words = {w.casefold() for w in lists.get(lang, ())} | _EXTRA_STOP.get(lang, set())
        if lang == "hi":
            words |= _HI_STOP
        if lang == "ja":
            words |= _JA_STOP
        _STOP_CACHE[lang] = frozenset(words)
        return _STOP_CACHE[lang]


@cache
def _stemmer(lang: str):
    """A Snowball stemmer with a ``stem(word)`` method: PyStemmer (C) first, nltk's as a fallback."""
    name = _SNOWBALL.get(lang)
    if not name:
        return None
    try:
        import Stemmer  # PyStemmer

        return _PyStemmer(Stemmer.Stemmer(name))
    except (ImportError, KeyError):
        pass
    try:
        from nltk.stem.snowball import SnowballStemmer

        return SnowballStemmer(name)
    except (ImportError, ValueError):  # nltk has no Hindi stemmer
        return None


def stemmer_backend() -> str:
    """Which Snowball implementation stems here ("pystemmer" or "nltk"): part of the BM25 cache key."""
    stemmer = _stemmer("en")
    return "pystemmer" if isinstance(stemmer, _PyStemmer) else ("nltk" if stemmer is not None else "light")


class _PyStemmer:
    def __init__(self, stemmer) -> None:
        self.stem = stemmer.stemWord


_LIGHT_SUFFIXES = ("ies", "es", "s", "ing", "ed", "ly")


@lru_cache(maxsize=500_000)
def stem_word(word: str, lang: str) -> str:
    """Snowball stem of a casefolded word (a light English suffix stripper when Snowball is absent)."""
    stemmer = _stemmer(lang)
    if stemmer is not None:
        try:
            return stemmer.stem(word)
        except Exception:  # noqa: BLE001 - nltk raises odd errors on odd input
            return word
    if lang == "en":
        for suf in _LIGHT_SUFFIXES:
            if len(word) > len(suf) + 3 and word.endswith(suf):
                return word[: -len(suf)]
    return word


_HI_SUFFIXES = sorted("""
ाएंगी ाएंगे ूंगी ूंगा ियाँ ियां ाइयाँ ाइयां ाओं ाएं ुओं ुएं ीयों ियों ाने ाना ाती ाते ाता ेगा ेगी ेंगे ेंगी
ोगे ोगी ाई ाए ाओ ीं ीय ों ें ुआ ुई ुए ता ती ते ना ने नी ा ि ी ु ू े ै ो ौ ं
""".split(), key=len, reverse=True)


@lru_cache(maxsize=200_000)
def stem_hindi(word: str) -> str:
    """Hindi stem: Snowball's light Hindi stemmer, or the longest inflectional suffix dropped (stem of 2+)."""
    stemmer = _stemmer("hi")
    if stemmer is not None:
        return stemmer.stem(word)
    for suf in _HI_SUFFIXES:
        if word.endswith(suf) and len(word) - len(suf) >= 2:
            return word[: -len(suf)]
    return word


def fold_accents(word: str) -> str:
    """Drop combining marks of Latin/Greek/Cyrillic words (``política`` -> ``politica``)."""
    decomposed = unicodedata.normalize("NFKD", word)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def _kind(ch: str) -> str:
    o = ord(ch)
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F or o == 0x3005:
        return "han"
    if 0x3040 <= o <= 0x309F:
        return "hira"
    if 0x30A0 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9D:
        return "kata"
    if 0x0900 <= o <= 0x0DFF:
        return "indic"
    if 0xAC00 <= o <= 0xD7AF:
        return "hangul"
    return "word"


def _split_scripts(run: str) -> list[tuple[str, str]]:
    """Cut a word run where the script changes (``OpenAI模型`` -> ``OpenAI`` + ``模型``)."""
    parts: list[tuple[str, str]] = []
    start = 0
    prev = ""
    for i, ch in enumerate(run):
        k = _kind(ch)
        if unicodedata.combining(ch) and prev:  # a mark belongs to the preceding character
            k = prev
        if prev and k != prev:
            parts.append((prev, run[start:i]))
            start = i
        prev = k
    if run:
        parts.append((prev, run[start:]))
    return parts


_JIEBA_LOCK = threading.Lock()
_JIEBA = None


def _jieba():
    global _JIEBA
    if _JIEBA is None:
        with _JIEBA_LOCK:
            if _JIEBA is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _JIEBA = jieba
    return _JIEBA


def _han_tokens(run: str, lang: str) -> list[str]:
    if lang == "ja":
        return cjk_bigrams(run)
    return [w for w in _jieba().cut_for_search(run, HMM=True) if w.strip()]


def cjk_bigrams(run: str) -> list[str]:
    """Overlapping character bigrams (a single character stays a unigram)."""
    if len(run) < 2:
        return [run] if run else []
    return [run[i:i + 2] for i in range(len(run) - 1)]


def _latin_tokens(word: str, lang: str, stops: frozenset[str]) -> list[str]:
    if word in stops:
        return []
    if word[0].isdigit():
        return [word]
    if len(word) < 2 and not word.isdigit():
        return []
    stem_lang = lang if lang in _SNOWBALL else "en"
    return [fold_accents(stem_word(word, stem_lang))]


def tokenize(text: str, lang: str = "en", extra_stops: frozenset[str] = frozenset()) -> list[str]:
    """BM25 tokens of a passage written (mainly) in ``lang`` (ISO 639-1; ``und`` is treated as English)."""
    lang = lang if lang and lang != "und" else "en"
    latin_lang = lang if lang in _LATIN_LANGS else "en"
    latin_stops = stopwords(latin_lang) | extra_stops
    text = unicodedata.normalize("NFKC", text).casefold()
    japanese = lang == "ja"
    out: list[str] = []
    for run in _RUN.findall(text):
        if run[0].isdigit() and run.replace(".", "").replace(",", "").isdigit():
            out.append(run.rstrip(".,"))
            continue
        for kind, part in _split_scripts(run):
            if kind == "word":
                for piece in part.split("_"):
                    if piece:
                        out.extend(_latin_tokens(piece, latin_lang, latin_stops))
            elif kind == "indic":
                if part not in _HI_STOP and part not in extra_stops:
                    out.append(stem_hindi(part))
            elif kind == "han":
                han_lang = "ja" if japanese else "zh"
                stops = stopwords(han_lang) | extra_stops
                out.extend(t for t in _han_tokens(part, han_lang) if t not in stops)
            elif kind == "kata":
                if len(part) >= 2:
                    out.append(part)
            elif kind == "hangul":
                out.append(part)
            # hiragana: particles and inflections, dropped
    return out


def tokenize_query(text: str, lang: str = "en", also: Iterable[str] = ("en",)) -> list[str]:
    """BM25 tokens of a question: its own language's tokens plus those under ``also`` languages, deduplicated.

    Stop words of every one of these languages are removed, so that "de" or "la" in a Spanish question
    never match an English passage by accident.
    """
    langs = [lang if lang and lang != "und" else "en", *[a for a in also if a]]
    seen: dict[str, None] = {}
    stop_union: set[str] = set()
    for code in langs:
        stop_union |= stopwords(code)
    frozen = frozenset(stop_union)
    for code in dict.fromkeys(langs):
        for tok in tokenize(text, code, extra_stops=frozen):
            seen.setdefault(tok, None)
    return list(seen)
