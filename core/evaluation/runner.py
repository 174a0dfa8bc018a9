"""Running an evaluation: every question answered by every chosen variant through the answering seam, then
scored (core.evaluation.scoring) and kept (core.evaluation.store), in the caller's thread or as a background job.

Retrieval happens once per question set (one batched `retrieve_many`), so every variant that uses context sees
the same chunks. The seam is `VariantRunner.answer(question, variant, hits) -> Answer`. The real one,
`EngineVariantRunner`, answers every variant of a few questions in one batch through core.compare.compare_many and
a generation engine (`core.engines`: transformers, llamacpp or openai, one per variant if asked): "compare many,
then score". Tests register fake engines through the same registry. Every result row records the engine and model
that answered.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from core import support
from core.adapters import resolve_adapter  # the one adapter lookup (report.py reads it from here too)
from core.errors import StudioError
from core.evaluation.questions import OUT_OF_SCOPE_QUESTIONS, QuestionItem, out_of_scope_items
from core.evaluation.scoring import json_safe, nulls_to_nan, retrieval_row, score_answer, summarize
from core.evaluation.store import create_evaluation, update_evaluation
from core.jobs import Job, start_job, utc_now
from core.retrieval import Hit, RetrievalSettings
from core.settings import Workspace
from core.storage import atomic_write_json, read_json
from core.variants import USES_CONTEXT, VARIANTS, Answer

if TYPE_CHECKING:
    from core.generation import DecodingSettings


log = logging.getLogger(__name__)


class VariantRunner(Protocol):
    """Answers one question with one variant. `hits` are the relevant retrieved chunks for rag/hybrid
    (may be empty: then the runner should say the documents don't cover it) and [] for base/finetuned."""

    def answer(self, question: str, variant: str, hits: list[Hit]) -> Answer: ...


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


# ---------------------------------------------------------------- running
@dataclass
class EvaluationProgress:
    done: int
    total: int
    question: str = ""
    variant: str = ""


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
    if any(v in USES_CONTEXT for v in settings.variants) and not kb:
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
        all_given: list[list[Hit]] = [[] for _ in items]  # past the relevance gate: what the model is given
        if kb:
            if embedder is None:
                raise StudioError("An embedder is needed to search the knowledge base.")
            from core.retrieval import retrieve_many

            retrieved = retrieve_many(workspace, kb, [q.question for q in items], embedder, settings.retrieval)
            all_hits, all_given = [r.ranked for r in retrieved], [r.hits for r in retrieved]
        retrieval = [retrieval_row(item, hits) for item, hits in zip(items, all_hits)]
        atomic_write_json(folder / "retrieval.json", retrieval)
        rows: list[dict] = []
        done = 0
        started = time.perf_counter()
        with open(folder / "results.jsonl", "a", encoding="utf-8") as results:
            for item, hits, given, batch in _answered(runner, items, all_hits, all_given, settings.variants, cancel):
                for variant in settings.variants:
                    if cancel is not None and cancel.is_set():
                        break
                    if progress:
                        progress(EvaluationProgress(done, total, item.question, variant))
                    answer = _answer(runner, item, variant, given, batch)
                    row = json_safe(score_answer(item, answer, hits, given, style_check, settings.support_threshold,
                                                 settings.max_new_tokens))
                    rows.append(row)
                    results.write(json.dumps(row, ensure_ascii=False) + "\n")
                    results.flush()
                    done += 1
                    update_evaluation(workspace, evaluation_id, done=done)
        cancelled = done < total and cancel is not None and cancel.is_set()
        elapsed = time.perf_counter() - started
        summary = summarize([nulls_to_nan(r) for r in rows], retrieval, settings.variants, settings.k)
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
        summary = json_safe(summary)
        atomic_write_json(folder / "summary.json", summary)
        if progress:
            progress(EvaluationProgress(done, total))
        update_evaluation(workspace, evaluation_id, status="cancelled" if cancelled else "done", finished_at=utc_now(),
                          summary=json.dumps(summary), done=done)
    except BaseException as error:
        update_evaluation(workspace, evaluation_id, status="failed", finished_at=utc_now(), error=str(error))
        raise
    return evaluation_id


def start_evaluation_job(workspace: Workspace, make_runner: Callable[[], VariantRunner], questions: Sequence[QuestionItem],
                         settings: EvaluationSettings, **kwargs: Any) -> Job:
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
            update_evaluation(workspace, evaluation_id, status="failed", finished_at=utc_now(), error=str(error))
            raise
        run_evaluation(workspace, runner, items, no_limit, cancel=cancel, evaluation_id=evaluation_id, **kwargs)

    return start_job(evaluation_id, target)


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


def _answered(runner, items: Sequence[QuestionItem], all_hits: Sequence[list[Hit]], all_given: Sequence[list[Hit]],
              variants: Sequence[str], cancel: threading.Event | None):
    """(question, its hits, the relevant ones given, its batch of answers or None), answering a group of questions at a
    time (`runner.questions_per_batch`); stops before the next group once cancel is set."""
    group = max(1, getattr(runner, "questions_per_batch", 1))
    for start in range(0, len(items), group):
        if cancel is not None and cancel.is_set():
            return
        chosen = slice(start, start + group)
        yield from zip(items[chosen], all_hits[chosen], all_given[chosen], _answer_group(runner, items[chosen], variants, all_given[chosen]))


def _answer(runner, item: QuestionItem, variant: str, given: list[Hit], batch: dict[str, Answer] | None) -> Answer:
    """The variant's answer from its batch, or asked of the runner alone; a failure becomes the answer's error."""
    if batch is not None:
        return batch[variant]
    try:
        return runner.answer(item.question, variant, list(given) if variant in USES_CONTEXT else [])
    except StudioError as error:
        return Answer(variant, error=str(error))
    except Exception as error:  # one failing answer must not lose the run
        log.exception("Answer failed: %s / %s", variant, item.id)
        return Answer(variant, error=f"{type(error).__name__}: {error}")


def _answer_group(runner, items: Sequence[QuestionItem], variants: Sequence[str],
                  given: Sequence[list[Hit]]) -> list[dict[str, Answer] | None]:
    """Every variant of several questions at once from a batching runner (one batch, one copy of the weights):
    `answer_many` (many questions) or `answer_all` (one question). None per question: ask `runner.answer` per variant."""
    if not (hasattr(runner, "answer_many") or hasattr(runner, "answer_all")):
        return [None] * len(items)
    try:
        if hasattr(runner, "answer_many"):
            return runner.answer_many([item.question for item in items], list(variants), [list(hits) for hits in given])
        return [runner.answer_all(item.question, list(variants), list(hits)) for item, hits in zip(items, given)]
    except StudioError as error:
        failure = str(error)
    except Exception as error:  # one failing batch must not lose the run
        log.exception("Batch answer failed: %s", items[0].question)
        failure = f"{type(error).__name__}: {error}"
    return [{variant: Answer(variant, error=failure) for variant in variants} for _ in items]


class EngineVariantRunner:
    """Every variant of a few questions in one batch through the generation engine(s): core.compare.compare_many.

    `engines` gives some variants their own engine (e.g. base and RAG from a team's server). Per-variant
    latency is the time until that answer finished inside the shared batch, which is what a Compare-page
    user waits for.
    """

    batch_rows = 8  # requests (question x variant) per engine batch

    def __init__(self, engine, adapter: str | None, settings: DecodingSettings, engines: dict | None = None):
        self.engine, self.adapter, self.settings, self.engines = engine, adapter, settings, dict(engines or {})

    def describe(self) -> dict:
        """Which engine and model answers each variant: saved in the evaluation's config and the report."""
        return {variant: {"engine": getattr(self.engines.get(variant, self.engine), "name", ""),
                          "model": getattr(self.engines.get(variant, self.engine), "model", "")} for variant in VARIANTS}

    @property
    def questions_per_batch(self) -> int:
        return self.batch_rows // len(VARIANTS)  # the evaluation asks this many questions at a time

    def answer_many(self, questions: list[str], variants: list[str], hits: list[list[Hit]]) -> list[dict[str, Answer]]:
        from core.compare import compare_many

        comparisons = compare_many(self.engine, questions, variants, retrieve=lambda _: hits, adapter=self.adapter,
                                   settings=self.settings, batch_rows=self.batch_rows, engines=self.engines)
        return [comparison.answers for comparison in comparisons]

    def answer_all(self, question: str, variants: list[str], hits: list[Hit]) -> dict[str, Answer]:
        return self.answer_many([question], variants, [hits])[0]

    def answer(self, question: str, variant: str, hits: list[Hit]) -> Answer:
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
    from core.catalogue import get_knowledge_base

    return load_sentence_embedder(spec_for_recorded(get_knowledge_base(workspace, kb_name).embedding_model), workspace)
