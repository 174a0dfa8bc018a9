"""Grounded answers: retrieve, then generate with numbered citations, or say the documents don't cover it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from core.engines.base import GenerationEngine, stream_text
from core.generation import NO_CONTEXT_ANSWER, DecodingSettings, GenerationStats, build_messages
from core.errors import StudioError
from core.embedding import Embedder
from core.retrieval import Hit, RetrievalSettings, retrieve
from core.settings import Workspace
from core.support import SupportReport, check_support


@dataclass
class GroundedAnswer:
    question: str
    text: str
    sources: list[Hit]
    stats: GenerationStats = field(default_factory=GenerationStats)
    engine: str = ""  # the engine and model that answered, shown under the answer and kept with it
    model: str = ""

    @property
    def grounded(self) -> bool:
        return bool(self.sources)

    def cited_numbers(self) -> list[int]:
        """Source numbers the answer cites as [n]; the UI highlights those sources."""
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", self.text)}
        return sorted(n for n in cited if 1 <= n <= len(self.sources))

    def support(self) -> SupportReport:
        """The answer checked against its sources: numbers, names and wording (core.support)."""
        return check_support(self.text, [hit.text for hit in self.sources], self.cited_numbers())

    def supporting_numbers(self) -> list[int]:
        """Sources that back the answer (small models rarely write [n] themselves)."""
        return self.support().supporting

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "grounded": self.grounded,
            "cited": self.cited_numbers(),
            "supported_by": self.supporting_numbers(),
            "support": self.support().to_dict(),
            "sources": [dict(hit.to_dict(), number=i + 1) for i, hit in enumerate(self.sources)],
            "engine": self.engine,
            "model": self.model,
            "timing": {
                "first_token_s": self.stats.first_token_s,
                "total_s": round(self.stats.total_s, 3),
                "new_tokens": self.stats.new_tokens,
                "tokens_per_s": round(self.stats.tokens_per_s, 2),
            },
        }


def stream_grounded_answer(
    engine: GenerationEngine | None, question: str, sources: Sequence[Hit], decoding: DecodingSettings = DecodingSettings(),
    stats: GenerationStats | None = None, system: str | None = None, adapter: str | None = None,
) -> Iterator[str]:
    """The answer's text pieces from `engine` (None is fine when nothing relevant was found: no model is needed)."""
    if not sources:
        yield NO_CONTEXT_ANSWER
        return
    if engine is None:
        raise StudioError("No engine to answer with; choose one in the sidebar.")
    yield from stream_text(engine, build_messages(question, sources, system), decoding, stats, adapter)


def ask(
    workspace: Workspace, kb_name: str, question: str, embedder: Embedder, engine: GenerationEngine,
    retrieval: RetrievalSettings = RetrievalSettings(), decoding: DecodingSettings = DecodingSettings(),
    adapter: str | None = None,
) -> GroundedAnswer:
    sources = retrieve(workspace, kb_name, question, embedder, retrieval)
    stats = GenerationStats()
    text = "".join(stream_grounded_answer(engine, question, sources, decoding, stats, adapter=adapter)).strip()
    return GroundedAnswer(question, text, sources, stats, getattr(engine, "name", ""), getattr(engine, "model", ""))
