"""The pre-launch plan: every check that can fail before a run starts, plus parameter, time and memory estimates."""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import StudioError
from core.estimate import CPU_LORA_TOKENS_PER_S  # the one measured speed (Decide's estimate uses it too)
from core.models import cuda_available
from core.settings import Workspace
from core.training.examples import encode_row
from core.training.facts import ModelFacts, lora_parameter_count, model_facts, resolve_lora
from core.training.hparams import LoraSettings, TrainingSettings
from core.training.records import list_runs, read_progress

# CPU_LORA_TOKENS_PER_S was measured on SmolLM2-135M: estimates scale it by model size until a finished run of the
# model on this machine gives a measured figure (measured_tokens_per_s).
_REFERENCE_PARAMS = 134_515_008  # SmolLM2-135M


@dataclass(frozen=True)
class RunPlan:
    trainable_params: int
    total_params: int
    train_rows: int
    total_steps: int
    tokens: int
    tokens_per_s: float
    tokens_per_s_basis: str
    est_seconds: float
    est_memory_gb: float
    device: str

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_params / max(1, self.total_params)


def measured_tokens_per_s(workspace: Workspace, base_model: str) -> float | None:
    """tokens/s of the latest finished run of this base model on this machine."""
    for run in list_runs(workspace):
        if run.base_model == base_model and run.status in ("completed", "cancelled"):
            events = [e for e in read_progress(workspace, run.id) if e.get("event") == "step" and e.get("tokens_per_s")]
            if len(events) >= 3:
                return float(events[-1]["tokens_per_s"])
    return None


def plan_run(
    workspace: Workspace, dataset_id: str, lora: LoraSettings, training: TrainingSettings, facts: ModelFacts | None = None
) -> RunPlan:
    """Every check that can fail before launch, plus trainable parameters and time/memory estimates."""
    from core.datasets.files import validate_rows
    from core.datasets.store import load_dataset_rows

    # The dataset first: a mistyped name fails at once, not after the model's facts (a first use converts the
    # embedded model: 31 s for `train --dataset nope` in a new workspace, before this order).
    rows = load_dataset_rows(workspace, dataset_id, "train")
    if not rows:
        raise StudioError(f"The dataset {dataset_id!r} has no training rows; build or import rows first.")
    report = validate_rows(enumerate(rows, start=1), max_length=10**9)
    if report.errors:
        line, message = report.errors[0]
        raise StudioError(f"Training row {line} of {dataset_id!r}: {message}. Fix the dataset and save it again.")
    facts = facts or model_facts(workspace, training.base_model)
    training.validate(facts.max_length)
    lora = resolve_lora(lora, facts)
    lora.validate(facts.linear_names)
    trainable = lora_parameter_count(facts, lora)
    if trainable <= 0:
        raise StudioError("These settings train 0 parameters; pick target modules the model has.")
    from core.families import load_tokenizer

    tokenizer = load_tokenizer(facts.path, facts.model_type)
    sample = rows[:: max(1, len(rows) // 64)]
    lengths = [len(encode_row(tokenizer, row, training.max_length)["input_ids"]) for row in sample]
    avg_len = sum(lengths) / len(lengths)
    per_step_rows = training.batch_size * training.grad_accum
    if training.max_steps:
        steps = training.max_steps
    else:
        n = len(rows)
        if training.packing:
            n = max(1, math.ceil(n * avg_len / training.max_length))
        steps = max(1, math.ceil(math.ceil(n / training.batch_size) / training.grad_accum * training.epochs))
    # padding to the longest row of each batch costs roughly up to the longest sampled row
    padded_len = training.max_length if training.packing else min(training.max_length, (avg_len + max(lengths)) / 2)
    tokens = int(steps * per_step_rows * padded_len)
    device = "cuda" if cuda_available() else "cpu"
    measured = measured_tokens_per_s(workspace, training.base_model)
    if measured:
        tps, basis = measured, "measured by the last run of this model on this machine"
    else:
        tps = CPU_LORA_TOKENS_PER_S * _REFERENCE_PARAMS / max(facts.total_params, 1)
        basis = f"~{CPU_LORA_TOKENS_PER_S:.0f} tokens/s measured for SmolLM2-135M LoRA on a 2-core CPU, scaled by model size"
        if device == "cuda":
            tps *= 20
            basis += " (x20 guess for a GPU)"
    bytes_per = 0.55 if training.qlora else (2 if device == "cuda" else 4)
    weights = facts.total_params * bytes_per
    adapter_state = trainable * 16  # fp32 weight + grad + two Adam moments
    # activations kept for backward: ~34 * seq * batch * hidden bytes per layer at 16 bit (Korthikanti et al. 2022), x2 for fp32
    act = 34 * padded_len * training.batch_size * facts.hidden_size * facts.num_layers * (2 if device == "cpu" else 1)
    memory = (weights + adapter_state + act) / 2**30 + 0.5  # + runtime overhead
    return RunPlan(
        trainable_params=trainable, total_params=facts.total_params, train_rows=len(rows), total_steps=steps, tokens=tokens,
        tokens_per_s=tps, tokens_per_s_basis=basis, est_seconds=tokens / tps + 15, est_memory_gb=memory, device=device,
    )
