"""An estimate as text (the CLI, decision.md, the page) and as data (--json, the evaluation report)."""
from __future__ import annotations

from dataclasses import asdict

from core.estimate.formulas import Estimate, MemoryEstimate


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def memory_line(m: MemoryEstimate) -> str:
    verdict = "fits" if m.fits else ("not available" if not m.supported else "does NOT fit")
    line = (f"{m.method}: {m.total_gb:.1f} GB of {m.available_gb:.0f} GB ({verdict}): weights {m.weights_gb:.1f}, "
            f"adapter + optimizer {m.trainable_gb:.2f}, activations {m.activations_gb:.1f}, overhead {m.overhead_gb:.1f}")
    return line + (f". {m.note}" if m.note else "")


def summary_lines(est: Estimate) -> list[str]:
    """Plain-text lines for the CLI, the Markdown export and the page."""
    t, r = est.training, est.rag
    lines = [
        f"Model: {est.model.label}, {est.inputs.params:.3g} parameters; hardware: {est.hardware.label}",
        memory_line(est.lora),
        memory_line(est.qlora),
        f"Training {est.inputs.train_tokens * est.inputs.epochs:.3g} tokens: LoRA {human_seconds(t.lora_seconds)}, "
        f"QLoRA {human_seconds(t.qlora_seconds)}, full fine-tune {human_seconds(t.full_seconds)} "
        f"(at {t.effective_flops:.3g} FLOP/s effective)",
        f"RAG index: {r.pages} pages -> {r.chunks} chunks, {human_bytes(r.index_bytes)} "
        f"(vectors {human_bytes(r.vector_bytes)}, text {human_bytes(r.text_bytes)})",
        f"Ingest: parse {human_seconds(r.parse_seconds)}, embed {human_seconds(r.embed_seconds)}",
        f"Per question: retrieval {r.retrieval_ms:.0f} ms; RAG answer {human_seconds(r.rag_answer_seconds)}, "
        f"answer without retrieval {human_seconds(r.plain_answer_seconds)}",
    ]
    return lines + est.notes


def estimate_to_dict(est: Estimate) -> dict:
    data = asdict(est)
    for key, m in (("lora", est.lora), ("qlora", est.qlora)):
        data[key].update(total_gb=m.total_gb, fits=m.fits)
    data["rag"]["index_bytes"] = est.rag.index_bytes
    return data
