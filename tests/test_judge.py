"""Optional RAGAS scores: the real ragas package against a stand-in judge served over HTTP on 127.0.0.1.

The stub (tests/judge_stub.py) enters through the same seam as Ollama or llama.cpp's server: an
OpenAI-compatible endpoint. It answers every RAGAS verdict with "supported", so the expected scores
are exact (1.0); other modes make it talk prose (not JSON), stall, or give RAGAS nothing to score.
"""
from __future__ import annotations

import math
import threading

import pytest

from core import evaluation, judge
from tests.fake_engines import install as install_fake_engine
from core.errors import StudioError
from core.evaluation import EvaluationSettings
from tests.judge_stub import JudgeStub
from tests.test_evaluation import QUESTIONS, FakeRunner

pytestmark = pytest.mark.skipif(not judge.ragas_installed(), reason="ragas is not installed (pip install -r requirements.txt)")


@pytest.fixture
def finished_eval(workspace, toy_kb, fake_embedder):
    settings = EvaluationSettings(variants=("base", "rag"), k=3, min_score=0.05, out_of_scope=1)
    return evaluation.run_evaluation(workspace, FakeRunner(), QUESTIONS, settings, kb=toy_kb, embedder=fake_embedder)


def _cells(state, **match):
    return [c for c in state["cells"] if all(c[k] == v for k, v in match.items())]


def test_rows_keep_the_context_the_answer_saw(workspace, finished_eval):
    rows = evaluation.load_results(workspace, finished_eval)
    rag = [r for r in rows if r["variant"] == "rag" and not r["out_of_scope"]]
    assert rag and all(r["contexts"] and isinstance(r["contexts"][0], str) for r in rag)
    assert all(r["contexts"] == [] for r in rows if r["variant"] == "base")


def test_plan_says_why_a_metric_does_not_apply(workspace, finished_eval):
    rows = evaluation.load_results(workspace, finished_eval)
    cells = judge.plan_cells(rows, tuple(judge.METRICS), has_embedder=False)
    base_faith = [c for c in cells if c.variant == "base" and c.metric == "faithfulness"]
    assert base_faith and all("no retrieved context" in c.skip for c in base_faith)
    assert all("embedding" in c.skip for c in cells if c.metric == "answer_relevancy")
    oos = [c for c in cells if c.variant == judge.RETRIEVAL and c.qid.startswith("oos")]
    assert oos and all("out-of-scope" in c.skip for c in oos)
    # context metrics are per question, not per variant: 3 in-scope + 1 out-of-scope questions
    assert len([c for c in cells if c.metric == "context_recall"]) == 4
    assert len(judge.plan_cells(rows, ("context_recall",), False, limit=2)) == 2


def test_judge_scores_with_a_stub_endpoint(workspace, finished_eval, fake_embedder):
    with JudgeStub("agree") as stub:
        assert judge.check_endpoint(stub.url) == ["stub-judge"]
        seen = []
        state = judge.judge_evaluation(workspace, finished_eval, judge.JudgeSettings(stub.url, "stub-judge", timeout_s=20),
                                       fake_embedder, progress=seen.append)
    assert state["status"] == "done" and state["done"] == state["total"] == len(seen) - 1
    scores = state["scores"]
    assert scores["rag"]["faithfulness"]["mean"] == pytest.approx(1.0)
    rag_rows = [r for r in evaluation.load_results(workspace, finished_eval) if r["variant"] == "rag"]
    assert scores["rag"]["faithfulness"]["ok"] == len([r for r in rag_rows if r["contexts"]]) >= 3
    assert scores["base"]["faithfulness"]["ok"] == 0 and scores["base"]["faithfulness"]["mean"] is None
    assert scores[judge.RETRIEVAL]["context_recall"]["mean"] == pytest.approx(1.0)
    assert scores[judge.RETRIEVAL]["context_precision"]["mean"] == pytest.approx(1.0, abs=1e-6)
    relevancy = scores["base"]["answer_relevancy"]
    assert relevancy["ok"] == 4 and -1.0 <= relevancy["mean"] <= 1.0
    saved = judge.load_judgement(workspace, finished_eval)
    assert saved["scores"] == scores and len(saved["cells"]) == state["total"]
    assert "api_key" not in (workspace.evaluations / finished_eval / "ragas.json").read_text()


def test_prose_instead_of_json_is_an_error_not_a_score(workspace, finished_eval, fake_embedder):
    with JudgeStub("garbage") as stub:
        state = judge.judge_evaluation(workspace, finished_eval,
                                       judge.JudgeSettings(stub.url, "stub-judge", metrics=("faithfulness",), limit=1), fake_embedder)
    rag = _cells(judge.load_judgement(workspace, finished_eval), variant="rag")
    assert rag and all(c["status"] == "error" and c["value"] is None and "JSON" in c["detail"] for c in rag)
    assert state["scores"]["rag"]["faithfulness"] == {"ok": 0, "nan": 0, "timeout": 0, "error": 1, "n/a": 0, "mean": None}


def test_nothing_to_score_is_nan_not_zero(workspace, finished_eval, fake_embedder):
    with JudgeStub("empty") as stub:
        state = judge.judge_evaluation(workspace, finished_eval,
                                       judge.JudgeSettings(stub.url, "stub-judge", metrics=("faithfulness", "context_recall")),
                                       fake_embedder)
    assert state["scores"]["rag"]["faithfulness"]["nan"] >= 3 and state["scores"]["rag"]["faithfulness"]["mean"] is None
    nan_cells = _cells(judge.load_judgement(workspace, finished_eval), status="nan")
    assert nan_cells and all(c["value"] is None for c in nan_cells)
    rows = judge.judgement_rows(state)
    assert any(r["NaN"] > 0 and r["mean"] is None for r in rows)


def test_out_of_range_verdicts_are_errors_not_scores(workspace, finished_eval, fake_embedder):
    with JudgeStub("overrate") as stub:
        state = judge.judge_evaluation(workspace, finished_eval,
                                       judge.JudgeSettings(stub.url, "stub-judge", metrics=("context_recall",), limit=1), fake_embedder)
    entry = state["scores"][judge.RETRIEVAL]["context_recall"]
    assert entry["error"] == 1 and entry["mean"] is None
    assert "out-of-range score 10" in _cells(judge.load_judgement(workspace, finished_eval), status="error")[0]["detail"]


def test_a_slow_judge_times_out_and_cancel_stops(workspace, finished_eval, fake_embedder):
    with JudgeStub("slow", delay_s=3) as stub:
        state = judge.judge_evaluation(workspace, finished_eval,
                                       judge.JudgeSettings(stub.url, "stub-judge", timeout_s=0.5, metrics=("context_recall",), limit=1),
                                       fake_embedder)
        assert state["scores"][judge.RETRIEVAL]["context_recall"]["timeout"] == 1
        assert _cells(judge.load_judgement(workspace, finished_eval), status="timeout")[0]["value"] is None
        cancel = threading.Event()
        cancel.set()
        state = judge.judge_evaluation(workspace, finished_eval, judge.JudgeSettings(stub.url, "stub-judge", timeout_s=0.5),
                                       fake_embedder, cancel=cancel)
    assert state["status"] == "cancelled" and state["done"] == 0


def test_unreachable_or_wrong_endpoint_says_what_to_do(workspace, finished_eval):
    with JudgeStub() as stub:
        url = stub.url
        with pytest.raises(StudioError, match="HTTP 404"):
            judge.check_endpoint(url.removesuffix("/v1") + "/nope")
    with pytest.raises(StudioError, match="No judge answers"):
        judge.check_endpoint(url, timeout_s=1)  # server stopped: connection refused
    with pytest.raises(StudioError, match="http://"):
        judge.JudgeSettings("localhost:11434", "m").validate()
    with pytest.raises(StudioError, match="judge model"):
        judge.JudgeSettings("http://127.0.0.1:1/v1", " ").validate()
    with pytest.raises(StudioError, match="Unknown"):
        judge.JudgeSettings("http://127.0.0.1:1/v1", "m", metrics=("bleu",)).validate()
    with pytest.raises(StudioError, match="no answers"):
        judge.judge_evaluation(workspace, "nope", judge.JudgeSettings("http://127.0.0.1:1/v1", "m"))


def test_summary_means_only_ok_cells():
    cells = [
        {"variant": "rag", "metric": "faithfulness", "status": "ok", "value": 0.5},
        {"variant": "rag", "metric": "faithfulness", "status": "ok", "value": 1.0},
        {"variant": "rag", "metric": "faithfulness", "status": "nan", "value": None},
        {"variant": "rag", "metric": "faithfulness", "status": "timeout", "value": None},
    ]
    entry = judge.summarize_cells(cells)["rag"]["faithfulness"]
    assert entry["mean"] == pytest.approx(0.75) and entry["nan"] == 1 and entry["timeout"] == 1
    assert not math.isnan(entry["mean"])


def test_cli_judge_prints_the_table_and_exits_2_on_a_dead_endpoint(workspace, finished_eval, capsys):
    from core.cli import main

    root = str(workspace.root)
    with JudgeStub("agree") as stub:
        url = stub.url
        assert main(["--workspace", root, "judge", finished_eval, "--url", url, "--model", "stub-judge",
                     "--metrics", "faithfulness,context_recall"]) == 0
    out = capsys.readouterr().out
    assert "faithfulness" in out and "1.000" in out and "never scored" in out
    assert main(["--workspace", root, "judge", finished_eval, "--url", url, "--model", "stub-judge"]) == 2
    assert "No judge answers" in capsys.readouterr().err


def test_cli_evaluate_with_a_judge(workspace, toy_kb, fake_embedder, monkeypatch, tmp_path, capsys):
    import json

    from core.cli import main

    from tests.fake_engines import install_embedder

    install_embedder(monkeypatch, fake_embedder)
    install_fake_engine(monkeypatch)  # the runner is real; its engine is a fake registered like any engine
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "When did the Harbor Bridge open?", "answers": ["1932"], "source_doc": "harbor.txt"}))
    root = str(workspace.root)
    with JudgeStub("agree") as stub:
        assert main(["--workspace", root, "evaluate", "--kb", toy_kb, "--questions", str(questions),
                     "--judge-url", stub.url, "--judge-model", "stub-judge", "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["ragas"]["scores"]["rag"]["faithfulness"]["mean"] == pytest.approx(1.0)
    # a dead judge is refused before any model loads
    assert main(["--workspace", root, "evaluate", "--kb", toy_kb, "--questions", str(questions),
                 "--judge-url", stub.url, "--judge-model", "stub-judge"]) == 2
    assert "No judge answers" in capsys.readouterr().err
