"""Export a run: merged safetensors, GGUF (llama.cpp's own converter), the LoRA adapter as GGUF, Ollama Modelfiles.

GGUF goes through llama.cpp's `convert_hf_to_gguf.py` / `convert_lora_to_gguf.py`, vendored unchanged from
the llama-cpp-python 0.3.36 sdist (vendor/llama.cpp/VENDORED.md), in a child process: the converter is
the authority on which architectures and tokenizers llama.cpp supports, so its refusal is passed on as is.
The Modelfile's TEMPLATE and stop tokens come from the family table (core/families.py).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from core.errors import StudioError
from core.settings import Workspace

log = logging.getLogger(__name__)

VENDOR = Path(__file__).resolve().parent.parent / "vendor" / "llama.cpp"
GGUF_TYPES = ("f32", "f16", "bf16", "q8_0", "auto")


def _modelfile(tokenizer_dir: Path, source: str, adapter: str | None = None, model_type: str | None = None) -> str:
    """The Modelfile for a folder with a tokenizer: the family's TEMPLATE (matched to its chat template) and stops."""
    from core.families import load_tokenizer, ollama_modelfile, read_config
    from core.generation import DEFAULT_SYSTEM

    if model_type is None and (tokenizer_dir / "config.json").exists():
        model_type = read_config(str(tokenizer_dir)).get("model_type")
    template = getattr(load_tokenizer(str(tokenizer_dir), model_type or ""), "chat_template", None)
    return ollama_modelfile(source, template, model_type, DEFAULT_SYSTEM, adapter=adapter)


# The base's own tokenizer files, byte for byte: transformers 5 saves only tokenizer.json, but llama.cpp's
# converter reads tokenizer.model (sentencepiece) for Phi-3, Mistral and Gemma, and tokenizer_config.json's class.
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt")


def _copy_tokenizer_files(workspace: Workspace, run_id: str, target: Path) -> None:
    from core.models import GeneratorSpec, resolve_generator_path
    from core.training import get_run

    base = resolve_generator_path(GeneratorSpec(model_id=get_run(workspace, run_id).base_model), workspace)
    for name in TOKENIZER_FILES:
        source = Path(base) / name
        if not source.exists() and not Path(base).is_dir():
            try:
                from transformers.utils import cached_file

                found = cached_file(base, name, _raise_exceptions_for_missing_entries=False)
                source = Path(found) if found else source
            except (OSError, ValueError):
                continue
        if source.exists():
            shutil.copyfile(source, target / name)


def export_merged(workspace: Workspace, run_id: str, out_dir: str | os.PathLike) -> Path:
    """Merge the adapter into the base weights (merge_and_unload) and save a full safetensors model + Modelfile."""
    from core.training import load_base_and_adapter

    out = Path(out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise StudioError(f"{out} is not empty; choose a new folder for the merged model.")
    tokenizer, model = load_base_and_adapter(workspace, run_id)
    merged = model.merge_and_unload()
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:6]}"
    staging.mkdir(parents=True)
    try:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _copy_tokenizer_files(workspace, run_id, staging)
        (staging / "Modelfile").write_text(_modelfile(staging, "."))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _run_converter(script: str, args: list[str], what: str) -> None:
    if not (VENDOR / script).exists():
        raise StudioError(f"llama.cpp's {script} is missing from {VENDOR}; restore the vendor/ folder from the repository.")
    env = dict(os.environ)
    # the vendored gguf-py first: the converter is written against it, not the pip gguf
    env["PYTHONPATH"] = os.pathsep.join([str(VENDOR / "gguf-py"), str(VENDOR), env.get("PYTHONPATH", "")])
    env.setdefault("HF_HUB_OFFLINE", "1")
    result = subprocess.run([sys.executable, str(VENDOR / script), *args], capture_output=True, text=True, env=env, cwd=str(VENDOR))
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip() and not line.startswith("INFO:")]
        reason = next((line for line in reversed(lines) if "Error" in line or "error" in line), lines[-1] if lines else "no output")
        log.warning("%s failed:\n%s", script, "\n".join(lines[-30:]))
        raise StudioError(f"llama.cpp could not convert {what}: {reason.strip()[:400]}")


def export_gguf(workspace: Workspace, run_id: str, merged_dir: str | os.PathLike, gguf_file: str | os.PathLike, outtype: str = "f32") -> Path:
    """A merged model folder -> one GGUF file (llama.cpp's convert_hf_to_gguf.py), plus <name>.Modelfile next to it."""
    if outtype not in GGUF_TYPES:
        raise StudioError(f"Unknown GGUF type {outtype!r}; choose one of {', '.join(GGUF_TYPES)}.")
    merged_dir = Path(merged_dir).resolve()
    if not (merged_dir / "config.json").exists() or not list(merged_dir.glob("*.safetensors")):
        raise StudioError(f"{merged_dir} has no config.json and safetensors weights; export the merged model first.")
    gguf_path = Path(gguf_file).expanduser().resolve()
    gguf_path.parent.mkdir(parents=True, exist_ok=True)
    staging = gguf_path.with_name(f".{gguf_path.name}.tmp-{uuid.uuid4().hex[:6]}")
    try:
        _run_converter("convert_hf_to_gguf.py", [str(merged_dir), "--outfile", str(staging), "--outtype", outtype], f"the model in {merged_dir}")
        staging.rename(gguf_path)
    finally:
        staging.unlink(missing_ok=True)
    # Ollama imports a merged GGUF more reliably than loose adapters (DESIGN.md): point a Modelfile at it
    (gguf_path.parent / f"{gguf_path.stem}.Modelfile").write_text(_modelfile(merged_dir, f"./{gguf_path.name}"))
    return gguf_path


def export_lora_gguf(workspace: Workspace, run_id: str, gguf_file: str | os.PathLike, outtype: str = "f32",
                     base_gguf: str | None = None) -> Path:
    """The run's LoRA adapter alone as a GGUF adapter (convert_lora_to_gguf.py), plus an Ollama Modelfile (FROM base, ADAPTER it)."""
    from core.models import GeneratorSpec, resolve_generator_path
    from core.training import adapter_path, get_run

    if outtype not in ("f32", "f16", "bf16", "q8_0", "auto"):
        raise StudioError(f"Unknown GGUF type {outtype!r}.")
    run = get_run(workspace, run_id)
    adapter = adapter_path(workspace, run_id)
    base = resolve_generator_path(GeneratorSpec(model_id=run.base_model), workspace)
    base_args = ["--base", base] if Path(base).is_dir() else ["--base-model-id", base]
    gguf_path = Path(gguf_file).expanduser().resolve()
    gguf_path.parent.mkdir(parents=True, exist_ok=True)
    staging = gguf_path.with_name(f".{gguf_path.name}.tmp-{uuid.uuid4().hex[:6]}")
    try:
        _run_converter("convert_lora_to_gguf.py", [str(adapter), *base_args, "--outfile", str(staging), "--outtype", outtype],
                       f"the adapter of run {run_id}")
        staging.rename(gguf_path)
    finally:
        staging.unlink(missing_ok=True)
    source = base_gguf or "./base.gguf"  # Ollama needs the plain base as GGUF too (not the merged one: it has the adapter in it)
    model_type = (run.config.get("base") or {}).get("model_type") or ""
    note = "" if base_gguf else f"# base.gguf: {run.base_model} as GGUF (llama.cpp's convert_hf_to_gguf.py on {base}, or a published GGUF)\n"
    (gguf_path.parent / f"{gguf_path.stem}.Modelfile").write_text(
        note + _modelfile(Path(adapter), source, adapter=f"./{gguf_path.name}", model_type=model_type))
    return gguf_path
