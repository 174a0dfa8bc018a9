"""Does an answer say only what its sources say? One home for the support check behind every badge and score.

Two checks, both lexical and local (no model):
- **Claims**: every number (with its unit and scale) and every proper name in the answer must occur in the
  sources it was given. "$13,507 million" is found in a table row "13,507" under "(In millions)"; "$94,836"
  is *not* the "$94,836 million" of the sources (a thousand-fold error), and "2.2 billion" found nowhere is
  reported as "not in the sources: 2.2 billion".
- **Wording**: an answer sentence is backed by the source holding the largest share of its content words,
  when that share is at least SUPPORT_THRESHOLD. It shows where wording came from, not whether the
  reasoning is right; it rewards copying and misses paraphrase.

"Supported by [n]" is earned only when no claim is missing and at least one source backs the answer.
Used by Ask and Compare (badges, highlighted sentences), Evaluate (unsupported-claim rate) and the report.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Sequence

from core.metrics import STOP_WORDS, content_tokens, split_sentences, tokens

# The one lexical-support threshold (Ask's attribution used 0.5, the evaluation's groundedness 0.6; 0.6 keeps the
# recorded evaluation figures comparable): share of an answer sentence's content words found in one source.
SUPPORT_THRESHOLD = 0.6

SCALES = {
    "thousand": Decimal(10) ** 3, "k": Decimal(10) ** 3,
    "million": Decimal(10) ** 6, "millions": Decimal(10) ** 6, "mn": Decimal(10) ** 6, "m": Decimal(10) ** 6,
    "billion": Decimal(10) ** 9, "billions": Decimal(10) ** 9, "bn": Decimal(10) ** 9, "b": Decimal(10) ** 9,
    "trillion": Decimal(10) ** 12, "trillions": Decimal(10) ** 12, "tn": Decimal(10) ** 12,
}
_SCALE_WORDS = "|".join(sorted(SCALES, key=len, reverse=True))
# $13,507 million · 2.2 billion · 64.8% · 20 percent · 1973 · (4)% — not the [1] of a citation, not a list marker
_NUMBER = re.compile(
    r"(?<![\w.\[])(?P<currency>[$€£])?\s?(?P<paren>\()?(?P<digits>\d{1,3}(?:,\d{3})+|\d+)(?P<decimals>\.\d+)?\)?"
    rf"(?:\s?(?P<percent>%|percent\b|per cent\b)|\s?(?P<scale>(?:{_SCALE_WORDS})\b))?(?![\w\]])",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)
_TABLE_UNIT = re.compile(rf"\bin\s+({_SCALE_WORDS})\b", re.IGNORECASE)  # "(In millions, except per share data)"
_NAME = re.compile(r"\b[A-Z][\w&'’\-]*(?:\s+(?:of\s+|&\s+|de\s+)?[A-Z][\w&'’\-]*)*")
# Capitalised words that are not names: the answer formats' own words and sentence openers.
_NOT_NAMES = frozenset(
    "risks risk note yes no however also overall first second third finally summary answer source sources question "
    "according based total revenue usd eur gbp".split()
)


@dataclass(frozen=True)
class Quantity:
    """A number as written, with the value it stands for."""

    text: str
    value: Decimal
    decimals: int
    percent: bool
    scale: Decimal


@dataclass(frozen=True)
class Claim:
    kind: str  # "number" or "name"
    text: str


@dataclass
class SupportReport:
    """What the check found for one answer against its numbered sources."""

    claims: list[Claim] = field(default_factory=list)
    unsupported: list[Claim] = field(default_factory=list)
    supporting: list[int] = field(default_factory=list)  # 1-based source numbers that back the answer
    sentences: dict[int, str] = field(default_factory=dict)  # source number -> its sentence that supports the answer
    checked_against: list[int] = field(default_factory=list)

    @property
    def supported(self) -> bool:
        """Every claim found and at least one source backing the answer: the "Supported by [n]" badge."""
        return not self.unsupported and bool(self.supporting)

    @property
    def unsupported_rate(self) -> float:
        """Share of the answer's numbers and names missing from the sources (NaN when it makes none)."""
        return len(self.unsupported) / len(self.claims) if self.claims else math.nan

    def badge(self) -> str:
        if self.unsupported:
            return "not in the sources: " + ", ".join(claim.text for claim in self.unsupported)
        if self.supporting:
            return "Supported by " + ", ".join(f"[{n}]" for n in self.supporting)
        return "No sentence of the answer is backed by the sources"

    def to_dict(self) -> dict:
        return {
            "claims": [claim.text for claim in self.claims],
            "unsupported": [claim.text for claim in self.unsupported],
            "supported_by": list(self.supporting),
            "supported": self.supported,
            "checked_against": list(self.checked_against),
        }


# ---------------------------------------------------------------- numbers
def quantities(text: str, table_scale: Decimal | None = None) -> list[Quantity]:
    """Every number in `text` with its value; a bare number under a "(In millions)" header also counts scaled."""
    found = []
    text = text or ""
    for match in _NUMBER.finditer(text):
        digits = match.group("digits").replace(",", "")
        decimals = match.group("decimals") or ""
        try:
            number = Decimal(digits + decimals)
        except InvalidOperation:  # pragma: no cover - the pattern only matches digits
            continue
        scale_word = (match.group("scale") or "").lower()
        scale = SCALES.get(scale_word, Decimal(1))
        if scale_word in ("m", "b", "k") and not match.group("currency"):
            scale = Decimal(1)  # "5 m" is metres more often than millions: only "$5m" scales
        percent = bool(match.group("percent"))
        quantity = Quantity(match.group(0).strip(), number * scale, max(len(decimals) - 1, 0), percent, scale)
        found.append(quantity)
        if table_scale is not None and scale == 1 and not percent:
            found.append(Quantity(quantity.text, number * table_scale, quantity.decimals, False, table_scale))
    return found


def answer_quantities(answer: str) -> list[Quantity]:
    """The numbers an answer states: citation numbers [n] and list markers "1." are not claims."""
    text = _LIST_MARKER.sub(" ", re.sub(r"\[\d+(?:\s*,\s*\d+)*\]", " ", answer or ""))
    return quantities(text)


def _same_number(claim: Quantity, source: Quantity) -> bool:
    """Equal values, allowing the claim to round the source ("13.5 billion" for 13,507 million)."""
    if claim.percent != source.percent:
        return False
    if claim.value == source.value:
        return True
    if claim.scale == 1:  # an unscaled claim must match exactly ("$94,836" is not "$94,836 million")
        return False
    step = claim.scale * (Decimal(10) ** -claim.decimals)
    return abs(source.value - claim.value) * 2 <= step and source.value != 0


def source_quantities(text: str) -> list[Quantity]:
    match = _TABLE_UNIT.search(text or "")
    return quantities(text, SCALES[match.group(1).lower()] if match else None)


# ---------------------------------------------------------------- names
def names(answer: str) -> list[str]:
    """Proper names: runs of capitalised words, skipping the first word of a sentence or bullet unless it is
    part of a longer name or all capitals (NVIDIA, SEC)."""
    found: list[str] = []
    text = re.sub(r"\[\d+\]", " ", answer or "")
    for sentence in re.split(r"(?<=[.!?:])\s+|\n+", text):
        body = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", sentence)
        for match in _NAME.finditer(body):
            words = match.group(0).split()
            if match.start() == 0 or body[: match.start()].strip() in ('"', "'", "("):
                first = re.sub(r"['’]s$", "", words[0])
                if len(words) == 1 and not (first.isupper() and len(first) > 1):
                    continue  # "Revenue was ..." : a capital because the sentence starts there
            words = [re.sub(r"['’]s$", "", w).strip("'’-") for w in words]
            if all(w.lower() in STOP_WORDS or w.lower() in _NOT_NAMES for w in words):
                continue
            # Trim sentence-starting generic words: "The Aurora accelerator" -> "Aurora"
            while words and (words[0].lower() in STOP_WORDS or words[0].lower() in _NOT_NAMES):
                words = words[1:]
            name = " ".join(words)
            if name and name not in found and not name.isdigit():
                found.append(name)
    return found


def _name_in(name: str, source_words: set[str], acronyms: set[str] = frozenset()) -> bool:
    words = [w for w in tokens(re.sub(r"['’]s\b", "", name)) if w not in STOP_WORDS]
    if name.isupper() and name.lower() in acronyms:  # "CEO" for "Chief Executive Officer"
        return True
    return bool(words) and all(w in source_words for w in words)


def acronyms_of(text: str) -> set[str]:
    """Initials of runs of 2-6 capitalised words ("Chief Executive Officer" -> "ceo"), "of"/"and" skipped."""
    found = set()
    for match in re.finditer(r"[A-Z][a-z]+(?:\s+(?:of\s+|and\s+|&\s+)?[A-Z][a-z]+)+", text or ""):
        words = [w for w in match.group(0).split() if w[0].isupper()]
        for start in range(len(words)):
            for end in range(start + 2, min(len(words), start + 6) + 1):
                found.add("".join(w[0] for w in words[start:end]).lower())
    return found


# ---------------------------------------------------------------- the check
def check_support(answer: str, sources: Sequence[str], cited: Sequence[int] = ()) -> SupportReport:
    """Check an answer against its numbered sources (texts, 1-based in order).

    When the answer cites [n] itself (or `cited` names sources), its claims are checked against the cited sources; otherwise against
    every source it was given. Refusals and empty answers make no claims.
    """
    report = SupportReport()
    texts = [text or "" for text in sources]
    cited = cited or sorted({int(n) for n in re.findall(r"\[(\d+)\]", answer or "")})
    cited = [n for n in cited if 1 <= n <= len(texts)]
    pool = cited or list(range(1, len(texts) + 1))
    report.checked_against = pool
    if not (answer or "").strip():
        return report
    pooled_quantities = [q for n in pool for q in source_quantities(texts[n - 1])]
    pooled_words = {w for n in pool for w in tokens(texts[n - 1])}
    pooled_acronyms = {a for n in pool for a in acronyms_of(texts[n - 1])}
    for quantity in answer_quantities(answer):
        claim = Claim("number", quantity.text)
        if claim in report.claims:
            continue
        report.claims.append(claim)
        if not any(_same_number(quantity, source) for source in pooled_quantities):
            report.unsupported.append(claim)
    for name in names(answer):
        claim = Claim("name", name)
        report.claims.append(claim)
        if not _name_in(name, pooled_words, pooled_acronyms):
            report.unsupported.append(claim)
    supporting, sentences = _wording_support(answer, texts)
    # A source holding a claim the answer makes backs it too (a one-number answer has no 3-word sentence).
    for number in range(1, len(texts) + 1):
        found = [c for c in report.claims if c not in report.unsupported and _claim_in_text(c, texts[number - 1])]
        if found and number not in supporting:
            supporting.add(number)
            sentences.setdefault(number, _sentence_holding(found[0].text, texts[number - 1]))
    report.supporting = sorted(supporting)
    report.sentences = {n: s for n, s in sentences.items() if s}
    return report


def _claim_in_text(claim: Claim, text: str) -> bool:
    if claim.kind == "number":
        mine = answer_quantities(claim.text)
        return bool(mine) and any(_same_number(mine[0], q) for q in source_quantities(text))
    return _name_in(claim.text, set(tokens(text)), acronyms_of(text))


def source_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text or "") if s.strip()]


def _sentence_holding(claim_text: str, text: str) -> str:
    wanted = set(tokens(claim_text))
    best = max(source_sentences(text), key=lambda s: len(wanted & set(tokens(s))), default="")
    return best


def _wording_support(answer: str, texts: Sequence[str]) -> tuple[set[int], dict[int, str]]:
    """Sources whose words back an answer sentence (>= SUPPORT_THRESHOLD of its content words), and per such
    source the sentence of it that shares the most words with the answer."""
    vocabularies = [set(tokens(text)) for text in texts]
    supporting: set[int] = set()
    if not vocabularies:
        return supporting, {}
    for sentence in split_sentences(answer):
        words = content_tokens(sentence)
        if len(words) < 3:
            continue
        shares = [sum(word in vocabulary for word in words) / len(words) for vocabulary in vocabularies]
        best = max(range(len(shares)), key=shares.__getitem__)
        if shares[best] >= SUPPORT_THRESHOLD:
            supporting.add(best + 1)
    answer_words = set(content_tokens(answer))
    sentences = {}
    for number in supporting:
        candidates = source_sentences(texts[number - 1])
        sentences[number] = max(candidates, key=lambda s: len(answer_words & set(content_tokens(s))), default="")
    return supporting, sentences


def sentence_support(sentence: str, context_tokens: set[str]) -> float:
    words = content_tokens(sentence)
    if not words:
        return 1.0
    return sum(1 for word in words if word in context_tokens) / len(words)


def groundedness(answer: str, contexts: Sequence[str], threshold: float = SUPPORT_THRESHOLD) -> float:
    """Lexical support: the share of answer sentences with >= threshold of their content tokens in the context.

    NaN when there is no context or no sentence to judge (so it is never mistaken for a score)."""
    sentences = split_sentences(answer)
    context = set()
    for text in contexts:
        context.update(tokens(text))
    if not sentences or not context:
        return math.nan
    return sum(1 for sentence in sentences if sentence_support(sentence, context) >= threshold) / len(sentences)


def highlight_spans(text: str, sentence: str) -> list[tuple[str, bool]]:
    """`text` cut into (piece, is_the_supporting_sentence) for a view to render escaped; one piece when not found."""
    if not sentence or sentence not in (text or ""):
        return [(text or "", False)]
    start = text.index(sentence)
    parts = [(text[:start], False), (sentence, True), (text[start + len(sentence) :], False)]
    return [(piece, flag) for piece, flag in parts if piece]
