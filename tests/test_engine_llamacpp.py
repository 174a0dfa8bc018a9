"""llama.cpp in-process and behind a real `python -m llama_cpp.server` (slow: real SmolLM2 GGUF, a real LoRA run).

One short LoRA run with a high learning rate on a fixed tiny dataset (module fixture) gives an adapter that
really changes the model; it is converted to a GGUF LoRA by llama.cpp's own converter.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from core.engines import GenerationRequest, generate_many, open_engine
from core.generation import DecodingSettings, build_messages

pytestmark = pytest.mark.slow
SETTINGS = DecodingSettings(max_new_tokens=24)
QUESTION = "When did the 1973 oil crisis begin?"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(workspace, run id): 8 LoRA steps at lr 3e-3 on 6 fixed style rows (three bullets ending in a risk line)."""
    from core import training as T
    from core.datasets import DatasetBuildSettings, build_rows, save_dataset
    from tests.tune_support import passage_chunks, squad_passages, workspace_with_model

    ws = workspace_with_model(tmp_path_factory.mktemp("llamacpp"))
    rows = build_rows(passage_chunks(squad_passages(8)), DatasetBuildSettings(kind="style", max_input_chars=200))
    save_dataset(ws, "tiny", rows, kind="style", style_rule="bullets3_risk", heldout_fraction=0.25)
    training = dataclasses.replace(T.TrainingSettings(), learning_rate=3e-3, max_steps=8, batch_size=1, max_length=160,
                                   save_steps=8, warmup_steps=0)
    lora = T.LoraSettings(r=8, alpha=16, dropout=0.0, target_modules=("q_proj", "v_proj"))
    run = T.wait_for_run(ws, T.start_run(ws, "tiny", lora, training).id, timeout=900, poll=0.5)
    assert run.status == "completed", T.read_log(ws, run.id)
    return ws, run.id


@pytest.fixture(scope="module")
def engine(trained):
    ws, _ = trained
    return open_engine("llamacpp", ws)


def test_embedded_gguf_answers_in_process_and_says_so(engine):
    from core.engines.llamacpp import cpu_variant

    first = generate_many(engine, [GenerationRequest("a", build_messages(QUESTION))], SETTINGS)["a"]
    again = generate_many(engine, [GenerationRequest("a", build_messages(QUESTION))], SETTINGS)["a"]
    assert first.error is None and first.text and first.text == again.text  # greedy: repeatable
    assert first.stats.new_tokens > 0 and first.stats.prompt_tokens > 20 and first.stats.first_token_s is not None
    assert engine.name == "llamacpp" and engine.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert cpu_variant() not in ("", "built-in")  # a runtime-chosen CPU backend (libggml-cpu-<variant>.so) is loaded
    print(f"llama.cpp CPU backend: {cpu_variant()}, devices {engine.devices}")


def test_trained_adapter_changes_the_answer_and_base_stays_base(engine, trained):
    from core.adapters import adapter_path

    ws, run_id = trained
    adapter = str(adapter_path(ws, run_id))
    prompt = build_messages("Summarise: The Harbor Bridge opened in 1932 and carries eight lanes of traffic.")
    results = generate_many(engine, [GenerationRequest("base", prompt), GenerationRequest("tuned", prompt, adapter),
                                     GenerationRequest("base_after", prompt)], SETTINGS)
    assert results["tuned"].error is None, results["tuned"].error
    assert results["tuned"].text != results["base"].text
    assert results["base_after"].text == results["base"].text  # the adapter is switched off and its KV cache never reused
    assert any((ws.models / "lora-gguf").glob("*.gguf"))  # converted once, by llama.cpp's converter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(gguf, alias, lora=None):
    """A real `python -m llama_cpp.server` on a free port; its log goes to a file (a full stderr pipe would block it)."""
    import tempfile

    from core.engines.llamacpp import server_command

    port = free_port()
    argv, cwd = server_command(gguf, port, alias, lora, threads=1)
    log = tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log", delete=False)
    process = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"llama_cpp.server exited: {open(log.name).read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                if json.loads(response.read())["data"][0]["id"] == alias:
                    return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise AssertionError(f"llama_cpp.server did not come up in 240 s: {open(log.name).read()[-2000:]}")


@pytest.fixture(scope="module")
def server(trained):
    from core.models import embedded_generator_gguf

    process, url = start_server(embedded_generator_gguf(), "smollm2")
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_ask_compare_and_evaluate_through_a_real_llama_cpp_server(trained, server, engine, real_embedder):
    from core import evaluation
    from core.ask import ask
    from core.compare import run_comparison
    from core.engines.registry import parse_engine_spec
    from core.evaluation import EvaluationSettings, QuestionItem
    from core.knowledge import ingest_files

    ws, _ = trained
    text = ("The 1973 oil crisis began in October 1973 when OAPEC proclaimed an oil embargo. "
            "By March 1974 the price of oil had risen from US$3 per barrel to nearly $12.")
    ingest_files(ws, "oil", [("oil.txt", text.encode())], real_embedder)
    spec = parse_engine_spec("openai", model="smollm2", base_url=server)
    remote = open_engine(spec, ws)

    answer = ask(ws, "oil", QUESTION, real_embedder, remote, decoding=SETTINGS)
    assert answer.sources and answer.text and answer.engine == "openai" and answer.model == "smollm2"

    comparison = run_comparison(remote, QUESTION, ["base", "rag"], hits=answer.sources, settings=SETTINGS)
    assert all(a.error is None and a.text and a.stats.new_tokens > 0 for a in comparison.answers.values())
    # The same GGUF, greedy: the server and the in-process engine agree word for word.
    local = run_comparison(engine, QUESTION, ["base"], settings=SETTINGS)
    assert comparison.answers["base"].text == local.answers["base"].text

    questions = [QuestionItem("q1", QUESTION, ("October 1973",), "oil.txt"),
                 QuestionItem("q2", "What did the price of oil rise to by March 1974?", ("nearly $12",), "oil.txt"),
                 QuestionItem("q3", "Who proclaimed the oil embargo?", ("OAPEC",), "oil.txt")]
    runner = evaluation.make_engine_runner(ws, None, max_new_tokens=24, engine=spec)
    eval_id = evaluation.run_evaluation(ws, runner, questions, EvaluationSettings(variants=("base", "rag"), max_new_tokens=24),
                                        kb="oil", embedder=real_embedder)
    rows = evaluation.load_results(ws, eval_id)
    assert len(rows) == 6 and all(r["answer"] and not r["error"] and r["engine"] == "openai" for r in rows)
    assert evaluation.get_evaluation(ws, eval_id).status == "done"


def test_served_fine_tune_through_llama_cpp_matches_in_process(trained, engine, tmp_path):
    """export --serve llamacpp, then the printed llama_cpp.server command with the GGUF LoRA answers like the local adapter."""
    from core.adapters import adapter_path
    from core.engines.serve import export_for_serving

    ws, run_id = trained
    plan = export_for_serving(ws, run_id, "llamacpp", tmp_path / "serve")
    (lora,) = plan.files
    assert lora.exists() and lora.suffix == ".gguf"
    assert any(c.startswith("llama-server -m ") and "--lora" in c for c in plan.commands)
    assert any("llama_cpp.server" in c and "--lora_path" in c for c in plan.commands)
    from core.models import embedded_generator_gguf

    process, url = start_server(embedded_generator_gguf(), plan.name, lora)
    try:
        from core.engines.registry import EngineSpec

        served = open_engine(EngineSpec("openai", url, plan.name), ws)
        prompt = build_messages("Summarise: The Harbor Bridge opened in 1932 and carries eight lanes of traffic.")
        remote = generate_many(served, [GenerationRequest("ft", prompt)], SETTINGS)["ft"]
        local = generate_many(engine, [GenerationRequest("ft", prompt, str(adapter_path(ws, run_id)))], SETTINGS)["ft"]
        assert remote.error is None and remote.text == local.text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_ollama_plan_writes_a_modelfile_with_the_gguf_adapter(trained, tmp_path):
    from core.engines.serve import export_for_serving
    from core.models import embedded_generator_gguf

    ws, run_id = trained
    plan = export_for_serving(ws, run_id, "ollama", tmp_path / "ollama")
    modelfile = (plan.folder / "Modelfile").read_text()
    assert f"FROM {embedded_generator_gguf()}" in modelfile and f"ADAPTER ./{plan.name}-lora.gguf" in modelfile
    assert (plan.folder / f"{plan.name}-lora.gguf").exists()
    assert plan.commands[0].endswith(f"ollama create {plan.name} -f Modelfile")
    assert os.path.getsize(plan.folder / f"{plan.name}-lora.gguf") > 10_000


def test_the_cpu_variant_in_use_is_the_best_one_that_runs_here():
    """ggml ranks its CPU variants by the features the CPU advertises; an AMX Xeon VM advertised AMX and then raised
    SIGILL on `tilezero`. The variant in use must pass the probe, and every better-ranked one must have failed it."""
    from core.engines import llamacpp

    lib = llamacpp.library_folder()
    ranked = llamacpp.ranked_variants(lib)
    chosen = llamacpp.working_variant()
    assert chosen in ranked
    assert llamacpp.probe_variant(chosen) == 0
    assert all(llamacpp.probe_variant(better) != 0 for better in ranked[: ranked.index(chosen)])
    # the server process is started in a folder where the chosen variant is the only one to find
    assert [p.name for p in llamacpp.backend_folder().iterdir()] == [chosen.name]
