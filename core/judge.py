"""Optional RAGAS scores from a judge model behind an OpenAI-compatible endpoint.

Never required: the local metrics (EM, F1, ROUGE-L, retrieval, lexical groundedness, format, refusal,
latency) stand on their own. When a judge is configured (Ollama's `/v1`, llama.cpp's `llama-server`,
vLLM, LM Studio, or a hosted API), a finished evaluation can be judged afterwards:

- per answer: `faithfulness` (share of the answer's claims the retrieved context supports; RAG and
  hybrid only) and `answer_relevancy` (questions the judge reconstructs from the answer, compared with
  the real one through our local embedding model);
- per question, on the retrieved chunks: `context_precision` and `context_recall` against the
  reference answer (shared by RAG and hybrid, which see the same chunks).

Each score is one *cell* with a status: ok, nan (the judge answered but RAGAS could not score it),
timeout, error, or n/a (the metric does not apply). Means are taken over ok cells only; NaN and
timeouts are counted and shown as such, never as a score.

Results live beside the evaluation: `evaluations/<id>/ragas.jsonl` (one line per cell, appended as it
runs) and `ragas.json` (judge, progress, per-variant means and counts). The API key is never stored.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import math
import os
import sys
import threading
import time
import types
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from core.errors import StudioError
from core.evaluation.store import load_results
from core.jobs import Job, get_job, start_job, utc_now
from core.settings import Workspace
from core.storage import atomic_write_json, read_json, read_jsonl
from core.variants import USES_CONTEXT, VARIANT_LABELS

log = logging.getLogger(__name__)

ANSWER_METRICS = {
    "faithfulness": "Faithfulness: share of the answer's claims that the retrieved context supports (RAG, hybrid)",
    "answer_relevancy": "Answer relevancy: how well questions regenerated from the answer match the question asked",
}
CONTEXT_METRICS = {
    "context_precision": "Context precision: are the retrieved chunks that help answer ranked first (needs a reference answer)",
    "context_recall": "Context recall: share of the reference answer the retrieved chunks support",
}
METRICS = {**ANSWER_METRICS, **CONTEXT_METRICS}
RETRIEVAL = "retrieval"  # the 'variant' of a per-question context metric
STATUSES = ("ok", "nan", "timeout", "error", "n/a")
INSTALL_HINT = "pip install -r requirements.txt (it pins ragas and its OpenAI client)"


@dataclass(frozen=True)
class JudgeSettings:
    base_url: str
    model: str
    api_key: str = "local"  # local servers ignore it; never written to disk
    timeout_s: float = 120.0  # per metric of one answer (a metric may make several judge calls)
    metrics: tuple[str, ...] = tuple(METRICS)
    limit: int | None = None  # judge only the first N questions: a CPU judge can take minutes per answer

    def validate(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise StudioError(f"Judge URL {self.base_url!r} must start with http:// or https:// "
                              "(for example http://127.0.0.1:11434/v1 for Ollama).")
        if not self.model.strip():
            raise StudioError("Name the judge model (for example llama3.1:8b for Ollama).")
        if not self.timeout_s > 0:
            raise StudioError(f"Timeout {self.timeout_s} s must be above 0.")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise StudioError(f"Unknown or no RAGAS metrics {unknown}; choose from {', '.join(METRICS)}.")
        if self.limit is not None and self.limit < 1:
            raise StudioError("The question limit must be at least 1 (or none).")


@dataclass(frozen=True)
class JudgeProgress:
    done: int
    total: int
    metric: str = ""
    variant: str = ""


# ---------------------------------------------------------------- ragas, imported only when judging
def ragas_installed() -> bool:
    return importlib.util.find_spec("ragas") is not None and importlib.util.find_spec("openai") is not None


def _import_ragas():
    """Import ragas offline and quietly.

    ragas <= 0.4.3 imports `langchain_community.chat_models.vertexai`, which current langchain-community
    no longer ships (ragas issues #2745, #2995), so `import ragas` fails outright. It only uses that class
    in an isinstance list, so an empty stand-in module is enough; we never use Vertex AI."""
    if not ragas_installed():
        raise StudioError(f"RAGAS is not installed, so judge scores are off. To enable them: {INSTALL_HINT}.")
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # ragas sends usage analytics unless told not to
    name = "langchain_community.chat_models.vertexai"
    if name not in sys.modules and importlib.util.find_spec("langchain_community") is not None:
        try:
            importlib.import_module(name)
        except ImportError:
            stand_in = types.ModuleType(name)
            stand_in.ChatVertexAI = type("ChatVertexAI", (), {})
            sys.modules[name] = stand_in
    import ragas.metrics.collections as collections
    from ragas.llms import llm_factory

    return collections, llm_factory


def check_endpoint(base_url: str, timeout_s: float = 5.0) -> list[str]:
    """The model ids the endpoint lists (GET /models). Raises a StudioError that says what to do."""
    url = base_url.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=timeout_s) as reply:
            payload = json.loads(reply.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        raise StudioError(f"The judge at {base_url} answered HTTP {error.code} for /models. Is it an OpenAI-compatible "
                          "endpoint? Its URL usually ends in /v1.") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StudioError(f"No judge answers at {base_url} ({reason}). Start the server (for example `ollama serve`) "
                          "or correct the URL.") from error
    except ValueError as error:
        raise StudioError(f"The judge at {base_url} did not return JSON for /models; is the URL right (…/v1)?") from error
    data = payload.get("data") if isinstance(payload, dict) else None
    return [str(m.get("id")) for m in data or [] if isinstance(m, dict) and m.get("id")]


def _ragas_embeddings(embedder):
    """Our embedding model behind the interface RAGAS's answer relevancy needs (no hub, no API)."""
    from ragas.embeddings.base import BaseRagasEmbedding

    class LocalEmbeddings(BaseRagasEmbedding):
        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return embedder.embed_queries([text])[0].tolist()

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.embed_text(text)

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return embedder.embed_queries(list(texts)).tolist()

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return self.embed_texts(texts)

    return LocalEmbeddings()


# ---------------------------------------------------------------- what to judge
@dataclass(frozen=True)
class JudgeCell:
    qid: str
    variant: str  # base / rag / finetuned / hybrid, or "retrieval" for the context metrics
    metric: str
    inputs: dict  # the keyword arguments of the RAGAS metric's ascore
    skip: str = ""  # why the metric does not apply (status n/a), else empty


def plan_cells(rows: Sequence[dict], metrics: Sequence[str], has_embedder: bool, limit: int | None = None) -> list[JudgeCell]:
    """Every (answer or question) x metric to score, in question order, with the reason when one does not apply."""
    qids: list[str] = []
    for row in rows:
        if row["qid"] not in qids:
            qids.append(row["qid"])
    keep = set(qids[:limit] if limit else qids)
    cells: list[JudgeCell] = []
    contexts_by_q: dict[str, list[str]] = {}
    for row in rows:
        if row["qid"] not in keep:
            continue
        contexts = list(row.get("contexts") or [])
        if contexts:
            contexts_by_q.setdefault(row["qid"], contexts)
        answer = (row.get("answer") or "").strip()
        failed = "the answer failed" if row.get("error") else ("the answer is empty" if not answer else "")
        for metric in metrics:
            if metric not in ANSWER_METRICS:
                continue
            skip = failed
            if metric == "faithfulness" and row["variant"] not in USES_CONTEXT:
                skip = "no retrieved context (base and fine-tuned answer without documents)"
            elif metric == "faithfulness" and not contexts:
                skip = skip or "the retrieved chunks were not stored with this evaluation (re-run it)"
            elif metric == "answer_relevancy" and not has_embedder:
                skip = skip or "no embedding model loaded"
            inputs = {"user_input": row["question"], "response": answer}
            if metric == "faithfulness":
                inputs["retrieved_contexts"] = contexts
            cells.append(JudgeCell(row["qid"], row["variant"], metric, inputs, skip))
    seen: set[str] = set()
    for row in rows:
        qid = row["qid"]
        if qid not in keep or qid in seen:
            continue
        seen.add(qid)
        reference = (row.get("answers") or [""])[0]
        for metric in metrics:
            if metric not in CONTEXT_METRICS:
                continue
            contexts = contexts_by_q.get(qid, [])
            skip = ("out-of-scope question: no reference answer" if row.get("out_of_scope") else
                    "no reference answer" if not reference else
                    "no retrieved chunks stored (evaluate RAG or hybrid)" if not contexts else "")
            cells.append(JudgeCell(qid, RETRIEVAL, metric,
                                   {"user_input": row["question"], "reference": reference, "retrieved_contexts": contexts}, skip))
    return cells


# ---------------------------------------------------------------- running
def _status_of(error: BaseException) -> tuple[str, str]:
    name = type(error).__name__
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)) or "Timeout" in name:
        return "timeout", "the judge did not answer in time"
    if "Connection" in name:
        return "error", "the judge could not be reached"
    if "IncompleteOutput" in name:
        return "error", "the judge's reply was cut off at its token limit before the JSON closed"
    if "InstructorRetry" in name or "ValidationError" in name:
        return "error", "the judge's reply did not fit the JSON schema RAGAS asked for"
    return "error", f"{name}: {str(error)[:200]}"


def _metric_objects(settings: JudgeSettings, embedder):
    collections, llm_factory = _import_ragas()
    from openai import AsyncOpenAI

    # Retries stay off here: a judge that is down or slow should show as such, not stall the run.
    client = AsyncOpenAI(base_url=settings.base_url, api_key=settings.api_key or "local", timeout=settings.timeout_s, max_retries=0)
    llm = llm_factory(settings.model, client=client)
    built: dict[str, Any] = {}
    for metric in settings.metrics:
        if metric == "faithfulness":
            built[metric] = collections.Faithfulness(llm=llm)
        elif metric == "answer_relevancy" and embedder is not None:
            built[metric] = collections.AnswerRelevancy(llm=llm, embeddings=_ragas_embeddings(embedder))
        elif metric == "context_precision":
            built[metric] = collections.ContextPrecisionWithReference(llm=llm)
        elif metric == "context_recall":
            built[metric] = collections.ContextRecall(llm=llm)
    return built


def _folder(workspace: Workspace, evaluation_id: str):
    folder = workspace.evaluations / evaluation_id
    if not (folder / "results.jsonl").exists():
        raise StudioError(f"Evaluation {evaluation_id} has no answers to judge yet.")
    return folder


def judge_evaluation(workspace: Workspace, evaluation_id: str, settings: JudgeSettings, embedder=None, *,
                     cancel: threading.Event | None = None,
                     progress: Callable[[JudgeProgress], None] | None = None) -> dict:
    """Score a finished evaluation with RAGAS; returns (and saves) the judge summary."""
    settings.validate()
    folder = _folder(workspace, evaluation_id)
    rows = load_results(workspace, evaluation_id)
    cells = plan_cells(rows, settings.metrics, embedder is not None, settings.limit)
    if not cells:
        raise StudioError("Nothing to judge: the evaluation has no answers for the chosen metrics.")
    metric_objects = _metric_objects(settings, embedder)
    state = {
        "judge": {"base_url": settings.base_url, "model": settings.model, "timeout_s": settings.timeout_s,
                  "metrics": list(settings.metrics), "limit": settings.limit},
        "status": "running", "started_at": utc_now(), "finished_at": None, "done": 0, "total": len(cells), "error": None,
    }
    atomic_write_json(folder / "ragas.json", state)
    results: list[dict] = []
    started = time.perf_counter()

    async def score(cell: JudgeCell) -> dict:
        record = {"qid": cell.qid, "variant": cell.variant, "metric": cell.metric, "value": None, "status": "n/a",
                  "detail": cell.skip, "seconds": 0.0}
        if cell.skip:
            return record
        begun = time.perf_counter()
        try:
            result = await asyncio.wait_for(metric_objects[cell.metric].ascore(**cell.inputs), timeout=settings.timeout_s)
            value = float(result.value) if result.value is not None else math.nan
            low, high = getattr(metric_objects[cell.metric], "allowed_values", (0.0, 1.0))
            if math.isnan(value):
                record.update(status="nan", detail="RAGAS returned NaN (the judge's reply gave it nothing to score)")
            elif not low - 1e-6 <= value <= high + 1e-6:
                # e.g. a small judge answering a 0/1 verdict with 10: RAGAS averages it as given
                record.update(status="error", detail=f"out-of-range score {value:g} (allowed {low:g} to {high:g}): the judge's verdicts were not 0 or 1")
            else:
                record.update(status="ok", value=value, detail="")
        except Exception as error:  # one bad cell must not lose the run
            record["status"], record["detail"] = _status_of(error)
            log.info("RAGAS %s on %s/%s: %s", cell.metric, cell.variant, cell.qid, record["detail"])
        record["seconds"] = round(time.perf_counter() - begun, 3)
        return record

    async def run_all() -> bool:
        with open(folder / "ragas.jsonl", "w", encoding="utf-8") as out:
            for index, cell in enumerate(cells):
                if cancel is not None and cancel.is_set():
                    return True
                if progress:
                    progress(JudgeProgress(index, len(cells), cell.metric, cell.variant))
                record = await score(cell)
                results.append(record)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
                state["done"] = index + 1
                atomic_write_json(folder / "ragas.json", state)
        return False

    try:
        cancelled = asyncio.run(run_all())
    except BaseException as error:
        state.update(status="failed", finished_at=utc_now(), error=str(error))
        atomic_write_json(folder / "ragas.json", state)
        raise
    state.update(status="cancelled" if cancelled else "done", finished_at=utc_now(),
                 elapsed_s=round(time.perf_counter() - started, 2), scores=summarize_cells(results))
    atomic_write_json(folder / "ragas.json", state)
    if progress:
        progress(JudgeProgress(len(results), len(cells)))
    return state


def summarize_cells(cells: Sequence[dict]) -> dict:
    """{variant: {metric: {mean, ok, nan, timeout, error, n/a}}}; the mean covers ok cells only (None if none)."""
    table: dict[str, dict[str, dict]] = {}
    scored: dict[tuple[str, str], list[float]] = {}
    for cell in cells:
        entry = table.setdefault(cell["variant"], {}).setdefault(cell["metric"], {s: 0 for s in STATUSES} | {"mean": None})
        entry[cell["status"]] += 1
        if cell["status"] == "ok":
            scored.setdefault((cell["variant"], cell["metric"]), []).append(cell["value"])
    for (variant, metric), values in scored.items():
        table[variant][metric]["mean"] = sum(values) / len(values)
    return table


def load_judgement(workspace: Workspace, evaluation_id: str) -> dict | None:
    """The saved judge summary (with `cells`), or None if this evaluation was never judged."""
    folder = workspace.evaluations / evaluation_id
    state = read_json(folder / "ragas.json", None)
    if not state:
        return None
    cells = read_jsonl(folder / "ragas.jsonl")  # a line cut short by a crash is skipped
    if state.get("status") == "running" and state.get("scores") is None:
        state["scores"] = summarize_cells(cells)  # partial, while it runs or after a crash
    state["cells"] = cells
    return state


def variant_label(variant: str) -> str:
    """How a judged row's variant reads in a table ("retrieval" rows are per question, not per answer)."""
    return "Retrieval (per question)" if variant == RETRIEVAL else VARIANT_LABELS.get(variant, variant)


def judgement_rows(state: dict) -> list[dict]:
    """Flat rows for a table: one per variant x metric, NaN/timeouts counted, never averaged."""
    rows = []
    for variant, by_metric in (state.get("scores") or {}).items():
        for metric, entry in by_metric.items():
            rows.append({"variant": variant, "metric": metric, "mean": entry["mean"], "scored": entry["ok"], "NaN": entry["nan"],
                         "timeouts": entry["timeout"], "errors": entry["error"], "not applicable": entry["n/a"]})
    return rows


# ---------------------------------------------------------------- background job (for the page)
def _job_key(evaluation_id: str) -> str:
    return f"judge:{evaluation_id}"


def start_judge_job(workspace: Workspace, evaluation_id: str, settings: JudgeSettings,
                    make_embedder: Callable[[], Any] | None = None) -> Job:
    """Judge in a daemon thread; the page polls `load_judgement` (progress lives in ragas.json)."""
    settings.validate()
    _folder(workspace, evaluation_id)
    _import_ragas()  # fail now, on the page, if ragas cannot load
    running = get_judge_job(evaluation_id)
    if running is not None and running.running:
        raise StudioError("This evaluation is being judged already; wait for it or cancel it.")

    def target(cancel: threading.Event) -> None:
        embedder = make_embedder() if make_embedder else None
        judge_evaluation(workspace, evaluation_id, settings, embedder, cancel=cancel)

    return start_job(_job_key(evaluation_id), target)


def get_judge_job(evaluation_id: str) -> Job | None:
    return get_job(_job_key(evaluation_id))
