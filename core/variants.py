"""The four answer variants (base, RAG, fine-tuned, hybrid) and the one type of answer they give.

One table says each variant's name, its labels, and whether it reads retrieved passages and/or a LoRA
adapter; Compare, Evaluate, the judge, the charts, the report and Decide all read it. `Answer` is what a
variant answered: Compare fills it in as the stream arrives, Evaluate scores it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from core.errors import StudioError

if TYPE_CHECKING:  # imported when used: Decide reads the variant table without loading retrieval or generation
    from core.generation import GenerationStats
    from core.retrieval import Hit
    from core.support import SupportReport


@dataclass(frozen=True)
class Variant:
    name: str
    label: str  # short: scoreboards, tables, charts
    title: str  # a Compare column's heading
    blurb: str
    uses_context: bool  # answers from the retrieved passages
    uses_adapter: bool  # answers with the LoRA adapter


VARIANT_TABLE = (
    Variant("base", "Base", "Base model", "The model as shipped: no documents, no adapter.", False, False),
    Variant("rag", "RAG", "RAG", "Base model + retrieved passages, cited [1], [2].", True, False),
    Variant("finetuned", "Fine-tuned", "Fine-tuned", "Base model + your LoRA adapter, no documents.", False, True),
    Variant("hybrid", "Hybrid", "Hybrid (RAG + fine-tuned)", "LoRA adapter + the same retrieved passages.", True, True),
)
VARIANTS = tuple(v.name for v in VARIANT_TABLE)  # display order
VARIANT_LABELS = {v.name: v.label for v in VARIANT_TABLE}
VARIANT_TITLES = {v.name: v.title for v in VARIANT_TABLE}
VARIANT_BLURBS = {v.name: v.blurb for v in VARIANT_TABLE}
USES_CONTEXT = frozenset(v.name for v in VARIANT_TABLE if v.uses_context)
USES_ADAPTER = frozenset(v.name for v in VARIANT_TABLE if v.uses_adapter)
# Decide's recommendation (core.decision options) -> the variant that measures it.
VARIANT_OF_OPTION = {"rag": "rag", "finetune": "finetuned", "hybrid": "hybrid"}
_ALIASES = {"ft": "finetuned", "fine-tuned": "finetuned", "fine_tuned": "finetuned", "tuned": "finetuned", "lora": "finetuned"}


def parse_variants(values: str | Sequence[str]) -> list[str]:
    """'base,rag,ft,hybrid' or a list -> canonical names in display order; a StudioError for unknown names."""
    items = values.split(",") if isinstance(values, str) else list(values)
    chosen = set()
    for item in items:
        name = _ALIASES.get(item.strip().lower(), item.strip().lower())
        if not name:
            continue
        if name not in VARIANTS:
            raise StudioError(f"Unknown variant {item!r}; choose from base, rag, finetuned (ft), hybrid.")
        chosen.add(name)
    if not chosen:
        raise StudioError("Choose at least one variant: base, rag, finetuned or hybrid.")
    return [name for name in VARIANTS if name in chosen]


def _no_stats() -> "GenerationStats":
    from core.generation import GenerationStats

    return GenerationStats()


@dataclass
class Answer:
    """One variant's answer to one question, with its sources, timings and the engine that wrote it."""

    variant: str
    text: str = ""
    hits: list[Hit] = field(default_factory=list)  # the passages the answer saw (RAG, hybrid)
    stats: GenerationStats = field(default_factory=_no_stats)
    error: str | None = None
    note: str | None = None  # e.g. "nothing relevant retrieved": answered without generating
    adapter: str | None = None
    messages: list = field(default_factory=list)
    # What a column without documents (base, fine-tuned) is checked against: the passages retrieval found for RAG.
    checked_against: list[Hit] = field(default_factory=list)
    engine: str = ""  # which engine answered ("llamacpp", "openai", ...) and with which model: recorded with the answer
    model: str = ""

    @property
    def title(self) -> str:
        return VARIANT_TITLES[self.variant]

    @property
    def engine_label(self) -> str:
        return f"{self.engine} · {self.model}" if self.model else self.engine

    def support(self) -> SupportReport:
        """The answer's numbers, names and wording checked against its sources (core.support)."""
        from core.support import SupportReport, check_support

        sources = self.hits or self.checked_against
        if self.error or self.note or not sources:
            return SupportReport()
        return check_support(self.text, [hit.text for hit in sources])

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "label": self.title,
            "answer": self.text,
            "error": self.error,
            "note": self.note,
            "adapter": self.adapter,
            "engine": self.engine,
            "model": self.model,
            "sources": [hit.to_dict() for hit in self.hits],
            "support": self.support().to_dict(),
            "prompt_tokens": self.stats.prompt_tokens,
            "new_tokens": self.stats.new_tokens,
            "first_token_s": self.stats.first_token_s,
            "total_s": self.stats.total_s,
            "tokens_per_s": self.stats.tokens_per_s,
        }
