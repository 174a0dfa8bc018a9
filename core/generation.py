"""Prompts and streaming generation for the answer variants (base, RAG, fine-tuned, hybrid).

Generation itself goes through one seam, `core.engines` (transformers, llama.cpp, any OpenAI-compatible
server): this module only builds the prompts and holds the decoding settings.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

from core.errors import StudioError
from core.retrieval import Hit

log = logging.getLogger(__name__)

DEFAULT_SYSTEM = "You are a helpful assistant. Answer briefly and precisely."
RAG_INSTRUCTIONS = (
    "Answer the question using only the numbered sources below. Cite the sources you use as [1], [2]. "
    "If the sources do not contain the answer, say that the documents do not say."
)
NO_CONTEXT_ANSWER = (
    "The documents in this knowledge base don't cover that question, so I won't guess. "
    "Try rephrasing, or add a document that answers it."
)


@dataclass(frozen=True)
class DecodingSettings:
    max_new_tokens: int = field(default=150, metadata={"help": "upper bound on answer length, in tokens"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy and deterministic"})
    top_p: float = field(default=0.9, metadata={"help": "nucleus sampling cut-off when temperature > 0"})
    seed: int = field(default=0, metadata={"help": "sampling seed, for repeatable answers"})
    # 1.0 by measurement: 1.1 stopped RAG quoting its sources (F1 0.038 vs 0.051 for base) and broke a
    # taught 3-bullet format (0.00 vs 0.70 followed), because it penalises the prompt's own tokens too.
    repetition_penalty: float = field(default=1.0, metadata={"help": ">1 discourages loops, but also penalises quoting the sources"})
    min_new_tokens: int = field(default=0, metadata={"help": "force at least this many tokens (benchmarks: equal work per engine)"})
    # Loops: measured in bench/loop_bench.py (bench/RESULTS_answers.md). The text guard is engine-independent;
    # the n-gram ban is applied by engines that can (transformers), over the answer's own tokens only.
    stop_on_repeat: bool = field(default=True, metadata={"help": "end the answer when it repeats a line or loops on a phrase (core.guards)"})
    no_repeat_ngram: int = field(default=0, metadata={"help": "forbid repeating any n-token run of the answer itself (0 = off; the prompt is not counted)"})

    def validate(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise StudioError(f"Max new tokens {self.max_new_tokens} is out of range; use 1 to 4096.")
        if not 0.0 <= self.temperature <= 2.0:
            raise StudioError(f"Temperature {self.temperature} is out of range; use 0 to 2.")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise StudioError(f"Min new tokens {self.min_new_tokens} must lie between 0 and max new tokens ({self.max_new_tokens}).")
        if not 0.0 < self.top_p <= 1.0:
            raise StudioError(f"Top-p {self.top_p} must be above 0 and at most 1.")
        if not 1.0 <= self.repetition_penalty <= 2.0:
            raise StudioError(f"Repetition penalty {self.repetition_penalty} is out of range; use 1.0 (off) to 2.0.")
        if self.no_repeat_ngram != 0 and not 2 <= self.no_repeat_ngram <= 64:
            raise StudioError(f"No-repeat n-gram {self.no_repeat_ngram} is out of range; use 0 (off) or 2 to 64 tokens.")


@dataclass
class GenerationStats:
    """Filled in while an answer streams: time to first token, total time, tokens and tokens/s."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    first_token_s: float | None = None
    total_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.total_s if self.total_s > 0 else 0.0


def format_context(hits: Sequence[Hit]) -> str:
    lines = []
    for number, hit in enumerate(hits, start=1):
        pages = f"p. {hit.page}" if hit.page == hit.page_end else f"pp. {hit.page}-{hit.page_end}"
        lines.append(f"[{number}] ({hit.document}, {pages})\n{hit.text.strip()}")
    return "\n\n".join(lines)


def build_messages(question: str, hits: Sequence[Hit] | None = None, system: str | None = None) -> list[dict]:
    """Chat messages for a question, with numbered sources when `hits` is given (RAG and hybrid)."""
    question = (question or "").strip()
    if not question:
        raise StudioError("The question is empty; type a question first.")
    messages = [{"role": "system", "content": system or DEFAULT_SYSTEM}]
    if hits:
        content = f"{RAG_INSTRUCTIONS}\n\nSources:\n{format_context(hits)}\n\nQuestion: {question}"
    else:
        content = question
    messages.append({"role": "user", "content": content})
    return messages
