"""Evaluation runs: question sets, the variant-runner seam, scoring, persistence and a background job.

An evaluation answers every question with every chosen variant (base, rag, finetuned, hybrid) and
scores the answers with the pure functions in `core.metrics`. Retrieval happens once per question
(one batched `search_many`), so every variant that uses context sees the same chunks.

Persistence (all under the workspace):
- SQLite `evaluations` table: id, status, progress, settings, summary;
- `evaluations/<id>/config.json`, `results.jsonl` (one line per question x variant, appended as it
  runs so a cancelled run keeps what it has), `summary.json` (atomic).

The answering seam is `VariantRunner.answer(question, variant, hits) -> VariantAnswer`. The real one,
`EngineVariantRunner`, answers every variant of a question in one batch through a generation engine
(`core.engines`: transformers, llamacpp or openai, one per variant if asked); tests register fake
engines through the same registry. Every result row records the engine and model that answered.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from core import metrics, support
from core.errors import StudioError
from core.knowledge import Hit, RetrievalSettings
from core.settings import Workspace
from core.storage import atomic_write_json, connect, ensure_schema, read_json, transaction

log = logging.getLogger(__name__)

VARIANTS = ("base", "rag", "finetuned", "hybrid")
VARIANT_LABELS = {"base": "Base", "rag": "RAG", "finetuned": "Fine-tuned", "hybrid": "Hybrid"}
CONTEXT_VARIANTS = ("rag", "hybrid")
ADAPTER_VARIANTS = ("finetuned", "hybrid")
TRAIN_TOKENS_PER_S = 165.0  # LoRA on SmolLM2-135M, fp32, this 2-core CPU: 150-180 tokens/s (DESIGN.md)

SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    kb TEXT,
    adapter TEXT,
    variants TEXT NOT NULL,
    question_source TEXT NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    settings TEXT NOT NULL,
    summary TEXT
);
"""

# Questions no knowledge base in a demo should answer; RAG should say the documents don't cover them.
OUT_OF_SCOPE_QUESTIONS = (
    "What was the closing price of the fictional Zorblax Corporation stock on 3 March 2031?",
    "Who won the 2087 Intergalactic Chess Championship?",
    "What is the Wi-Fi password of the Riverside office kitchen?",
    "How many moons does the planet Threnody-9 have?",
    "What is the name of the CEO's pet iguana?",
)


# ---------------------------------------------------------------- data types
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


@dataclass(frozen=True)
class VariantAnswer:
    text: str
    first_token_s: float | None = None
    total_s: float = 0.0
    new_tokens: int = 0
    error: str | None = None
    engine: str = ""
    model: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0


class VariantRunner(Protocol):
    """Answers one question with one variant. `hits` are the relevant retrieved chunks for rag/hybrid
    (may be empty: then the runner should say the documents don't cover it) and [] for base/finetuned."""

    def answer(self, question: str, variant: str, hits: list[Hit]) -> VariantAnswer: ...


@dataclass(frozen=True)
class EvaluationSettings:
    variants: tuple[str, ...] = field(default=VARIANTS, metadata={"help": "which variants answer every question"})
    k: int = field(default=5, metadata={"help": "chunks retrieved per question; hit@k uses the same k"})
    min_score: float = field(default=0.30, metadata={"help": "cosine similarity below which a chunk is not given to the model"})
    max_new_tokens: int = field(default=48, metadata={"help": "answer length cap; short keeps a CPU run in minutes"})
    repetition_penalty: float = field(
        default=1.0,
        metadata={"help": "1.0 for evaluation: a penalty > 1 also penalises every token of the retrieved sources in the prompt, "
                          "pushing RAG away from quoting them (squad36, 10 questions: RAG F1 0.038 at 1.1 vs 0.079 at 1.0)"},
    )
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N questions"})
    out_of_scope: int = field(default=0, metadata={"help": "add N built-in out-of-scope questions to test refusal"})
    support_threshold: float = field(
        default=support.SUPPORT_THRESHOLD, metadata={"help": "lexical support: share of a sentence's content tokens found in the context"}
    )
    term_check: bool = field(
        default=True, metadata={"help": "refuse when the question names something the knowledge base never mentions (RetrievalSettings.term_check)"}
    )

    def validate(self) -> None:
        if not self.variants:
            raise StudioError("Choose at least one variant to evaluate.")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise StudioError(f"Unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}.")
        RetrievalSettings(self.k, self.min_score).validate()
        if not 1 <= self.max_new_tokens <= 4096:
            raise StudioError(f"Max new tokens {self.max_new_tokens} is out of range; use 1 to 4096.")
        if self.limit is not None and self.limit < 1:
            raise StudioError("The question limit must be at least 1.")
        if not 0 <= self.out_of_scope <= len(OUT_OF_SCOPE_QUESTIONS):
            raise StudioError(f"Out-of-scope questions: choose 0 to {len(OUT_OF_SCOPE_QUESTIONS)}.")
        if not 1.0 <= self.repetition_penalty <= 2.0:
            raise StudioError(f"Repetition penalty {self.repetition_penalty} is out of range; use 1.0 to 2.0.")
        if not 0.0 < self.support_threshold <= 1.0:
            raise StudioError("The support threshold must lie in (0, 1].")

    @property
    def retrieval(self) -> RetrievalSettings:
        return RetrievalSettings(self.k, self.min_score, term_check=self.term_check)


# ---------------------------------------------------------------- question sets
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
    from dataclasses import replace

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

    from core.knowledge import all_chunks

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


# ---------------------------------------------------------------- adapters
def resolve_adapter(workspace: Workspace, adapter: str | None) -> Path | None:
    """An adapter folder path, or a run id resolved to workspace/runs/<id>/adapter."""
    if not adapter:
        return None
    candidate = Path(adapter).expanduser()
    for folder in (candidate, workspace.runs / adapter / "adapter"):
        if (folder / "adapter_config.json").exists():
            return folder.resolve()
    raise StudioError(
        f"No LoRA adapter at {adapter!r}: give a folder with adapter_config.json or a run id with runs/<id>/adapter/ "
        f"(runs with adapters: {', '.join(list_adapter_runs(workspace)) or 'none yet'})."
    )


def list_adapter_runs(workspace: Workspace) -> list[str]:
    if not workspace.runs.exists():
        return []
    # Newest first: run ids start with their start time (run-YYYYmmdd-HHMMSS-…).
    return sorted((p.parent.parent.name for p in workspace.runs.glob("*/adapter/adapter_config.json")), reverse=True)


# ---------------------------------------------------------------- scoring
def score_answer(item: QuestionItem, variant: str, answer: VariantAnswer, hits: Sequence[Hit], given: Sequence[Hit],
                 style_check: Callable[[str], float] | None, threshold: float, cap: int | None = None) -> dict:
    """One results.jsonl row: the answer, its timings and every per-answer metric."""
    refusal = metrics.is_refusal(answer.text)
    nan = math.nan
    row: dict[str, Any] = {
        "qid": item.id,
        "question": item.question,
        "answers": list(item.answers),
        "source_doc": item.source_doc,
        "out_of_scope": item.out_of_scope,
        "variant": variant,
        "answer": answer.text,
        "error": answer.error,
        "engine": answer.engine,
        "model": answer.model,
        "first_token_s": answer.first_token_s,
        "total_s": answer.total_s,
        "new_tokens": answer.new_tokens,
        "tokens_per_s": answer.tokens_per_s,
        "refusal": refusal,
        "citations": [
            {"n": n, "document": h.document, "page": h.page, "page_end": h.page_end, "score": round(h.score, 4)}
            for n, h in enumerate(given, start=1)
        ] if variant in CONTEXT_VARIANTS else [],
        # The chunk texts the answer saw, so a judge model (core.judge) can score it later against the same context.
        "contexts": [h.text for h in given] if variant in CONTEXT_VARIANTS else [],
    }
    ok = answer.error is None
    if item.answers and not item.out_of_scope and ok:
        row.update(
            em=metrics.exact_match(answer.text, item.answers),
            f1=metrics.token_f1(answer.text, item.answers),
            rouge_l=metrics.rouge_l(answer.text, item.answers),
            contains=metrics.contains_answer(answer.text, item.answers),
        )
    else:
        row.update(em=nan, f1=nan, rouge_l=nan, contains=nan)
    # Groundedness against what the variant saw (rag/hybrid) or, for base/fine-tuned, what retrieval found:
    # it shows how much of a context-free answer the documents would back.
    contexts = [h.text for h in (given if variant in CONTEXT_VARIANTS else hits)]
    row["groundedness"] = nan if (refusal or not ok) else support.groundedness(answer.text, contexts, threshold)
    # Numbers (with units) and names the answer states that the same passages do not hold (core.support).
    checked = support.check_support(answer.text, contexts) if (ok and not refusal and contexts) else None
    row["claims"] = [c.text for c in checked.claims] if checked else []
    row["unsupported"] = [c.text for c in checked.unsupported] if checked else []
    # An answer stopped by the new-token cap is incomplete: its format is not judged (n/a, not a 0)
    row["cut"] = bool(cap and ok and answer.new_tokens >= cap)
    row["style"] = style_check(answer.text) if (style_check and ok and not item.out_of_scope and not row["cut"]) else nan
    return row


SHORT_ANSWER_WORDS = 30  # a reference answer a chunk can contain word for word (a taught 3-bullet output cannot)


def has_retrieval_reference(item: QuestionItem) -> bool:
    """A gold passage, or a gold document with a short answer to find in it: without either, hit@k and MRR are n/a."""
    if item.out_of_scope:
        return False
    return bool(item.source_passage) or bool(item.source_doc and any(len(a.split()) <= SHORT_ANSWER_WORDS for a in item.answers))


def retrieval_row(item: QuestionItem, hits: Sequence[Hit]) -> dict:
    relevance = [
        metrics.chunk_is_relevant(h.text, h.document, item.source_doc, item.answers, item.source_passage) for h in hits
    ] if has_retrieval_reference(item) else []
    return {
        "qid": item.id,
        "known": bool(relevance),
        "rank": metrics.first_relevant_rank(relevance) if relevance else None,
        "hits": [{"rank": h.rank, "document": h.document, "page": h.page, "score": round(h.score, 4),
                  "relevant": bool(relevance[i]) if relevance else None} for i, h in enumerate(hits)],
    }


def summarize(rows: Sequence[dict], retrieval: Sequence[dict], variants: Sequence[str], k: int) -> dict:
    """Per-variant scoreboard plus retrieval metrics."""
    board = {}
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        answered = [r for r in mine if not r.get("error")]
        in_scope = [r for r in answered if not r["out_of_scope"]]
        oos = [r for r in answered if r["out_of_scope"]]
        generated = [r for r in answered if r["new_tokens"] > 0]
        total_tokens = sum(r["new_tokens"] for r in generated)
        total_time = sum(r["total_s"] for r in generated)
        board[variant] = {
            "n": len(mine),
            "errors": len(mine) - len(answered),
            "em": metrics.mean(r["em"] for r in in_scope),
            "f1": metrics.mean(r["f1"] for r in in_scope),
            "rouge_l": metrics.mean(r["rouge_l"] for r in in_scope),
            "contains": metrics.mean(r["contains"] for r in in_scope),
            "groundedness": metrics.mean(r["groundedness"] for r in answered),
            "unsupported_rate": _unsupported_rate(answered),
            "style": metrics.mean(r["style"] for r in in_scope),
            "style_n": sum(1 for r in in_scope if r.get("style") is not None and not (isinstance(r["style"], float) and math.isnan(r["style"]))),
            "cut": sum(1 for r in answered if r.get("cut")),
            "refusal_oos": metrics.mean(float(r["refusal"]) for r in oos) if oos else math.nan,
            "refusal_in_scope": metrics.mean(float(r["refusal"]) for r in in_scope) if in_scope else math.nan,
            "latency_p50_s": metrics.percentile([r["total_s"] for r in answered], 50),
            "latency_p95_s": metrics.percentile([r["total_s"] for r in answered], 95),
            "first_token_p50_s": metrics.percentile([r["first_token_s"] for r in generated if r["first_token_s"] is not None], 50),
            "tokens_per_s": total_tokens / total_time if total_time > 0 else math.nan,
        }
    known = [r["rank"] for r in retrieval if r["known"]]
    return {
        "variants": board,
        "retrieval": {
            "questions_with_gold": len(known),
            "k": k,
            "hit@1": metrics.hit_at_k(known, 1),
            f"hit@{k}": metrics.hit_at_k(known, k),
            "mrr": metrics.mrr(known, k),
        },
    }


def _unsupported_rate(rows: Sequence[dict]) -> float:
    """Share of all numbers and names the answers state that their passages do not hold (NaN when none stated)."""
    claims = sum(len(r.get("claims") or []) for r in rows)
    return sum(len(r.get("unsupported") or []) for r in rows) / claims if claims else math.nan


# ---------------------------------------------------------------- persistence
def _open(workspace: Workspace):
    conn = connect(workspace)
    ensure_schema(conn, SCHEMA)
    return conn


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class EvaluationRecord:
    id: str
    created_at: str
    finished_at: str | None
    status: str  # running | done | cancelled | failed
    kb: str | None
    adapter: str | None
    variants: list[str]
    question_source: str
    total: int
    done: int
    error: str | None
    settings: dict
    summary: dict | None

    @property
    def folder_name(self) -> str:
        return self.id


def _record(row) -> EvaluationRecord:
    data = dict(row)
    data["variants"] = json.loads(data["variants"])
    data["settings"] = json.loads(data["settings"])
    data["summary"] = json.loads(data["summary"]) if data["summary"] else None
    return EvaluationRecord(**data)


def list_evaluations(workspace: Workspace) -> list[EvaluationRecord]:
    with _open(workspace) as conn:
        return [_record(row) for row in conn.execute("SELECT * FROM evaluations ORDER BY created_at DESC, id DESC")]


def get_evaluation(workspace: Workspace, evaluation_id: str) -> EvaluationRecord:
    with _open(workspace) as conn:
        row = conn.execute("SELECT * FROM evaluations WHERE id = ?", (evaluation_id,)).fetchone()
    if row is None:
        raise StudioError(f"No evaluation {evaluation_id!r}; list them with the Evaluate page or `python -m core evaluate --help`.")
    return _record(row)


def load_results(workspace: Workspace, evaluation_id: str) -> list[dict]:
    return read_jsonl(workspace.evaluations / evaluation_id / "results.jsonl")  # a line cut short by a crash is skipped


def load_retrieval(workspace: Workspace, evaluation_id: str) -> list[dict]:
    return read_json(workspace.evaluations / evaluation_id / "retrieval.json", []) or []


def _update(workspace: Workspace, evaluation_id: str, **fields: Any) -> None:
    assignments = ", ".join(f"{key} = ?" for key in fields)
    with _open(workspace) as conn, transaction(conn):
        conn.execute(f"UPDATE evaluations SET {assignments} WHERE id = ?", (*fields.values(), evaluation_id))


def _json_safe(value: Any) -> Any:
    """NaN is not JSON: store it as null (shown as 'n/a', never as a score)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# ---------------------------------------------------------------- running
@dataclass
class EvaluationProgress:
    done: int
    total: int
    question: str = ""
    variant: str = ""


def create_evaluation(workspace: Workspace, kb: str | None, adapter: str | None, questions: Sequence[QuestionItem],
                      settings: EvaluationSettings, question_source: str, extra: dict | None = None) -> str:
    evaluation_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = workspace.evaluations / evaluation_id
    folder.mkdir(parents=True, exist_ok=True)
    config = {"id": evaluation_id, "kb": kb, "adapter": adapter, "question_source": question_source,
              "settings": {**asdict(settings), "variants": list(settings.variants)}, "questions": len(questions), **(extra or {})}
    atomic_write_json(folder / "config.json", config)
    atomic_write_json(folder / "questions.json", [q.to_dict() for q in questions])
    with _open(workspace) as conn, transaction(conn):
        conn.execute(
            """INSERT INTO evaluations (id, created_at, status, kb, adapter, variants, question_source, total, done, settings)
               VALUES (?,?,?,?,?,?,?,?,0,?)""",
            (evaluation_id, _now(), "running", kb, adapter, json.dumps(list(settings.variants)), question_source,
             len(questions) * len(settings.variants), json.dumps(config["settings"] | (extra or {}), default=str)),
        )
    return evaluation_id


def prepare_questions(questions: Sequence[QuestionItem], settings: EvaluationSettings) -> list[QuestionItem]:
    items = list(questions)[: settings.limit] if settings.limit else list(questions)
    items += out_of_scope_items(settings.out_of_scope)
    if not items:
        raise StudioError("The question set is empty.")
    return items


def run_evaluation(
    workspace: Workspace,
    runner: VariantRunner,
    questions: Sequence[QuestionItem],
    settings: EvaluationSettings = EvaluationSettings(),
    *,
    kb: str | None = None,
    embedder=None,
    adapter: str | None = None,
    question_source: str = "questions",
    style_check: Callable[[str], float] | None = None,
    style_note: str = "",
    cancel: threading.Event | None = None,
    progress: Callable[[EvaluationProgress], None] | None = None,
    evaluation_id: str | None = None,
    extra: dict | None = None,
) -> str:
    """Answer every question with every variant, score, persist; returns the evaluation id.

    Retrieval (when a knowledge base is given) runs once for all questions. A cancel request is
    honoured between answers; what was answered is kept and summarised (status 'cancelled')."""
    settings.validate()
    items = prepare_questions(questions, settings)
    if any(v in CONTEXT_VARIANTS for v in settings.variants) and not kb:
        raise StudioError("RAG and hybrid need a knowledge base; choose one, or evaluate only base and fine-tuned.")
    info = {"style_note": style_note, "hardware": describe_machine(), **(extra or {})}
    if hasattr(runner, "describe"):
        info["engines"] = runner.describe()
    if evaluation_id is None:
        evaluation_id = create_evaluation(workspace, kb, adapter, items, settings, question_source, info)
    folder = workspace.evaluations / evaluation_id
    if "engines" in info:  # a job creates the row before its runner exists: record the engines now
        config = read_json(folder / "config.json", {}) or {}
        if config.get("engines") != info["engines"]:
            atomic_write_json(folder / "config.json", {**config, "engines": info["engines"]})
    total = len(items) * len(settings.variants)
    try:
        all_hits: list[list[Hit]] = [[] for _ in items]  # ranked: what the retrieval metrics score
        gated: list[list[Hit]] = [[] for _ in items]  # past the relevance gate: what the model is given
        if kb:
            if embedder is None:
                raise StudioError("An embedder is needed to search the knowledge base.")
            from core.retrieval import retrieve_many

            retrieved = retrieve_many(workspace, kb, [q.question for q in items], embedder, settings.retrieval)
            all_hits, gated = [r.ranked for r in retrieved], [r.hits for r in retrieved]
        retrieval = [retrieval_row(item, hits) for item, hits in zip(items, all_hits)]
        atomic_write_json(folder / "retrieval.json", retrieval)
        rows: list[dict] = []
        done = 0
        cancelled = False
        started = time.perf_counter()
        with open(folder / "results.jsonl", "a", encoding="utf-8") as results:
            for item, hits, given in zip(items, all_hits, gated):
                # A batching runner answers every variant of a question at once (one batch, one copy of the weights).
                batch = _answer_all(runner, item.question, settings.variants, given) if hasattr(runner, "answer_all") else None
                for variant in settings.variants:
                    if cancel is not None and cancel.is_set():
                        cancelled = True
                        break
                    if progress:
                        progress(EvaluationProgress(done, total, item.question, variant))
                    try:
                        answer = batch[variant] if batch is not None else runner.answer(
                            item.question, variant, list(given) if variant in CONTEXT_VARIANTS else [])
                    except StudioError as error:
                        answer = VariantAnswer("", error=str(error))
                    except Exception as error:  # one failing answer must not lose the run
                        log.exception("Answer failed: %s / %s", variant, item.id)
                        answer = VariantAnswer("", error=f"{type(error).__name__}: {error}")
                    row = _json_safe(score_answer(item, variant, answer, hits, given, style_check, settings.support_threshold,
                                                  settings.max_new_tokens))
                    rows.append(row)
                    results.write(json.dumps(row, ensure_ascii=False) + "\n")
                    results.flush()
                    done += 1
                    _update(workspace, evaluation_id, done=done)
                if cancelled:
                    break
        elapsed = time.perf_counter() - started
        summary = summarize([_nan_rows(r) for r in rows], retrieval, settings.variants, settings.k)
        questions_done = len({r["qid"] for r in rows})
        summary.update(
            questions=questions_done,
            answers=len(rows),
            elapsed_s=elapsed,
            questions_per_minute=(questions_done / elapsed * 60) if elapsed > 0 else math.nan,
            style_note=style_note,
            groundedness_method=(
                f"lexical support: a sentence counts as supported when ≥ {settings.support_threshold:.0%} of its content "
                "tokens (lower-cased, punctuation and stop words removed) appear in the retrieved context"
            ),
            unsupported_method=(
                "numbers (with their unit and scale) and proper names in the answer that the retrieved passages do not "
                "hold, as a share of all numbers and names the answers state (core.support); refusals state none"
            ),
        )
        summary = _json_safe(summary)
        atomic_write_json(folder / "summary.json", summary)
        if progress:
            progress(EvaluationProgress(done, total))
        _update(workspace, evaluation_id, status="cancelled" if cancelled else "done", finished_at=_now(),
                summary=json.dumps(summary), done=done)
    except BaseException as error:
        _update(workspace, evaluation_id, status="failed", finished_at=_now(), error=str(error))
        raise
    return evaluation_id


def _nan_rows(row: dict) -> dict:
    """Stored nulls back to NaN for aggregation."""
    return {k: (math.nan if v is None and k in ("em", "f1", "rouge_l", "contains", "groundedness", "style") else v) for k, v in row.items()}


def load_summary(workspace: Workspace, evaluation_id: str) -> dict:
    record = get_evaluation(workspace, evaluation_id)
    if record.summary:
        return record.summary
    rows = load_results(workspace, evaluation_id)
    return _json_safe(summarize([_nan_rows(r) for r in rows], load_retrieval(workspace, evaluation_id), record.variants,
                                int(record.settings.get("k", 5))))


# ---------------------------------------------------------------- background job (for the page)
class EvaluationJob:
    """Runs `run_evaluation` in a daemon thread. The thread only writes to the workspace; the page
    polls the `evaluations` row (never call st.* from here)."""

    def __init__(self, evaluation_id: str, target: Callable[[threading.Event], Any]):
        self.evaluation_id = evaluation_id
        self.cancel_event = threading.Event()
        self.error: str | None = None
        self._target = target
        self.thread = threading.Thread(target=self._run, name=f"evaluation-{evaluation_id}", daemon=True)

    def _run(self) -> None:
        try:
            self._target(self.cancel_event)
        except BaseException as error:  # recorded in the row by run_evaluation; kept here for the page
            log.exception("Evaluation %s failed", self.evaluation_id)
            self.error = str(error)

    def start(self) -> "EvaluationJob":
        self.thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


_JOBS: dict[str, EvaluationJob] = {}
_JOBS_LOCK = threading.Lock()


def start_evaluation_job(workspace: Workspace, make_runner: Callable[[], VariantRunner], questions: Sequence[QuestionItem],
                         settings: EvaluationSettings, **kwargs: Any) -> EvaluationJob:
    """Create the evaluation row now (so the page can show it at once), then answer in a thread.
    `make_runner` runs inside the thread, so loading the model and adapter doesn't block the page."""
    settings.validate()
    items = prepare_questions(questions, settings)
    info = {"style_note": kwargs.get("style_note", ""), "hardware": describe_machine(), **(kwargs.get("extra") or {})}
    evaluation_id = create_evaluation(workspace, kwargs.get("kb"), kwargs.get("adapter"), items, settings,
                                      kwargs.get("question_source", "questions"), info)
    no_limit = replace(settings, limit=None, out_of_scope=0)  # items already include both

    def target(cancel: threading.Event) -> None:
        try:
            runner = make_runner()
        except BaseException as error:
            _update(workspace, evaluation_id, status="failed", finished_at=_now(), error=str(error))
            raise
        run_evaluation(workspace, runner, items, no_limit, cancel=cancel, evaluation_id=evaluation_id, **kwargs)

    return start_job(evaluation_id, target)


def start_job(key: str, target: Callable[[threading.Event], Any]) -> EvaluationJob:
    """Register and start a background job under `key` (an evaluation id, or e.g. "judge:<id>")."""
    job = EvaluationJob(key, target)
    with _JOBS_LOCK:
        _JOBS[key] = job
    return job.start()


def get_job(key: str) -> EvaluationJob | None:
    with _JOBS_LOCK:
        return _JOBS.get(key)


# ---------------------------------------------------------------- update drill
@dataclass(frozen=True)
class UpdateCost:
    reindex_s: float
    retrain_s: float
    retrain_source: str  # what the retrain figure is based on, in words


DRILL_SUFFIX = "-drill-copy"


def drill_copy_name(kb_name: str) -> str:
    return f"{kb_name[: 64 - len(DRILL_SUFFIX)]}{DRILL_SUFFIX}"


def make_drill_copy(workspace: Workspace, kb_name: str) -> str:
    """A fresh copy of a knowledge base (documents, chunks and vectors, no re-embedding) for the update drill, so
    the drill's update never lands in the user's own knowledge base. An older drill copy is replaced."""
    from core.knowledge import _write_index, delete_knowledge_base, get_knowledge_base, open_catalogue
    from core.storage import transaction

    source = get_knowledge_base(workspace, kb_name)
    target = drill_copy_name(kb_name)
    if _kb_exists(workspace, target):
        delete_knowledge_base(workspace, target)
    with open_catalogue(workspace) as conn:
        with transaction(conn):
            new_id = conn.execute(
                "INSERT INTO knowledge_bases (name, embedding_model, dimension, chunk_size, chunk_overlap) "
                "SELECT ?, embedding_model, dimension, chunk_size, chunk_overlap FROM knowledge_bases WHERE id = ?",
                (target, source.id)).lastrowid
            for doc in conn.execute("SELECT id, name, kind, sha256, size_bytes, page_count, chunk_count FROM documents WHERE kb_id = ?",
                                    (source.id,)).fetchall():
                doc_id = conn.execute(
                    "INSERT INTO documents (kb_id, name, kind, sha256, size_bytes, page_count, chunk_count) VALUES (?,?,?,?,?,?,?)",
                    (new_id, doc[1], doc[2], doc[3], doc[4], doc[5], doc[6])).lastrowid
                conn.execute("INSERT INTO chunks (kb_id, document_id, ordinal, page, page_end, text, embedding) "
                             "SELECT ?, ?, ordinal, page, page_end, text, embedding FROM chunks WHERE document_id = ? ORDER BY id",
                             (new_id, doc_id, doc[0]))
        _write_index(workspace, conn, get_knowledge_base(workspace, target))
    log.info("Update drill: copied knowledge base %s to %s", kb_name, target)
    return target


def remove_drill_copy(workspace: Workspace, kb_name: str) -> bool:
    """Delete the drill copy of kb_name (True when there was one)."""
    from core.knowledge import delete_knowledge_base

    target = drill_copy_name(kb_name)
    if not _kb_exists(workspace, target):
        return False
    delete_knowledge_base(workspace, target)
    return True


def replace_document(workspace: Workspace, kb_name: str, name: str, data: bytes, embedder) -> tuple[float, str]:
    """Add a document, or a new version of one (the old version goes first). Returns (seconds, message)."""
    from core.knowledge import ingest_files, list_documents, remove_document

    started = time.perf_counter()
    existing = {d.name for d in list_documents(workspace, kb_name)} if _kb_exists(workspace, kb_name) else set()
    if name in existing:
        remove_document(workspace, kb_name, name)
    results = ingest_files(workspace, kb_name, [(name, data)], embedder)
    seconds = time.perf_counter() - started
    result = results[0]
    if result.status == "failed":
        raise StudioError(result.message)
    return seconds, result.message


def remove_document_timed(workspace: Workspace, kb_name: str, name: str) -> float:
    from core.knowledge import remove_document

    started = time.perf_counter()
    remove_document(workspace, kb_name, name)
    return time.perf_counter() - started


def _kb_exists(workspace: Workspace, kb_name: str) -> bool:
    from core.knowledge import list_knowledge_bases

    return any(kb.name == kb_name for kb in list_knowledge_bases(workspace))


def last_run_duration(workspace: Workspace) -> tuple[float, str] | None:
    """Measured seconds of the most recent *completed* training run, and a label naming it and its steps.

    Cancelled or failed runs are skipped: their partial duration would understate a retrain."""
    if not workspace.runs.exists():
        return None
    runs = sorted(workspace.runs.glob("*/progress.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in runs:
        events = read_jsonl(path)
        ends = [e for e in events if e.get("event") == "end"]
        if ends and ends[-1].get("status") not in (None, "completed"):
            continue
        seconds = run_seconds(events)
        if seconds:
            steps = ends[-1].get("step") if ends else max((e.get("step") or 0 for e in events), default=0)
            return seconds, f"{path.parent.name}, {steps} steps" if steps else path.parent.name
    return None


def run_seconds(events: Sequence[dict]) -> float | None:
    """Trained seconds from the worker's progress events (core/train_worker.py): the last step's `elapsed` (it includes
    the time before a resume), else the span of the events' `time` stamps."""
    for event in reversed(events):
        if isinstance(event.get("elapsed"), (int, float)) and event["elapsed"] > 0:
            return float(event["elapsed"])
    stamps = [float(e["time"]) for e in events if isinstance(e.get("time"), (int, float))]
    return (max(stamps) - min(stamps)) if len(stamps) >= 2 and max(stamps) > min(stamps) else None


def read_jsonl(path: Path) -> list[dict]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def retrain_cost(workspace: Workspace, training_tokens: int | None = None, epochs: int = 3) -> tuple[float, str]:
    """Seconds a retrain would take: the last run's measured duration, else an estimate at 165 tokens/s."""
    measured = last_run_duration(workspace)
    if measured:
        seconds, run_id = measured
        return seconds, f"measured: duration of the last completed training run in this workspace ({run_id})"
    if training_tokens is None:
        training_tokens = 0
        for path in workspace.datasets.glob("*/train.jsonl") if workspace.datasets.exists() else []:
            training_tokens = max(training_tokens, len(path.read_text(encoding="utf-8")) // 4)
        if not training_tokens:
            training_tokens = 20_000  # a small demo dataset: ~100 rows of ~200 tokens
    seconds = training_tokens * epochs / TRAIN_TOKENS_PER_S
    return seconds, (f"estimate: {training_tokens:,} training tokens x {epochs} epochs at {TRAIN_TOKENS_PER_S:.0f} tokens/s "
                     "(LoRA on SmolLM2-135M on this CPU); no measured run in this workspace")


# ---------------------------------------------------------------- machine facts
def describe_machine() -> dict:
    import os
    import platform

    facts = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        facts["threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return facts


def _answer_all(runner, question: str, variants: Sequence[str], given: list[Hit]) -> dict[str, VariantAnswer]:
    try:
        return runner.answer_all(question, list(variants), list(given))
    except StudioError as error:
        return {variant: VariantAnswer("", error=str(error)) for variant in variants}
    except Exception as error:  # one failing batch must not lose the run
        log.exception("Batch answer failed: %s", question)
        return {variant: VariantAnswer("", error=f"{type(error).__name__}: {error}") for variant in variants}


class EngineVariantRunner:
    """Every variant of a question in one batch through the generation engine(s) (core.engines).

    `engines` gives some variants their own engine (e.g. base and RAG from a team's server). Per-variant
    latency is the time until that column finished inside the shared batch, which is what a Compare-page
    user waits for.
    """

    def __init__(self, engine, adapter: str | None, settings: DecodingSettings, engines: dict | None = None):
        self.engine, self.adapter, self.settings, self.engines = engine, adapter, settings, dict(engines or {})

    def describe(self) -> dict:
        """Which engine and model answers each variant: saved in the evaluation's config and the report."""
        return {variant: {"engine": getattr(self.engines.get(variant, self.engine), "name", ""),
                          "model": getattr(self.engines.get(variant, self.engine), "model", "")} for variant in VARIANTS}

    def answer_all(self, question: str, variants: list[str], hits: list[Hit]) -> dict[str, VariantAnswer]:
        from core.compare import run_comparison

        comparison = run_comparison(self.engine, question, variants, hits=hits, adapter=self.adapter, settings=self.settings,
                                    engines=self.engines)
        return {
            variant: VariantAnswer(answer.text, answer.stats.first_token_s, answer.stats.total_s, answer.stats.new_tokens, answer.error,
                                   answer.engine, answer.model)
            for variant, answer in comparison.answers.items()
        }

    def answer(self, question: str, variant: str, hits: list[Hit]) -> VariantAnswer:
        return self.answer_all(question, [variant], hits)[variant]


def make_engine_runner(workspace: Workspace, adapter: str | None = None, max_new_tokens: int = 48,
                       repetition_penalty: float = 1.0, generator=None, engine=None, engines: dict | None = None) -> EngineVariantRunner:
    """A runner over `engine` (an EngineSpec, a spec string or None for auto); `engines`: {variant: EngineSpec} overrides."""
    from core.engines.registry import open_engine
    from core.generation import DecodingSettings

    settings = DecodingSettings(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
    adapter_dir = resolve_adapter(workspace, adapter)
    default = open_engine(engine, workspace, generator)
    opened: dict = {}
    per_variant = {}
    for variant, spec in (engines or {}).items():
        if spec not in opened:
            opened[spec] = open_engine(spec, workspace, generator)
        per_variant[variant] = opened[spec]
    return EngineVariantRunner(default, str(adapter_dir) if adapter_dir else None, settings, per_variant)


def embedder_for_kb(workspace: Workspace, kb_name: str):
    """The embedding model a knowledge base was built with, behind the Embedder seam."""
    from core.embedding import load_sentence_embedder, spec_for_recorded
    from core.knowledge import get_knowledge_base

    return load_sentence_embedder(spec_for_recorded(get_knowledge_base(workspace, kb_name).embedding_model), workspace)


# ---------------------------------------------------------------- tables for views
SCOREBOARD_COLUMNS = {
    "n": "answers", "em": "exact match", "f1": "token F1", "rouge_l": "ROUGE-L", "contains": "contains answer",
    "groundedness": "lexical support", "unsupported_rate": "unsupported claims", "style": "format adherence", "refusal_oos": "refuses out-of-scope",
    "latency_p50_s": "p50 s", "latency_p95_s": "p95 s", "first_token_p50_s": "first token p50 s", "tokens_per_s": "tokens/s",
    "cut": "cut at the cap", "errors": "errors",
}


def scoreboard_rows(summary: dict) -> list[dict]:
    """One row per variant with readable column names; None stays None (rendered as n/a)."""
    out = []
    for variant, values in (summary or {}).get("variants", {}).items():
        row = {"variant": VARIANT_LABELS.get(variant, variant)}
        for key, label in SCOREBOARD_COLUMNS.items():
            value = values.get(key)
            row[label] = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
        out.append(row)
    return out


def question_rows(rows: Sequence[dict]) -> list[dict]:
    """Flat per-answer rows for a filterable table."""
    return [
        {
            "question id": r["qid"], "variant": VARIANT_LABELS.get(r["variant"], r["variant"]), "question": r["question"],
            "answer": r.get("answer") or (f"error: {r['error']}" if r.get("error") else ""),
            "reference": " | ".join(r.get("answers") or []), "F1": r.get("f1"), "EM": r.get("em"), "ROUGE-L": r.get("rouge_l"),
            "lexical support": r.get("groundedness"), "not in the sources": ", ".join(r.get("unsupported") or []),
            "refused": r.get("refusal"), "out of scope": r.get("out_of_scope"),
            "seconds": r.get("total_s"),
            "sources": "; ".join(f"[{c['n']}] {c['document']} p.{c['page']}" for c in r.get("citations") or []),
        }
        for r in rows
    ]
