"""Language detection for documents, passages and questions: ISO 639-1 codes, ``und`` when unsure.

Non-Latin scripts are decided by the script itself (Devanagari, kana, Han, Hangul ...), which is
reliable even for short or code-mixed text such as Hinglish ("OpenAI की Terms of Service ...");
``langdetect`` (seeded, so results are repeatable) decides between languages that share a script.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from typing import Callable

UNDETERMINED = "und"

_LOCK = threading.Lock()
_READY = False

#: langdetect codes that are not ISO 639-1 as we use them.
_CODE_MAP = {"zh-cn": "zh", "zh-tw": "zh", "zh-hk": "zh", "zh-sg": "zh"}

_WORD = re.compile(r"\w+", re.UNICODE)
_URLISH = re.compile(r"https?://\S+|www\.\S+|\S+@\S+")


def _ensure_seeded() -> None:
    """Seed langdetect once so that detection is deterministic."""
    global _READY
    if _READY:
        return
    with _LOCK:
        if not _READY:
            from langdetect import DetectorFactory

            DetectorFactory.seed = 0
            _READY = True


def _script_of(ch: str) -> str:
    """A coarse script name for one character ('' for non-letters)."""
    o = ord(ch)
    if 0x0900 <= o <= 0x097F or 0xA8E0 <= o <= 0xA8FF:
        return "deva"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9D:
        return "kana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F:
        return "han"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if not ch.isalpha():
        return ""
    if o < 0x0250 or 0x1E00 <= o <= 0x1EFF:
        return "latin"
    if 0x0370 <= o <= 0x03FF:
        return "greek"
    if 0x0400 <= o <= 0x052F:
        return "cyrillic"
    if 0x0590 <= o <= 0x05FF:
        return "hebrew"
    if 0x0600 <= o <= 0x06FF or 0x0750 <= o <= 0x077F:
        return "arabic"
    if 0x0E00 <= o <= 0x0E7F:
        return "thai"
    if 0x0980 <= o <= 0x09FF:
        return "beng"
    if 0x0B80 <= o <= 0x0BFF:
        return "taml"
    return "other"


def script_profile(text: str) -> dict[str, float]:
    """Share of each script in ``text``, counted in words (CJK: two characters count as one word)."""
    weights: dict[str, float] = {}
    for word in _WORD.findall(_URLISH.sub(" ", text)):
        counts: dict[str, int] = {}
        for ch in word:
            s = _script_of(ch)
            if s:
                counts[s] = counts.get(s, 0) + 1
        for s, n in counts.items():
            if s in ("han", "kana"):
                weights[s] = weights.get(s, 0.0) + n / 2.0
            else:
                weights[s] = weights.get(s, 0.0) + n / max(1, sum(counts.values()))
    total = sum(weights.values())
    return {s: w / total for s, w in weights.items()} if total else {}


#: Scripts used by essentially one language of interest.
_SCRIPT_LANG = {"hangul": "ko", "greek": "el", "hebrew": "he", "thai": "th", "beng": "bn", "taml": "ta"}


def _langdetect_probs(text: str) -> dict[str, float]:
    _ensure_seeded()
    from langdetect import detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    try:
        found = detect_langs(text)
    except LangDetectException:
        return {}
    out: dict[str, float] = {}
    for item in found:
        code = _CODE_MAP.get(item.lang, item.lang)
        out[code] = out.get(code, 0.0) + float(item.prob)
    return out


def _only_script(text: str, keep: Callable[[str], bool]) -> str:
    return "".join(ch if (keep(ch) or not ch.isalpha()) else " " for ch in text)


def detect_language_probs(text: str) -> dict[str, float]:
    """Probabilities of candidate languages (ISO 639-1), best first; empty when nothing is detectable."""
    text = unicodedata.normalize("NFC", text or "")
    profile = script_profile(text)
    if not profile:
        return {}
    cjk = profile.get("han", 0.0) + profile.get("kana", 0.0)
    # A script that is not Latin and makes up a fair share of the words decides the language.
    if profile.get("kana", 0.0) >= 0.05 and cjk >= 0.25:
        return {"ja": 1.0}
    if profile.get("han", 0.0) >= 0.25:
        return {"zh": 1.0}
    if profile.get("deva", 0.0) >= 0.2:
        probs = _langdetect_probs(_only_script(text, lambda c: _script_of(c) == "deva"))
        best = max(probs, key=lambda k: probs[k]) if probs else "hi"
        return {best if best in ("mr", "ne", "sa") and probs[best] > 0.9 else "hi": 1.0}
    for script, lang in _SCRIPT_LANG.items():
        if profile.get(script, 0.0) >= 0.3:
            return {lang: 1.0}
    probs = _langdetect_probs(text)
    if ("¿" in text or "¡" in text) and probs.get("es", 0.0) < 0.9:
        # Inverted marks are Spanish only (Galician and Asturian aside); langdetect misses short ones.
        probs = {"es": 0.9, **{k: v * 0.1 for k, v in probs.items() if k != "es"}}
    return dict(sorted(probs.items(), key=lambda kv: -kv[1]))


def detect_language(text: str, min_chars: int = 20) -> str:
    """ISO 639-1 code of ``text``; ``und`` when it is too short (letters) or the guess is not confident."""
    text = text or ""
    letters = sum(1 for ch in text if ch.isalpha())
    profile = script_profile(text)
    non_latin = sum(v for k, v in profile.items() if k != "latin")
    # Scripts such as Han carry a word in two characters: lower the bar for them.
    needed = min_chars if non_latin < 0.2 else max(2, min_chars // 5)
    if letters < needed:
        return UNDETERMINED
    probs = detect_language_probs(text)
    if not probs:
        return UNDETERMINED
    best = max(probs, key=lambda k: probs[k])
    return best if probs[best] >= 0.6 else UNDETERMINED


#: Function words that only one of these languages uses often (short questions defeat n-gram models:
#: "When does the zeppelin hangar open to visitors?" reads as Dutch to langdetect).
_FUNCTION_WORDS = {
    "en": "the of and to in is are was were does did do what which who whom when where why how can could should "
          "would will has have had this that these those with from about under any their there".split(),
    "es": "el la los las de del que en es son qué cuál cuáles quién cuándo dónde cómo por para con una un "
          "se su sus lo al está están fue".split(),
    "fr": "le la les des du de que qui est sont quel quelle quels quelles quand où comment pourquoi pour avec "
          "une un dans sur au aux ce cette il elle ils".split(),
    "de": "der die das den dem des und ist sind war wer was wann wo wie warum welche welcher welches mit "
          "für von zu im ein eine einen nicht auch".split(),
    "pt": "o a os as do da dos das que em é são qual quais quem quando onde como por para com uma um "
          "no na nos nas foi".split(),
    "it": "il lo la gli le di del della che è sono quale quali chi quando dove come perché per con una un "
          "nel nella".split(),
    "nl": "de het een van en is zijn wat wie wanneer waar hoe waarom welke met voor op niet ook".split(),
}


def function_word_votes(text: str) -> dict[str, int]:
    """How many words of ``text`` are function words of each Latin-script language."""
    words = [w.casefold() for w in _WORD.findall(text)]
    return {lang: sum(1 for w in words if w in vocab) for lang, vocab in _FUNCTION_SETS.items()}


_FUNCTION_SETS = {k: frozenset(v) for k, v in _FUNCTION_WORDS.items()}


def detect_question_language(text: str) -> str:
    """Language of a short text such as a question: script first, then function words, then langdetect.

    Latin-script questions are short and full of names and English terms, which n-gram models misread
    ("Grok training data?" as Indonesian); function words decide when they can, langdetect only breaks
    ties or speaks when it is sure, and English is the fallback.
    """
    profile = script_profile(text)
    if profile and profile.get("latin", 0.0) >= 0.6:
        votes = function_word_votes(text)
        top = max(votes.values())
        tied = [lang for lang, v in votes.items() if v == top]
        probs = detect_language_probs(text)
        if top == 0:
            guess = max(probs, key=lambda k: probs[k]) if probs else "en"
            return guess if guess in _FUNCTION_WORDS and probs.get(guess, 0.0) >= 0.95 else "en"
        if len(tied) == 1:
            return tied[0]
        return max(tied, key=lambda lang: (probs.get(lang, 0.0), lang == "en"))
    lang = detect_language(text, min_chars=12)
    if lang == UNDETERMINED:
        probs = detect_language_probs(text)
        lang = max(probs, key=lambda k: probs[k]) if probs else "en"
    return lang


LANGUAGE_NAMES = {
    "en": "English", "hi": "Hindi", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "es": "Spanish",
    "fr": "French", "de": "German", "pt": "Portuguese", "it": "Italian", "ru": "Russian", "ar": "Arabic",
    "mr": "Marathi", "ne": "Nepali", "bn": "Bengali", "ur": "Urdu", "ta": "Tamil", "te": "Telugu",
    "nl": "Dutch", "pl": "Polish", "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "und": "undetermined",
}


def language_name(code: str) -> str:
    """``"Hindi (hi)"`` for ``"hi"``; the bare code when unknown."""
    base = (code or "und").split("-")[0].lower()
    name = LANGUAGE_NAMES.get(base)
    return f"{name} ({code})" if name else code
