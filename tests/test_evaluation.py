"""Evaluation runs with fakes entering through the VariantRunner and Embedder seams."""
from __future__ import annotations

import json
import math
import threading

import pytest

from core import evaluation
from core.errors import StudioError
from core.evaluation import EvaluationSettings, QuestionItem
from core.generation import GenerationStats
from core.variants import Answer

QUESTIONS = [
    QuestionItem("q1", "When did the Harbor Bridge open?", ("1932",), "harbor.txt", None),
    QuestionItem("q2", "Who was the chief engineer of the Harbor Bridge?", ("Ada Brennan",), "harbor.txt", None),
    QuestionItem("q3", "When was the oldest tree of the Linden Orchard planted?", ("1871",), "orchard.txt", None),
]


def timed(variant: str, text: str, first_token_s: float | None = None, total_s: float = 0.0, new_tokens: int = 0) -> Answer:
    """A fake's answer with its timings, as an engine would report them."""
    return Answer(variant, text, stats=GenerationStats(new_tokens=new_tokens, first_token_s=first_token_s, total_s=total_s))


class FakeRunner:
    """RAG copies the first retrieved sentence that answers; base guesses; counts calls per variant."""

    def __init__(self):
        self.calls = []

    def answer(self, question, variant, hits):
        self.calls.append((question, variant, len(hits)))
        if variant in ("rag", "hybrid"):
            if not hits:
                from core.generation import NO_CONTEXT_ANSWER

                return timed(variant, NO_CONTEXT_ANSWER, 0.0, 0.0, 0)
            return timed(variant, hits[0].text.split(". ")[0] + " [1].", 0.1, 0.5, 10)
        if variant == "finetuned":
            return timed(variant, "- a guess\n- another\n- third", 0.1, 0.4, 8)
        return timed(variant, "I think it was long ago.", 0.1, 0.3, 6)


def test_parse_squad_and_training_rows():
    data = "\n".join([
        json.dumps({"id": "a", "question": "Q?", "answer": "x", "answers": ["x", "y"], "source_doc": "d.pdf", "source_passage": "p"}),
        json.dumps({"instruction": "Summarise", "input": "the text", "output": "- one", "source": {"document": "e.pdf"}}),
    ]).encode()
    items = evaluation.parse_questions("q.jsonl", data)
    assert items[0].answers == ("x", "y") and items[0].source_doc == "d.pdf" and items[0].source_passage == "p"
    assert items[1].question == "Summarise\n\nthe text" and items[1].answers == ("- one",) and items[1].source_doc == "e.pdf"
    csv_items = evaluation.parse_questions("q.csv", b"question,answer,source_doc\nWho?,Ada,harbor.txt\n")
    assert csv_items[0].answers == ("Ada",) and csv_items[0].source_doc == "harbor.txt"
    with pytest.raises(StudioError, match="line 1"):
        evaluation.parse_questions("bad.jsonl", b"{not json")
    with pytest.raises(StudioError, match="reference answer"):
        evaluation.parse_questions("q.jsonl", b'{"question": "no answer"}')


def test_run_evaluation_scores_and_persists(workspace, toy_kb, fake_embedder):
    runner = FakeRunner()
    settings = EvaluationSettings(variants=("base", "rag"), k=3, min_score=0.05, out_of_scope=2)
    eval_id = evaluation.run_evaluation(workspace, runner, QUESTIONS, settings, kb=toy_kb, embedder=fake_embedder,
                                        question_source="toy")
    record = evaluation.get_evaluation(workspace, eval_id)
    assert record.status == "done" and record.done == record.total == 5 * 2
    rows = evaluation.load_results(workspace, eval_id)
    assert len(rows) == 10
    summary = evaluation.load_summary(workspace, eval_id)
    board = summary["variants"]
    assert board["rag"]["f1"] > board["base"]["f1"]
    assert board["rag"]["groundedness"] == pytest.approx(1.0)  # it copies the context
    assert summary["retrieval"]["questions_with_gold"] == 3
    assert summary["retrieval"]["hit@3"] == pytest.approx(1.0)
    # base never sees context; rag gets the relevant hits
    assert all(n == 0 for _, v, n in runner.calls if v == "base")
    assert (workspace.evaluations / eval_id / "summary.json").exists()
    assert any(r.id == eval_id for r in evaluation.list_evaluations(workspace))
    # out-of-scope questions: not scored on F1, refusal counted
    oos = [r for r in rows if r["out_of_scope"]]
    assert len(oos) == 4 and all(r["f1"] is None for r in oos)


def test_cancel_keeps_partial_results(workspace, toy_kb, fake_embedder):
    cancel = threading.Event()

    class Cancelling(FakeRunner):
        def answer(self, question, variant, hits):
            if len(self.calls) == 2:
                cancel.set()
            return super().answer(question, variant, hits)

    eval_id = evaluation.run_evaluation(workspace, Cancelling(), QUESTIONS, EvaluationSettings(variants=("base", "rag"), min_score=0.05),
                                        kb=toy_kb, embedder=fake_embedder, cancel=cancel)
    record = evaluation.get_evaluation(workspace, eval_id)
    assert record.status == "cancelled" and record.done == 3
    assert len(evaluation.load_results(workspace, eval_id)) == 3


def test_background_job(workspace, toy_kb, fake_embedder):
    job = evaluation.start_evaluation_job(workspace, FakeRunner, QUESTIONS, EvaluationSettings(variants=("base", "rag"), min_score=0.05),
                                          kb=toy_kb, embedder=fake_embedder, question_source="toy")
    job.thread.join(30)
    assert not job.running and job.error is None
    assert evaluation.get_evaluation(workspace, job.key).status == "done"
    assert evaluation.get_job(job.key) is job


def test_failing_answer_is_recorded_not_fatal(workspace, toy_kb, fake_embedder):
    class Broken(FakeRunner):
        def answer(self, question, variant, hits):
            if variant == "rag":
                raise RuntimeError("boom")
            return super().answer(question, variant, hits)

    eval_id = evaluation.run_evaluation(workspace, Broken(), QUESTIONS, EvaluationSettings(variants=("base", "rag")), kb=toy_kb,
                                        embedder=fake_embedder)
    summary = evaluation.load_summary(workspace, eval_id)
    assert summary["variants"]["rag"]["errors"] == 3
    assert summary["variants"]["rag"]["f1"] is None  # NaN stored as null: shown as n/a, never a score


def test_settings_validation():
    with pytest.raises(StudioError):
        EvaluationSettings(variants=("nope",)).validate()
    with pytest.raises(StudioError):
        EvaluationSettings(limit=0).validate()


def test_rag_needs_kb(workspace):
    with pytest.raises(StudioError, match="knowledge base"):
        evaluation.run_evaluation(workspace, FakeRunner(), QUESTIONS, EvaluationSettings(variants=("rag",)))


def test_generate_questions(workspace, toy_kb):
    items = evaluation.generate_questions(workspace, toy_kb, count=3)
    assert items and all(item.answers and item.source_doc in ("harbor.txt", "orchard.txt") for item in items)
    assert all("_____" in item.question for item in items)
    for item in items:
        assert item.answers[0] in item.source_passage


def test_heldout_and_style_rule(workspace):
    folder = workspace.datasets / "ds1"
    folder.mkdir(parents=True)
    rows = [{"instruction": f"Q{i}?", "input": "", "output": "- a\n- b\n- c", "source": {"document": "d.pdf"}} for i in range(3)]
    (folder / "heldout.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (folder / "meta.json").write_text(json.dumps({"style_rule": None}))
    assert evaluation.list_heldout_sets(workspace) == ["ds1"]
    items = evaluation.load_heldout(workspace, "ds1")
    assert items[0].question == "Q0?" and items[0].source_doc == "d.pdf"
    check, note = evaluation.dataset_style_check(workspace, "ds1", [])
    assert check("- x\n- y\n- z") == 1.0 and check("prose") == 0.0 and "bullets:3" in note


def _record_run(workspace, run_id, status, duration_s, created_at):
    """A run as the training worker records it: its status and measured duration in the runs table."""
    from core import training
    from core.storage import connect, ensure_schema, transaction

    with connect(workspace) as conn:
        ensure_schema(conn, training.SCHEMA)
        with transaction(conn):
            conn.execute("INSERT INTO runs (id, dataset_id, base_model, config, status, duration_s, created_at) "
                         "VALUES (?, 'ds', 'm', '{}', ?, ?, ?)", (run_id, status, duration_s, created_at))


def test_retrain_cost_measured_and_estimated(workspace):
    seconds, source = evaluation.retrain_cost(workspace, training_tokens=16500, epochs=1)
    assert seconds == pytest.approx(100.0) and source.startswith("estimate")
    _record_run(workspace, "r1", "completed", 42.5, "2026-12-01T10:00:00+00:00")
    seconds, source = evaluation.retrain_cost(workspace)
    assert seconds == pytest.approx(42.5) and "measured" in source and "r1" in source
    # a newer cancelled or failed run is skipped: its partial time would understate a retrain
    _record_run(workspace, "r2", "cancelled", 3.0, "2026-12-01T11:00:00+00:00")
    _record_run(workspace, "r3", "failed", None, "2026-12-01T12:00:00+00:00")
    seconds, source = evaluation.retrain_cost(workspace)
    assert seconds == pytest.approx(42.5) and "(r1)" in source
    _record_run(workspace, "r4", "completed", 61.0, "2026-12-01T13:00:00+00:00")
    assert evaluation.retrain_cost(workspace)[0] == pytest.approx(61.0)  # the newest completed run counts


def test_update_drill_reindex(workspace, toy_kb, fake_embedder):
    from core.knowledge import search

    seconds, message = evaluation.replace_document(
        workspace, toy_kb, "harbor.txt", b"The Harbor Bridge opened in 1999 after a long delay.", fake_embedder
    )
    assert seconds > 0 and "harbor.txt" in message
    hits = search(workspace, toy_kb, "When did the Harbor Bridge open?", fake_embedder)
    assert "1999" in hits[0].text and not any("1932" in h.text for h in hits)
    assert evaluation.remove_document_timed(workspace, toy_kb, "harbor.txt") >= 0


def test_held_out_training_rows_get_retrieval_metrics(workspace, toy_kb, fake_embedder):
    """Style/summary rows carry their passage as the input: retrieval is scored against it (it read 0 before)."""
    row = {"instruction": "Answer in 3 bullets.",
           "input": "The Harbor Bridge opened in 1932 and carries eight lanes of traffic. Its chief engineer was Ada Brennan",
           "output": "- opened 1932\n- eight lanes\n- Ada Brennan", "source": {"document": "harbor.txt"}}
    item = evaluation.row_to_question(row, 1)
    assert item.source_passage == row["input"] and item.source_doc == "harbor.txt"
    eval_id = evaluation.run_evaluation(workspace, FakeRunner(), [item], EvaluationSettings(variants=("base",), k=3),
                                        kb=toy_kb, embedder=fake_embedder)
    retrieval = evaluation.load_summary(workspace, eval_id)["retrieval"]
    assert retrieval["questions_with_gold"] == 1 and retrieval["hit@3"] == 1.0
