"""Fake generation engines for fast tests. `install` puts a fake into the engine registry's table
(`monkeypatch.setitem(core.engines.registry._FACTORIES, kind, ...)`, the table `register_engine` fills and the one
transformers, llamacpp and openai are looked up in), so monkeypatch removes it after the test; it is then chosen by
name like a user chooses an engine. The fake embedder (tests.conftest.FakeEmbedder) enters the same way, by model
id, into core.embedding's `_REGISTERED` table: `install_embedder`."""
from __future__ import annotations

import re

from core.engines.base import StreamEvent, check_keys
from core.generation import GenerationStats


class EchoEngine:
    """RAG copies the first sentence of source [1]; an adapter answers in three bullets; base guesses.
    Records every batch so tests can see the prompts, adapters and keys it was sent."""

    name = "fake"
    loads_adapters = True

    def __init__(self, model: str = "echo-1"):
        self.model = model
        self.batches: list[list] = []

    @staticmethod
    def reply(request) -> str:
        content = request.messages[-1]["content"]
        first = re.search(r"\[1\] \([^)]*\)\n(.+?)(?:\.\s|\n|$)", content)
        if first:
            return first.group(1).strip() + " [1]."
        if request.adapter:
            if "broken" in request.adapter:
                raise ValueError("adapter broken")
            return "- a guess\n- another\n- third"
        return "I think it was long ago."

    def stream_many(self, requests, settings):
        check_keys(requests)
        self.batches.append(list(requests))
        for request in requests:
            try:
                text = self.reply(request)
            except ValueError as error:
                yield StreamEvent(request.key, "error", str(error), GenerationStats())
                continue
            words = text.split(" ")
            stats = GenerationStats(prompt_tokens=len(request.messages[-1]["content"].split()), first_token_s=0.01)
            for number, word in enumerate(words):
                stats.new_tokens, stats.total_s = number + 1, 0.01 * (number + 1)
                yield StreamEvent(request.key, "text", word if number == 0 else " " + word, stats)
            yield StreamEvent(request.key, "done", "", stats)


def install(monkeypatch, engine=None, kind: str = "fake"):
    """Register `engine` (default: a new EchoEngine) as `kind` and make it what `auto` opens; undone by monkeypatch."""
    from core.engines import registry

    engine = engine or EchoEngine()
    monkeypatch.setitem(registry._FACTORIES, kind, lambda spec, workspace, generator=None: engine)
    monkeypatch.setenv("STUDIO_ENGINE", kind)
    return engine


def install_embedder(monkeypatch, embedder):
    """Put `embedder` under its model id in core.embedding._REGISTERED (the table register_embedder fills):
    a knowledge base built with it, or a sidebar set to that model id, loads it. Undone by monkeypatch."""
    from core import embedding

    monkeypatch.setitem(embedding._REGISTERED, embedder.model_id, lambda: embedder)
    return embedder
