"""What kind of fact a question asks for (an amount, a quantity, a date), in every supported language,
and whether a sentence can carry it.
"""
from __future__ import annotations

import re
from typing import Callable

from kb.text.tokenize import tokenize

# -- answer types ---------------------------------------------------------------------------------
_AMOUNT_Q = re.compile(
    r"\bhow much (money|did .{0,40}\b(pay|cost|spend|earn|charge)|does .{0,40}\b(pay|cost|charge))|\bwhat (amount|sum)\b|"
    r"\b(price|prices|cost|costs|salary|revenue|revenues|valuation|worth|fine|fined|penalty|damages|paid|pay|"
    r"compensation|settlement)\b|"
    r"\bprecio|\bcuesta|\bcuesta|\bsalario|\bingresos|\bmulta\b|\bindemnizaci|\bpag[oó]\b|"
    r"\bprix\b|\bco[uû]te|\bsalaire|\bchiffre d.affaires|\bamende\b|\bindemnit|\bpay[ée]\b|"
    r"\bwie viel (geld|kostet)|\bwie hoch\b|\bpreis|\bkoste|\bgehalt|\bumsatz|\bstrafe\b|\bentsch[äa]digung|\bgezahlt|"
    r"\bpreço|\bcusta|\bsal[aá]rio|\breceita|\bindeniza|\bpag(ou|ar)\b|\bmulta\b|"
    r"कितना पैसा|कीमत|वेतन|जुर्माना|भुगतान|价格|价钱|工资|薪|收入|罚款|赔偿|多少钱|支付|"
    r"いくら|価格|値段|給料|年収|収益|売上|罰金|賠償|支払",
    re.IGNORECASE)


_MONEY = re.compile(
    r"[$€£¥₹]\s?\d|\d[\d,.]*\s?(dollars?|usd|eur|euros?|pounds?|rupees?|yuan|yen|million|billion|trillion|m\b|bn\b)|"
    r"\b(dollars?|euros?|usd)\b|美元|人民币|[0-9一二三四五六七八九十百千万亿]+\s?[元万亿]|ドル|円|रुपये|डॉलर",
    re.IGNORECASE)


_QUANTITY_Q = re.compile(
    r"\bhow (many|much|big|large|long|old|far|high|tall)\b|\bwhat (number|percentage|share)\b|"
    r"\bcu[aá]nt[oa]s?\b|\bcombien\b|\bwie (viel|viele|gro(ß|ss))\b|\bquant[oa]s?\b|"
    r"कितन[ाीे]|多少|几个|幾つ|いくつ|何人|何個|どれくらい|どのくらい",
    re.IGNORECASE)


_DATE_Q = re.compile(
    r"^\W*(when|since when)\b|[,;:]\s*when\b.*\?\s*$|\bwhat (date|day|year|month)\b|\bin (what|which) year\b|\bon which (date|day)\b|\bcu[aá]ndo\b|\bqu[eé] (fecha|d[ií]a)\b|"
    r"\bquand\b|\bquel(le)? (jour|date)\b|\bwann\b|\bwelche[mn]? (tag|datum|jahr)\b|\bquando\b|"
    r"\b(que|qual) (data|dia)\b|कब\b|किस (दिन|तारीख)|何时|什么时候|哪天|哪一?年|いつ|何年|何日",
    re.IGNORECASE)


# A quantity: a number with a unit, amount or noun after it, money, or a number word; not a year,
# a footnote marker, a section or docket number.
_NUMBER = re.compile(
    r"[$€£¥₹]\s?\d|\d[\d,.]*\s?(%|percent|per cent|million|billion|thousand|trillion|[a-zA-Z]{3,}|[\u4e00-\u9fff])|"
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|hundred|hundreds|"
    r"thousand|thousands|million|millions|billion|billions|dozen|dozens|few|several|"
    r"dos|tres|cuatro|cinco|cien|mil|millón|millones|deux|trois|quatre|cent|mille|zwei|drei|vier|"
    r"hundert|tausend|duas|três)\b|[一二三四五六七八九十百千万亿几][个名位人元美]|सौ|हज़ार|लाख|करोड़",
    re.IGNORECASE)


_NOT_QUANTITY = re.compile(
    r"\[\d+\]|(\b(No|Nos|Dkt|Document|Page|Case|Section|Exhibit|Ex|ECF|Rule|Article|Art)\.?:?\s*|§\s*)+#?[\d.:\-a-zA-Z]+|"
    r"#\d+|\b(19|20)\d\d\b|\b\d+(\.\d+)+\b|\d{1,2}/\d{1,2}/\d{2,4}|^\W*\d{1,2}[.)]\s",
    re.IGNORECASE)


_MONTHS = re.compile(
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d|\b\d{4}\b|\b(monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|yesterday|today|last (week|month|year|summer))\b|"
    r"年|月|日",
    re.IGNORECASE)


#: A question for the day something happened ("on what day", "an welchem Tag", "哪天"): a year alone
#: does not answer it.
_DAY_Q = re.compile(
    r"\bwhat (day|date)\b|\bon (what|which) (day|date)\b|\bwhich (day|date)\b|\bqu[eé] (fecha|d[ií]a)\b|"
    r"\bquel(le)? (jour|date)\b|\b(an )?welche[mn]? (tag|datum)\b|\b(que|qual|em que) (data|dia)\b|"
    r"किस (दिन|तारीख)|哪天|哪一天|几月几日|几号|何日|何月何日|какого числа|в какой день|في أي يوم|ما تاريخ",
    re.IGNORECASE)


_MONTH_NAMES = (r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*|enero|febrero|marzo|abril|mayo|junio|"
                r"julio|agosto|septiembre|octubre|noviembre|diciembre|janvier|f[ée]vrier|mars|avril|mai|juin|"
                r"juillet|ao[uû]t|septembre|octobre|novembre|d[ée]cembre|januar|februar|m[äa]rz|april|juni|juli|"
                r"oktober|dezember|janeiro|fevereiro|mar[çc]o|maio|junho|julho|setembro|outubro|dezembro")


_DAY = re.compile(
    rf"\b({_MONTH_NAMES})\.?\s+\d{{1,2}}\b|\b\d{{1,2}}(st|nd|rd|th|\.|º)?\s+(of\s+|de\s+)?({_MONTH_NAMES})\b|"
    r"\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}\.\d{1,2}\.\d{2,4}\b|"
    r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|tomorrow|lunes|martes|"
    r"mi[ée]rcoles|jueves|viernes|lundi|mardi|mercredi|jeudi|vendredi|montag|dienstag|mittwoch|donnerstag|"
    r"freitag|gestern|heute|hier|ayer|hoy|ontem|hoje)\b|[0-9一二三四五六七八九十]+\s?[日号]|星期|周[一二三四五六日]",
    re.IGNORECASE)


_YEAR_SPAN = re.compile(r"\b(1[0-9]|20)\d\d\s*(-|–|to|until|bis|hasta|à|до)\s*(1[0-9]|20)?\d\d\b")


def asked_type(question: str) -> str | None:
    """``amount`` (money), ``quantity``, ``day`` (a date to the day) or ``date`` when the question asks for
    one, else None."""
    if _AMOUNT_Q.search(question):
        return "amount"
    if _QUANTITY_Q.search(question):
        return "quantity"
    if _DAY_Q.search(question):
        return "day"
    if _DATE_Q.search(question):
        return "date"
    return None


def carries_type(text: str, kind: str | None) -> bool:
    """Whether a sentence can answer a question of that kind (a span of years answers "how long")."""
    if kind == "amount":
        return bool(_MONEY.search(text))
    if kind == "quantity":
        return bool(_NUMBER.search(_NOT_QUANTITY.sub(" ", text)) or _YEAR_SPAN.search(text))
    if kind == "date":
        return bool(_MONTHS.search(text))
    if kind == "day":
        return bool(_DAY.search(text))
    return True


_COUNTED = re.compile(
    r"\bhow many\s+(?P<en>[\w\-]+(?:\s+[\w\-]+)?)|\bcu[aá]nt[oa]s\s+(?P<es>[\w\-]+)|\bcombien\s+d[e']\s*(?P<fr>[\w\-]+)|"
    r"\bwie viele\s+(?P<de>[\w\-]+)|\bquant[oa]s\s+(?P<pt>[\w\-]+)|कितन[ेीा]\s+(?P<hi>[\w\-]+)|"
    r"多少[个名位辆台家次件条部]?(?P<zh>[\u4e00-\u9fff]{1,4})",
    re.IGNORECASE)


def counted_terms(question: str, qlang: str, idf: Callable[[str], float]) -> list[str]:
    """What a "how many X" question counts, as index tokens ("how many tokens" -> ``token``).

    Only words the index knows count: a Spanish noun absent from English documents cannot be checked
    and is left out (then any number will do).
    """
    m = _COUNTED.search(question)
    if not m:
        return []
    lang, phrase = next((k, v) for k, v in m.groupdict().items() if v)
    return [t for t in tokenize(phrase, "zh" if lang == "zh" else "en") if idf(t) > 0 and not t.isdigit()]


# -- entities asked for: who, which court, which section (a scoring bonus, never a reason to abstain) ---
_PERSON_Q = re.compile(
    r"\bwho(m|se)?\b|\bwhich (judge|lawyer|attorney|person|executive|official|witness)\b|\bqui[eé]n(es)?\b|"
    r"\bqui\b|\bwer\b|\bwelche[rs]? (richter|anwalt)|\bquem\b|\bкто\b|\bкако[йм] судь|\bمن\b|कौन|किसने|谁|誰|どなた",
    re.IGNORECASE)
_PERSON = re.compile(r"\b(Judge|Justice|Magistrate|Mr|Ms|Mrs|Dr)\.?\s+[A-Z]|\b[A-Z][a-z]+(?:\s+[A-Z]\.)?\s+[A-Z][a-z]+")
_COURT_Q = re.compile(r"\bcourt\b|\btribunal|\bgericht|\bcorte\b|\bjuzgado|\bсуд|محكمة|अदालत|न्यायालय|法院|法庭|裁判所|法廷",
                      re.IGNORECASE)
_COURT = re.compile(r"\bcourt\b|\bdistrict\b|\btribunal|\bN\.D\.|\bCal(ifornia)?\b", re.IGNORECASE)
_SECTION_Q = re.compile(r"\bsection\b|\bclause\b|\bparagraph\b|§|\bsecci[oó]n\b|\bcl[aá]usula\b|\bartículo\b|"
                        r"\babschnitt\b|\bziffer\b|\bparagraphe\b|\bseção\b|\bраздел|\bпункт|धारा|खंड|सेक्शन|条款|第几条|哪一条|章节|条項",
                        re.IGNORECASE)
_SECTION = re.compile(r"§\s*\d|\b(Section|Clause|Article)\s+\d|\b\d+\.\d+(\.\d+)*\b|^\s*\(?[a-z0-9]{1,3}[.)]\s", re.IGNORECASE)


#: "What did X answer / say / reply", "How did X respond": the question asks for someone's words.
_REPLY_Q = re.compile(
    r"\bwhat did\b.{0,80}\b(say|answer|reply|respond|tell)\b|\bhow did\b.{0,80}\b(answer|reply|respond)\b|"
    r"\bqu[eé]\s+(respondi[oó]|contest[oó]|dijo|respondeu|disse)\b|\bo que\b.{0,60}\b(respondeu|disse)\b|"
    r"\bwas\s+(hat|haben)\b.{0,80}\b(geantwortet|gesagt|erwidert)\b|\bwas\s+(antwortete|sagte|erwiderte)\b|"
    r"\bqu[’']\s*(a|ont)(-t-(il|elle))?\s+(r[ée]pondu|dit)\b|\bqu[’']est-ce que\b.{0,60}\b(r[ée]pondu|dit)\b|"
    r"\bчто\s+(он\s+|она\s+)?(ответил|сказал|заявил)|"
    r"怎么回答|如何回答|回答了什么|怎么说|说了什么|如何回应|怎么回应|何と答え|どう答え|何と言|どのように答え|"
    r"क्या जवाब|क्या उत्तर|क्या कहा|ماذا\s+(قال|أجاب|رد)|بماذا\s+(أجاب|رد)",
    re.IGNORECASE)
#: A sentence that carries someone's words: a quotation next to a verb of saying (the closing mark may
#: lie past the sentence's end: 'he said, “Partly.' + '”').
_QUOTED = re.compile(r"[“\"«„「『][^”\"»“」』]{1,200}([”\"»“」』]|$)")
_SAYING = re.compile(
    r"\b(said|says|answered|replied|responded|told|testified|stated|added)\b|\b(dijo|respondi[oó]|contest[oó]|"
    r"afirm[oó]|disse|respondeu)\b|\b(sagte|antwortete|erwiderte|erkl[äa]rte)\b|\b(a dit|a r[ée]pondu|d[ée]clar[ée])|"
    r"сказал|ответил|заявил|说|回答|表示|答え|述べ|कहा|जवाब|قال|أجاب|رد",
    re.IGNORECASE)


def asked_entity(question: str) -> str | None:
    """``reply``, ``section``, ``court`` or ``person`` when the question asks what someone answered, which
    section, which court or who."""
    if _REPLY_Q.search(question):
        return "reply"
    if _SECTION_Q.search(question):
        return "section"
    if _COURT_Q.search(question):
        return "court"
    if _PERSON_Q.search(question):
        return "person"
    return None


def carries_entity(text: str, kind: str | None) -> bool:
    """Whether a sentence names what was asked (someone's quoted words, a section number, a court, a
    person's name)."""
    if kind == "reply":
        return bool(_QUOTED.search(text) and _SAYING.search(text))
    if kind == "section":
        return bool(_SECTION.search(text))
    if kind == "court":
        return bool(_COURT.search(text))
    if kind == "person":
        return bool(_PERSON.search(text))
    return False
