"""Engines by spec string: `transformers`, `llamacpp[:PATH.gguf]`, `openai:http://host:port/v1` (+ a model name).

`open_engine(spec, workspace)` is the only way the Studio gets an engine. Each kind has a factory in
`_FACTORIES`; tests put their fakes in that table (tests/fake_engines.py: monkeypatch.setitem, undone after the
test) and then choose "fake" like a user chooses "openai", so a fake enters through the same door as the real engines.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from typing import Callable

from core.errors import StudioError

log = logging.getLogger(__name__)

AUTO = "auto"
BUILT_IN = ("transformers", "llamacpp", "openai")
DEFAULT_API_KEY_ENV = "STUDIO_OPENAI_API_KEY"
ENGINE_HELP = {
    "auto": "llama.cpp for the embedded model on a CPU when llama-cpp-python is installed, else transformers",
    "transformers": "transformers + peft in this process: any Hugging Face model, LoRA adapters as trained",
    "llamacpp": "llama.cpp in this process (llama-cpp-python): a GGUF file, LoRA adapters converted to GGUF once",
    "openai": "any OpenAI-compatible server: Ollama, vLLM, llama.cpp's server, TGI or a hosted API",
}


@dataclass(frozen=True)
class EngineSpec:
    """Which engine answers. Saved with every answer, evaluation and report (never the API key itself)."""

    kind: str = field(default=AUTO, metadata={"help": "auto, transformers, llamacpp or openai"})
    target: str = field(default="", metadata={"help": "llamacpp: a GGUF file (empty: the embedded model); openai: the base URL, e.g. http://127.0.0.1:11434/v1"})
    model: str = field(default="", metadata={"help": "openai: the served model name; transformers: a model id (empty: the sidebar's generator)"})
    api_key_env: str = field(default=DEFAULT_API_KEY_ENV, metadata={"help": "openai: the environment variable holding the API key"})

    def validate(self) -> None:
        if self.kind != AUTO and self.kind not in _FACTORIES:
            raise StudioError(f"Unknown engine {self.kind!r}; choose one of {', '.join(engine_kinds())}.")
        if self.kind == "openai":
            if not self.target.startswith(("http://", "https://")):
                raise StudioError(f"The openai engine needs a base URL such as http://127.0.0.1:11434/v1, not {self.target!r}.")
            if not self.model.strip():
                raise StudioError("The openai engine needs a model name (--model NAME): the name the server serves, e.g. llama3.2.")
        if self.kind == "llamacpp" and self.target and not self.target.endswith(".gguf"):
            raise StudioError(f"The llamacpp engine reads a .gguf file, not {self.target!r}.")

    def to_string(self) -> str:
        """The spec string: `openai:http://host:port/v1`, `llamacpp:/path/model.gguf`, `transformers`."""
        return f"{self.kind}:{self.target}" if self.target else self.kind

    def describe(self) -> dict:
        """What a report records: kind, target, model (the key's variable name only, never its value)."""
        return {"engine": self.kind, "target": self.target, "model": self.model}


def parse_engine_spec(text: str | None, model: str = "", base_url: str = "", api_key_env: str = DEFAULT_API_KEY_ENV) -> EngineSpec:
    """`transformers`, `llamacpp:PATH.gguf`, `openai:URL` (or `openai` plus `base_url`) into a validated EngineSpec."""
    text = (text or AUTO).strip()
    kind, _, target = text.partition(":")
    kind = kind.strip().lower()
    spec = EngineSpec(kind=kind, target=(target or base_url).strip(), model=(model or "").strip(), api_key_env=api_key_env)
    spec.validate()
    return spec


Factory = Callable[..., object]
_FACTORIES: dict[str, Factory] = {}


def register_engine(kind: str, factory: Factory) -> None:
    """Add an engine kind: `factory(spec, workspace, generator)` returns an object with `stream_many`."""
    _FACTORIES[kind] = factory


def unregister_engine(kind: str) -> None:
    if kind not in BUILT_IN:
        _FACTORIES.pop(kind, None)


def engine_kinds() -> list[str]:
    return [AUTO, *_FACTORIES]


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def resolve_kind(spec: EngineSpec, generator=None) -> str:
    """`auto` made concrete: the embedded model on a CPU answers through llama.cpp when it is installed."""
    if spec.kind != AUTO:
        return spec.kind
    if os.environ.get("STUDIO_ENGINE"):  # a deployment (or a test run) can pin what `auto` means
        return os.environ["STUDIO_ENGINE"]
    from core.models import EMBEDDED_GENERATOR, resolve_device

    model_id = spec.model or (generator.model_id if generator is not None else EMBEDDED_GENERATOR)
    device = generator.device if generator is not None else AUTO
    if model_id == EMBEDDED_GENERATOR and llama_cpp_available() and resolve_device(device) == "cpu":
        return "llamacpp"
    return "transformers"


def open_engine(spec: EngineSpec | str | None, workspace, generator=None):
    """The engine `spec` names, ready to answer. `generator` (a GeneratorSpec) is the sidebar's model choice."""
    if not isinstance(spec, EngineSpec):
        spec = parse_engine_spec(spec)
    spec.validate()
    kind = resolve_kind(spec, generator)
    if kind not in _FACTORIES:
        raise StudioError(f"Unknown engine {kind!r}; choose one of {', '.join(engine_kinds())}.")
    log.info("Opening engine %s (model %s)", kind, spec.model or getattr(generator, "model_id", "default"))
    concrete = spec if kind == spec.kind else EngineSpec(kind, spec.target, spec.model, spec.api_key_env)
    return _FACTORIES[kind](concrete, workspace, generator)


def _transformers(spec: EngineSpec, workspace, generator=None):
    from core.engines.transformers import open_transformers
    from core.models import GeneratorSpec

    if spec.model:
        base = generator or GeneratorSpec()
        generator = GeneratorSpec(model_id=spec.model, device=base.device, dtype=base.dtype)
    return open_transformers(workspace, generator)


def _llamacpp(spec: EngineSpec, workspace, generator=None):
    from core.engines.llamacpp import open_llamacpp

    return open_llamacpp(spec, workspace, generator)


def _openai(spec: EngineSpec, workspace, generator=None):
    from core.engines.openai import OpenAIEngine

    return OpenAIEngine.from_spec(spec)


register_engine("transformers", _transformers)
register_engine("llamacpp", _llamacpp)
register_engine("openai", _openai)
