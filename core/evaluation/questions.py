"""Question sets for an evaluation: uploaded files, held-out dataset splits, generated cloze questions and
built-in out-of-scope questions, plus how a dataset's taught format is checked and how long its answers run."""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from core import metrics
from core.errors import StudioError
from core.settings import Workspace
from core.storage import read_json

if TYPE_CHECKING:
    from core.evaluation.runner import EvaluationSettings


# Questions no knowledge base in a demo should answer; RAG should say the documents don't cover them.
OUT_OF_SCOPE_QUESTIONS = (
    "What was the closing price of the fictional Zorblax Corporation stock on 3 March 2031?",
    "Who won the 2087 Intergalactic Chess Championship?",
    "What is the Wi-Fi password of the Riverside office kitchen?",
    "How many moons does the planet Threnody-9 have?",
    "What is the name of the CEO's pet iguana?",
)


@dataclass(frozen=True)
class QuestionItem:
    """One question to ask, with its reference answers and (when known) where the answer lives."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    source_doc: str | None = None
    source_passage: str | None = None
    out_of_scope: bool = False

    def to_dict(self) -> dict:
        return {**asdict(self), "answers": list(self.answers)}


def _clean(value: Any) -> str:
    return "" if value is None else str(value).strip()


def row_to_question(row: dict, position: int) -> QuestionItem:
    """squad36 rows (question, answer/answers, source_doc, source_passage) or training rows
    (instruction (+input) -> question, output -> answer, source.document -> source_doc)."""
    if not isinstance(row, dict):
        raise StudioError(f"Question row {position} is not an object with named fields.")
    question = _clean(row.get("question"))
    source = row.get("source") if isinstance(row.get("source"), dict) else {}
    # Training rows carry their passage as source.context (QA) or as the input (style, summary): with it the
    # retrieval metrics can score held-out training rows too (they read 0 without a gold passage).
    passage = _clean(row.get("source_passage") or row.get("passage") or row.get("context") or source.get("context")
                     or (row.get("input") if row.get("instruction") else None))
    if not question and _clean(row.get("instruction")):
        question = _clean(row.get("instruction"))
        extra = _clean(row.get("input"))
        if extra:
            question = f"{question}\n\n{extra}"
    if not question:
        raise StudioError(f"Question row {position} has no 'question' (or 'instruction') field.")
    answers: list[str] = []
    raw = row.get("answers")
    if isinstance(raw, str) and raw.strip():
        try:  # CSV cells may hold a JSON list
            parsed = json.loads(raw)
            raw = parsed if isinstance(parsed, list) else [raw]
        except json.JSONDecodeError:
            raw = [part for part in raw.split("|")]
    if isinstance(raw, list):
        answers.extend(_clean(a) for a in raw if _clean(a))
    for key in ("answer", "output"):
        value = _clean(row.get(key))
        if value and value not in answers:
            answers.insert(0, value)
    out_of_scope = str(row.get("out_of_scope", "")).lower() in ("1", "true", "yes")
    if not answers and not out_of_scope:
        raise StudioError(f"Question row {position} has no reference answer ('answer', 'answers' or 'output').")
    source_doc = _clean(row.get("source_doc") or row.get("document") or source.get("document")) or None
    return QuestionItem(
        id=_clean(row.get("id")) or f"q{position}",
        question=question,
        answers=tuple(answers),
        source_doc=source_doc,
        source_passage=passage or None,
        out_of_scope=out_of_scope,
    )


def parse_questions(name: str, data: bytes) -> list[QuestionItem]:
    """Questions from an uploaded .jsonl/.json or .csv file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise StudioError(f"{name} is not UTF-8 text; save it as UTF-8 JSONL or CSV.") from error
    rows: list[dict] = []
    if name.lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
    elif name.lower().endswith(".json") and text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise StudioError(f"{name}, line {number}: not valid JSON ({error.msg}). Use one JSON object per line.") from error
    if not rows:
        raise StudioError(f"{name} holds no questions.")
    return [row_to_question(row, position) for position, row in enumerate(rows, start=1)]


def load_questions(path: str | Path) -> list[QuestionItem]:
    path = Path(path)
    if not path.exists():
        raise StudioError(f"The question file {path} does not exist.")
    return parse_questions(path.name, path.read_bytes())


def list_heldout_sets(workspace: Workspace) -> list[str]:
    """Dataset ids that have a held-out split."""
    if not workspace.datasets.exists():
        return []
    return sorted(p.parent.name for p in workspace.datasets.glob("*/heldout.jsonl"))


def load_heldout(workspace: Workspace, dataset_id: str) -> list[QuestionItem]:
    path = workspace.datasets / dataset_id / "heldout.jsonl"
    if not path.exists():
        raise StudioError(f"Dataset {dataset_id!r} has no held-out split; save it with a held-out fraction on the Training data page.")
    return parse_questions(path.name, path.read_bytes())


def dataset_style_check(workspace: Workspace, dataset_id: str | None, reference_outputs: Sequence[str]) -> tuple[Callable[[str], float] | None, str]:
    """How format adherence is judged, and a sentence saying so.

    1. The dataset's meta.json names a style rule and core.datasets.follows_style exists: use it.
    2. Otherwise: the answer's line structure must match the majority structure of the training
       outputs (train.jsonl) or, failing that, the reference answers (bullet count / line count / prose).
    """
    if dataset_id:
        meta = read_json(workspace.datasets / dataset_id / "meta.json", {}) or {}
        rule = meta.get("style_rule")
        if rule:
            try:
                from core.datasets import follows_style  # the training engineer's checker, when merged
            except ImportError:
                follows_style = None
            if follows_style is not None:
                return (lambda text: float(follows_style(text, rule))), f"style rule “{rule}” from dataset {dataset_id} (core.datasets.follows_style)"
        train = workspace.datasets / dataset_id / "train.jsonl"
        if train.exists():
            outputs = [json.loads(line).get("output", "") for line in train.read_text(encoding="utf-8").splitlines() if line.strip()]
            shape = metrics.majority_shape(outputs)
            if shape:
                return (lambda text: metrics.shape_adherence(text, shape)), f"line structure “{shape}”, the majority shape of {dataset_id}'s training outputs"
    shape = metrics.majority_shape(reference_outputs)
    if shape and shape != "prose":
        return (lambda text: metrics.shape_adherence(text, shape)), f"line structure “{shape}”, the majority shape of the reference answers"
    return None, "no trained format to check (the reference answers are plain prose)"


def format_token_cap(outputs: Sequence[str], floor: int = 48, ceiling: int = 512) -> int:
    """New tokens a complete taught answer needs: the 95th-percentile training output at 3 characters per token
    (SmolLM2's tokenizer averages ~4 on English prose; 3 leaves room for figures and names), + 16, in steps of 16.
    The old fixed cap of 48 cut every 3-bullet answer before its "Risks:" line, so format adherence read 0."""
    lengths = sorted(len(o) for o in outputs if o)
    if not lengths:
        return floor
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    need = math.ceil((p95 / 3 + 16) / 16) * 16
    return max(floor, min(ceiling, need))


def fit_format_cap(workspace: Workspace, settings: "EvaluationSettings", dataset_id: str | None,
                   reference_outputs: Sequence[str]) -> tuple["EvaluationSettings", str]:
    """Settings whose new-token cap fits the taught format (never lowered), and a sentence saying what was done."""
    outputs = list(reference_outputs)
    train = workspace.datasets / dataset_id / "train.jsonl" if dataset_id else None
    if train is not None and train.exists():
        outputs = [json.loads(line).get("output", "") for line in train.read_text(encoding="utf-8").splitlines() if line.strip()]
    cap = format_token_cap(outputs)
    if settings.max_new_tokens >= cap:
        return settings, f"cap {settings.max_new_tokens} new tokens fits the taught format (needs ~{cap})"
    return replace(settings, max_new_tokens=cap), (
        f"cap raised from {settings.max_new_tokens} to {cap} new tokens so a complete taught answer fits")


def out_of_scope_items(count: int) -> list[QuestionItem]:
    return [QuestionItem(id=f"oos{i + 1}", question=q, out_of_scope=True) for i, q in enumerate(OUT_OF_SCOPE_QUESTIONS[:count])]


_CLOZE_TARGET = re.compile(r"\b(1[5-9]\d\d|20\d\d|\d+(?:[.,]\d+)?(?:\s?%| percent| million| billion)?)\b|(?<!^)(?<![.!?]\s)\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,3})\b")


def generate_questions(workspace: Workspace, kb_name: str, count: int = 10, seed: int = 0) -> list[QuestionItem]:
    """Simple extractive (cloze) questions from the knowledge base's chunks.

    For a sentence holding a number, a year or a capitalised name (not its first word), the question
    shows the sentence with that span blanked out and the span is the reference answer. Crude, but the
    answer is guaranteed to be in the documents, and the gold chunk is known (source_passage)."""
    import random

    from core.catalogue import all_chunks

    chunks = all_chunks(workspace, kb_name)
    if not chunks:
        raise StudioError(f"Knowledge base {kb_name!r} has no chunks; add documents first.")
    rng = random.Random(seed)
    order = list(range(len(chunks)))
    rng.shuffle(order)
    items: list[QuestionItem] = []
    for index in order:
        _, document, chunk = chunks[index]
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", chunk.text.replace("\n", " ")) if 8 <= len(s.split()) <= 40]
        rng.shuffle(sentences)
        for sentence in sentences:
            match = _CLOZE_TARGET.search(sentence, 1)
            if not match:
                continue
            span = match.group(0).strip()
            blanked = sentence[: match.start()] + "_____" + sentence[match.end():]
            items.append(
                QuestionItem(
                    id=f"gen{len(items) + 1}",
                    question=f"According to the documents, what fills the blank? “{blanked}”",
                    answers=(span,),
                    source_doc=document,
                    source_passage=chunk.text,
                )
            )
            break
        if len(items) >= count:
            break
    if not items:
        raise StudioError("No sentence in this knowledge base has a number or a name to ask about; upload a question file instead.")
    return items
