"""The models and the hardware an estimate is for: a small catalogue of each, and any model's exact size from its
config.json."""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import StudioError
from core.estimate.constants import (
    CPU_EFFECTIVE_BANDWIDTH,
    CPU_EFFECTIVE_INFER_FLOPS,
    CPU_EFFECTIVE_TRAIN_FLOPS,
    CPU_RAM_GB,
    GB,
    GPU_BANDWIDTH_EFFICIENCY,
    GPU_INFER_MFU,
    GPU_MFU,
)


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str
    params: float
    layers: int
    hidden: int
    vocab: int


MODELS: dict[str, ModelSpec] = {  # from each model's config.json on the Hugging Face hub
    "phi-3-mini": ModelSpec("phi-3-mini", "Phi-3-mini (3.8B)", 3.8e9, 32, 3072, 32064),
    "mistral-7b": ModelSpec("mistral-7b", "Mistral-7B (7.2B)", 7.2e9, 32, 4096, 32000),
    "llama-3-8b": ModelSpec("llama-3-8b", "Llama-3-8B (8.0B)", 8.0e9, 32, 4096, 128256),
    "smollm2-135m": ModelSpec("smollm2-135m", "SmolLM2-135M", 135e6, 30, 576, 49152),
}


def custom_model(params: float) -> ModelSpec:
    """A model known only by its size: N ~ 12 * layers * hidden^2 (Kaplan et al. 2020) with 32
    layers gives hidden ~ sqrt(N / 384) (3.8e9 -> 3146, Phi-3's is 3072); vocabulary 32k."""
    if not params or params <= 0:
        raise StudioError("the parameter count must be a positive number, e.g. 3.8e9")
    return ModelSpec("custom", f"Custom ({params / 1e9:.2g}B)", float(params), 32, int(math.sqrt(params / (12 * 32))), 32000)


def model_from_config(model: str, workspace=None) -> ModelSpec:
    """Exact size and shape of any model from its config.json alone (never the weights).

    A local folder or the embedded default is read from disk; a hub id fetches (or reuses the cached)
    config.json only. The parameter count is exact: the architecture is built on PyTorch's meta device,
    which allocates no memory. An architecture transformers does not know is counted from the config's
    sizes (embeddings + per layer 4*h^2 attention, scaled for grouped KV heads, + 3*h*ffn MLP).
    """
    import json
    from pathlib import Path

    from core.families import read_config

    if workspace is not None:
        from core.models import GeneratorSpec, resolve_generator_path

        model_path = resolve_generator_path(GeneratorSpec(model_id=model), workspace)
    else:
        model_path = model
    config = read_config(model_path)
    text = config.get("text_config") or config
    hidden = int(text.get("hidden_size") or text.get("n_embd") or text.get("d_model") or 0)
    layers = int(text.get("num_hidden_layers") or text.get("n_layer") or text.get("num_layers") or 0)
    vocab = int(text.get("vocab_size") or 0)
    if not (hidden and layers and vocab):
        raise StudioError(f"The config of {model!r} has no hidden size / layer count / vocabulary size; enter the parameter count instead.")
    try:
        import tempfile

        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "config.json").write_text(json.dumps(config))
            hf_config = AutoConfig.from_pretrained(folder)
        with torch.device("meta"):
            params = sum(p.numel() for p in AutoModelForCausalLM.from_config(hf_config).parameters())
    except (ValueError, KeyError, OSError, ImportError):
        heads = int(text.get("num_attention_heads") or 1)
        kv = int(text.get("num_key_value_heads") or heads)
        ffn = int(text.get("intermediate_size") or 4 * hidden)
        per_layer = 2 * hidden * hidden + 2 * hidden * hidden * kv / heads + 3 * hidden * ffn
        params = vocab * hidden * (1 if text.get("tie_word_embeddings", config.get("tie_word_embeddings")) else 2) + layers * per_layer
    name = str(model).rstrip("/").split("/")[-1]
    return ModelSpec("config", f"{name} ({params / 1e9:.2g}B)" if params >= 1e9 else f"{name} ({params / 1e6:.0f}M)",
                     float(params), layers, hidden, vocab)


def model_for_params(params: float) -> ModelSpec:
    """The catalogue model of exactly this size, else a custom one."""
    for spec in MODELS.values():
        if spec.params == params:
            return spec
    return custom_model(params)


@dataclass(frozen=True)
class Hardware:
    key: str
    label: str
    memory_gb: float
    peak_flops: float  # dense bf16/fp16 tensor FLOP/s from the vendor sheet (sparsity figures halved)
    bandwidth_gbs: float  # memory bandwidth, GB/s
    is_gpu: bool = True

    @property
    def train_flops(self) -> float:
        return self.peak_flops * GPU_MFU if self.is_gpu else CPU_EFFECTIVE_TRAIN_FLOPS

    @property
    def infer_flops(self) -> float:
        return self.peak_flops * GPU_INFER_MFU if self.is_gpu else CPU_EFFECTIVE_INFER_FLOPS

    @property
    def decode_bandwidth(self) -> float:
        return self.bandwidth_gbs * GB * GPU_BANDWIDTH_EFFICIENCY if self.is_gpu else CPU_EFFECTIVE_BANDWIDTH


HARDWARE: dict[str, Hardware] = {
    # CPU: peak is the calibrated effective figure; memory is laptop RAM.
    "cpu": Hardware("cpu", "CPU (2 cores, measured)", CPU_RAM_GB, CPU_EFFECTIVE_TRAIN_FLOPS, CPU_EFFECTIVE_BANDWIDTH / GB, is_gpu=False),
    "t4": Hardware("t4", "NVIDIA T4 16GB", 16, 65e12, 320),  # T4 datasheet: 65 TFLOPS fp16, 320 GB/s
    "l4": Hardware("l4", "NVIDIA L4 24GB", 24, 121e12, 300),  # L4 datasheet: 242 TFLOPS bf16 with sparsity, 300 GB/s
    "a10g": Hardware("a10g", "NVIDIA A10G 24GB", 24, 70e12, 600),  # AWS G5 A10G: ~70 TFLOPS bf16 dense, 600 GB/s
    "a100-40gb": Hardware("a100-40gb", "NVIDIA A100 40GB", 40, 312e12, 1555),  # A100 datasheet: 312 TFLOPS bf16
    "a100-80gb": Hardware("a100-80gb", "NVIDIA A100 80GB", 80, 312e12, 2039),
    "h100": Hardware("h100", "NVIDIA H100 80GB (SXM)", 80, 989e12, 3350),  # H100 SXM: 989 TFLOPS bf16 dense
    "rtx4090": Hardware("rtx4090", "NVIDIA RTX 4090 24GB", 24, 165e12, 1008),  # Ada whitepaper: 165 TFLOPS fp16, fp32 accumulate
}


def get_hardware(name: str) -> Hardware:
    key = str(name).strip().lower()
    if key not in HARDWARE:
        raise StudioError(f"unknown hardware {name!r}; valid choices: {', '.join(HARDWARE)}")
    return HARDWARE[key]
