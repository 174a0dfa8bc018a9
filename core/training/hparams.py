"""What a run trains with: LoRA and training settings (defaults, help, validate), the presets, QLoRA support."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Iterable

from core.errors import StudioError
from core.models import EMBEDDED_GENERATOR, cuda_available

# Measured with the pinned bitsandbytes 0.50.2 on this CPU (tests/test_qlora.py): see qlora_support().
QLORA_CPU_NOTE = (
    "4-bit NF4 base weights with LoRA adapters through bitsandbytes' CPU backend (pure PyTorch here: it saves "
    "memory, not time). Measured with bitsandbytes 0.50.2 on this CPU: a 4-bit model trains and its loss falls."
)


@functools.lru_cache(maxsize=1)
def bnb_4bit_problem(device: str) -> str | None:
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
        problem = bnb_4bit_problem("cuda")
        return (False, problem) if problem else (True, "4-bit NF4 base weights with LoRA adapters in bf16 (bitsandbytes).")
    if mps_available():
        return False, "QLoRA needs bitsandbytes, which has no Apple MPS backend; use LoRA on MPS."
    # The page asks on every render and `import bitsandbytes` takes 5-35 s here, so decide by version; the worker
    # runs the real check (bnb_4bit_problem) before it loads the model.
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
    precision: str = field(default="auto", metadata={
        "help": "auto: bf16 on CUDA with bf16, fp16 on older GPUs, fp32 on MPS; on the CPU bf16 autocast where bf16 is native "
                "(AVX512-BF16/AMX) and no other job uses the cores, else fp32"})
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
# demo = 60 steps of 2 short rows (~550 tokens/step: ~6 min at 90 tokens/s on one AVX2 core, less with two)
# with a high LR, so a 135M model picks up a format: one pass over ~120 rows. 60 steps at 2e-3 followed the
# taught format on 13/13 held-out prompts (two seeds), the earlier 100 steps at 1e-3 on 12/13, 50 steps at 2e-3
# on 7/13. quality = more rank, 2 epochs, lower LR. Both adapt every Linear layer of the model's family
# (core/families.py), so Phi-3's fused qkv_proj works as Llama's q_proj.
PRESETS: dict[str, tuple[LoraSettings, TrainingSettings]] = {
    "demo": (
        LoraSettings(r=16, alpha=32, dropout=0.0, target_set="all linear"),
        TrainingSettings(learning_rate=2e-3, max_steps=60, batch_size=2, grad_accum=1, max_length=320, save_steps=10, warmup_steps=3),
    ),
    "quality": (
        LoraSettings(r=32, alpha=64, dropout=0.05, target_set="all linear"),
        TrainingSettings(learning_rate=2e-4, epochs=2.0, max_steps=0, batch_size=4, grad_accum=4, max_length=512, save_steps=25, warmup_steps=10),
    ),
}


# Earlier versions of a preset (LoRA r, learning rate, max steps, batch size), so their runs keep the preset's name.
EARLIER_PRESETS: dict[str, tuple[tuple[int, float, int, int], ...]] = {"demo": ((16, 1e-3, 100, 2), (16, 1e-3, 50, 2))}


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
