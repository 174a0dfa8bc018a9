"""A batching runner answers every variant of a question through one call (the Compare engine's seam)."""
from core import evaluation
from core.evaluation import EvaluationSettings
from tests.test_evaluation import timed


class BatchingRunner:
    def __init__(self):
        self.calls = []

    def answer_all(self, question, variants, hits):
        self.calls.append((question, tuple(variants), len(hits)))
        return {v: timed(v, f"{v}: {question}", 0.1, 0.2, 3) for v in variants}

    def answer(self, question, variant, hits):  # pragma: no cover - the batch path must be used
        raise AssertionError("answer() called although answer_all() exists")


def test_batching_runner_is_called_once_per_question(workspace, toy_kb, fake_embedder):
    items = evaluation.parse_questions("q.jsonl", b'{"question": "When did the Harbor Bridge open?", "answer": "1932"}\n'
                                                  b'{"question": "How many apple varieties?", "answer": "twelve"}\n')
    runner = BatchingRunner()
    eval_id = evaluation.run_evaluation(workspace, runner, items, EvaluationSettings(variants=("base", "rag")),
                                        kb=toy_kb, embedder=fake_embedder)
    assert [call[1] for call in runner.calls] == [("base", "rag"), ("base", "rag")]
    rows = evaluation.load_results(workspace, eval_id)
    assert len(rows) == 4 and {row["variant"] for row in rows} == {"base", "rag"}


def test_a_failing_batch_becomes_errors_not_a_lost_run(workspace, toy_kb, fake_embedder):
    class Broken(BatchingRunner):
        def answer_all(self, question, variants, hits):
            raise RuntimeError("engine exploded")

    items = evaluation.parse_questions("q.jsonl", b'{"question": "When did the Harbor Bridge open?", "answer": "1932"}\n')
    eval_id = evaluation.run_evaluation(workspace, Broken(), items, EvaluationSettings(variants=("base", "rag")),
                                        kb=toy_kb, embedder=fake_embedder)
    rows = evaluation.load_results(workspace, eval_id)
    assert len(rows) == 2 and all("engine exploded" in (row.get("error") or "") for row in rows)


def test_the_engine_runner_compares_several_questions_per_batch_then_scores(workspace, toy_kb, fake_embedder):
    """Evaluation is "compare many, then score": core.compare.compare_many puts two questions' four variants in one
    engine batch, and every answer is scored as if asked alone."""
    from core.generation import DecodingSettings
    from tests.fake_engines import EchoEngine

    engine = EchoEngine()
    runner = evaluation.EngineVariantRunner(engine, "/adapters/style", DecodingSettings(max_new_tokens=16))
    items = evaluation.parse_questions("q.jsonl", b'{"question": "When did the Harbor Bridge open?", "answer": "1932"}\n'
                                                  b'{"question": "Who was the chief engineer of the Harbor Bridge?", "answer": "Ada Brennan"}\n'
                                                  b'{"question": "When was the oldest tree of the Linden Orchard planted?", "answer": "1871"}\n')
    settings = EvaluationSettings(variants=("base", "rag", "finetuned", "hybrid"), min_score=0.05)
    eval_id = evaluation.run_evaluation(workspace, runner, items, settings, kb=toy_kb, embedder=fake_embedder)
    keys = [[request.key for request in batch] for batch in engine.batches]
    assert [len(batch) for batch in keys] == [8, 4]  # questions 1-2 together, then question 3
    assert {key.split(":")[0] for key in keys[0]} == {"0", "1"}
    rows = evaluation.load_results(workspace, eval_id)
    assert len(rows) == 12 and all(row["error"] is None for row in rows)
    by = {(row["qid"], row["variant"]): row for row in rows}
    assert "1932" in by[("q1", "rag")]["answer"] and by[("q1", "rag")]["contains"] == 1.0
    assert by[("q1", "finetuned")]["answer"].startswith("- a guess") and by[("q1", "base")]["contains"] == 0.0
    assert all(row["new_tokens"] > 0 and row["total_s"] > 0 for row in rows)
