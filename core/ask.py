"""Grounded answers: retrieve, then generate with numbered citations, or say the documents don't cover it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from core.generation import NO_CONTEXT_ANSWER, DecodingSettings, GenerationStats, build_messages, stream_chat
from core.knowledge import Embedder, Hit, RetrievalSettings, relevant, search
from core.settings import Workspace
from core.support import SupportReport, check_support


@dataclass
class GroundedAnswer:
    question: str
    text: str
    sources: list[Hit]
    stats: GenerationStats = field(default_factory=GenerationStats)

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
            "timing": {
                "first_token_s": self.stats.first_token_s,
                "total_s": round(self.stats.total_s, 3),
                "new_tokens": self.stats.new_tokens,
                "tokens_per_s": round(self.stats.tokens_per_s, 2),
            },
        }


def retrieve_sources(
    workspace: Workspace, kb_name: str, question: str, embedder: Embedder, settings: RetrievalSettings = RetrievalSettings()
) -> list[Hit]:
    """The chunks relevant enough to cite (empty when the documents don't cover the question)."""
    return relevant(search(workspace, kb_name, question, embedder, settings), settings)


def stream_grounded_answer(
    loaded, question: str, sources: Sequence[Hit], decoding: DecodingSettings = DecodingSettings(),
    stats: GenerationStats | None = None, system: str | None = None,
) -> Iterator[str]:
    if not sources:
        yield NO_CONTEXT_ANSWER
        return
    yield from stream_chat(loaded, build_messages(question, sources, system), decoding, stats)


def ask(
    workspace: Workspace, kb_name: str, question: str, embedder: Embedder, loaded,
    retrieval: RetrievalSettings = RetrievalSettings(), decoding: DecodingSettings = DecodingSettings(),
) -> GroundedAnswer:
    sources = retrieve_sources(workspace, kb_name, question, embedder, retrieval)
    stats = GenerationStats()
    text = "".join(stream_grounded_answer(loaded, question, sources, decoding, stats)).strip()
    return GroundedAnswer(question, text, sources, stats)
