"""QLoRA: the bitsandbytes config, and a real 4-bit run (CPU here; the same test runs on CUDA where it exists).

bitsandbytes 0.50.2 (pinned) quantizes and trains through NF4 weights on CPU with its PyTorch backend: measured
here, so QLoRA is enabled on CPU (core.training.qlora_support).
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from core import training as T
from core.adapters import adapter_path


def test_qlora_config_is_4bit_nf4_with_double_quantisation():
    import torch

    config = T.qlora_config("bfloat16")
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert T.qlora_config("float32").bnb_4bit_compute_dtype == torch.float32


def test_qlora_is_offered_with_the_pinned_bitsandbytes():
    from importlib import metadata

    ok, reason = T.qlora_support()
    assert metadata.version("bitsandbytes") == "0.50.2"
    assert ok, reason
    assert T.bnb_4bit_problem("cpu") is None


@pytest.fixture
def tiny_ws(tmp_path, tiny_family_models):
    from core.datasets import make_row, save_dataset
    from core.settings import get_workspace

    ws = get_workspace(tmp_path / "ws")
    rows = [make_row(f"What colour is item {i}?", "", f"Item {i} is blue.") for i in range(8)]
    save_dataset(ws, "rows", rows, kind="qa", heldout_fraction=0.0)
    return ws


def _qlora_run(ws, folder):
    lora = T.LoraSettings(r=8, alpha=16, dropout=0.0)
    training = T.TrainingSettings(base_model=str(folder), max_steps=3, batch_size=2, learning_rate=1e-2, warmup_steps=0, qlora=True,
                                  gradient_checkpointing=True)  # the large-model setting, exercised here too
    run = T.wait_for_run(ws, T.start_run(ws, "rows", lora, training).id, timeout=600, poll=0.5)
    assert run.status == "completed", run.error
    log = T.read_log(ws, run.id, 200)
    assert "QLoRA: 14 Linear layers hold 4-bit NF4 weights" in log  # 2 layers x 7 Linear, the head stays in full precision
    assert "gradient checkpointing on" in log
    steps = [e for e in T.read_progress(ws, run.id) if e.get("event") == "step"]
    assert len(steps) == 3 and all(e["loss"] == e["loss"] for e in steps)
    saved = json.loads((adapter_path(ws, run.id) / "adapter_config.json").read_text())
    assert set(saved["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    return run, log


@pytest.mark.slow
def test_qlora_trains_4bit_on_cpu(tiny_ws, tiny_family_models):
    _, log = _qlora_run(tiny_ws, tiny_family_models["llama"])
    assert "on cpu" in log


@pytest.mark.slow
def test_qlora_trains_4bit_on_cuda(tiny_ws, tiny_family_models):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    _, log = _qlora_run(tiny_ws, tiny_family_models["llama"])
    assert "on cuda" in log and ("compute bfloat16" in log or "compute float16" in log)
