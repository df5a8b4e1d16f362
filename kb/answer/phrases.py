"""Connecting phrases for extractive answers, in the question's language.

Quotes stay in the language of their source; only the words around them are translated. Languages
without an entry fall back to English.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phrases:
    """The words an extractive answer is assembled with."""

    intro: str          # before the first quote
    more: tuple[str, ...]  # before each further quote, in order (the last repeats)
    abstain: str        # the sources do not cover the question
    empty: str          # nothing is indexed / nothing passes the filters
    also_reported: str  # label for syndicated copies of a cited source
    open_quote: str = "“"
    close_quote: str = "”"
    sentence_end: str = "."


PHRASES: dict[str, Phrases] = {
    "en": Phrases(
        intro="According to the indexed sources:",
        more=("In addition:", "Also:"),
        abstain="The indexed sources do not cover this question, so I cannot answer it from them.",
        empty="No indexed document matches this question and these filters.",
        also_reported="also reported by"),
    "hi": Phrases(
        intro="अनुक्रमित स्रोतों के अनुसार:",
        more=("इसके अलावा:", "साथ ही:"),
        abstain="अनुक्रमित स्रोत इस प्रश्न को कवर नहीं करते, इसलिए इनके आधार पर इसका उत्तर नहीं दिया जा सकता।",
        empty="इस प्रश्न और इन फ़िल्टरों से मेल खाने वाला कोई अनुक्रमित दस्तावेज़ नहीं है।",
        also_reported="इसे भी प्रकाशित किया",
        sentence_end="।"),
    "zh": Phrases(
        intro="根据已索引的资料：",
        more=("此外：", "另外："),
        abstain="已索引的资料没有涉及这个问题，因此无法据此作答。",
        empty="没有符合该问题和筛选条件的已索引文档。",
        also_reported="另见报道",
        open_quote="“", close_quote="”", sentence_end="。"),
    "ja": Phrases(
        intro="索引済みの資料によると：",
        more=("さらに：", "また："),
        abstain="索引済みの資料はこの質問を扱っていないため、資料に基づいて回答できません。",
        empty="この質問と絞り込み条件に合う索引済みの文書はありません。",
        also_reported="同内容の掲載元",
        open_quote="「", close_quote="」", sentence_end="。"),
    "es": Phrases(
        intro="Según las fuentes indexadas:",
        more=("Además:", "También:"),
        abstain="Las fuentes indexadas no tratan esta pregunta, así que no puedo responderla con ellas.",
        empty="Ningún documento indexado coincide con esta pregunta y estos filtros.",
        also_reported="también publicado por",
        open_quote="«", close_quote="»"),
    "fr": Phrases(
        intro="D'après les sources indexées :",
        more=("En outre :", "Par ailleurs :"),
        abstain="Les sources indexées ne traitent pas cette question ; je ne peux donc pas y répondre à partir d'elles.",
        empty="Aucun document indexé ne correspond à cette question et à ces filtres.",
        also_reported="également publié par",
        open_quote="« ", close_quote=" »"),
    "de": Phrases(
        intro="Laut den indexierten Quellen:",
        more=("Außerdem:", "Ferner:"),
        abstain="Die indexierten Quellen behandeln diese Frage nicht, daher kann ich sie daraus nicht beantworten.",
        empty="Kein indexiertes Dokument passt zu dieser Frage und diesen Filtern.",
        also_reported="auch veröffentlicht von",
        open_quote="„", close_quote="“"),
    "pt": Phrases(
        intro="Segundo as fontes indexadas:",
        more=("Além disso:", "Também:"),
        abstain="As fontes indexadas não tratam desta pergunta, por isso não posso respondê-la com base nelas.",
        empty="Nenhum documento indexado corresponde a esta pergunta e a estes filtros.",
        also_reported="também publicado por",
        open_quote="«", close_quote="»"),
    "it": Phrases(
        intro="Secondo le fonti indicizzate:",
        more=("Inoltre:", "Anche:"),
        abstain="Le fonti indicizzate non trattano questa domanda, quindi non posso rispondere in base a esse.",
        empty="Nessun documento indicizzato corrisponde a questa domanda e a questi filtri.",
        also_reported="pubblicato anche da",
        open_quote="«", close_quote="»"),
    "ru": Phrases(
        intro="Согласно проиндексированным источникам:",
        more=("Кроме того:", "Также:"),
        abstain="Проиндексированные источники не освещают этот вопрос, поэтому ответить на него по ним нельзя.",
        empty="Ни один проиндексированный документ не соответствует этому вопросу и фильтрам.",
        also_reported="также опубликовано",
        open_quote="«", close_quote="»"),
}



def phrases(lang: str) -> Phrases:
    """Phrases for ``lang`` (English when the language has none)."""
    return PHRASES.get((lang or "en").split("-")[0].lower(), PHRASES["en"])


def answer_language(lang: str) -> str:
    """The language an answer to a question in ``lang`` is written in."""
    code = (lang or "en").split("-")[0].lower()
    return code if code in PHRASES else "en"


def compose(lang: str, quotes: list[tuple[str, int]]) -> str:
    """Join verbatim quotes, each followed by its citation marker, with connecting words.

    ``quotes`` is a list of ``(quote, n)``. Quotes are not translated or altered.
    """
    p = phrases(lang)
    parts = [p.intro]
    for i, (quote, n) in enumerate(quotes):
        if i:
            parts.append(p.more[min(i - 1, len(p.more) - 1)])
        ended = quote.rstrip().endswith(("。", "！", "？", ".", "!", "?"))   # no doubled full stop after it
        end = p.sentence_end if lang in ("zh", "ja") and not ended else ""
        parts.append(f"{p.open_quote}{quote}{p.close_quote} [{n}]{end}")
    return " ".join(parts).replace("： ", "：")
