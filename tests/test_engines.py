"""The generation seam (fast, fakes through the registry): routing, recording which engine answered, serving plans."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import evaluation
from core.compare import run_comparison
from core.engines import GenerationRequest, RoutedEngine, generate_many, generate_text, open_engine, resolve_kind
from core.engines.registry import EngineSpec
from core.errors import StudioError
from core.generation import DecodingSettings
from tests.conftest import applied_plan
from tests.fake_engines import EchoEngine, install

ROOT = Path(__file__).resolve().parents[1]


def test_auto_means_llamacpp_for_the_embedded_model_on_cpu_when_installed(monkeypatch):
    from core.engines import registry
    from core.models import GeneratorSpec

    monkeypatch.delenv("STUDIO_ENGINE", raising=False)
    monkeypatch.setattr(registry, "llama_cpp_available", lambda: True)
    assert resolve_kind(EngineSpec(), GeneratorSpec(device="cpu")) == "llamacpp"
    assert resolve_kind(EngineSpec(), GeneratorSpec(model_id="Qwen/Qwen2.5-0.5B-Instruct", device="cpu")) == "transformers"
    monkeypatch.setattr(registry, "llama_cpp_available", lambda: False)
    assert resolve_kind(EngineSpec(), GeneratorSpec(device="cpu")) == "transformers"
    assert resolve_kind(EngineSpec("openai", "http://h/v1", "m")) == "openai"  # an explicit choice is never overridden


def test_a_registered_fake_is_opened_like_any_engine(monkeypatch, workspace):
    engine = install(monkeypatch, EchoEngine("m-1"), kind="echo")
    assert open_engine("echo", workspace) is engine and open_engine(None, workspace) is engine  # auto -> STUDIO_ENGINE
    assert generate_text(engine, [{"role": "user", "content": "hi"}]) == "I think it was long ago."
    with pytest.raises(StudioError, match="Unknown engine 'nope'"):
        open_engine("nope", workspace)


def test_routed_engine_sends_each_key_to_its_engine_and_one_failure_stays_in_its_column():
    local, other = EchoEngine("local"), EchoEngine("other")

    class Exploding:
        name, model = "boom", "x"

        def stream_many(self, requests, settings):
            raise RuntimeError("engine crashed")
            yield  # pragma: no cover

    routed = RoutedEngine({"rag": other, "finetuned": Exploding()}, local)
    requests = [GenerationRequest(k, [{"role": "user", "content": "q"}]) for k in ("base", "rag", "finetuned")]
    results = generate_many(routed, requests, DecodingSettings())
    assert [len(b) for b in local.batches] == [1] and [r.key for r in other.batches[0]] == ["rag"]
    assert results["base"].text and results["rag"].text and "engine crashed" in results["finetuned"].error
    # Evaluate's keys carry a question prefix: "3:rag" still goes to the rag engine
    generate_many(routed, [GenerationRequest("3:rag", [{"role": "user", "content": "q"}])], DecodingSettings())
    assert other.batches[-1][0].key == "3:rag"


def test_every_answer_records_its_engine_and_model(workspace, toy_kb, fake_embedder, monkeypatch):
    from core.evaluation import EvaluationSettings
    from tests.test_evaluation import QUESTIONS

    local, remote = EchoEngine("local-1"), EchoEngine("served-7")
    remote.name = "openai"
    comparison = run_comparison(local, "When?", ["base", "rag"], engines={"base": remote})
    assert [(a.engine, a.model) for a in comparison.answers.values()] == [("openai", "served-7"), ("fake", "local-1")]
    assert comparison.to_dict()["answers"][0]["engine"] == "openai"
    runner = evaluation.EngineVariantRunner(local, None, DecodingSettings(max_new_tokens=8), {"base": remote})
    eval_id = evaluation.run_evaluation(workspace, runner, QUESTIONS[:2], EvaluationSettings(variants=("base", "rag"), min_score=0.05),
                                        kb=toy_kb, embedder=fake_embedder)
    rows = evaluation.load_results(workspace, eval_id)
    assert {(r["variant"], r["engine"], r["model"]) for r in rows} == {("base", "openai", "served-7"), ("rag", "fake", "local-1")}
    config = json.loads((workspace.evaluations / eval_id / "config.json").read_text())
    assert config["engines"]["base"] == {"engine": "openai", "model": "served-7"}
    from core.report import build_report

    html = build_report(workspace, eval_id)
    assert "served-7" in html and "Engines" in html


def test_compare_page_column_on_its_own_engine(fake_engine, monkeypatch, tmp_path):
    """The sidebar's engine answers base; the RAG column picks another registered engine and the page shows which."""
    import streamlit as st

    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path))
    other = EchoEngine("second-model")
    other.name = "second"
    install(monkeypatch, other, kind="second")
    monkeypatch.setenv("STUDIO_ENGINE", "fake")  # `auto` stays on the fixture's engine; "second" is a column's choice
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=30)
    at.session_state["decision_plan"] = applied_plan(compare_variants=["base", "finetuned"])
    at.run()
    at.selectbox(key="column_engine_base").select("second").run()
    at.chat_input[0].set_value("Which engine?").run()
    at.run()
    assert not at.exception
    (comparison,) = at.session_state["compare_history"]
    assert comparison.answers["base"].engine == "second" and other.batches and not fake_engine.batches
    assert any("second · second\\-model" in c.value for c in at.caption)  # shown under the column (markdown-escaped)
    st.cache_resource.clear()


def _finished_run(workspace, run_id="run-x"):
    """A completed run row with a peft-shaped adapter folder (no training: the serving plan only copies it)."""
    from tests.tune_support import record_run

    adapter = workspace.runs / run_id / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}))
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    return record_run(workspace, run_id, base_model="Qwen/Qwen2.5-0.5B-Instruct")


def test_serve_with_vllm_writes_the_adapter_and_the_command(workspace, capsys):
    from core.cli import main

    run_id = _finished_run(workspace)
    assert main(["--workspace", str(workspace.root), "export", run_id, "--serve", "vllm", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    folder = Path(plan["folder"])
    assert (folder / "studio-run-x" / "adapter_config.json").exists() and (folder / "studio-run-x" / "adapter_model.safetensors").exists()
    assert plan["commands"][0].startswith("vllm serve Qwen/Qwen2.5-0.5B-Instruct --enable-lora --lora-modules studio-run-x=")
    assert "--engine openai:http://127.0.0.1:8000/v1 --model studio-run-x" in plan["commands"][-1]
    assert main(["--workspace", str(workspace.root), "export", run_id, "--serve", "ollama"]) == 2  # no GGUF for a hub base: a clear error
    assert "convert_hf_to_gguf" in capsys.readouterr().err


def test_cli_evaluate_and_compare_take_an_engine_per_variant(workspace, toy_kb, fake_embedder, monkeypatch, tmp_path, capsys):
    from core.cli import main
    from tests.fake_engines import install_embedder

    served = EchoEngine("served-3")
    served.name = "served"
    install(monkeypatch, served, kind="served")
    local = install(monkeypatch)  # registered last: the one `auto` opens
    install_embedder(monkeypatch, fake_embedder)
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "When did the Harbor Bridge open?", "answers": ["1932"], "source_doc": "harbor.txt"}))
    root = str(workspace.root)
    assert main(["--workspace", root, "evaluate", "--kb", toy_kb, "--questions", str(questions), "--column-engine", "base=served",
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = evaluation.load_results(workspace, payload["id"])
    assert {(r["variant"], r["engine"]) for r in rows} == {("base", "served"), ("rag", "fake")}
    local_batches = len(local.batches)
    assert main(["--workspace", root, "compare", "When?", "--variants", "base", "--column-engine", "base=served@m", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)["answers"][0]
    assert (answer["engine"], answer["model"]) == ("served", "served-3") and len(local.batches) == local_batches
    assert main(["--workspace", root, "compare", "When?", "--column-engine", "base"]) == 2
    assert "VARIANT=SPEC" in capsys.readouterr().err
