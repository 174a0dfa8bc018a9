"""Compare the four answer variants (base, RAG, fine-tuned, hybrid) for one or many questions.

Every variant of a question shares the decoding settings, the system voice and (RAG, hybrid) the same
retrieved chunks; all variants go to the engine as ONE batch. Used by pages/compare.py, the CLI
(`python -m core compare`) and evaluation (`compare_many`).
"""
from __future__ import annotations

import html
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from core.engines.base import GenerationEngine, GenerationRequest, RoutedEngine, StreamEvent, collect, guarded_stream
from core.errors import StudioError
from core.generation import NO_CONTEXT_ANSWER, DecodingSettings, build_messages
from core.retrieval import Hit
from core.settings import Workspace
from core.storage import atomic_write_json, read_json
from core.variants import USES_ADAPTER, USES_CONTEXT, VARIANTS, Answer, parse_variants

log = logging.getLogger(__name__)

NO_ADAPTER_MESSAGE = "No adapter yet. Train one on the Fine-tune page, then pick it here to see the fine-tuned answer."
SERVED_FINETUNE_NOTE = "served model: the column's model is the fine-tune (no local adapter is sent)"


@dataclass
class Comparison:
    question: str
    answers: dict[str, Answer]
    kb: str | None = None
    adapter: str | None = None
    settings: DecodingSettings = field(default_factory=DecodingSettings)
    system: str | None = None
    wall_s: float = 0.0
    engine: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "kb": self.kb,
            "adapter": self.adapter,
            "engine": self.engine,
            "wall_s": self.wall_s,
            "created_at": self.created_at,
            "settings": {k: getattr(self.settings, k) for k in ("max_new_tokens", "temperature", "top_p", "seed", "repetition_penalty", "stop_on_repeat", "no_repeat_ngram")},
            "system": self.system,
            "answers": [answer.to_dict() for answer in self.answers.values()],
        }


# ---------------------------------------------------------------- the hybrid prompt
HYBRID_FACTS_CHARS = 500  # about what the demo adapter saw per training row (400-character passages), a little more
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[$])|\n{2,}")


def select_facts(question: str, hits: Sequence[Hit], max_chars: int = HYBRID_FACTS_CHARS) -> list[tuple[int, str]]:
    """(source number, sentence) pairs from the retrieved chunks, the sentences sharing most words with the question first.

    A LoRA adapter taught a format on "<instruction>\n\n<passage>" rows writes its bullets from the first
    sentences of the passage; putting the question's best-matching sentences first makes the taught format
    wrap the retrieved facts instead of the chunk's opening lines (a table row, a heading).
    """
    from core.metrics import content_tokens

    wanted = set(content_tokens(question))
    candidates = []
    for number, hit in enumerate(hits, start=1):
        for position, sentence in enumerate(_SENTENCE_END.split(" ".join(hit.text.split()) if hit.text else "")):
            sentence = sentence.strip()
            words = set(content_tokens(sentence))
            if len(words) >= 3:
                candidates.append((number, position, sentence, words))
    # A question word every sentence shares (the company's name) says little: weigh shared words by rarity.
    frequency = {word: sum(word in words for *_, words in candidates) for word in wanted}
    scored = []
    for number, position, sentence, words in candidates:
        weight = sum(math.log(1 + len(candidates) / frequency[word]) for word in wanted & words)
        scored.append((-weight, number, position, sentence))
    scored.sort()
    picked, used = [], 0
    for _, number, _, sentence in scored:
        if picked and used + len(sentence) > max_chars:
            continue
        picked.append((number, sentence))
        used += len(sentence) + 1
        if used >= max_chars:
            break
    return picked


def build_hybrid_messages(question: str, hits: Sequence[Hit], system: str | None = None) -> list[dict]:
    """The fine-tuned model's own prompt shape (instruction, blank line, passage), with the question as the
    instruction and the retrieved facts as the passage, so the adapter's format wraps them (bench/RESULTS_answers.md)."""
    facts = select_facts(question, hits)
    if not facts:
        return build_messages(question, hits, system)
    return build_messages(f"{question}\n\n" + " ".join(sentence for _, sentence in facts), system=system)


def plan_comparison(
    question: str,
    variants: Sequence[str],
    hits: Sequence[Hit] = (),
    adapter: str | None = None,
    system: str | None = None,
    key_prefix: str = "",
    hybrid_prompt: str = "taught",
    served: frozenset[str] = frozenset(),
) -> tuple[dict[str, Answer], list[GenerationRequest]]:
    """Answers to fill in and the engine requests that fill them.

    `hybrid_prompt`: "taught" (the adapter's training shape around the best-matching retrieved sentences,
    the default) or "rag" (the RAG prompt, as before; kept for the benchmark's before/after).
    Variants answered without the model: RAG/hybrid with no relevant hits (NO_CONTEXT_ANSWER, never a
    guess) and fine-tuned/hybrid without an adapter (how to get one). `served` variants run on an engine
    that cannot load a local adapter (a server): their column's model is the fine-tune, so no adapter is sent.
    """
    variants = parse_variants(variants)
    answers: dict[str, Answer] = {}
    requests: list[GenerationRequest] = []
    hits = list(hits)
    for variant in variants:
        answer = Answer(variant, hits=hits if variant in USES_CONTEXT else [], checked_against=[] if variant in USES_CONTEXT else hits)
        answers[variant] = answer
        if variant in USES_ADAPTER and variant in served:
            answer.adapter = None
            answer.note = SERVED_FINETUNE_NOTE
        elif variant in USES_ADAPTER and not adapter:
            answer.error = NO_ADAPTER_MESSAGE
            continue
        else:
            answer.adapter = adapter if variant in USES_ADAPTER else None
        if variant in USES_CONTEXT and not hits:
            answer.text = NO_CONTEXT_ANSWER
            answer.note = "Nothing relevant was retrieved, so this column does not generate."
            continue
        if answer.note == SERVED_FINETUNE_NOTE:
            answer.note = None  # generated normally; the engine line under the answer names the served model
        if variant == "hybrid" and hybrid_prompt == "taught":
            answer.messages = build_hybrid_messages(question, hits, system)
        else:
            answer.messages = build_messages(question, hits if variant in USES_CONTEXT else None, system)
        requests.append(GenerationRequest(key_prefix + variant, answer.messages, answer.adapter))
    return answers, requests


def variant_engines(engine: GenerationEngine, engines: Mapping[str, GenerationEngine] | None) -> tuple[GenerationEngine, frozenset[str]]:
    """One engine for the batch (columns with their own engine are routed to it) and the variants whose engine is a server."""
    routed = RoutedEngine(dict(engines), engine) if engines else engine
    chosen = {variant: (engines or {}).get(variant, engine) for variant in VARIANTS}
    served = frozenset(v for v, e in chosen.items() if getattr(e, "loads_adapters", True) is False)
    return routed, served


def _engine_of(engine: GenerationEngine, key: str) -> GenerationEngine:
    return engine.engine_for(key) if isinstance(engine, RoutedEngine) else engine


def stream_comparison(
    engine: GenerationEngine,
    question: str,
    variants: Sequence[str],
    hits: Sequence[Hit] = (),
    adapter: str | None = None,
    settings: DecodingSettings = DecodingSettings(),
    system: str | None = None,
    hybrid_prompt: str = "taught",
    engines: Mapping[str, GenerationEngine] | None = None,
) -> tuple[Comparison, Iterator[StreamEvent]]:
    """The comparison (filled in as the stream is consumed) and the stream of events, keyed by variant.

    `engines` gives some variants their own engine (e.g. {"base": ollama, "rag": ollama}); the rest use `engine`.
    """
    engine, served = variant_engines(engine, engines)
    answers, requests = plan_comparison(question, variants, hits, adapter, system, hybrid_prompt=hybrid_prompt, served=served)
    for variant, answer in answers.items():
        chosen = _engine_of(engine, variant)
        answer.engine, answer.model = getattr(chosen, "name", ""), getattr(chosen, "model", "")
    comparison = Comparison(question, answers, adapter=adapter, settings=settings, system=system, engine=getattr(engine, "name", ""))

    def events() -> Iterator[StreamEvent]:
        started = time.perf_counter()
        try:
            for event in guarded_stream(engine, requests, settings) if requests else ():
                answer = answers[event.key]
                if event.kind == "text":
                    answer.text += event.text
                elif event.kind == "error":
                    answer.error = event.text
                if event.stats is not None:
                    answer.stats = event.stats
                yield event
        except StudioError as error:
            for request in requests:
                if answers[request.key].error is None:
                    answers[request.key].error = str(error)
                    yield StreamEvent(request.key, "error", str(error))
        finally:
            comparison.wall_s = time.perf_counter() - started
            for answer in answers.values():
                answer.text = answer.text.strip()

    return comparison, events()


def run_comparison(engine: GenerationEngine, question: str, variants: Sequence[str], **kwargs) -> Comparison:
    comparison, events = stream_comparison(engine, question, variants, **kwargs)
    for _ in events:
        pass
    return comparison


def compare_many(
    engine: GenerationEngine,
    questions: Sequence[str],
    variants: Sequence[str],
    retrieve: Callable[[Sequence[str]], list[list[Hit]]] | None = None,
    adapter: str | None = None,
    settings: DecodingSettings = DecodingSettings(),
    system: str | None = None,
    batch_rows: int = 8,
    progress: Callable[[int, int], None] | None = None,
    engines: Mapping[str, GenerationEngine] | None = None,
) -> list[Comparison]:
    """Every variant for many questions (evaluation). Rows of several questions share one batch.

    `retrieve(questions) -> hits per question` (already past the relevance gate), e.g.
    `lambda qs: [r.hits for r in retrieve_many(ws, kb, qs, embedder, retrieval)]`.
    """
    variants = parse_variants(variants)
    needs_context = any(v in USES_CONTEXT for v in variants)
    if needs_context and retrieve is None:
        raise StudioError("RAG and hybrid need a knowledge base; pass a retrieve function or drop those variants.")
    all_hits = retrieve(list(questions)) if needs_context else [[] for _ in questions]
    engine, served = variant_engines(engine, engines)
    comparisons, pending = [], []
    for index, (question, hits) in enumerate(zip(questions, all_hits)):
        answers, requests = plan_comparison(question, variants, hits, adapter, system, key_prefix=f"{index}:", served=served)
        for variant, answer in answers.items():
            chosen = _engine_of(engine, variant)
            answer.engine, answer.model = getattr(chosen, "name", ""), getattr(chosen, "model", "")
        comparisons.append(Comparison(question, answers, adapter=adapter, settings=settings, system=system, engine=getattr(engine, "name", "")))
        pending.extend(requests)
    done = 0
    for start in range(0, len(pending), max(1, batch_rows)):
        batch = pending[start : start + batch_rows]
        started = time.perf_counter()
        try:
            results = collect(guarded_stream(engine, batch, settings), [r.key for r in batch])
        except StudioError as error:
            results = {r.key: None for r in batch}
            failure = str(error)
        elapsed = time.perf_counter() - started
        for request in batch:
            index, variant = request.key.split(":", 1)
            answer = comparisons[int(index)].answers[variant]
            result = results.get(request.key)
            if result is None:
                answer.error = failure
                continue
            answer.text, answer.stats, answer.error = result.text, result.stats, result.error
            comparisons[int(index)].wall_s += elapsed / len(batch)
        done += len(batch)
        if progress:
            progress(done, len(pending))
    return comparisons


# ---------------------------------------------------------------- demo questions (per knowledge base)
DEFAULT_DEMO_QUESTIONS = [
    "What is this document about, in two sentences?",
    "What are the key dates or numbers mentioned?",
    "Who are the main people or organisations involved?",
]


def _demo_file(workspace: Workspace) -> Path:
    return workspace.root / "compare_demo_questions.json"


def load_demo_questions(workspace: Workspace, kb_name: str) -> list[str]:
    stored = read_json(_demo_file(workspace), default={}) or {}
    questions = stored.get(kb_name)
    return list(questions) if isinstance(questions, list) else list(DEFAULT_DEMO_QUESTIONS)


def save_demo_questions(workspace: Workspace, kb_name: str, questions: Sequence[str]) -> list[str]:
    cleaned = [q.strip() for q in questions if q and q.strip()]
    if len(cleaned) > 50:
        raise StudioError("Keep the demo list to 50 questions or fewer.")
    if any(len(q) > 1000 for q in cleaned):
        raise StudioError("A demo question is longer than 1000 characters; shorten it.")
    stored = read_json(_demo_file(workspace), default={}) or {}
    stored[kb_name] = cleaned
    atomic_write_json(_demo_file(workspace), stored)
    return cleaned


# ---------------------------------------------------------------- export
def _timing(answer: Answer) -> str:
    s = answer.stats
    first = f"{s.first_token_s:.2f} s" if s.first_token_s is not None else "–"
    return f"first token {first} · total {s.total_s:.2f} s · {s.new_tokens} tokens · {s.tokens_per_s:.1f} tok/s"


def export_markdown(comparisons: Sequence[Comparison]) -> str:
    lines = ["# RAG vs Fine-Tuning Studio: comparison", ""]
    for comparison in comparisons:
        lines += [f"## Q: {comparison.question}", ""]
        meta = [f"knowledge base: {comparison.kb or '–'}", f"adapter: {comparison.adapter or '–'}"]
        s = comparison.settings
        meta.append(f"max new tokens {s.max_new_tokens}, temperature {s.temperature}, top-p {s.top_p}, seed {s.seed}")
        lines += [f"*{' · '.join(meta)}*", ""]
        for answer in comparison.answers.values():
            lines += [f"### {answer.title}", ""]
            if answer.error:
                lines += [f"> {answer.error}", ""]
                continue
            lines += [answer.text or "(empty answer)", "", f"*{_timing(answer)} · engine {answer.engine_label or '–'}*", ""]
            if answer.hits or answer.checked_against:
                lines += [f"*{answer.support().badge()}*", ""]
            for number, hit in enumerate(answer.hits, start=1):
                snippet = " ".join(hit.text.split())
                lines.append(f"- [{number}] {hit.document}, p. {hit.page} (score {hit.score:.2f}): {snippet[:300]}")
            if answer.hits:
                lines.append("")
    return "\n".join(lines)


def export_html(comparisons: Sequence[Comparison]) -> str:
    """A standalone page; every user or model string goes through html.escape."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Comparison</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2937}"
        ".row{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:1rem}"
        ".col{border:1px solid #e5e7eb;border-radius:8px;padding:1rem}.meta{color:#6b7280;font-size:.85rem}"
        ".err{color:#b91c1c}pre{white-space:pre-wrap;font-family:inherit}</style></head><body>",
        "<h1>RAG vs Fine-Tuning Studio: comparison</h1>",
    ]
    for comparison in comparisons:
        parts.append(f"<h2>Q: {e(comparison.question)}</h2>")
        parts.append(
            f"<p class='meta'>knowledge base: {e(comparison.kb or '–')} · adapter: {e(comparison.adapter or '–')}</p><div class='row'>"
        )
        for answer in comparison.answers.values():
            parts.append(f"<div class='col'><h3>{e(answer.title)}</h3>")
            if answer.error:
                parts.append(f"<p class='err'>{e(answer.error)}</p></div>")
                continue
            parts.append(f"<pre>{e(answer.text)}</pre><p class='meta'>{e(_timing(answer))} · engine {e(answer.engine_label or '–')}</p>")
            if answer.hits or answer.checked_against:
                parts.append(f"<p class='meta'>{e(answer.support().badge())}</p>")
            if answer.hits:
                parts.append("<ol>")
                for hit in answer.hits:
                    parts.append(
                        f"<li><b>{e(hit.document)}</b>, p. {hit.page} (score {hit.score:.2f})<br>"
                        f"<span class='meta'>{e(' '.join(hit.text.split())[:400])}</span></li>"
                    )
                parts.append("</ol>")
            parts.append("</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)

