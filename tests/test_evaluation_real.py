"""Integration: the real embedded models (SmolLM2-135M + MiniLM) on squad36 questions, and a real peft adapter."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import evaluation, metrics
from core.evaluation import EvaluationSettings

pytestmark = pytest.mark.slow
from tests.conftest import SQUAD  # noqa: E402


@pytest.fixture(scope="module")
def real_ws(tmp_path_factory):
    from core.settings import get_workspace

    ws = get_workspace(tmp_path_factory.mktemp("real") / "ws")
    from tests.conftest import seed_converted_model

    seed_converted_model(ws)
    return ws


def test_end_to_end_squad36_rag_beats_base(real_ws):
    from core.knowledge import RetrievalSettings, ingest_files, load_sentence_embedder, search_many
    from core.settings import get_workspace
    from tests.tune_support import MODEL_CACHE

    questions = evaluation.load_questions(SQUAD / "qa_sample.jsonl")[:10]
    docs = sorted({q.source_doc for q in questions})
    embedder = load_sentence_embedder(workspace=get_workspace(MODEL_CACHE))  # ONNX export shared by the tests
    results = ingest_files(real_ws, "squad", [(d, (SQUAD / "docs" / d).read_bytes()) for d in docs], embedder)
    assert all(r.status == "added" for r in results)
    runner = evaluation.make_engine_runner(real_ws, None, max_new_tokens=48, engine="transformers")
    settings = EvaluationSettings(variants=("base", "rag"), k=5, max_new_tokens=48)
    eval_id = evaluation.run_evaluation(real_ws, runner, questions, settings, kb="squad", embedder=embedder, question_source="squad36")
    summary = evaluation.load_summary(real_ws, eval_id)
    board = summary["variants"]
    assert board["rag"]["f1"] > board["base"]["f1"], board
    # hit@5 must agree with what `search` returns, scored independently here
    hits = search_many(real_ws, "squad", [q.question for q in questions], embedder, RetrievalSettings(k=5))
    ranks = [
        metrics.first_relevant_rank([metrics.chunk_is_relevant(h.text, h.document, q.source_doc, q.answers, q.source_passage) for h in hs])
        for q, hs in zip(questions, hits)
    ]
    assert summary["retrieval"]["hit@5"] == pytest.approx(metrics.hit_at_k(ranks, 5))
    assert summary["retrieval"]["mrr"] == pytest.approx(metrics.mrr(ranks, 5))
    assert summary["retrieval"]["hit@5"] >= 0.5
