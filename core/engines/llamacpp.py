"""llama.cpp in-process through llama-cpp-python: a GGUF file, LoRA adapters converted to GGUF once.

One `Llama` (one copy of the weights, one context) per GGUF. Requests run one after another; each sets
its own LoRA on the context (`llama_set_adapters_lora`, none for base rows), and the context is reset
when the adapter changes, so a base row never reuses KV entries an adapter computed. The prompt is the
GGUF's own chat template (`tokenizer.chat_template`), rendered by llama-cpp-python's Jinja formatter.

The build (Makefile `llama-cpp`, part of `install-dev`, so `make test` has it; `make run` does not) uses ggml's dynamic CPU backends (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS):
one libggml-cpu-<variant>.so per CPU generation, the best one chosen at run time. 0.3.36 built with
-march=native crashed on an AMX Xeon and an AVX-512 build died with "Illegal instruction" on Zen 4.
llama-cpp-python does not load those backends itself (abetlen/llama-cpp-python#2069), so
`load_backends()` does, before the first model: the best-scored variant that survives a probe run in a child
process (cached per machine), because a CPU can advertise instructions it does not run (see working_variant).

A peft adapter becomes a GGUF LoRA through llama.cpp's own `convert_lora_to_gguf.py`, from the same
pinned sdist (vendored unchanged in vendor/llama.cpp, run by core.export).
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

from core.engines.base import GenerationRequest, StreamEvent, adapter_fingerprint, check_adapter_folder, check_keys
from core.errors import StudioError
from core.generation import DecodingSettings, GenerationStats
from core.machine import generation_threads

log = logging.getLogger(__name__)

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # keep equal to the Makefile (LLAMA_CPP_VERSION) and vendor/llama.cpp
_BACKENDS_LOCK = threading.Lock()


def library_folder() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise StudioError("llama-cpp-python is not installed; run `make llama-cpp` (it compiles it once: 15+ minutes) or choose the transformers engine.")
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def _ggml() -> ctypes.CDLL:
    ggml = ctypes.CDLL(str(_loaded_ggml() or library_folder() / "libggml.so"))
    ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    ggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    ggml.ggml_backend_dev_description.restype = ctypes.c_char_p
    ggml.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    return ggml


def load_backends() -> list[str]:
    """Load ggml's CPU backend (the best variant that runs on this CPU) once per process; the devices it gives."""
    with _BACKENDS_LOCK:
        ggml = _ggml()
        if ggml.ggml_backend_reg_count() == 0:
            variant = working_variant()
            if variant is not None and not ggml.ggml_backend_load(str(variant).encode()):
                raise StudioError(f"llama.cpp could not load its CPU backend {variant.name}; reinstall llama-cpp-python with `make llama-cpp`.")
        devices = [ggml.ggml_backend_dev_description(ggml.ggml_backend_dev_get(i)).decode(errors="replace")
                   for i in range(ggml.ggml_backend_dev_count())]
        if not devices:
            raise StudioError(f"llama.cpp found no CPU backend in {library_folder()}; reinstall llama-cpp-python with `make llama-cpp`.")
        return devices


def ranked_variants(lib: Path) -> list[Path]:
    """The CPU variants this CPU says it supports, best first: ggml's own score (what ggml_backend_load_best uses)."""
    _loaded_ggml()  # the variants link against libggml-base, which libllama brings in: without it dlopen fails
    scored = []
    for path in lib.glob("libggml-cpu-*.so"):
        try:
            score_of = ctypes.CDLL(str(path)).ggml_backend_score
        except (OSError, AttributeError):
            continue
        score_of.restype = ctypes.c_int
        score = score_of()
        if score > 0:
            scored.append((score, path.name, path))
    return [path for _, _, path in sorted(scored, reverse=True)]


# Runs one variant on a real prompt in a child process: a variant whose instructions the CPU advertises but does
# not run (an AMX Xeon VM here: `tilezero` raised SIGILL in libggml-cpu-sapphirerapids.so) kills only the child.
_PROBE = """
import sys
import llama_cpp
from core.engines.llamacpp import _ggml
if not _ggml().ggml_backend_load(sys.argv[1].encode()):
    sys.exit(3)
llm = llama_cpp.Llama(sys.argv[2], n_ctx=128, n_threads=1, n_batch=64, verbose=False)
llm("The history of the city begins with a small harbour, a market and a bridge over the river. Its people " * 2, max_tokens=4)
"""


def _studio_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "studio"


def probe_variant(variant: Path) -> int:
    """Exit code of a child process that loads only `variant` and answers a real prompt (negative: killed by a signal)."""
    import subprocess

    from core.models import embedded_generator_gguf

    root = Path(__file__).resolve().parents[2]  # where the child finds the `core` package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE, str(variant), str(embedded_generator_gguf())], env=env,
                               capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        log.warning("llama.cpp CPU variant %s did not answer a probe in 300 s", variant.name)
        return 124
    if probe.returncode:
        log.warning("llama.cpp CPU variant %s failed a probe on this CPU (exit %s): %s", variant.name, probe.returncode,
                    probe.stderr.decode(errors="replace")[-300:])
    return probe.returncode


def working_variant() -> Path | None:
    """The best CPU variant that really runs here, probed once per machine and build (cached in ~/.cache/studio)."""
    import hashlib

    from core.machine import cpu_flags
    from core.storage import atomic_write_json, read_json_or_default

    lib = library_folder()
    ranked = ranked_variants(lib)
    if not ranked:
        return None  # a build without dynamic backends: the CPU code is inside libggml itself
    build = "|".join(f"{p.name}:{p.stat().st_size}" for p in ranked)
    key = hashlib.sha256(f"{LLAMA_CPP_PYTHON_VERSION}|{build}|{' '.join(sorted(cpu_flags()))}".encode()).hexdigest()[:16]
    cache = _studio_cache() / f"ggml-cpu-variant-{key}.json"
    entry = read_json_or_default(cache, {})
    cached = lib / str(entry.get("variant", "")) if isinstance(entry, dict) else None
    if cached in ranked:
        return cached
    for variant in ranked:
        if probe_variant(variant) == 0:
            atomic_write_json(cache, {"variant": variant.name, "skipped": [p.name for p in ranked[: ranked.index(variant)]]})
            return variant
    raise StudioError("No llama.cpp CPU variant runs on this CPU (each probe crashed); use the transformers engine.")


def _loaded_ggml() -> Path | None:
    """The libggml that libllama itself loaded: registering backends in another copy of it would change nothing."""
    import re

    import llama_cpp.llama_cpp  # noqa: F401 - loads libllama.so and, through its RPATH, libggml

    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if re.search(r"/libggml\.so[.\d]*$", path):
                    return Path(path)
    except OSError:  # pragma: no cover - not Linux
        pass
    return None


def cpu_variant() -> str:
    """Which libggml-cpu-<variant>.so this CPU runs (for the app's engine line and the benchmark notes)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if "libggml-cpu" in line:
                    return Path(line.split()[-1]).stem.replace("libggml-cpu-", "")
    except OSError:  # pragma: no cover
        pass
    return "built-in"


def server_command(gguf: str | Path, port: int, alias: str, lora: str | Path | None = None, threads: int | None = None) -> tuple[list[str], Path]:
    """`python -m llama_cpp.server` for a GGUF (and a GGUF LoRA), and the folder to start it in: ggml looks for its
    CPU backends next to the executable and in the working directory, and this build keeps them in llama_cpp/lib."""
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(Path(gguf).resolve()), "--model_alias", alias,
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads or os.cpu_count() or 1),
            # Its default cuts a running stream off when the next request arrives: Compare's columns would end each other.
            "--interrupt_requests", "False"]
    if lora:
        argv += ["--lora_path", str(Path(lora).resolve())]
    return argv, backend_folder()


def backend_folder() -> Path:
    """A folder holding only the CPU variant that runs here (a link): ggml in a server process loads the best variant
    it finds in its working directory, and the best by score may be one this CPU does not run (see working_variant)."""
    variant = working_variant()
    if variant is None:
        return library_folder()
    folder = _studio_cache() / "ggml-backend" / variant.stem
    link = folder / variant.name
    if not (link.exists() and link.resolve() == variant.resolve()):
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{variant.name}.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(variant)
        temporary.replace(link)
    return folder


# ---------------------------------------------------------------- LoRA: peft folder -> GGUF
def convert_adapter(adapter_dir: str | Path, base_dir: str | Path, out_file: str | Path) -> Path:
    """llama.cpp's convert_lora_to_gguf.py on a peft folder; `base_dir` holds the base model's config.json.

    The converter is the one vendored in vendor/llama.cpp and run by core.export (one home for llama.cpp's scripts)."""
    from core.export import convert_lora_folder

    return convert_lora_folder(Path(adapter_dir), Path(base_dir), Path(out_file))


def adapter_base_dir(adapter_dir: Path, workspace, generator=None) -> Path:
    """The folder with the base model's config.json that a converter needs (the embedded model: its converted copy)."""
    import json

    from core.models import EMBEDDED_GENERATOR, GeneratorSpec, resolve_generator_path

    base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    if base and (Path(base) / "config.json").exists():
        return Path(base)
    model_id = generator.model_id if generator is not None else EMBEDDED_GENERATOR
    path = Path(resolve_generator_path(GeneratorSpec(model_id=model_id), workspace))
    if not (path / "config.json").exists():
        raise StudioError(f"The adapter's base model ({base or model_id}) is not on this machine; the GGUF converter needs its config.json.")
    return path


def gguf_adapter(adapter: str | Path, workspace, generator=None) -> Path:
    """The GGUF LoRA for a peft adapter folder, converted once (keyed by the adapter's weights' mtime)."""
    folder = check_adapter_folder(adapter)
    if folder.suffix == ".gguf":  # pragma: no cover - folders only
        return folder
    digest = adapter_fingerprint(folder)[:16]
    target = workspace.models / "lora-gguf" / f"{folder.parent.name}-{digest}.gguf"
    if target.exists():
        return target
    return convert_adapter(folder, adapter_base_dir(folder, workspace, generator), target)


# ---------------------------------------------------------------- the engine
class LlamaCppEngine:
    """One GGUF in this process; adapters as GGUF LoRAs, switched per request. Thread-safe: one stream at a time."""

    name = "llamacpp"
    loads_adapters = True

    def __init__(self, gguf: str | Path, workspace=None, generator=None, n_ctx: int = 4096, threads: int | None = None):
        path = Path(gguf).expanduser()
        if not path.is_file():
            raise StudioError(f"The GGUF file {path} does not exist; give a .gguf file (or leave it empty for the embedded model).")
        self.devices = load_backends()
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = path
        self.model = path.name
        self.workspace, self.generator = workspace, generator
        self.fixed_threads = threads  # None: decided per request by load, like the transformers engine
        self.threads = threads or generation_threads()
        try:
            self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.threads, n_threads_batch=self.threads,
                             n_batch=512, seed=0, verbose=False)
        except Exception as error:
            raise StudioError(f"llama.cpp could not load {path}: {error}") from error
        self.n_ctx = self.llm.n_ctx()
        self.variant = cpu_variant()
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise StudioError(f"{path.name} has no chat template in its metadata; use a chat (instruct) GGUF.")
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        text = self.llm._model.token_get_text
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=text(eos) if eos != -1 else "",
                                             bos_token=text(bos) if bos != -1 else "", stop_token_ids=[eos])
        self.lock = threading.RLock()
        self._loras: dict[Path, object] = {}
        self._current: Path | None = None
        log.info("llama.cpp: %s, %d threads, CPU backend %s (%s)", path.name, self.threads, self.variant, "; ".join(self.devices))

    # ------------------------------------------------------------ adapters
    def _lora(self, adapter: str) -> Path:
        from llama_cpp import llama_cpp as C

        if self.workspace is None:
            raise StudioError("The llamacpp engine needs a workspace to convert adapters to GGUF.")
        gguf = gguf_adapter(adapter, self.workspace, self.generator)
        if gguf not in self._loras:
            handle = C.llama_adapter_lora_init(self.llm._model.model, str(gguf).encode())
            if not handle:
                raise StudioError(f"llama.cpp could not load the LoRA {gguf.name}; it may belong to another base model.")
            self._loras[gguf] = handle
            self.llm._stack.callback(C.llama_adapter_lora_free, handle)  # freed with the model
        return gguf

    def _use(self, gguf: Path | None) -> None:
        from llama_cpp import llama_cpp as C

        if gguf == self._current:
            return
        if gguf is None:
            failed = C.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
        else:
            adapters = (C.llama_adapter_lora_p_ctypes * 1)(self._loras[gguf])
            scales = (ctypes.c_float * 1)(1.0)
            failed = C.llama_set_adapters_lora(self.llm._ctx.ctx, adapters, 1, scales)
        if failed:
            raise StudioError(f"llama.cpp could not switch to the adapter {gguf}.")
        self.llm.reset()  # the KV cache was computed with the previous adapter: never reuse it
        self._current = gguf

    # ------------------------------------------------------------ generation
    def stream_many(self, requests: Sequence[GenerationRequest], settings: DecodingSettings = DecodingSettings()) -> Iterator[StreamEvent]:
        settings.validate()
        check_keys(requests)
        for request in requests:
            with self.lock:
                try:
                    gguf = self._lora(request.adapter) if request.adapter else None
                    self._use(gguf)
                except StudioError as error:
                    yield StreamEvent(request.key, "error", str(error), GenerationStats())
                    continue
                yield from self._stream_one(request, settings)

    def _threads(self) -> None:
        """All cores, or 1 when other processes already load them (core.machine.generation_threads)."""
        from llama_cpp import llama_cpp as C

        wanted = self.fixed_threads or generation_threads()
        if wanted != self.threads:
            C.llama_set_n_threads(self.llm._ctx.ctx, wanted, wanted)
            self.threads = wanted

    def _stream_one(self, request: GenerationRequest, settings: DecodingSettings) -> Iterator[StreamEvent]:
        self._threads()
        formatted = self.formatter(messages=request.messages)
        prompt_tokens = len(self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=True, special=True))
        stats = GenerationStats(prompt_tokens=prompt_tokens)
        if prompt_tokens + settings.max_new_tokens > self.n_ctx:
            yield StreamEvent(request.key, "error", (
                f"The prompt for {request.key} has {prompt_tokens} tokens; with {settings.max_new_tokens} new tokens it exceeds "
                f"llama.cpp's {self.n_ctx}-token context. Retrieve fewer chunks or lower max new tokens."), stats)
            return
        kwargs = dict(max_tokens=settings.max_new_tokens, temperature=settings.temperature, top_p=settings.top_p if settings.temperature > 0 else 1.0,
                      min_p=0.0, repeat_penalty=settings.repetition_penalty, seed=settings.seed, stream=True, stop=formatted.stop)
        if settings.min_new_tokens:
            # Benchmarks want equal work per engine: forbid end-of-text until min_new_tokens (logits processor per token).
            kwargs["logits_processor"] = _min_tokens(self.llm.token_eos(), settings.min_new_tokens, prompt_tokens)
        started = time.perf_counter()
        stream = self.llm.create_completion(formatted.prompt, **kwargs)
        try:
            for chunk in stream:
                choice = chunk["choices"][0]
                piece = choice.get("text") or ""
                now = time.perf_counter() - started
                if choice.get("finish_reason") is None or piece:  # one chunk per token; the closing one carries none
                    stats.new_tokens += 1
                stats.total_s = now
                if stats.first_token_s is None:
                    stats.first_token_s = now
                if piece:
                    yield StreamEvent(request.key, "text", piece, stats)
        except Exception as error:
            stats.total_s = time.perf_counter() - started
            yield StreamEvent(request.key, "error", f"llama.cpp failed: {error}", stats)
            return
        finally:
            stream.close()
        stats.total_s = time.perf_counter() - started
        yield StreamEvent(request.key, "done", "", stats)


def _min_tokens(eos: int, minimum: int, prompt_tokens: int):
    import numpy as np

    def processor(input_ids, scores):
        if len(input_ids) - prompt_tokens < minimum:
            scores = np.array(scores, copy=True)
            scores[eos] = -np.inf
        return scores

    from llama_cpp import LogitsProcessorList

    return LogitsProcessorList([processor])


def open_llamacpp(spec, workspace, generator=None) -> LlamaCppEngine:
    """The GGUF `spec.target` names, or the embedded SmolLM2 GGUF itself (no conversion)."""
    from core.models import EMBEDDED_GENERATOR, embedded_generator_gguf

    if spec.target:
        gguf = Path(spec.target).expanduser()
    else:
        model_id = spec.model or (generator.model_id if generator is not None else EMBEDDED_GENERATOR)
        if model_id != EMBEDDED_GENERATOR:
            raise StudioError(f"The llamacpp engine reads GGUF files; give llamacpp:PATH.gguf for {model_id}, or use the transformers engine.")
        gguf = embedded_generator_gguf()
    return LlamaCppEngine(gguf, workspace, generator)
