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


@pytest.fixture(scope="module")
def toy_adapter(real_ws):
    """A small LoRA adapter with random (non-zero) weights, saved like a training run saves it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core.models import convert_embedded_generator

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(convert_embedded_generator(real_ws))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable > 0  # peft silently skips target modules that don't match
    folder = real_ws.runs / "toyrun" / "adapter"
    peft_model.save_pretrained(folder)
    (folder.parent / "config.json").write_text(json.dumps({"lora": {"r": 4, "alpha": 16}, "note": "random toy adapter"}))
    (folder.parent / "progress.jsonl").write_text('{"step": 1, "loss": 2.5, "elapsed_s": 3.0}\n{"step": 2, "loss": 2.1, "elapsed_s": 6.0}\n')
    return "toyrun"


def test_base_column_is_really_the_base_model(real_ws, toy_adapter):
    from core.generation import DecodingSettings, build_messages, generate_text
    from core.models import GeneratorSpec, load_generator

    question = "What is the capital of France?"
    plain = load_generator(GeneratorSpec(), real_ws)
    expected = generate_text(plain, build_messages(question), DecodingSettings(max_new_tokens=12, repetition_penalty=1.0))
    runner = evaluation.make_local_runner(real_ws, toy_adapter, max_new_tokens=12)
    base = runner.answer(question, "base", [])
    tuned = runner.answer(question, "finetuned", [])
    assert base.text == expected
    assert tuned.text != expected  # the adapter really changes the model
    assert base.new_tokens > 0 and base.total_s > 0


def test_end_to_end_squad36_rag_beats_base(real_ws):
    from core.knowledge import RetrievalSettings, ingest_files, load_sentence_embedder, search_many
    from core.settings import get_workspace
    from tests.tune_support import MODEL_CACHE

    questions = evaluation.load_questions(SQUAD / "qa_sample.jsonl")[:10]
    docs = sorted({q.source_doc for q in questions})
    embedder = load_sentence_embedder(workspace=get_workspace(MODEL_CACHE))  # ONNX export shared by the tests
    results = ingest_files(real_ws, "squad", [(d, (SQUAD / "docs" / d).read_bytes()) for d in docs], embedder)
    assert all(r.status == "added" for r in results)
    runner = evaluation.make_local_runner(real_ws, None, max_new_tokens=48)
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


def test_batched_engine_runner_matches_the_sequential_runner(real_ws, toy_adapter):
    """The evaluation's batched runner (Compare engine) gives the same greedy answers as one-at-a-time."""
    from core.models import GeneratorSpec

    question = "What is the capital of France?"
    fp32 = GeneratorSpec(dtype="float32")
    sequential = evaluation.make_local_runner(real_ws, toy_adapter, max_new_tokens=12, generator=fp32)
    batched = evaluation.make_engine_runner(real_ws, toy_adapter, max_new_tokens=12, generator=fp32)
    together = batched.answer_all(question, ["base", "finetuned"], [])
    assert together["base"].error is None and together["base"].new_tokens > 0
    assert together["base"].text == sequential.answer(question, "base", []).text
    assert together["finetuned"].text != together["base"].text
