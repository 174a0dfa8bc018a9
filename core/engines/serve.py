"""Serve a fine-tune where teams deploy: the files and the exact commands for Ollama, vLLM or llama.cpp's server.

- llamacpp: the base GGUF plus the adapter converted to a GGUF LoRA (llama.cpp's own converter);
  `llama-server -m base.gguf --lora adapter.gguf`, or the same through llama-cpp-python's server;
- ollama: a Modelfile `FROM base.gguf` + `ADAPTER adapter.gguf` (Ollama reads the chat template from the GGUF);
  `ollama create NAME -f Modelfile`. A merged GGUF (`export RUN --merged DIR --gguf FILE`) imports more
  reliably on some Ollama versions: the notes say how;
- vllm: the peft folder as it is; `vllm serve BASE --enable-lora --lora-modules NAME=DIR`.
Each plan ends with the Studio's own command to answer through the served model (the openai engine).
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import StudioError
from core.generation import DEFAULT_SYSTEM

TARGETS = ("ollama", "vllm", "llamacpp")
PORTS = {"ollama": 11434, "vllm": 8000, "llamacpp": 8080}


@dataclass(frozen=True)
class ServePlan:
    target: str
    name: str
    folder: Path
    files: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    base_url: str = ""

    def to_dict(self) -> dict:
        return {"target": self.target, "name": self.name, "folder": str(self.folder), "files": [str(f) for f in self.files],
                "commands": self.commands, "notes": self.notes, "base_url": self.base_url}


def _q(path) -> str:
    return shlex.quote(str(path))


def serve_name(run_id: str) -> str:
    """A model name servers accept (Ollama: lower-case letters, digits, '-', '_', '.')."""
    return "studio-" + re.sub(r"[^a-z0-9._-]+", "-", run_id.lower()).strip("-")


def base_gguf(run) -> Path:
    from core.models import EMBEDDED_GENERATOR, embedded_generator_gguf

    if run.base_model == EMBEDDED_GENERATOR:
        return embedded_generator_gguf()
    raise StudioError(f"The run's base model {run.base_model} has no GGUF here: convert it with llama.cpp's convert_hf_to_gguf.py, "
                      "or serve it with --serve vllm.")


def export_for_serving(workspace, run_id: str, target: str, out_dir: str | Path | None = None, name: str | None = None) -> ServePlan:
    """Write what `target` needs to serve this run's adapter into `out_dir` (default workspace/exports/<name>-<target>)."""
    from core.adapters import adapter_path
    from core.training import get_run

    if target not in TARGETS:
        raise StudioError(f"Unknown serving target {target!r}; choose {', '.join(TARGETS)}.")
    run = get_run(workspace, run_id)
    adapter = adapter_path(workspace, run_id)  # refuses a run without a usable adapter, with its status
    name = name or serve_name(run_id)
    folder = Path(out_dir).expanduser().resolve() if out_dir else (workspace.root / "exports" / f"{name}-{target}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = PORTS[target]
    url = f"http://127.0.0.1:{port}/v1"
    studio = f"python -m core ask \"QUESTION\" --kb KB --engine openai:{url} --model {name}"
    if target == "vllm":
        copy = folder / name
        staging = folder / f".{name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(adapter, staging)
        shutil.rmtree(copy, ignore_errors=True)
        staging.rename(copy)
        rank = json.loads((adapter / "adapter_config.json").read_text()).get("r") or 16
        from core.models import EMBEDDED_GENERATOR, convert_embedded_generator

        base = str(convert_embedded_generator(workspace)) if run.base_model == EMBEDDED_GENERATOR else run.base_model
        commands = [f"vllm serve {_q(base)} --enable-lora --lora-modules {name}={_q(copy)} --max-lora-rank {max(8, int(rank))} --port {port}",
                    studio]
        notes = ["vLLM needs a GPU; the base must be the exact model the adapter was trained on.",
                 f"The adapter answers under the model name {name}; the base stays available under its own name."]
        return ServePlan(target, name, folder, [copy / "adapter_config.json", copy / "adapter_model.safetensors"], commands, notes, url)

    from core.engines.llamacpp import gguf_adapter

    base = base_gguf(run)
    lora = folder / f"{name}-lora.gguf"
    converted = gguf_adapter(str(adapter), workspace)
    shutil.copyfile(converted, lora.with_suffix(".tmp"))
    lora.with_suffix(".tmp").replace(lora)
    if target == "llamacpp":
        from core.engines.llamacpp import server_command

        argv, cwd = server_command(base, port, name, lora)
        python_server = f"cd {_q(cwd)} && " + " ".join(_q(a) for a in ["python", *argv[1:]])
        commands = [f"llama-server -m {_q(base)} --lora {_q(lora)} --port {port}", python_server, studio]
        notes = ["llama-server is llama.cpp's own binary; the second command is the same server from llama-cpp-python, "
                 "which `make llama-cpp` builds (started in its lib folder, where ggml finds the CPU backend for this machine).",
                 f"llama-server answers to any model name; llama-cpp-python's server to the alias {name}, one request at a time "
                 "(--interrupt_requests False, so Compare's columns queue instead of cutting each other off)."]
        return ServePlan(target, name, folder, [lora], commands, notes, url)
    modelfile = folder / "Modelfile"
    text = (f"FROM {base}\nADAPTER ./{lora.name}\nPARAMETER temperature 0\nSYSTEM \"\"\"{DEFAULT_SYSTEM}\"\"\"\n")
    tmp = modelfile.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(modelfile)
    commands = [f"cd {_q(folder)} && ollama create {name} -f Modelfile", f"ollama run {name} \"Hello\"", studio]
    notes = ["Ollama takes the chat template from the base GGUF's metadata.",
             f"If your Ollama version rejects the adapter, import a merged GGUF instead: python -m core export {run_id} "
             f"--merged {_q(folder / 'merged')} --gguf {_q(folder / 'merged.gguf')}, then FROM ./merged.gguf (no ADAPTER line)."]
    return ServePlan(target, name, folder, [modelfile, lora], commands, notes, url)
