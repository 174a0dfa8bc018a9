"""Answer and retrieval metrics: pure functions, no models, no I/O.

- Exact match and token F1 follow the official SQuAD v1.1 script: lower-case, strip punctuation,
  drop the articles a/an/the, collapse whitespace; the best score over all reference answers counts.
- ROUGE-L is the LCS-based F-measure on the same normalised tokens (beta = 1, i.e. plain F1 of
  LCS precision and recall).
- Retrieval hit@k and MRR take, per question, the 1-based rank of the first relevant chunk (or None).
- Groundedness (lexical support) and the claim check live in core.support, with the one threshold.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)

# A small English stop list: content tokens are what is left (numbers are content).
STOP_WORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its this that these
    those there their they them he she his her we our you your i me my not no do does did so than then too very can
    could would should will shall may might must has have had which who whom whose what when where why how also into
    about over under after before between during such any all some more most other only own same just""".split()
)

_REFUSAL_PATTERNS = [
    r"\bdon'?t cover\b",
    r"\bdo not cover\b",
    r"\bdoes not cover\b",
    r"\bdoesn'?t cover\b",
    r"\b(documents?|sources?|context)\b[^.]{0,40}\b(do|does)\s*(not|n't)\s+(say|mention|contain|include|provide)",
    r"\b(not|n't)\s+(mentioned|provided|covered|stated|included)\s+in\s+the\s+(documents?|sources?|context)",
    r"\bno (information|mention)\b",
    r"\bi (do not|don'?t) know\b",
    r"\bcannot (answer|find)\b",
    r"\bcan'?t (answer|find)\b",
    r"\bwon'?t guess\b",
    r"\b(was|is|are|were) not (provided|mentioned|stated|given|specified)\b",
]
_REFUSAL = re.compile("|".join(_REFUSAL_PATTERNS), re.IGNORECASE)


# ---------------------------------------------------------------- answer correctness
def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower, remove punctuation, remove articles, squash whitespace."""
    text = (text or "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def _as_list(references: str | Sequence[str]) -> list[str]:
    if isinstance(references, str):
        return [references]
    return [ref for ref in references if ref is not None] or [""]


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised reference."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(ref) for ref in _as_list(references)))


def _f1(pred_tokens: list[str], ref_tokens: list[str]) -> float:
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    common = Counter(pred_tokens) & Counter(ref_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: str | Sequence[str]) -> float:
    """SQuAD token F1, the maximum over the references."""
    pred = tokens(prediction)
    return max(_f1(pred, tokens(ref)) for ref in _as_list(references))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, references: str | Sequence[str]) -> float:
    """ROUGE-L F-measure (beta = 1) on normalised tokens, the maximum over the references."""
    pred = tokens(prediction)
    best = 0.0
    for ref in _as_list(references):
        ref_tokens = tokens(ref)
        lcs = lcs_length(pred, ref_tokens)
        if lcs:
            precision, recall = lcs / len(pred), lcs / len(ref_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 when any normalised reference appears inside the normalised prediction (lenient, for long answers)."""
    pred = f" {normalize_answer(prediction)} "
    return float(any(normalize_answer(ref) and f" {normalize_answer(ref)} " in pred for ref in _as_list(references)))


# ---------------------------------------------------------------- retrieval
def first_relevant_rank(relevance: Sequence[bool]) -> int | None:
    """1-based rank of the first relevant item in a ranking, or None."""
    for rank, is_relevant in enumerate(relevance, start=1):
        if is_relevant:
            return rank
    return None


def hit_at_k(ranks: Iterable[int | None], k: int) -> float:
    """Share of questions whose first relevant chunk sits at rank <= k."""
    ranks = list(ranks)
    if not ranks:
        return math.nan
    return sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks)


def mrr(ranks: Iterable[int | None], k: int | None = None) -> float:
    """Mean reciprocal rank (0 for a miss, or for a first hit below k when k is given)."""
    ranks = list(ranks)
    if not ranks:
        return math.nan
    return sum(1.0 / rank for rank in ranks if rank is not None and (k is None or rank <= k)) / len(ranks)


def chunk_is_relevant(
    chunk_text: str, chunk_document: str, source_doc: str | None, answers: Sequence[str], source_passage: str | None = None
) -> bool:
    """A retrieved chunk counts when it comes from the gold document and contains a reference answer
    or overlaps the gold passage (>= 50% of the chunk's normalised tokens, or a shared 8-token run)."""
    if source_doc and _doc_key(chunk_document) != _doc_key(source_doc):
        return False
    text = f" {normalize_answer(chunk_text)} "
    if any(normalize_answer(ans) and f" {normalize_answer(ans)} " in text for ans in answers):
        return True
    if source_passage:
        return passage_overlaps(chunk_text, source_passage)
    return False


def passage_overlaps(chunk_text: str, passage: str, ngram: int = 8) -> bool:
    chunk_tokens, passage_tokens = tokens(chunk_text), tokens(passage)
    if len(chunk_tokens) < ngram or len(passage_tokens) < ngram:
        return bool(chunk_tokens) and normalize_answer(chunk_text) in normalize_answer(passage)
    grams = {tuple(passage_tokens[i : i + ngram]) for i in range(len(passage_tokens) - ngram + 1)}
    return any(tuple(chunk_tokens[i : i + ngram]) in grams for i in range(len(chunk_tokens) - ngram + 1))


def _doc_key(name: str) -> str:
    """Compare document names without folder, case or a ' (2)' duplicate suffix."""
    base = (name or "").rsplit("/", 1)[-1].lower()
    return re.sub(r" \(\d+\)(?=\.[^.]+$|$)", "", base)


# ---------------------------------------------------------------- sentences and content words (used by core.support)
def split_sentences(text: str) -> list[str]:
    text = re.sub(r"\[\d+\]", " ", text or "")  # citations are not content
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [part.strip() for part in parts if part.strip() and content_tokens(part)]


def content_tokens(text: str) -> list[str]:
    return [token for token in tokens(text) if token not in STOP_WORDS]


# ---------------------------------------------------------------- refusal
def is_refusal(answer: str) -> bool:
    """Does the answer say the documents do not cover the question (the app's NO_CONTEXT_ANSWER included)?"""
    return bool(_REFUSAL.search(answer or ""))


# ---------------------------------------------------------------- format / style
def answer_shape(text: str) -> str:
    """A coarse line structure: 'bullets:N', 'lines:N' or 'prose'. Used when core.datasets has no style rule."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    bullets = [line for line in lines if re.match(r"^([-*•]|\d+[.)])\s+", line)]
    if bullets:
        return f"bullets:{min(len(bullets), 5)}"
    if len(lines) > 1:
        return f"lines:{min(len(lines), 5)}"
    return "prose"


def majority_shape(examples: Sequence[str]) -> str | None:
    shapes = Counter(answer_shape(text) for text in examples if (text or "").strip())
    return shapes.most_common(1)[0][0] if shapes else None


def shape_adherence(answer: str, shape: str | None) -> float:
    """1.0 when the answer has the majority shape of the training outputs (bullet count, or line count)."""
    if shape is None:
        return math.nan
    return float(answer_shape(answer) == shape)


# ---------------------------------------------------------------- aggregation
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), NaN-safe on empty input."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return math.nan
    position = (len(data) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return data[low] + (data[high] - data[low]) * (position - low)


def mean(values: Iterable[float | None]) -> float:
    data = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(data) / len(data) if data else math.nan
