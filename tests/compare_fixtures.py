"""Shared helpers for the compare tests: a workspace with the converted model, a LoRA adapter, a KB."""
from __future__ import annotations

from pathlib import Path

from core.settings import Workspace

KB_NAME = "oil"
KB_TEXT = (
    "The 1973 oil crisis began in October 1973 when the members of the Organization of Arab Petroleum "
    "Exporting Countries proclaimed an oil embargo. By the end of the embargo in March 1974, the price of oil "
    "had risen from US$3 per barrel to nearly $12 globally. The embargo caused an oil crisis, or shock, with "
    "many short- and long-term effects on global politics and the global economy.\n\n"
    "The Amazon rainforest covers much of the Amazon basin of South America. The basin is 7,000,000 square "
    "kilometres, of which 5,500,000 square kilometres are covered by the rainforest."
)


def make_adapter(workspace: Workspace, run_id: str = "fixture-run") -> Path:
    """A small non-zero LoRA adapter on q_proj, v_proj, saved like a training run saves it."""
    import torch
    from peft import LoraConfig, get_peft_model

    from core.models import GeneratorSpec, load_generator

    from tests.tune_support import record_run

    target = workspace.runs / run_id / "adapter"
    record_run(workspace, run_id)  # what the pages offer: a completed run's adapter
    if (target / "adapter_config.json").exists():
        return target
    torch.manual_seed(1234)
    model = load_generator(GeneratorSpec(dtype="float32"), workspace).model
    config = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trainable > 0
    peft_model.save_pretrained(target)
    return target


def make_broken_adapter(workspace: Workspace) -> Path:
    target = workspace.runs / "broken-run" / "adapter"
    target.mkdir(parents=True, exist_ok=True)
    (target / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}')
    (target / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    return target


def make_kb(workspace: Workspace) -> None:
    from core.knowledge import ingest_files, list_knowledge_bases, load_sentence_embedder
    from core.settings import get_workspace
    from tests.tune_support import MODEL_CACHE

    if any(kb.name == KB_NAME for kb in list_knowledge_bases(workspace)):
        return
    embedder = load_sentence_embedder(workspace=get_workspace(MODEL_CACHE))  # ONNX export shared by the tests
    from tests.tune_support import workspace_with_model

    workspace_with_model(workspace.root)  # links the export just made, so the app's queries reuse it
    results = ingest_files(workspace, KB_NAME, [("oil_and_amazon.txt", KB_TEXT.encode())], embedder)
    assert results[0].status == "added", results[0].message


def prepare_workspace(root: Path, with_kb: bool = True) -> Workspace:
    """A workspace linked to the once-converted embedded model (tests/tune_support.py), with an adapter and a KB."""
    from tests.tune_support import workspace_with_model

    workspace = workspace_with_model(root)
    make_adapter(workspace)
    if with_kb:
        make_kb(workspace)
    return workspace
