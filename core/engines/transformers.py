"""transformers + peft in-process: one copy of the base weights, a batch that mixes adapters.

`TorchEngine` serves a batch that mixes adapters: peft's forward with `adapter_names=[...]`, "__base__"
for rows that must be the plain base model (peft applies each LoRA only to its own sub-batch, so base
rows compute exactly `base_layer(x)`). Rows are prefilled per length group and decoded together, so four
columns cost little more than one on a CPU (bench/RESULTS_compare.md). On CUDA the same code runs in bf16.
The prompt is the tokenizer's own chat template (`apply_chat_template`), never one written here.
The batch's key/value cache is built in torch_cache.py; threads and the CPU dtype come from core.machine.

Pitfall (peft 0.21, lora/layer.py `_mixed_batch_forward`): an adapter name that is not loaded is
skipped without a word, which silently gives base output. We only pass names we loaded ourselves and
verify each adapter injected LoRA weights (> 0 parameters) before using it.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

from core.engines.base import GenerationRequest, StreamEvent, adapter_fingerprint, check_adapter_folder, check_keys
from core.engines.torch_cache import prefill_left_padded
from core.errors import StudioError
from core.generation import DecodingSettings, GenerationStats
from core.machine import fast_cpu_dtype, generation_threads

log = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


def _adapter_name(folder: Path) -> str:
    return "a" + adapter_fingerprint(folder)[:12]


class TorchEngine:
    """transformers + peft, one model, a mixed-adapter batch. Thread-safe: one generation at a time."""

    name = "transformers"

    def __init__(self, loaded):
        self.loaded = loaded
        self.model = loaded.spec.model_id
        self._peft = None
        self._adapters: dict[Path, str] = {}
        self.lock = loaded.lock
        self.loaded.tokenizer.padding_side = "left"  # decoder-only batches must be left-padded

    # ------------------------------------------------------------ adapters
    @property
    def adapters(self) -> dict[str, str]:
        return {str(path): name for path, name in self._adapters.items()}

    def load_adapter(self, path: str | Path) -> str:
        """The peft name of the adapter in `path`, loading it once; a StudioError when it cannot serve."""
        folder = check_adapter_folder(path)
        name = _adapter_name(folder)
        with self.lock:
            if self._adapters.get(folder) == name:
                return name
            from peft import PeftModel

            from core.families import check_adapter_base, read_config

            check_adapter_base(folder, self.loaded.spec.model_id, read_config(self.loaded.path))  # names both models
            try:
                if self._peft is None:
                    # autocast off: keep LoRA weights in the base dtype (bf16 on CPU) instead of fp32 copies.
                    self._peft = PeftModel.from_pretrained(
                        self.loaded.model, str(folder), adapter_name=name, is_trainable=False, autocast_adapter_dtype=False
                    )
                    self._peft.eval()
                else:
                    self._peft.load_adapter(str(folder), adapter_name=name, is_trainable=False, autocast_adapter_dtype=False)
            except Exception as error:  # a corrupt file, another base model's shapes, ...
                self._drop(name)
                raise StudioError(f"The adapter in {folder} could not be loaded onto this model: {error}") from error
            injected = sum(p.numel() for n, p in self._peft.named_parameters() if f".{name}." in n)
            if injected == 0:
                self._drop(name)
                raise StudioError(
                    f"The adapter in {folder} targets modules this model does not have, so it would change nothing; "
                    "train it on this base model."
                )
            self._adapters = {p: n for p, n in self._adapters.items() if p != folder}
            self._adapters[folder] = name
            log.info("Loaded adapter %s as %s (%d LoRA parameters)", folder, name, injected)
            return name

    def _drop(self, name: str) -> None:
        if self._peft is None:
            return
        try:
            if name in getattr(self._peft, "peft_config", {}):
                self._peft.delete_adapter(name)
        except Exception:  # pragma: no cover - best effort cleanup
            log.exception("Could not remove the failed adapter %s", name)

    # ------------------------------------------------------------ generation
    def encode(self, messages_list: Sequence[list]) -> tuple[list[str], list[int]]:
        tokenizer = self.loaded.tokenizer
        texts = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in messages_list]
        lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
        return texts, lengths

    def stream_many(self, requests: Sequence[GenerationRequest], settings: DecodingSettings = DecodingSettings()) -> Iterator[StreamEvent]:
        settings.validate()
        if not requests:
            return
        check_keys(requests)
        # Adapters first: a broken one fails only its own column.
        runnable: list[tuple[GenerationRequest, str]] = []
        for request in requests:
            if request.adapter is None:
                runnable.append((request, BASE_ADAPTER))
                continue
            try:
                runnable.append((request, self.load_adapter(request.adapter)))
            except StudioError as error:
                yield StreamEvent(request.key, "error", str(error), GenerationStats())
        if not runnable:
            return
        yield from self._stream_batch(runnable, settings)

    def _stream_batch(self, runnable: list[tuple[GenerationRequest, str]], settings: DecodingSettings) -> Iterator[StreamEvent]:
        import torch

        tokenizer = self.loaded.tokenizer
        texts, lengths = self.encode([request.messages for request, _ in runnable])
        limit = self.loaded.max_length - settings.max_new_tokens
        for (request, _), length in zip(runnable, lengths):
            if length > limit:
                raise StudioError(
                    f"The prompt for {request.key} has {length} tokens; with {settings.max_new_tokens} new tokens it exceeds the "
                    f"model's {self.loaded.max_length}-token window. Retrieve fewer chunks or lower max new tokens."
                )
        prompt_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
        names = [name for _, name in runnable]
        stop_ids = self._stop_ids()
        sink: queue.Queue = queue.Queue()
        cancel = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self.lock, torch.inference_mode():
                    if self.loaded.device == "cpu":
                        torch.set_num_threads(generation_threads())
                    if settings.temperature > 0:
                        torch.manual_seed(settings.seed)
                    self._decode(prompt_ids, names, settings, stop_ids, sink, cancel)
            except BaseException as error:  # surfaced in the caller's thread
                errors.append(error)
            finally:
                sink.put(("end", None))

        rows = len(runnable)
        stats = [GenerationStats(prompt_tokens=lengths[i]) for i in range(rows)]
        tokens: list[list[int]] = [[] for _ in range(rows)]
        shown = [""] * rows
        finished = [False] * rows
        started = time.perf_counter()
        worker = threading.Thread(target=run, name="compare-generate", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = sink.get()
                if kind == "end":
                    break
                now = time.perf_counter() - started
                for row, token in enumerate(value):
                    if finished[row]:
                        continue
                    if token in stop_ids:
                        finished[row] = True
                        stats[row].total_s = now
                        yield StreamEvent(runnable[row][0].key, "done", "", stats[row])
                        continue
                    tokens[row].append(token)
                    stats[row].new_tokens = len(tokens[row])
                    if stats[row].first_token_s is None:
                        stats[row].first_token_s = now
                    stats[row].total_s = now
                    text = tokenizer.decode(tokens[row], skip_special_tokens=True)
                    if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                        continue
                    if len(text) > len(shown[row]) and text.startswith(shown[row]):
                        piece = text[len(shown[row]) :]
                        shown[row] = text
                        yield StreamEvent(runnable[row][0].key, "text", piece, stats[row])
                    elif text != shown[row]:
                        shown[row] = text
                        yield StreamEvent(runnable[row][0].key, "text", "", stats[row])
        finally:
            # The consumer stopped early (a Streamlit rerun, a closed tab): end generate at the next step
            # instead of holding the model lock until max_new_tokens.
            cancel.set()
            worker.join()
        total = time.perf_counter() - started
        for row in range(rows):
            if finished[row]:
                continue
            key = runnable[row][0].key
            if errors:
                yield StreamEvent(key, "error", f"Generation failed: {errors[0]}", stats[row])
                continue
            stats[row].total_s = total
            text = tokenizer.decode(tokens[row], skip_special_tokens=True)
            if text != shown[row]:
                piece = text[len(shown[row]) :] if text.startswith(shown[row]) else ""
                shown[row] = text
                yield StreamEvent(key, "text", piece, stats[row])
            yield StreamEvent(key, "done", "", stats[row])

    def _decode(self, prompt_ids: list[list[int]], names: list[str], settings: DecodingSettings, stop_ids: set[int], sink, cancel) -> None:
        """Prefill by length group into one left-padded cache (torch_cache.py), then decode every row together."""
        import torch
        from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        model = self._peft if self._peft is not None else self.loaded.model
        device = self.loaded.device
        rows = len(prompt_ids)

        def forward(input_ids, cache, rows_names, **extra):
            kwargs = dict(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1, **extra)
            if self._peft is not None:
                # Always name every row: without adapter_names peft would apply the active adapter to all rows.
                kwargs["adapter_names"] = rows_names
            return model(**kwargs)

        capacity = max(len(ids) for ids in prompt_ids) + settings.max_new_tokens
        batch = prefill_left_padded(forward, prompt_ids, names, capacity, device, cancel)
        if batch is None:
            return
        cache, mask, positions, longest = batch.cache, batch.mask, batch.positions, batch.longest

        processors = LogitsProcessorList()
        history = None
        if settings.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
            # Each row's own prompt (no pad tokens), then its answer; pad slots use a token already in the row.
            history = [list(ids) for ids in prompt_ids]
        sampling = settings.temperature > 0
        if sampling:
            top_k = getattr(self.loaded.model.generation_config, "top_k", None) or 50
            processors += [TemperatureLogitsWarper(settings.temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(settings.top_p)]
        stop = torch.tensor(sorted(stop_ids), device=device)
        pad = self.loaded.tokenizer.pad_token_id
        pad = int(pad) if pad is not None else int(stop[0])
        finished = torch.zeros(rows, dtype=torch.bool, device=device)
        logits = batch.first_logits
        answers: list[list[int]] = [[] for _ in range(rows)]  # each row's own tokens, for the no-repeat n-gram ban
        for step in range(settings.max_new_tokens):
            if step < settings.min_new_tokens:
                logits[:, stop] = -float("inf")
            if settings.no_repeat_ngram:
                from core.guards import no_repeat_ngram_bans

                for row, answer in enumerate(answers):
                    banned = no_repeat_ngram_bans(answer, settings.no_repeat_ngram)
                    if banned:
                        logits[row, sorted(banned)] = -float("inf")
            if history is not None:
                width = max(len(h) for h in history)
                padded = torch.tensor([h + [h[-1]] * (width - len(h)) for h in history], device=device)
                logits = processors(padded, logits)
            elif processors:
                logits = processors(None, logits)
            if sampling:
                tokens = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1).squeeze(1)
            else:
                tokens = torch.argmax(logits, dim=-1)
            tokens = torch.where(finished, torch.full_like(tokens, pad), tokens)
            listed = tokens.tolist()
            sink.put(("tokens", listed))
            for row, token in enumerate(listed):
                answers[row].append(token)
            if history is not None:
                for row, token in enumerate(listed):
                    history[row].append(token)
            finished |= torch.isin(tokens, stop)
            if bool(finished.all()) or cancel.is_set() or step + 1 == settings.max_new_tokens:
                return
            used = longest + step + 1
            out = forward(tokens.unsqueeze(1), cache, names, attention_mask=mask[:, :used], position_ids=positions + step)
            logits = out.logits[:, -1].float()

    def _stop_ids(self) -> set[int]:
        tokenizer = self.loaded.tokenizer
        ids = set()
        eos = getattr(self.loaded.model.generation_config, "eos_token_id", None)
        for value in (eos if isinstance(eos, (list, tuple)) else [eos]) + [tokenizer.eos_token_id]:
            if value is not None:
                ids.add(int(value))
        return ids


def open_transformers(workspace, generator=None) -> TorchEngine:
    """transformers on this machine: bf16 on CPUs with native bf16 when quiet, CUDA when present."""
    from core.models import GeneratorSpec, load_generator, resolve_device

    spec = generator or GeneratorSpec()
    if spec.dtype == "auto" and resolve_device(spec.device) == "cpu":
        spec = GeneratorSpec(model_id=spec.model_id, device=spec.device, dtype=fast_cpu_dtype())
    return TorchEngine(load_generator(spec, workspace))
