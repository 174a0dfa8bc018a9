"""Run settings, pre-launch refusals, the one-run lock and crash detection. Reads the model config and tokenizer only
(the workspace has no weights, so a check that started loading them would fail here)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from core import training as T
from core.adapters import adapter_path, find_adapters
from core.datasets import save_dataset
from core.errors import StudioError
from tune_support import style_rows, workspace_with_model_config


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The embedded model's config and tokenizer without weights: facts and plans must never need them."""
    ws = workspace_with_model_config(tmp_path_factory.mktemp("tune-unit"))
    rows = style_rows(12, max_input_chars=300)
    save_dataset(ws, "style", rows, kind="style", style_rule="bullets3_risk")
    return ws


@pytest.fixture(scope="module")
def facts(ws):
    return T.model_facts(ws)


def test_model_facts_list_the_real_layer_names(facts):
    assert facts.family == "Llama / SmolLM" and facts.model_type == "llama"
    assert facts.target_sets["all linear"] == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert set(facts.target_sets["all linear"]) <= set(facts.linear_names)
    assert "lm_head" not in facts.linear_names
    assert facts.max_length == 8192 and facts.num_layers == 30
    # q_proj 576->576, k/v 576->192 (3 kv heads x 64): r * (in + out) per layer
    assert T.lora_parameter_count(facts, T.LoraSettings(r=8, target_modules=("q_proj", "v_proj"))) == 30 * 8 * (576 + 576 + 576 + 192)


@pytest.mark.parametrize(
    "lora, training, message",
    [
        (T.LoraSettings(r=0), T.TrainingSettings(), "rank r must be at least 1"),
        (T.LoraSettings(), T.TrainingSettings(learning_rate=0.0), "learning rate must be above 0"),
        (T.LoraSettings(), T.TrainingSettings(learning_rate=-1e-4), "learning rate must be above 0"),
        (T.LoraSettings(), T.TrainingSettings(batch_size=0), "batch size must be at least 1"),
        (T.LoraSettings(), T.TrainingSettings(max_length=9000), "above the model's context of 8192"),
        (T.LoraSettings(target_modules=("q_proj", "query_key_value")), T.TrainingSettings(), "no layer named query_key_value"),
        (T.LoraSettings(target_set="mlp"), T.TrainingSettings(), "Unknown target set"),
        (T.LoraSettings(), T.TrainingSettings(precision="int3"), "Unknown precision"),
        (T.LoraSettings(), T.TrainingSettings(processes=-1), "Processes must be"),
    ],
)
def test_bad_settings_are_refused_before_launch(ws, facts, lora, training, message):
    with pytest.raises(StudioError, match=message):
        T.plan_run(ws, "style", lora, training, facts=facts)
    assert not list(ws.runs.glob("run-*"))


def test_bad_datasets_are_refused(ws, facts):
    with pytest.raises(StudioError, match="No dataset"):
        T.plan_run(ws, "nope", T.LoraSettings(), T.TrainingSettings(), facts=facts)
    (ws.datasets / "style" / "train.jsonl").rename(ws.datasets / "style" / "train.bak")
    try:
        (ws.datasets / "style" / "train.jsonl").write_text("")
        with pytest.raises(StudioError, match="no training rows"):
            T.plan_run(ws, "style", T.LoraSettings(), T.TrainingSettings(), facts=facts)
        (ws.datasets / "style" / "train.jsonl").write_text(json.dumps({"instruction": "x", "output": ""}) + "\n")
        with pytest.raises(StudioError, match="row 1 .*empty output"):
            T.plan_run(ws, "style", T.LoraSettings(), T.TrainingSettings(), facts=facts)
    finally:
        (ws.datasets / "style" / "train.bak").replace(ws.datasets / "style" / "train.jsonl")


def test_plan_counts_parameters_and_estimates_time(ws, facts):
    lora, training = T.preset("demo")
    plan = T.plan_run(ws, "style", lora, training, facts=facts)
    assert plan.trainable_params == T.lora_parameter_count(facts, lora) > 0
    assert plan.total_steps == training.max_steps
    assert plan.tokens > 0 and 10 < plan.est_seconds < 3600 and 0.5 < plan.est_memory_gb < 8
    epochs = T.plan_run(ws, "style", lora, dataclasses.replace(training, max_steps=0, epochs=2, batch_size=3), facts=facts)
    assert epochs.total_steps == 2 * -(-plan.train_rows // 3)


def test_encode_row_masks_the_prompt_and_keeps_the_answer_when_cut():
    from transformers import AutoTokenizer

    from core.datasets import make_row
    from tune_support import converted_model_dir

    tokenizer = AutoTokenizer.from_pretrained(converted_model_dir())
    row = make_row("What does this passage say?", "word " * 600, "- a\n- b\n- c\nRisks: d")
    example = T.encode_row(tokenizer, row, max_length=128)
    assert len(example["input_ids"]) <= 128
    answer = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert "Risks: d" in tokenizer.decode(answer)
    assert example["labels"][0] == -100
    packed = T.pack_examples([example, example, example], 300)
    assert len(packed) == 2 and len(packed[0]["input_ids"]) == 2 * len(example["input_ids"])
    n = len(example["input_ids"])
    assert packed[0]["position_ids"] == list(range(n)) * 2  # restarts at each row: the packed rows stay apart


def _tiny_llama(seed=0):
    """A real (randomly initialised) 2-layer Llama: the attention and loss code paths of the embedded model, in ms."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=128, use_cache=False)
    return LlamaForCausalLM(config).train()


def test_fast_batches_give_the_plain_loss_and_gradients():
    """Logits only where a label follows (padded or padding-free rows): the model's own loss and gradients."""
    import torch

    from core.training.batches import (PaddingFreeCollator, TokenCountingCollator, completion_loss, logits_subset_ok,
                                      packed_attention_ok)

    model = _tiny_llama()
    assert packed_attention_ok(model)
    lengths, prompts = (11, 7, 15), (4, 3, 6)
    batch = []
    for i, (n, prompt) in enumerate(zip(lengths, prompts)):
        ids = [(5 * i + 3 * k) % 60 + 2 for k in range(n)]
        batch.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    padded = TokenCountingCollator(pad_id=0)(batch)
    loss = model(**padded).loss
    loss.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    answer_tokens = sum(n - p for n, p in zip(lengths, prompts))
    assert logits_subset_ok(model)
    for collator in (PaddingFreeCollator(), TokenCountingCollator(pad_id=0, keep_logits=True)):
        inputs = collator(batch)
        if isinstance(collator, PaddingFreeCollator):
            assert inputs["input_ids"].shape == (1, sum(lengths)) and collator.tokens == sum(lengths)  # no pad token
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        assert outputs.logits.shape[0] == answer_tokens  # the prompts and pads got no vocabulary projection
        own_loss = completion_loss(outputs, labels, (labels[..., 1:] != -100).sum())
        own_loss.backward()
        assert own_loss.item() == pytest.approx(loss.item(), rel=1e-5)
        for p, g in zip(model.parameters(), expected):
            assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6)
        model.zero_grad()


def test_packed_attention_check_refuses_a_model_that_would_mix_examples():
    from core.training.batches import packed_attention_ok

    model = _tiny_llama()
    model.config.use_cache = True  # with a key/value cache transformers builds a plain causal mask over both rows
    assert not packed_attention_ok(model)


def test_one_run_at_a_time_and_stale_locks(ws):
    T.acquire_lock(ws, "first", os.getpid())  # this live process holds the lock
    try:
        with pytest.raises(StudioError, match="already training"):
            T.acquire_lock(ws, "second", os.getpid())
        with pytest.raises(StudioError, match="already training"):
            T.start_run(ws, "style", *T.preset("demo"))
    finally:
        T.release_lock(ws, os.getpid())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ws.runs / T.LOCK_NAME).write_text(json.dumps({"run_id": "old", "pid": dead.pid}))
    T.acquire_lock(ws, "third", os.getpid())  # the stale lock is cleared
    assert T.read_lock(ws)["run_id"] == "third"
    T.release_lock(ws)


def test_a_dead_worker_is_recorded_as_failed(ws):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with T.open_runs_db(ws) as conn:
        conn.execute(
            "INSERT INTO runs (id, dataset_id, base_model, config, status, pid, created_at) VALUES ('crashed', 'style', 'x', '{}', 'running', ?, 'now')",
            (dead.pid,),
        )
    (ws.runs / "crashed").mkdir()
    (ws.runs / "crashed" / "train.log").write_text("step 3\nKilled\n")
    run = T.get_run(ws, "crashed")
    assert run.status == "failed" and "ended without finishing" in run.error and "Killed" in run.error
    with pytest.raises(StudioError, match="no adapter"):
        adapter_path(ws, "crashed")
    assert find_adapters(ws) == []
    T.delete_run(ws, "crashed")
    assert not (ws.runs / "crashed").exists()
    with pytest.raises(StudioError, match="No run"):
        T.get_run(ws, "crashed")


def _cli(ws, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "core", "--workspace", str(ws.root), *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_import_list_and_clear_errors(ws, tmp_path):
    good = tmp_path / "rows.jsonl"
    good.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f"A{i}"}) + "\n" for i in range(10)))
    done = _cli(ws, "dataset", "import", str(good), "--out", "cli-rows", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["train_rows"] == 8
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "completion": ""}) + "\n" + json.dumps({"prompt": "y", "completion": "z"}) + "\n")
    done = _cli(ws, "dataset", "import", str(bad), "--out", "bad")
    assert done.returncode == 2 and "line 1: empty output" in done.stdout and "error:" in done.stderr
    assert "cli-rows" in _cli(ws, "dataset", "list").stdout
    done = _cli(ws, "train", "--dataset", "nope", "--max-steps", "2")
    assert done.returncode == 2 and "No dataset named 'nope'" in done.stderr
    done = _cli(ws, "runs", "show", "nope")
    assert done.returncode == 2 and "No run named" in done.stderr


def test_a_run_follows_the_cores_other_processes_take(monkeypatch, tmp_path):
    """Threads are re-chosen before every step (a 2-thread run collapsed 92 -> 17 tokens/s when a job started beside it),
    unless the user fixed them (STUDIO_TRAIN_THREADS) or ranks share the cores."""
    import torch

    from core import machine
    from core.training import worker

    monkeypatch.delenv(worker.THREADS_ENV, raising=False)  # set by tests/conftest.py under xdist
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(machine, "free_cores", lambda **_: 1)
        assert worker.retune_threads(2) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(machine, "free_cores", lambda **_: 2)
        writer = worker.ProgressWriter(tmp_path / "progress.jsonl")
        following = worker.make_callback(tmp_path, writer, None, 0.0, threads=1, adapt_threads=True)
        following.on_step_begin(None, None, None)
        assert following.threads == 2 and torch.get_num_threads() == 2
        torch.set_num_threads(1)
        fixed = worker.make_callback(tmp_path, writer, None, 0.0, threads=1, adapt_threads=False)
        fixed.on_step_begin(None, None, None)
        assert fixed.threads == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv(worker.THREADS_ENV, "1")  # the user's fixed count wins over the free cores
        assert worker.retune_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
