"""The one generation interface: `GenerationEngine.stream_many(requests, settings) -> StreamEvent`s.

Every answer in the Studio (Ask, Compare, Evaluate, dataset questions) goes through an engine made by
`core.engines.registry.open_engine`; nothing else calls a model's generate. An engine answers many chats
at once, each with or without a LoRA adapter, and reports per chat: text pieces, then done or an error.
A failure in one chat (a broken adapter, a server that refused) is an `error` event for that key only.
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Protocol, Sequence

from core.errors import StudioError
from core.generation import DecodingSettings, GenerationStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    """One chat to answer. `adapter` is a peft LoRA folder, or None for the base model."""

    key: str
    messages: list
    adapter: str | None = None


@dataclass
class StreamEvent:
    """`text`: a new piece of `key`'s answer; `done`: `key` finished; `error`: `key` failed with `text`."""

    key: str
    kind: str
    text: str = ""
    stats: GenerationStats | None = None


@dataclass
class GenerationResult:
    key: str
    text: str = ""
    stats: GenerationStats = field(default_factory=GenerationStats)
    error: str | None = None


class GenerationEngine(Protocol):
    """What every answer path needs from an engine. Real: transformers, llamacpp, openai; tests: fakes
    registered with `core.engines.registry.register_engine`.

    `name` is the engine kind ("transformers", ...), `model` what answers (a model id, a GGUF file, a
    served model name); both are recorded with every answer.
    """

    name: str
    model: str

    def stream_many(self, requests: Sequence[GenerationRequest], settings: DecodingSettings) -> Iterator[StreamEvent]: ...


def engine_label(engine) -> str:
    """"llamacpp · SmolLM2-135M-Instruct.Q4_1.gguf": what the app shows under an answer."""
    name, model = getattr(engine, "name", "") or "engine", getattr(engine, "model", "") or ""
    return f"{name} · {model}" if model else name


def check_keys(requests: Sequence[GenerationRequest]) -> None:
    keys = [request.key for request in requests]
    if len(set(keys)) != len(keys):
        raise StudioError("Two requests share a key; give every column its own key.")


def check_adapter_folder(path: str | Path) -> Path:
    """A readable peft LoRA folder (what `GenerationRequest.adapter` names), or a StudioError that says what is wrong."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise StudioError(f"The adapter folder {folder} does not exist; train one on the Fine-tune page or pick another adapter.")
    config_file = folder / "adapter_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioError(f"{folder} has no adapter_config.json; it is not a peft adapter folder.") from None
    except (OSError, ValueError) as error:
        raise StudioError(f"The adapter config {config_file} is unreadable ({error}); retrain or pick another adapter.") from None
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise StudioError(f"The adapter in {folder} is {config.get('peft_type')!r}, not LoRA; only LoRA adapters can be compared.")
    if not any((folder / name).exists() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        raise StudioError(f"{folder} has no adapter_model.safetensors; the training run may not have finished.")
    return folder.resolve()


def adapter_fingerprint(folder: Path) -> str:
    """Names one version of an adapter (an engine's adapter name, a converted file). A retrained run replaces the
    weights in place: their mtime makes it a new adapter."""
    weights = folder / "adapter_model.safetensors"
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    return hashlib.sha1(f"{folder}|{stamp}".encode()).hexdigest()


def collect(events: Iterator[StreamEvent], keys: Sequence[str]) -> dict[str, GenerationResult]:
    """Drain a stream into one result per key."""
    results = {key: GenerationResult(key) for key in keys}
    pieces: dict[str, list[str]] = {key: [] for key in keys}
    for event in events:
        result = results.setdefault(event.key, GenerationResult(event.key))
        if event.kind == "text":
            pieces.setdefault(event.key, []).append(event.text)
        elif event.kind == "error":
            result.error = event.text
        if event.stats is not None:
            result.stats = event.stats
    for key, result in results.items():
        result.text = "".join(pieces.get(key, [])).strip()
    return results


def guarded_stream(engine: GenerationEngine, requests: Sequence[GenerationRequest], settings: DecodingSettings = DecodingSettings()) -> Iterator[StreamEvent]:
    """The one way answers are read from an engine (Ask, Compare, Evaluate, dataset questions): every answer
    passes the loop guard (core.guards), whichever engine made it; the engine stops once every answer has ended."""
    from core.guards import guard_events

    return guard_events(engine.stream_many(requests, settings), [r.key for r in requests], settings.stop_on_repeat)


def generate_many(engine: GenerationEngine, requests: Sequence[GenerationRequest], settings: DecodingSettings = DecodingSettings()) -> dict[str, GenerationResult]:
    return collect(guarded_stream(engine, requests, settings), [request.key for request in requests])


def generate_text(engine: GenerationEngine, messages: list[dict], settings: DecodingSettings = DecodingSettings(), adapter: str | None = None) -> str:
    """One whole answer through the engine (dataset questions, scripts); a StudioError when it failed."""
    result = generate_many(engine, [GenerationRequest("answer", messages, adapter)], settings)["answer"]
    if result.error:
        raise StudioError(result.error)
    return result.text


def stream_text(engine: GenerationEngine, messages: list[dict], settings: DecodingSettings = DecodingSettings(),
                stats: GenerationStats | None = None, adapter: str | None = None) -> Iterator[str]:
    """Text pieces of one answer (Ask's st.write_stream); `stats` is filled in as it streams."""
    for event in guarded_stream(engine, [GenerationRequest("answer", messages, adapter)], settings):
        if event.stats is not None and stats is not None:
            stats.__dict__.update(event.stats.__dict__)
        if event.kind == "error":
            raise StudioError(event.text)
        if event.kind == "text" and event.text:
            yield event.text


class RoutedEngine:
    """Several engines answering one set of requests at once, each request sent to its own engine.

    Compare lets each column pick an engine (base and RAG from the team's Ollama model, the fine-tune
    from the local adapter). Each engine streams in its own thread into one queue, so a slow remote
    column never holds up a local one. An engine that raises fails only its own keys. When the consumer
    stops early, every engine's stream is closed at its next event (a remote stream also by its read
    timeout at worst).
    """

    def __init__(self, routes: Mapping[str, GenerationEngine], default: GenerationEngine):
        self.routes, self.default = dict(routes), default
        engines = {id(e): e for e in [default, *self.routes.values()]}
        self.name = "+".join(sorted({getattr(e, "name", "?") for e in engines.values()}))
        self.model = ", ".join(sorted({getattr(e, "model", "") for e in engines.values()} - {""}))

    def engine_for(self, key: str) -> GenerationEngine:
        """By key, or by the part after the last ':' (Evaluate's keys are "<question>:<variant>")."""
        return self.routes.get(key) or self.routes.get(key.rsplit(":", 1)[-1]) or self.default

    def stream_many(self, requests: Sequence[GenerationRequest], settings: DecodingSettings = DecodingSettings()) -> Iterator[StreamEvent]:
        check_keys(requests)
        groups: dict[int, tuple[GenerationEngine, list[GenerationRequest]]] = {}
        for request in requests:
            engine = self.engine_for(request.key)
            groups.setdefault(id(engine), (engine, []))[1].append(request)
        if len(groups) == 1:
            engine, batch = next(iter(groups.values()))
            yield from engine.stream_many(batch, settings)
            return
        yield from merge_streams(list(groups.values()), settings)


def merge_streams(groups: list[tuple[GenerationEngine, list[GenerationRequest]]], settings: DecodingSettings) -> Iterator[StreamEvent]:
    sink: queue.Queue = queue.Queue()
    stop = threading.Event()

    def run(engine: GenerationEngine, batch: list[GenerationRequest]) -> None:
        finished: set[str] = set()
        stream = engine.stream_many(batch, settings)
        try:
            for event in stream:
                if event.kind in ("done", "error"):
                    finished.add(event.key)
                sink.put(event)
                if stop.is_set():
                    break
        except Exception as error:  # one engine failing must not take the other columns down
            log.warning("Engine %s failed: %s", getattr(engine, "name", "?"), error)
            message = str(error) if isinstance(error, StudioError) else f"{getattr(engine, 'name', 'engine')} failed: {error}"
            for request in batch:
                if request.key not in finished:
                    sink.put(StreamEvent(request.key, "error", message, GenerationStats()))
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            sink.put(None)

    yield from fan_in(run, groups, sink, stop, on_stop=lambda: None, join_s=60)


def fan_in(run, jobs: list, sink: queue.Queue, stop: threading.Event, on_stop, join_s: float) -> Iterator[StreamEvent]:
    """Start `run(*job)` per job in a daemon thread; yield the events they put in `sink` until every job has put
    None. When the consumer stops early: set `stop`, call `on_stop` (e.g. close open sockets), join the threads."""
    workers = [threading.Thread(target=run, args=job if isinstance(job, tuple) else (job,), daemon=True) for job in jobs]
    for worker in workers:
        worker.start()
    running = len(workers)
    try:
        while running:
            event = sink.get()
            if event is None:
                running -= 1
            elif not stop.is_set():
                yield event
    finally:
        stop.set()
        on_stop()
        for worker in workers:
            worker.join(timeout=join_s)
