"""Real LoRA runs on the embedded SmolLM2-135M (marked slow): adapter, progress, cancel, kill -9 + resume,
merge equivalence, GGUF round trip, and the demo preset teaching a format.

Run with: HF_HUB_OFFLINE=1 python -m pytest -q -m slow tests/test_training_slow.py
"""
from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest

from core import training as T
from core.adapters import adapter_path, find_adapters
from core.export import load_base_and_adapter
from core.datasets import follows_style, load_dataset_rows, save_dataset
from tests.conftest import SQUAD_FULL, needs_full_squad36
from tune_support import style_follow_rates, style_rows, workspace_with_model

pytestmark = pytest.mark.slow
TINY = dataclasses.replace(T.TrainingSettings(), learning_rate=1e-3, max_steps=6, batch_size=1, max_length=160, save_steps=2, warmup_steps=0)
LORA = T.LoraSettings(r=8, alpha=16, dropout=0.0, target_modules=("q_proj", "v_proj"))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    ws = workspace_with_model(tmp_path_factory.mktemp("tune-slow"))
    rows = style_rows(16, max_input_chars=250)
    save_dataset(ws, "tiny", rows, kind="style", style_rule="bullets3_risk", heldout_fraction=0.25)
    return ws


def _wait_for_step(ws, run_id, step, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [e["step"] for e in T.read_progress(ws, run_id) if e.get("event") == "step"]
        if steps and steps[-1] >= step:
            return steps[-1]
        assert T.get_run(ws, run_id).status in T.ACTIVE, T.read_log(ws, run_id)
        time.sleep(0.2)
    raise AssertionError(f"step {step} not reached")


def _logits(model, tokenizer, text="The oil crisis of 1973 began when"):
    import torch

    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


def test_short_run_trains_only_lora_and_merges_exactly(ws, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    # 4 rows, batch 2: 3 epochs in 6 steps, so the last epoch's loss is on the same rows as the first's
    save_dataset(ws, "four", load_dataset_rows(ws, "tiny", "train")[:5], kind="style", heldout_fraction=0.2)
    run = T.start_run(ws, "four", LORA, dataclasses.replace(TINY, batch_size=2))
    run = T.wait_for_run(ws, run.id, timeout=600, poll=0.5)
    assert run.status == "completed", run.error
    steps = [e for e in T.read_progress(ws, run.id) if e.get("event") == "step"]
    assert [e["step"] for e in steps] == list(range(1, 7))
    assert set(steps[0]) >= {"step", "total", "loss", "learning_rate", "tokens_per_s", "elapsed", "eta", "epoch"}
    first, last = (steps[0]["loss"] + steps[1]["loss"]) / 2, (steps[-1]["loss"] + steps[-2]["loss"]) / 2
    print(f"loss {first:.3f} -> {last:.3f}; {steps[-1]['tokens_per_s']:.0f} tokens/s")
    assert last < first
    adapter = adapter_path(ws, run.id)
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    assert saved and all("lora_" in name for name in saved)
    assert any(float(t.abs().max()) > 0 for name, t in saved.items() if "lora_B" in name)  # B starts at 0: it learned
    assert [a.run_id for a in find_adapters(ws)] == [run.id] and run.adapter_size > 0
    assert T.read_lock(ws) is None

    # only LoRA parameters changed: the base weights inside the PeftModel equal the original model's
    tokenizer, peft_model = load_base_and_adapter(ws, run.id)
    base = AutoModelForCausalLM.from_pretrained(T.model_facts(ws).path, dtype=torch.float32)
    base_state = base.state_dict()
    for name, tensor in peft_model.named_parameters():
        if "lora_" in name:
            continue
        plain = name.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(tensor, base_state[plain]), name
    tuned = _logits(peft_model, tokenizer)
    assert not torch.allclose(tuned, _logits(base, tokenizer), atol=1e-3)  # the adapter does change the output

    # merged model == base + adapter; GGUF of it loads back to the same logits
    merged_dir = T.export_merged(ws, run.id, tmp_path / "merged")
    assert (merged_dir / "Modelfile").read_text().startswith("FROM .")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    assert torch.allclose(_logits(merged, tokenizer), tuned, atol=1e-4)
    gguf = T.export_gguf(ws, run.id, merged_dir, tmp_path / "tuned.gguf")
    from_gguf = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf.name)
    assert torch.allclose(_logits(from_gguf, tokenizer), tuned, atol=1e-4)
    assert (tmp_path / "tuned.Modelfile").read_text().startswith("FROM ./tuned.gguf")
    T.delete_run(ws, run.id)
    assert not T.run_dir(ws, run.id).exists() and T.list_runs(ws) == []


def test_cancel_then_kill_9_then_resume_continues_from_the_checkpoint(ws):
    training = dataclasses.replace(TINY, max_steps=12)
    run = T.start_run(ws, "tiny", LORA, training)
    with pytest.raises(Exception, match="already training"):
        T.start_run(ws, "tiny", LORA, training)
    with pytest.raises(Exception, match="cancel it before deleting"):
        T.delete_run(ws, run.id)
    with pytest.raises(Exception, match="cancel it before resuming"):
        T.resume_run(ws, run.id)
    _wait_for_step(ws, run.id, 3)
    T.cancel_run(ws, run.id)
    run = T.wait_for_run(ws, run.id, timeout=120, poll=0.3)
    assert run.status == "cancelled"
    stopped_at = [e for e in T.read_progress(ws, run.id) if e.get("event") == "end"][-1]["step"]
    assert 3 <= stopped_at <= 5  # within about one step of the request
    assert T.last_checkpoint(ws, run.id).name == f"checkpoint-{stopped_at}"

    T.resume_run(ws, run.id)
    reached = _wait_for_step(ws, run.id, stopped_at + 3)
    checkpoint = T.last_checkpoint(ws, run.id)
    os.kill(T.get_run(ws, run.id).pid, signal.SIGKILL)
    time.sleep(0.5)
    run = T.get_run(ws, run.id)
    assert run.status == "failed" and "ended without finishing" in run.error
    ckpt_step = int(T.last_checkpoint(ws, run.id).name.split("-")[1])
    assert ckpt_step >= int(checkpoint.name.split("-")[1]) and ckpt_step > stopped_at
    print(f"cancelled at {stopped_at}, killed at {reached}+, resuming from checkpoint-{ckpt_step}")

    T.resume_run(ws, run.id)
    run = T.wait_for_run(ws, run.id, timeout=300, poll=0.3)
    assert run.status == "completed", run.error
    steps = [e for e in T.read_progress(ws, run.id) if e.get("event") == "step"]
    # resume rewinds progress.jsonl to the checkpoint: each step once, the curve never doubles back
    assert [e["step"] for e in steps] == list(range(1, 13))
    after = steps[ckpt_step:]
    assert after[0]["elapsed"] > 0  # elapsed time carries over across sessions
    assert all(a["elapsed"] <= b["elapsed"] for a, b in zip(steps, steps[1:]))
    # A completed run leaves a catalogue backup holding it as completed. The worker writes it just after it records the
    # status, hence a short wait (a fresh-clone run once looked in between). Merged from tests/test_reliability.py's
    # kill -9 test, which trained a second model for the same kill -> resume -> one curve checks as above.
    deadline = time.monotonic() + 60
    while not _backup_holds(ws, run.id, "completed") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _backup_holds(ws, run.id, "completed")


def _backup_holds(ws, run_id: str, status: str) -> bool:
    import sqlite3

    from core.storage import list_backups

    backups = list_backups(ws)
    if not backups:
        return False
    with sqlite3.connect(f"file:{backups[0]}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row is not None and row[0] == status


@needs_full_squad36  # 130 passages spread over all 36 articles: the thresholds below were measured on that spread
def test_demo_preset_teaches_the_format(ws):
    """The demo preset on a squad36 style dataset: held-out format-following, base vs tuned."""
    import torch

    from core.training.worker import choose_threads

    rows = style_rows(130, max_input_chars=400, root=SQUAD_FULL)
    save_dataset(ws, "squad-style", rows, kind="style", style_rule="bullets3_risk", heldout_fraction=0.1, seed=0)
    lora, training = T.preset("demo")
    started = time.monotonic()
    run = T.wait_for_run(ws, T.start_run(ws, "squad-style", lora, training).id, timeout=1500, poll=1.0)
    assert run.status == "completed", run.error
    steps = [e for e in T.read_progress(ws, run.id) if e.get("event") == "step"]
    torch.set_num_threads(choose_threads())  # the cores nobody else uses (core.machine)
    # Greedy without a repetition penalty: the Compare default of 1.1 penalises the "-" token after its first use and
    # measurably pushes the tuned model to stop after 2 bullets (measured: tuned 0.0 at 1.1 vs 0.8 at 1.0 on one run).
    # All 13 held-out prompts, 170 new tokens: the tuned answers copy whole passage sentences, and at 110 tokens 2 of 13
    # were cut before their third bullet. The preset's 60 steps at lr 2e-3 followed on 13/13 (two seeds; 50 steps: 7/13;
    # the earlier 100 steps at 1e-3: 12/13; bench/RESULTS_train.md).
    rates = style_follow_rates(ws, run.id, "squad-style", "bullets3_risk", limit=13, max_new_tokens=170, repetition_penalty=1.0)
    print(f"demo preset: {run.duration_s:.0f} s training, {steps[-1]['tokens_per_s']:.0f} tokens/s, "
          f"format followed on {rates['n']} held-out prompts: base {rates['base']:.2f}, tuned {rates['tuned']:.2f} "
          f"(total {time.monotonic() - started:.0f} s)")
    assert rates["tuned"] >= 0.6 and rates["tuned"] - rates["base"] >= 0.4


def test_dataset_build_from_ingested_pdfs_via_cli(tmp_path):
    """Documents -> knowledge base (real MiniLM embedder) -> `python -m core dataset build` style rows."""
    import json
    import subprocess
    import sys

    from core.datasets import dataset_meta
    from core.knowledge import ingest_files, load_sentence_embedder
    from core.settings import get_workspace
    from tests.tune_support import MODEL_CACHE
    from tune_support import SQUAD

    ws = workspace_with_model(tmp_path / "ws")
    embedder = load_sentence_embedder(workspace=get_workspace(MODEL_CACHE))  # ONNX export shared by the tests
    files = [(name, (SQUAD / "docs" / name).read_bytes()) for name in ("Black_Death.pdf", "Chloroplast.pdf")]
    results = ingest_files(ws, "squad", files, embedder)
    assert all(r.status == "added" for r in results), results
    done = subprocess.run([sys.executable, "-m", "core", "--workspace", str(ws.root), "dataset", "build", "--kb", "squad", "--kind", "style",
                           "--style", "answer in 3 bullets, then one line of risks", "--out", "pdf-style", "--json"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["train_rows"] > 5 and info["style_rule"] == "bullets3_risk"
    rows = load_dataset_rows(ws, "pdf-style", "train")
    assert all(follows_style(r["output"], "bullets3_risk") for r in rows)
    assert {r["source"]["document"] for r in rows} <= {"Black_Death.pdf", "Chloroplast.pdf"} and all(r["source"]["page"] >= 1 for r in rows)
    assert dataset_meta(ws, "pdf-style")["origin"] == "kb:squad"
