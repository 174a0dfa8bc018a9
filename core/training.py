"""LoRA / QLoRA fine-tuning runs: settings, pre-launch checks, a background process, status and export.

A run is a separate process (`python -m core.train_worker RUN_DIR`) so the UI stays responsive, a
crash cannot take the app down and a reloaded tab reconnects: everything the UI shows comes from
`runs/<id>/` (config.json, progress.jsonl, train.log, checkpoints/, adapter/) and the `runs` table.
Cancel = a STOP file the worker's TrainerCallback checks after every optimizer step; it saves a
checkpoint and ends. Resume = the same run id continues from its last checkpoint.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from core.errors import StudioError
from core.models import EMBEDDED_GENERATOR, GeneratorSpec, cuda_available, resolve_generator_path
from core.settings import Workspace
from core.storage import atomic_write_json, atomic_write_text, connect, ensure_schema, read_json, transaction

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    base_model TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    final_loss REAL,
    started_at TEXT,
    finished_at TEXT,
    duration_s REAL,
    adapter_size INTEGER,
    error TEXT,
    created_at TEXT NOT NULL
);
"""

STATUSES = ("queued", "running", "cancelled", "failed", "completed")
ACTIVE = ("queued", "running")
# Measured on the project's 2-core CPU: LoRA on SmolLM2-135M fp32 trains ~150-180 tokens/s (DESIGN.md).
# Used for estimates until a finished run on this machine gives a measured figure.
DEFAULT_CPU_TOKENS_PER_S = 165.0
_REFERENCE_PARAMS = 134_515_008  # SmolLM2-135M
LOCK_NAME = ".run.lock"
# Measured with the pinned bitsandbytes 0.50.2 on this CPU (tests/test_qlora.py): see qlora_support().
QLORA_CPU_NOTE = (
    "4-bit NF4 base weights with LoRA adapters through bitsandbytes' CPU backend (pure PyTorch here: it saves "
    "memory, not time). Measured with bitsandbytes 0.50.2 on this CPU: a 4-bit model trains and its loss falls."
)


@functools.lru_cache(maxsize=1)
def _bnb_4bit_problem(device: str) -> str | None:
    """None when bitsandbytes can quantize and dequantize NF4 on `device`, else why not (checked once, ~1 s)."""
    try:
        import torch
        import bitsandbytes.functional as bnb_functional

        weights = torch.randn(64, 64, device=device)
        packed, state = bnb_functional.quantize_4bit(weights, quant_type="nf4")
        error = float((bnb_functional.dequantize_4bit(packed, state) - weights).abs().mean())
    except Exception as problem:  # an old wheel without a CPU backend, a missing library, ...
        return f"bitsandbytes cannot run 4-bit NF4 on {device}: {type(problem).__name__}: {problem}"
    return None if error < 0.2 else f"bitsandbytes' 4-bit NF4 on {device} gave a reconstruction error of {error:.2f}"


def qlora_support() -> tuple[bool, str]:
    """(available, reason). CUDA: bitsandbytes' NF4 kernels; CPU: its CPU backend, if this install has one; MPS: no."""
    from core.models import mps_available

    if cuda_available():
        problem = _bnb_4bit_problem("cuda")
        return (False, problem) if problem else (True, "4-bit NF4 base weights with LoRA adapters in bf16 (bitsandbytes).")
    if mps_available():
        return False, "QLoRA needs bitsandbytes, which has no Apple MPS backend; use LoRA on MPS."
    # The page asks on every render and `import bitsandbytes` takes 5-35 s here, so decide by version; the worker
    # runs the real check (_bnb_4bit_problem) before it loads the model.
    from importlib import metadata

    try:
        version = tuple(int(part) for part in metadata.version("bitsandbytes").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False, "QLoRA needs bitsandbytes (pinned 0.50.2 in requirements.txt), which is not installed. Use LoRA (fp32)."
    if version < (0, 50):
        return False, f"QLoRA on CPU needs bitsandbytes 0.50 or newer (found {metadata.version('bitsandbytes')}). Use LoRA (fp32)."
    return True, QLORA_CPU_NOTE


def qlora_config(compute_dtype: str = "bfloat16"):
    """The bitsandbytes config QLoRA loads the base with: 4-bit NF4, double quantisation (Dettmers et al. 2023)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class LoraSettings:
    r: int = field(default=16, metadata={"help": "adapter rank: more = more capacity, more parameters"})
    alpha: int = field(default=32, metadata={"help": "scale of the adapter update (alpha / r); 2*r is common"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the adapter input"})
    target_modules: tuple[str, ...] = field(
        default=(), metadata={"help": "which Linear layers get adapters; empty = the model family's target set"}
    )
    target_set: str = field(
        default="all linear", metadata={"help": "when no modules are named: 'all linear' or 'attention' layers of the model's family"}
    )

    def validate(self, available: Iterable[str] | None = None) -> None:
        if self.r <= 0:
            raise StudioError(f"LoRA rank r must be at least 1 (got {self.r}).")
        if self.alpha <= 0:
            raise StudioError(f"LoRA alpha must be positive (got {self.alpha}).")
        if not 0.0 <= self.dropout < 1.0:
            raise StudioError(f"LoRA dropout must be in [0, 1) (got {self.dropout}).")
        from core.families import TARGET_SETS

        if self.target_set not in TARGET_SETS:
            raise StudioError(f"Unknown target set {self.target_set!r}; choose {' or '.join(TARGET_SETS)}.")
        if not self.target_modules:
            raise StudioError("Pick at least one target module for the adapters (or leave them empty to use the model family's set).")
        if available is not None:
            available = set(available)
            missing = [name for name in self.target_modules if name not in available]
            if missing:
                raise StudioError(
                    f"The model has no layer named {', '.join(missing)}; its Linear layers are {', '.join(sorted(available))}. "
                    "peft would silently skip these names and train nothing there."
                )


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class TrainingSettings:
    base_model: str = field(default=EMBEDDED_GENERATOR, metadata={"help": "the model the adapter is trained on"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate (linear decay after warm-up)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training rows (ignored when max steps > 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps; 0 = use epochs"})
    batch_size: int = field(default=4, metadata={"help": "rows per forward pass"})
    grad_accum: int = field(default=1, metadata={"help": "forward passes per optimizer step"})
    max_length: int = field(default=384, metadata={"help": "tokens per row (prompt + answer); longer inputs are cut"})
    packing: bool = field(default=False, metadata={"help": "concatenate rows into full-length blocks (fewer pad tokens)"})
    seed: int = field(default=0, metadata={"help": "seed for shuffling, dropout and adapter init"})
    completion_only_loss: bool = field(default=True, metadata={"help": "learn only the answers, not the prompts"})
    qlora: bool = field(default=False, metadata={"help": "4-bit NF4 base weights (bitsandbytes): far less memory for large models"})
    save_steps: int = field(default=10, metadata={"help": "checkpoint every N steps (the last 2 are kept) for resume"})
    warmup_steps: int = field(default=2, metadata={"help": "linear warm-up steps"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in backward: ~30% slower, far less memory (large models)"}
    )
    precision: str = field(default="auto", metadata={"help": "auto: bf16 on CUDA with bf16, fp16 on older GPUs, fp32 on CPU and MPS"})
    processes: int = field(default=0, metadata={"help": "data-parallel processes (accelerate/DDP); 0 = one per visible GPU, else 1"})

    def validate(self, model_max_length: int | None = None) -> None:
        if not self.learning_rate > 0:
            raise StudioError(f"The learning rate must be above 0 (got {self.learning_rate}).")
        if self.learning_rate > 0.1:
            raise StudioError(f"A learning rate of {self.learning_rate} diverges; use 1e-5 to 1e-2.")
        if self.max_steps < 0:
            raise StudioError("Max steps cannot be negative (0 = use epochs).")
        if self.max_steps == 0 and not self.epochs > 0:
            raise StudioError("Set epochs above 0 or max steps above 0.")
        if self.batch_size < 1:
            raise StudioError(f"The batch size must be at least 1 (got {self.batch_size}).")
        if self.grad_accum < 1:
            raise StudioError(f"Gradient accumulation must be at least 1 (got {self.grad_accum}).")
        if self.max_length < 32:
            raise StudioError(f"Max length {self.max_length} is too short; use at least 32 tokens.")
        if model_max_length is not None and self.max_length > model_max_length:
            raise StudioError(f"Max length {self.max_length} is above the model's context of {model_max_length} tokens.")
        if self.save_steps < 1:
            raise StudioError("Checkpoint every N steps needs N >= 1.")
        if self.precision not in PRECISIONS:
            raise StudioError(f"Unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}.")
        if not 0 <= self.processes <= 64:
            raise StudioError(f"Processes must be 0 (automatic) to 64 (got {self.processes}).")
        if self.qlora:
            ok, reason = qlora_support()
            if not ok:
                raise StudioError(reason)


# Sized on this 2-core CPU (measured, see bench/RESULTS_train.md and tests/test_training_slow.py):
# demo = ~50 steps of 2 short rows (~400 tokens/step at ~165 tokens/s, about 2 min) with a high
# LR so a 135M model picks up a format; quality = more rank, 2 epochs, lower LR. Both adapt every
# Linear layer of the model's family (core/families.py), so Phi-3's fused qkv_proj works as Llama's q_proj.
PRESETS: dict[str, tuple[LoraSettings, TrainingSettings]] = {
    "demo": (
        LoraSettings(r=16, alpha=32, dropout=0.0, target_set="all linear"),
        TrainingSettings(learning_rate=1e-3, max_steps=50, batch_size=2, grad_accum=1, max_length=320, save_steps=10, warmup_steps=3),
    ),
    "quality": (
        LoraSettings(r=32, alpha=64, dropout=0.05, target_set="all linear"),
        TrainingSettings(learning_rate=2e-4, epochs=2.0, max_steps=0, batch_size=4, grad_accum=4, max_length=512, save_steps=25, warmup_steps=10),
    ),
}


def preset(name: str) -> tuple[LoraSettings, TrainingSettings]:
    if name not in PRESETS:
        raise StudioError(f"Unknown preset {name!r}; choose {' or '.join(PRESETS)}.")
    return PRESETS[name]


def settings_from_dict(payload: dict) -> tuple[LoraSettings, TrainingSettings]:
    lora = dict(payload.get("lora", {}))
    if "target_modules" in lora:
        lora["target_modules"] = tuple(lora["target_modules"])
    train = payload.get("training", {})
    known_l = {f.name for f in fields(LoraSettings)}
    known_t = {f.name for f in fields(TrainingSettings)}
    return LoraSettings(**{k: v for k, v in lora.items() if k in known_l}), TrainingSettings(**{k: v for k, v in train.items() if k in known_t})


# ---------------------------------------------------------------- model facts (no weights loaded)
@dataclass(frozen=True)
class ModelFacts:
    path: str
    linear_names: tuple[str, ...]
    max_length: int
    total_params: int
    hidden_size: int
    num_layers: int
    linear_shapes: dict  # short name -> list of (in, out), one per layer
    model_type: str = ""
    family: str = ""
    target_sets: dict = field(default_factory=dict)  # "all linear" / "attention" -> module names (core/families.py)
    config_hash: str = ""


def model_facts(workspace: Workspace, base_model: str = EMBEDDED_GENERATOR) -> ModelFacts:
    """Layer names, context and sizes from the config on the meta device: exact and instant (no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from core import families

    path = resolve_generator_path(GeneratorSpec(model_id=base_model), workspace)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise StudioError(f"Could not read the config of {base_model!r}: {error}") from error
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layers = families.linear_layers(model)
    modules = dict(model.named_modules())
    shapes = {short: [families.in_out_features(modules[p]) for p in paths] for short, paths in layers.items()}
    total = sum(p.numel() for p in model.parameters())
    model_type = getattr(config, "model_type", "") or ""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return ModelFacts(
        path=path,
        linear_names=tuple(sorted(shapes)),
        max_length=int(getattr(text_config, "max_position_embeddings", 2048) or 2048),
        total_params=int(total),
        hidden_size=int(getattr(text_config, "hidden_size", 0) or 0),
        num_layers=int(getattr(text_config, "num_hidden_layers", 0) or 0),
        linear_shapes=shapes,
        model_type=model_type,
        family=families.family_for(model_type).name,
        target_sets=families.target_sets(model_type, layers),
        config_hash=families.config_hash(families.read_config(path)),
    )


def resolve_lora(lora: LoraSettings, facts: ModelFacts) -> LoraSettings:
    """Name the target modules when the settings leave them to the family table (what the run records)."""
    if lora.target_modules:
        return lora
    return replace(lora, target_modules=tuple(facts.target_sets.get(lora.target_set) or facts.linear_names))


def lora_parameter_count(facts: ModelFacts, lora: LoraSettings) -> int:
    """A (r x in) + B (out x r) per adapted layer, as peft builds them."""
    lora = resolve_lora(lora, facts)
    return sum(lora.r * (i + o) for name in lora.target_modules for i, o in facts.linear_shapes.get(name, []))


# ---------------------------------------------------------------- tokenization (shared with the worker)
def encode_row(tokenizer, row: dict, max_length: int, completion_only_loss: bool = True) -> dict:
    """input_ids/labels for one row via the model's chat template; prompt tokens get label -100.

    If the row is too long, the *input* text is shortened so the answer (what we teach) always fits.
    """
    from core.datasets import make_row, row_messages

    current = row
    for _ in range(6):
        messages = row_messages(current)
        prompt_ids = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        full_ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        if len(full_ids) <= max_length or not current.get("input"):
            break
        keep = max(0, int(len(current["input"]) * max_length / len(full_ids) * 0.9) - 20)
        current = make_row(current["instruction"], current["input"][:keep], current["output"], current.get("source"))
    if full_ids[: len(prompt_ids)] != prompt_ids:
        # a template that renders the prompt differently once an answer follows (e.g. drops a generation header):
        # mask the longest common prefix, so no answer token is ever masked and no prompt token past it is taught
        common = next((i for i, (a, b) in enumerate(zip(full_ids, prompt_ids)) if a != b), min(len(full_ids), len(prompt_ids)))
        log.warning("The chat template renders the prompt differently with an answer; masking the %d shared tokens", common)
        prompt_len = min(common, len(full_ids) - 1)
    else:
        prompt_len = len(prompt_ids)
    full_ids = list(full_ids)[:max_length]
    labels = list(full_ids)
    if completion_only_loss:
        labels[: min(prompt_len, len(labels))] = [-100] * min(prompt_len, len(labels))
    return {"input_ids": full_ids, "labels": labels}


def pack_examples(examples: list[dict], max_length: int) -> list[dict]:
    """Concatenate examples into blocks of up to max_length tokens (labels kept per token)."""
    blocks, ids, labels = [], [], []
    for example in examples:
        if ids and len(ids) + len(example["input_ids"]) > max_length:
            blocks.append({"input_ids": ids, "labels": labels})
            ids, labels = [], []
        ids = ids + example["input_ids"]
        labels = labels + example["labels"]
    if ids:
        blocks.append({"input_ids": ids[:max_length], "labels": labels[:max_length]})
    return blocks


# ---------------------------------------------------------------- pre-launch plan
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
    from core.datasets import load_dataset_rows, validate_rows

    facts = facts or model_facts(workspace, training.base_model)
    training.validate(facts.max_length)
    lora = resolve_lora(lora, facts)
    lora.validate(facts.linear_names)
    trainable = lora_parameter_count(facts, lora)
    if trainable <= 0:
        raise StudioError("These settings train 0 parameters; pick target modules the model has.")
    rows = load_dataset_rows(workspace, dataset_id, "train")
    if not rows:
        raise StudioError(f"The dataset {dataset_id!r} has no training rows; build or import rows first.")
    report = validate_rows(enumerate(rows, start=1), max_length=10**9)
    if report.errors:
        line, message = report.errors[0]
        raise StudioError(f"Training row {line} of {dataset_id!r}: {message}. Fix the dataset and save it again.")
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
        tps = DEFAULT_CPU_TOKENS_PER_S * _REFERENCE_PARAMS / max(facts.total_params, 1)
        basis = "~165 tokens/s measured for SmolLM2-135M LoRA on a 2-core CPU, scaled by model size"
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


# ---------------------------------------------------------------- runs: records
@dataclass(frozen=True)
class RunInfo:
    id: str
    dataset_id: str
    base_model: str
    config: dict
    status: str
    pid: int | None
    final_loss: float | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    adapter_size: int | None
    error: str | None
    created_at: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _open(workspace: Workspace):
    conn = connect(workspace)
    ensure_schema(conn, SCHEMA)
    return conn


def run_dir(workspace: Workspace, run_id: str) -> Path:
    return workspace.runs / run_id


def _row_to_run(row) -> RunInfo:
    data = {k: row[k] for k in row.keys()}
    data["config"] = json.loads(data["config"] or "{}")
    return RunInfo(**data)


def update_run(workspace: Workspace, run_id: str, **values: Any) -> None:
    if not values:
        return
    names = ", ".join(f"{k} = ?" for k in values)
    with _open(workspace) as conn, transaction(conn):
        conn.execute(f"UPDATE runs SET {names} WHERE id = ?", (*values.values(), run_id))


def pid_alive(pid: int | None) -> bool:
    """True while a training worker with this pid runs (zombies and reused pids count as dead)."""
    if not pid or pid <= 0:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own finished child so it does not linger as a zombie
    except (ChildProcessError, OSError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def _log_tail(workspace: Workspace, run_id: str, lines: int = 20) -> list[str]:
    path = run_dir(workspace, run_id) / "train.log"
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 20000))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def _reconcile(workspace: Workspace, run: RunInfo) -> RunInfo:
    """A run marked active whose process is gone crashed (killed, OOM): record it as failed, keep checkpoints."""
    if run.status not in ACTIVE or pid_alive(run.pid):
        return run
    if run.status == "queued" and run.pid is None:
        return run
    tail = [line for line in _log_tail(workspace, run.id) if line.strip()]
    last = tail[-1] if tail else "no log output"
    error = (
        f"The training process (pid {run.pid}) ended without finishing: killed, crashed or out of memory. "
        f"Last log line: {last[:300]}. Checkpoints are kept; resume the run to continue."
    )
    update_run(workspace, run.id, status="failed", error=error, finished_at=_now(), pid=None)
    release_lock(workspace, run.pid)
    log.warning("Run %s: %s", run.id, error)
    return replace(run, status="failed", error=error, pid=None)


def list_runs(workspace: Workspace) -> list[RunInfo]:
    with _open(workspace) as conn:
        rows = conn.execute("SELECT * FROM runs ORDER BY created_at DESC, id DESC").fetchall()
    return [_reconcile(workspace, _row_to_run(row)) for row in rows]


def get_run(workspace: Workspace, run_id: str) -> RunInfo:
    with _open(workspace) as conn:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise StudioError(f"No run named {run_id!r}; `python -m core runs list` shows the runs.")
    return _reconcile(workspace, _row_to_run(row))


def active_run(workspace: Workspace) -> RunInfo | None:
    return next((run for run in list_runs(workspace) if run.status in ACTIVE), None)


def read_progress(workspace: Workspace, run_id: str) -> list[dict]:
    """Every event the worker wrote (event = start | step | end), oldest first; a torn last line is skipped."""
    path = run_dir(workspace, run_id) / "progress.jsonl"
    events = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def read_log(workspace: Workspace, run_id: str, lines: int = 30) -> str:
    return "\n".join(_log_tail(workspace, run_id, lines))


def last_checkpoint(workspace: Workspace, run_id: str) -> Path | None:
    """The newest complete checkpoint (trainer_state.json is written last, so a torn one is skipped)."""
    folder = run_dir(workspace, run_id) / "checkpoints"
    found = []
    for path in folder.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / "trainer_state.json").exists():
            found.append((int(match[1]), path))
    return max(found)[1] if found else None


def adapter_path(workspace: Workspace, run_id: str) -> Path:
    """Folder of the finished adapter (adapter_config.json + adapter_model.safetensors)."""
    path = run_dir(workspace, run_id) / "adapter"
    if not (path / "adapter_config.json").exists():
        run = get_run(workspace, run_id)
        raise StudioError(f"Run {run_id!r} has no adapter yet (status {run.status}); finish or resume it first.")
    return path


def list_adapters(workspace: Workspace) -> list[RunInfo]:
    """Completed runs that have an adapter, newest first."""
    return [run for run in list_runs(workspace) if run.status == "completed" and (run_dir(workspace, run.id) / "adapter" / "adapter_config.json").exists()]


# ---------------------------------------------------------------- one run at a time
def _lock_path(workspace: Workspace) -> Path:
    return workspace.runs / LOCK_NAME


def read_lock(workspace: Workspace) -> dict | None:
    return read_json(_lock_path(workspace), None)


def acquire_lock(workspace: Workspace, run_id: str, pid: int) -> None:
    """Create the lock atomically; a lock whose pid is dead is stale and is cleared."""
    path = _lock_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_lock(workspace) or {}
            if pid_alive(held.get("pid")):
                raise StudioError(
                    f"Run {held.get('run_id')!r} is already training (pid {held.get('pid')}); one run at a time per workspace. "
                    "Wait for it to finish or cancel it."
                )
            log.warning("Clearing a stale run lock left by pid %s", held.get("pid"))
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump({"run_id": run_id, "pid": pid}, handle)
        return
    raise StudioError("Could not take the run lock; try again.")


def release_lock(workspace: Workspace, pid: int | None = None) -> None:
    held = read_lock(workspace)
    if held is not None and (pid is None or held.get("pid") == pid):
        _lock_path(workspace).unlink(missing_ok=True)


# ---------------------------------------------------------------- launch, cancel, resume, delete
def new_run_id() -> str:
    return datetime.now().strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def process_count(training: TrainingSettings) -> int:
    """Training processes: as asked, else one per visible GPU (1 without CUDA)."""
    if training.processes > 0:
        return training.processes
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except ImportError:  # pragma: no cover
        return 1


def worker_command(folder: Path, processes: int) -> list[str]:
    """One process runs the worker directly; several run it under `accelerate launch` (DDP, gloo on CPU, NCCL on GPUs).

    accelerate's --multi_gpu launcher is torch.distributed.run in-process, so the launcher is the ranks' parent
    (each rank dies with it: core.train_worker.die_with_launcher). On CPU the Trainer's use_cpu makes it gloo.
    """
    if processes <= 1:
        return [sys.executable, "-m", "core.train_worker", str(folder)]
    import socket

    with socket.socket() as probe:  # a free rendezvous port, so two workspaces can train at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
        "--module", "core.train_worker", str(folder),
    ]


def _spawn(workspace: Workspace, run_id: str) -> int:
    folder = run_dir(workspace, run_id)
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["STUDIO_WORKSPACE"] = str(workspace.root)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    _, training = settings_from_dict(read_json(folder / "config.json", {}))
    with open(folder / "train.log", "ab") as log_file:
        process = subprocess.Popen(
            worker_command(folder, process_count(training)),
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=str(Path(__file__).resolve().parent.parent), start_new_session=True,
        )
    return process.pid


def start_run(
    workspace: Workspace, dataset_id: str, lora: LoraSettings, training: TrainingSettings, run_id: str | None = None
) -> RunInfo:
    """Check everything, then launch the worker process; returns at once with the run record."""
    facts = model_facts(workspace, training.base_model)
    lora = resolve_lora(lora, facts)
    plan = plan_run(workspace, dataset_id, lora, training, facts=facts)
    run_id = new_run_id() if run_id is None else run_id.strip()  # "" is refused below, never silently replaced
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", run_id):
        raise StudioError(f"Run id {run_id!r} is not allowed: use letters, digits, dots, dashes or underscores.")
    acquire_lock(workspace, run_id, os.getpid())
    try:
        folder = run_dir(workspace, run_id)
        if folder.exists():
            raise StudioError(f"A run named {run_id!r} already exists.")
        (folder / "checkpoints").mkdir(parents=True)
        from core.datasets import dataset_content_hash

        config = {
            # The dataset's content hash names exactly the rows this run trained on (a used dataset is never replaced).
            "run_id": run_id, "dataset_id": dataset_id, "dataset_sha256": dataset_content_hash(workspace, dataset_id),
            "workspace": str(workspace.root),
            "lora": asdict(lora), "training": asdict(training), "plan": asdict(plan), "created_at": _now(),
            # which base this adapter belongs to: loading it on another base fails with both names (core/families.py)
            "base": {"model": training.base_model, "path": facts.path, "model_type": facts.model_type, "family": facts.family,
                     "config_hash": facts.config_hash},
        }
        atomic_write_json(folder / "config.json", config)
        with _open(workspace) as conn, transaction(conn):
            conn.execute(
                "INSERT INTO runs (id, dataset_id, base_model, config, status, created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
                (run_id, dataset_id, training.base_model, json.dumps(config), _now()),
            )
    except BaseException:
        release_lock(workspace, os.getpid())
        raise
    pid = _launch_worker(workspace, run_id)
    log.info("Started run %s (pid %s): %d steps", run_id, pid, plan.total_steps)
    return get_run(workspace, run_id)


def cancel_run(workspace: Workspace, run_id: str) -> RunInfo:
    """Ask the worker to stop after the current step; it saves a checkpoint and records 'cancelled'."""
    run = get_run(workspace, run_id)
    if run.status not in ACTIVE:
        raise StudioError(f"Run {run_id!r} is not running (status {run.status}).")
    atomic_write_text(run_dir(workspace, run_id) / "STOP", _now())
    return run


def _launch_worker(workspace: Workspace, run_id: str) -> int:
    """Spawn the worker for a run whose lock this process holds; hand the lock to the worker's pid."""
    try:
        pid = _spawn(workspace, run_id)
    except BaseException:
        release_lock(workspace, os.getpid())
        raise
    atomic_write_json(_lock_path(workspace), {"run_id": run_id, "pid": pid})
    update_run(workspace, run_id, pid=pid)
    return pid


def resume_run(workspace: Workspace, run_id: str) -> RunInfo:
    """Continue a cancelled or failed run from its last checkpoint, in a new worker process."""
    run = get_run(workspace, run_id)
    if run.status in ACTIVE:
        raise StudioError(f"Run {run_id!r} is still {run.status}; cancel it before resuming.")
    if run.status == "completed":
        raise StudioError(f"Run {run_id!r} already completed; start a new run to train more.")
    checkpoint = last_checkpoint(workspace, run_id)
    acquire_lock(workspace, run_id, os.getpid())
    try:
        (run_dir(workspace, run_id) / "STOP").unlink(missing_ok=True)
        update_run(workspace, run_id, status="queued", error=None, finished_at=None)
    except BaseException:
        release_lock(workspace, os.getpid())
        raise
    pid = _launch_worker(workspace, run_id)
    log.info("Resumed run %s from %s (pid %s)", run_id, checkpoint or "the start", pid)
    return get_run(workspace, run_id)


def wait_for_run(workspace: Workspace, run_id: str, timeout: float = 3600, poll: float = 1.0, on_event=None) -> RunInfo:
    """Block until the run leaves queued/running (for the CLI and tests); `on_event` sees new progress events."""
    seen = 0
    deadline = time.monotonic() + timeout
    while True:
        events = read_progress(workspace, run_id)
        if on_event:
            for event in events[seen:]:
                on_event(event)
        seen = len(events)
        run = get_run(workspace, run_id)
        if run.status not in ACTIVE:
            if on_event:
                for event in read_progress(workspace, run_id)[seen:]:
                    on_event(event)
            return run
        if time.monotonic() > deadline:
            raise StudioError(f"Run {run_id!r} did not finish within {timeout:.0f} s.")
        time.sleep(poll)


def kill_run(workspace: Workspace, run_id: str) -> None:
    """Hard-stop a worker (SIGKILL) without a checkpoint; used by tests to simulate a crash."""
    run = get_run(workspace, run_id)
    if run.pid and pid_alive(run.pid):
        os.kill(run.pid, signal.SIGKILL)


def delete_run(workspace: Workspace, run_id: str) -> None:
    run = get_run(workspace, run_id)
    if run.status in ACTIVE:
        raise StudioError(f"Run {run_id!r} is {run.status}; cancel it before deleting.")
    with _open(workspace) as conn, transaction(conn):
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    shutil.rmtree(run_dir(workspace, run_id), ignore_errors=True)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------- export (core/export.py)
def load_base_and_adapter(workspace: Workspace, run_id: str):
    """(tokenizer, PeftModel) on CPU in fp32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.families import check_adapter_base, load_tokenizer, read_config

    run = get_run(workspace, run_id)
    adapter = adapter_path(workspace, run_id)
    path = resolve_generator_path(GeneratorSpec(model_id=run.base_model), workspace)
    check_adapter_base(adapter, run.base_model, read_config(path))  # the base was replaced since the run
    tokenizer = load_tokenizer(path)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return tokenizer, PeftModel.from_pretrained(base, str(adapter))


# ---------------------------------------------------------------- quick behaviour check
def style_follow_rates(
    workspace: Workspace, run_id: str, dataset_id: str, rule: str, limit: int = 10, max_new_tokens: int = 96, repetition_penalty: float = 1.1
) -> dict:
    """Share of held-out prompts whose answers follow `rule`, base model vs base + this run's adapter."""
    from core.datasets import follows_style, load_dataset_rows

    from core.engines import GenerationRequest, generate_many, open_engine
    from core.generation import DecodingSettings, build_messages

    rows = load_dataset_rows(workspace, dataset_id, "heldout")[:limit]
    if not rows:
        raise StudioError(f"The dataset {dataset_id!r} has no held-out rows to check.")
    run = get_run(workspace, run_id)
    # Through the generation seam like every answer: base rows and adapter rows in one mixed batch, fp32 (repeatable).
    engine = open_engine("transformers", workspace, GeneratorSpec(model_id=run.base_model, dtype="float32"))
    adapter = str(adapter_path(workspace, run_id))
    requests = [GenerationRequest(f"{kind}{i}", build_messages(row["prompt"]), adapter if kind == "tuned" else None)
                for kind in ("base", "tuned") for i, row in enumerate(rows)]
    results = generate_many(engine, requests, DecodingSettings(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty))
    errors = [r.error for r in results.values() if r.error]
    if errors:
        raise StudioError(errors[0])
    base = [results[f"base{i}"].text for i in range(len(rows))]
    tuned = [results[f"tuned{i}"].text for i in range(len(rows))]
    rate = lambda answers: sum(follows_style(a, rule) for a in answers) / len(answers)  # noqa: E731
    return {"base": rate(base), "tuned": rate(tuned), "n": len(rows), "base_answers": base, "tuned_answers": tuned}


from core.export import export_gguf, export_lora_gguf, export_merged  # noqa: E402,F401  (their old home; pages call T.export_*)
