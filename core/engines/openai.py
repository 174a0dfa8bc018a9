"""Any OpenAI-compatible server (Ollama, vLLM, llama.cpp's server, TGI, a hosted API) over SSE streaming.

POST {base_url}/chat/completions with "stream": true; each `data: {...}` line carries a delta, the last
line is `data: [DONE]`. Faults stay in their own column: a server that is down, refuses the key (401),
lacks the model (404), goes silent (read timeout) or sends a malformed or cut-off stream becomes an
`error` event for that request with what to do, while the other requests finish. Connection failures,
429 and 5xx are retried a bounded number of times, only before the first token (a retry after text
would duplicate it). The API key is read from an environment variable and only ever put in the
Authorization header: never logged, shown or written.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from core.engines.base import GenerationRequest, StreamEvent, check_keys, fan_in
from core.errors import StudioError
from core.generation import DecodingSettings, GenerationStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteSettings:
    """How patient the Studio is with a server."""

    connect_timeout_s: float = field(default=5.0, metadata={"help": "seconds to open a connection before the column fails"})
    read_timeout_s: float = field(default=120.0, metadata={"help": "longest silence between two pieces of a stream (a CPU server's first token can take long)"})
    retries: int = field(default=2, metadata={"help": "extra attempts on connection errors, 429 and 5xx, before the first token only"})
    backoff_s: float = field(default=0.5, metadata={"help": "wait before retry n: backoff_s * 2**n"})
    parallel: int = field(default=4, metadata={"help": "requests in flight at once (Compare columns stream side by side)"})

    def validate(self) -> None:
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise StudioError("Timeouts must be above 0 seconds.")
        if not 0 <= self.retries <= 5:
            raise StudioError(f"Retries {self.retries} is out of range; use 0 to 5.")
        if not 1 <= self.parallel <= 16:
            raise StudioError(f"Parallel requests {self.parallel} is out of range; use 1 to 16.")


class _Fault(Exception):
    """A failure worth a clear column message; `retry` when another attempt may succeed."""

    def __init__(self, message: str, retry: bool = False, status: int = 0):
        super().__init__(message)
        self.retry, self.status = retry, status


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EXTRA_FIELDS = ("repeat_penalty", "repetition_penalty", "min_tokens")


class OpenAIEngine:
    """Streams chats from /v1/chat/completions. A served model cannot load a local LoRA folder: serve the
    fine-tune under its own name (`python -m core export RUN --serve ollama`) and pick that model."""

    name = "openai"
    loads_adapters = False

    def __init__(self, base_url: str, model: str, api_key_env: str = "STUDIO_OPENAI_API_KEY", settings: RemoteSettings = RemoteSettings()):
        settings.validate()
        if not _ENV_NAME.match(api_key_env or ""):
            raise StudioError(f"{api_key_env!r} is not an environment variable name; use e.g. STUDIO_OPENAI_API_KEY.")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.settings = settings

    @classmethod
    def from_spec(cls, spec) -> "OpenAIEngine":
        return cls(spec.target, spec.model, spec.api_key_env)

    def _headers(self) -> dict:
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _payload(self, messages: list, settings: DecodingSettings) -> dict:
        payload = {"model": self.model, "messages": messages, "stream": True, "max_tokens": settings.max_new_tokens,
                   "temperature": settings.temperature, "seed": settings.seed}
        if settings.temperature > 0:
            payload["top_p"] = settings.top_p
        # Not in OpenAI's API, but servers have their own defaults: llama.cpp's server and Ollama apply a repeat
        # penalty of 1.1 unless told otherwise, and the Studio's measured default is 1.0 (DecodingSettings).
        # llama.cpp's server reads repeat_penalty, vLLM repetition_penalty. An API that rejects unknown fields (400)
        # gets the request again without them (_stream_one).
        payload[EXTRA_FIELDS[0]] = payload[EXTRA_FIELDS[1]] = settings.repetition_penalty
        if settings.min_new_tokens:
            payload["min_tokens"] = settings.min_new_tokens  # vLLM; others ignore it
        return payload

    # ------------------------------------------------------------ streaming
    def stream_many(self, requests: Sequence[GenerationRequest], settings: DecodingSettings = DecodingSettings()) -> Iterator[StreamEvent]:
        settings.validate()
        check_keys(requests)
        if not requests:
            return
        import httpx

        timeout = httpx.Timeout(self.settings.read_timeout_s, connect=self.settings.connect_timeout_s)
        sink: queue.Queue = queue.Queue()
        stop = threading.Event()
        slots = threading.Semaphore(self.settings.parallel)
        open_responses: set = set()
        guard = threading.Lock()

        with httpx.Client(timeout=timeout, headers=self._headers()) as client:
            def run(request: GenerationRequest) -> None:
                stats = GenerationStats()
                try:
                    with slots:
                        if stop.is_set():
                            return
                        if request.adapter:
                            raise _Fault(
                                "A served model cannot load a local LoRA folder. Serve the fine-tune "
                                "(python -m core export RUN --serve ollama|vllm|llamacpp) and pick its model name for this column."
                            )
                        for piece in self._stream_one(client, request, settings, stats, stop, open_responses, guard):
                            sink.put(StreamEvent(request.key, "text", piece, stats))
                    sink.put(StreamEvent(request.key, "done", "", stats))
                except _Fault as fault:
                    sink.put(StreamEvent(request.key, "error", str(fault), stats))
                except Exception as error:  # never let one column's surprise hang the others
                    log.warning("openai stream %s failed: %s", request.key, type(error).__name__)
                    sink.put(StreamEvent(request.key, "error", f"The server at {self.base_url} failed: {type(error).__name__}: {error}", stats))
                finally:
                    sink.put(None)

            def close_open_streams() -> None:  # the consumer stopped (a cancelled column, a rerun): close them now
                with guard:
                    for response in list(open_responses):
                        try:
                            response.close()
                        except Exception:  # pragma: no cover - closing a socket another thread reads
                            pass

            yield from fan_in(run, list(requests), sink, stop, close_open_streams, self.settings.connect_timeout_s + 1)

    def _stream_one(self, client, request, settings, stats, stop, open_responses, guard) -> Iterator[str]:
        import httpx

        url = f"{self.base_url}/chat/completions"
        payload = self._payload(request.messages, settings)
        started = time.perf_counter()
        attempt = 0  # retries used; asking again without the sampling extras is not one
        while True:
            try:
                with client.stream("POST", url, json=payload) as response:
                    with guard:
                        open_responses.add(response)
                    try:
                        self._check_status(response)
                        yield from self._read_sse(response, stats, started, stop)
                        return
                    finally:
                        with guard:
                            open_responses.discard(response)
            except _Fault as fault:
                if fault.status == 400 and any(k in payload for k in EXTRA_FIELDS) and not stats.new_tokens:
                    log.info("%s rejected the sampling extras; asking again without them", self.base_url)
                    payload = {k: v for k, v in payload.items() if k not in EXTRA_FIELDS}
                    continue
                if not fault.retry or stats.new_tokens or attempt == self.settings.retries or stop.is_set():
                    raise
                error_text = str(fault)
            except httpx.ConnectError as error:
                if attempt == self.settings.retries or stop.is_set():
                    raise _Fault(f"Could not reach the server at {self.base_url} ({_reason(error)}). Is it running? "
                                 "Start it (e.g. `ollama serve`, `vllm serve MODEL`, `python -m llama_cpp.server --model FILE.gguf`) "
                                 "or fix the base URL.") from None
                error_text = _reason(error)
            except httpx.ConnectTimeout:
                if attempt == self.settings.retries or stop.is_set():
                    raise _Fault(f"The server at {self.base_url} did not accept a connection within "
                                 f"{self.settings.connect_timeout_s:.0f} s; check the URL and that the server is up.") from None
                error_text = "connect timeout"
            except httpx.ReadTimeout:
                if stop.is_set():
                    return
                raise _Fault(f"The server at {self.base_url} sent nothing for {self.settings.read_timeout_s:.0f} s "
                             f"({stats.new_tokens} tokens received); it may be overloaded. Try again or raise the read timeout.") from None
            except (httpx.RemoteProtocolError, httpx.ReadError) as error:
                if stop.is_set():
                    return
                raise _Fault(f"The connection to {self.base_url} broke mid-answer after {stats.new_tokens} tokens "
                             f"({_reason(error)}); the server may have crashed.") from None
            delay = self.settings.backoff_s * 2 ** attempt
            log.info("openai %s: %s; retry %d in %.1f s", request.key, error_text, attempt + 1, delay)
            if stop.wait(delay):
                return
            attempt += 1

    def _check_status(self, response) -> None:
        status = response.status_code
        if status < 400:
            return
        try:
            detail = response.read().decode("utf-8", "replace")[:300]
        except Exception:  # pragma: no cover
            detail = ""
        detail = _server_message(detail)
        if status in (401, 403):
            hint = (f"the key in ${self.api_key_env} was refused" if os.environ.get(self.api_key_env)
                    else f"set the API key in the environment variable {self.api_key_env}")
            raise _Fault(f"The server at {self.base_url} refused the request ({status} unauthorized): {hint}.")
        if status == 404:
            raise _Fault(f"The server at {self.base_url} has no model {self.model!r} (404{': ' + detail if detail else ''}). "
                         f"Pull or serve it (e.g. `ollama pull {self.model}`), pick a model it serves, or check that the URL ends in /v1.")
        if status == 429 or status >= 500:
            raise _Fault(f"The server at {self.base_url} answered {status}{': ' + detail if detail else ''}; try again shortly.", retry=True)
        raise _Fault(f"The server at {self.base_url} rejected the request ({status}{': ' + detail if detail else ''}).", status=status)

    def _read_sse(self, response, stats: GenerationStats, started: float, stop: threading.Event) -> Iterator[str]:
        finished = False
        for line in response.iter_lines():
            if stop.is_set():
                return
            line = line.strip()
            if not line or line.startswith(":"):  # blank separators and SSE comments (keep-alives)
                continue
            if not line.startswith("data:"):
                continue  # "event:", "id:", "retry:" fields carry nothing we need
            data = line[5:].strip()
            if data == "[DONE]":
                finished = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise _Fault(f"The server at {self.base_url} sent a malformed stream line ({data[:80]!r}); "
                             "is this an OpenAI-compatible /v1 endpoint?") from None
            if not isinstance(chunk, dict):
                raise _Fault(f"The server at {self.base_url} sent an unexpected stream line ({data[:80]!r}).")
            if chunk.get("error"):
                raise _Fault(f"The server at {self.base_url} reported an error mid-stream: {_server_message(json.dumps(chunk['error']))}")
            usage = chunk.get("usage") or {}
            if usage.get("prompt_tokens"):
                stats.prompt_tokens = int(usage["prompt_tokens"])
            for choice in chunk.get("choices") or []:
                piece = ((choice.get("delta") or {}).get("content")) or ""
                if piece:
                    now = time.perf_counter() - started
                    if stats.first_token_s is None:
                        stats.first_token_s = now
                    stats.new_tokens += 1  # one delta per token on every server we know; usage corrects it below
                    stats.total_s = now
                    yield piece
                if choice.get("finish_reason"):
                    finished = True
            if usage.get("completion_tokens"):
                stats.new_tokens = int(usage["completion_tokens"])
        stats.total_s = time.perf_counter() - started
        if not finished and not stop.is_set():
            raise _Fault(f"The stream from {self.base_url} ended before the answer finished ({stats.new_tokens} tokens, no [DONE]); "
                         "the server may have crashed or a proxy cut the connection.")


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.split("] ")[-1][:160]


def _server_message(text: str) -> str:
    """The human part of a server's error body ({"error": {"message": ...}} on most servers)."""
    try:
        body = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error)[:200]
        return str(error)[:200]
    return str(body)[:200]
