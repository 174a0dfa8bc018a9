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
