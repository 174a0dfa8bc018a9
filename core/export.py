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


def load_base_and_adapter(workspace: Workspace, run_id: str):
    """(tokenizer, PeftModel) on CPU in fp32: what the merge starts from."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.families import check_adapter_base, load_tokenizer, read_config
    from core.models import GeneratorSpec, resolve_generator_path
    from core.adapters import adapter_path
    from core.training import get_run

    run = get_run(workspace, run_id)
    adapter = adapter_path(workspace, run_id)
    path = resolve_generator_path(GeneratorSpec(model_id=run.base_model), workspace)
    check_adapter_base(adapter, run.base_model, read_config(path))  # the base was replaced since the run
    tokenizer = load_tokenizer(path)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return tokenizer, PeftModel.from_pretrained(base, str(adapter))


def export_merged(workspace: Workspace, run_id: str, out_dir: str | os.PathLike) -> Path:
    """Merge the adapter into the base weights (merge_and_unload) and save a full safetensors model + Modelfile."""
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


# Runs several converter jobs in ONE child process: importing torch + transformers costs 5-30 s on this
# machine, so a merged GGUF + base GGUF + adapter GGUF pay it once. Each job ends with a marker line.
_DRIVER = """
import json, runpy, sys, traceback
for index, (script, args) in enumerate(json.loads(sys.argv[1])):
    sys.argv = [script, *args]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    print(f"@@studio-job {index} {code}", file=sys.stderr, flush=True)
"""


def _run_converters(jobs: list[tuple[str, list[str], str]]) -> list[str | None]:
    """Run (script, args, what) jobs in one process; per job None (done) or the converter's reason for refusing."""
    import json

    for script, _, _ in jobs:
        if not (VENDOR / script).exists():
            raise StudioError(f"llama.cpp's {script} is missing from {VENDOR}; restore the vendor/ folder from the repository.")
    env = dict(os.environ)
    # the vendored gguf-py first: the converter is written against it, not the pip gguf
    env["PYTHONPATH"] = os.pathsep.join([str(VENDOR / "gguf-py"), str(VENDOR), env.get("PYTHONPATH", "")])
    env.setdefault("HF_HUB_OFFLINE", "1")
    payload = json.dumps([[str(VENDOR / script), args] for script, args, _ in jobs])
    result = subprocess.run([sys.executable, "-c", _DRIVER, payload], capture_output=True, text=True, env=env, cwd=str(VENDOR))
    outcomes: list[str | None] = []
    chunk: list[str] = []
    for line in result.stderr.splitlines():
        if line.startswith("@@studio-job "):
            _, index, code = line.split()
            if code == "0":
                outcomes.append(None)
            else:
                lines = [x for x in chunk if x.strip() and not x.startswith("INFO:")]
                reason = next((x for x in reversed(lines) if "Error" in x or "error" in x), lines[-1] if lines else "no output")
                log.warning("%s failed:\n%s", jobs[int(index)][0], "\n".join(lines[-30:]))
                outcomes.append(f"llama.cpp could not convert {jobs[int(index)][2]}: {reason.strip()[:400]}")
            chunk = []
        else:
            chunk.append(line)
    while len(outcomes) < len(jobs):  # the process died (out of memory, killed)
        outcomes.append(f"llama.cpp's converter ended early (exit {result.returncode}): {(result.stderr.strip().splitlines() or ['no output'])[-1][:300]}")
    return outcomes


def _run_converter(script: str, args: list[str], what: str) -> None:
    problem = _run_converters([(script, args, what)])[0]
    if problem:
        raise StudioError(problem)


def convert_lora_folder(adapter_dir: Path, base_dir: Path, out_file: Path, outtype: str = "f32") -> Path:
    """A peft LoRA folder as a GGUF adapter (llama.cpp --lora), written atomically; `base_dir` holds the base's config.json."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging(out_file)
    try:
        _run_converter("convert_lora_to_gguf.py", [str(adapter_dir), "--base", str(base_dir), "--outfile", str(staging), "--outtype", outtype],
                       f"the adapter in {adapter_dir}")
        os.replace(staging, out_file)
    finally:
        staging.unlink(missing_ok=True)
    return out_file


def _staging(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:6]}")


def export_ggufs(workspace: Workspace, run_id: str, merged_dir: str | os.PathLike | None = None, gguf_file: str | os.PathLike | None = None,
                 lora_file: str | os.PathLike | None = None, base_file: str | os.PathLike | None = None,
                 outtype: str = "f32") -> dict[str, Path | StudioError]:
    """Any of: the merged folder -> GGUF, the adapter alone -> GGUF LoRA, the plain base -> GGUF (what the LoRA applies to).

    One converter process for all; each result is its path or the StudioError that says why llama.cpp refused it
    (the others still get written). Every file gets an Ollama Modelfile with the family's TEMPLATE and stops.
    """
    from core.models import GeneratorSpec, resolve_generator_path
    from core.adapters import adapter_path
    from core.training import get_run

    if outtype not in GGUF_TYPES:
        raise StudioError(f"Unknown GGUF type {outtype!r}; choose one of {', '.join(GGUF_TYPES)}.")
    run = get_run(workspace, run_id)
    base = resolve_generator_path(GeneratorSpec(model_id=run.base_model), workspace)
    model_type = (run.config.get("base") or {}).get("model_type") or ""
    jobs, targets = [], []
    if gguf_file:
        merged = Path(merged_dir or "").resolve()
        if not (merged / "config.json").exists() or not list(merged.glob("*.safetensors")):
            raise StudioError(f"{merged} has no config.json and safetensors weights; export the merged model first.")
        jobs.append(("convert_hf_to_gguf.py", [str(merged), "--outtype", outtype], f"the model in {merged}"))
        targets.append(("gguf", Path(gguf_file), merged))
    if base_file:
        if not Path(base).is_dir():
            raise StudioError(f"The base {run.base_model!r} is not a local folder; download it first to convert it.")
        jobs.append(("convert_hf_to_gguf.py", [base, "--outtype", outtype], f"the base model {run.base_model}"))
        targets.append(("base_gguf", Path(base_file), Path(base)))
    if lora_file:
        adapter = adapter_path(workspace, run_id)
        base_args = ["--base", base] if Path(base).is_dir() else ["--base-model-id", base]
        jobs.append(("convert_lora_to_gguf.py", [str(adapter), *base_args, "--outtype", outtype], f"the adapter of run {run_id}"))
        targets.append(("lora_gguf", Path(lora_file), Path(adapter)))
    finals = [Path(t).expanduser().resolve() for _, t, _ in targets]
    stagings = [_staging(final) for final in finals]
    for (script, args, _), staging in zip(jobs, stagings):
        staging.parent.mkdir(parents=True, exist_ok=True)
        args += ["--outfile", str(staging)]
    results: dict[str, Path | StudioError] = {}
    try:
        outcomes = _run_converters(jobs) if jobs else []
        for (name, _, source), final, staging, problem in zip(targets, finals, stagings, outcomes):
            if problem:
                if "pre-tokenizer was not recognized" in problem:
                    problem += _pre_tokenizer_hint(source if name != "lora_gguf" else Path(base))
                results[name] = StudioError(problem)
                continue
            staging.rename(final)
            results[name] = final
    finally:
        for staging in stagings:
            staging.unlink(missing_ok=True)
    # Modelfiles: Ollama imports a merged GGUF more reliably than loose adapters (DESIGN.md)
    if isinstance(results.get("gguf"), Path):
        path = results["gguf"]
        (path.parent / f"{path.stem}.Modelfile").write_text(_modelfile(Path(merged_dir).resolve(), f"./{path.name}", model_type=model_type))
    if isinstance(results.get("lora_gguf"), Path):
        path = results["lora_gguf"]
        base_gguf = results.get("base_gguf")
        source = f"./{base_gguf.name}" if isinstance(base_gguf, Path) and base_gguf.parent == path.parent else (
            str(base_gguf) if isinstance(base_gguf, Path) else "./base.gguf")
        note = "" if isinstance(base_gguf, Path) else (
            f"# base.gguf: {run.base_model} as GGUF (python -m core export {run_id} --base-gguf FILE, or a published GGUF)\n")
        # the plain base, never the merged GGUF: that one already has the adapter in it
        (path.parent / f"{path.stem}.Modelfile").write_text(
            note + _modelfile(Path(base) if Path(base).is_dir() else Path(adapter_path(workspace, run_id)), source,
                              adapter=f"./{path.name}", model_type=model_type))
    return results


def _pre_tokenizer_hint(folder: Path) -> str:
    """Why llama.cpp did not know a BPE tokenizer, and what to do: it hashes the ids transformers' AutoTokenizer gives a
    test text, and transformers picks the class from config.json's model_type, which may replace tokenizer.json's
    pre-tokenizer with its own (Qwen2Tokenizer does): then a vocabulary not made for that split hashes to nothing known."""
    import json

    hint = ("\nllama.cpp names a BPE tokenizer by hashing the token ids of a test text; this tokenizer's ids are not in the "
            "list of the vendored converter (llama-cpp-python 0.3.36).")
    try:
        from transformers import AutoTokenizer

        loaded = AutoTokenizer.from_pretrained(str(folder))
        saved = json.loads((folder / "tokenizer.json").read_text()).get("pre_tokenizer")
        used = json.loads(loaded.backend_tokenizer.to_str()).get("pre_tokenizer")
        if saved is not None and used != saved:
            model_type = json.loads((folder / "config.json").read_text()).get("model_type")
            hint += (f" transformers loads this folder as {type(loaded).__name__} (from model_type {model_type!r}), which splits "
                     "text with its own pre-tokenizer instead of the one in tokenizer.json, so the converter hashes a "
                     "vocabulary split in a way it has no entry for.")
    except (OSError, ValueError, AttributeError, KeyError) as error:  # the hint is a courtesy; the refusal stands
        log.info("pre-tokenizer check of %s skipped: %s", folder, error)
    return hint + (" What to do: keep the base model's own tokenizer files (a base whose vocabulary matches its "
                   "architecture's tokenizer converts), or export the adapter alone (--lora-gguf) and run it on a "
                   "published GGUF of the base.")


def _one(results: dict[str, Path | StudioError], name: str) -> Path:
    value = results[name]
    if isinstance(value, StudioError):
        raise value
    return value


def export_gguf(workspace: Workspace, run_id: str, merged_dir: str | os.PathLike, gguf_file: str | os.PathLike, outtype: str = "f32") -> Path:
    """A merged model folder -> one GGUF file (llama.cpp's convert_hf_to_gguf.py), plus <name>.Modelfile next to it."""
    return _one(export_ggufs(workspace, run_id, merged_dir=merged_dir, gguf_file=gguf_file, outtype=outtype), "gguf")


def export_lora_gguf(workspace: Workspace, run_id: str, gguf_file: str | os.PathLike, outtype: str = "f32") -> Path:
    """The run's LoRA adapter alone as a GGUF adapter (convert_lora_to_gguf.py), plus an Ollama Modelfile (FROM base, ADAPTER it)."""
    return _one(export_ggufs(workspace, run_id, lora_file=gguf_file, outtype=outtype), "lora_gguf")
