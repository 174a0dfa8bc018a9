"""Scoring an evaluation: one row per answer (every per-answer metric), retrieval per question, and the
per-variant scoreboard. Pure functions over plain rows: NaN means "not applicable", stored as null."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from core import metrics, support
from core.evaluation.questions import QuestionItem
from core.retrieval import Hit
from core.variants import USES_CONTEXT, Answer


def score_answer(item: QuestionItem, answer: Answer, hits: Sequence[Hit], given: Sequence[Hit],
                 style_check: Callable[[str], float] | None, threshold: float, cap: int | None = None) -> dict:
    """One results.jsonl row: the answer, its timings and every per-answer metric.

    `hits`: what retrieval found for the question; `given`: the relevant ones a RAG/hybrid answer saw."""
    variant, stats = answer.variant, answer.stats
    refusal = metrics.is_refusal(answer.text)
    nan = math.nan
    row: dict[str, Any] = {
        "qid": item.id,
        "question": item.question,
        "answers": list(item.answers),
        "source_doc": item.source_doc,
        "out_of_scope": item.out_of_scope,
        "variant": variant,
        "answer": answer.text,
        "error": answer.error,
        "engine": answer.engine,
        "model": answer.model,
        "first_token_s": stats.first_token_s,
        "total_s": stats.total_s,
        "new_tokens": stats.new_tokens,
        "tokens_per_s": stats.tokens_per_s,
        "refusal": refusal,
        "citations": [
            {"n": n, "document": h.document, "page": h.page, "page_end": h.page_end, "score": round(h.score, 4)}
            for n, h in enumerate(given, start=1)
        ] if variant in USES_CONTEXT else [],
        # The chunk texts the answer saw, so a judge model (core.judge) can score it later against the same context.
        "contexts": [h.text for h in given] if variant in USES_CONTEXT else [],
    }
    ok = answer.error is None
    if item.answers and not item.out_of_scope and ok:
        row.update(
            em=metrics.exact_match(answer.text, item.answers),
            f1=metrics.token_f1(answer.text, item.answers),
            rouge_l=metrics.rouge_l(answer.text, item.answers),
            contains=metrics.contains_answer(answer.text, item.answers),
        )
    else:
        row.update(em=nan, f1=nan, rouge_l=nan, contains=nan)
    # Groundedness against what the variant saw (rag/hybrid) or, for base/fine-tuned, what retrieval found:
    # it shows how much of a context-free answer the documents would back.
    contexts = [h.text for h in (given if variant in USES_CONTEXT else hits)]
    row["groundedness"] = nan if (refusal or not ok) else support.groundedness(answer.text, contexts, threshold)
    # Numbers (with units) and names the answer states that the same passages do not hold (core.support).
    checked = support.check_support(answer.text, contexts) if (ok and not refusal and contexts) else None
    row["claims"] = [c.text for c in checked.claims] if checked else []
    row["unsupported"] = [c.text for c in checked.unsupported] if checked else []
    # An answer stopped by the new-token cap is incomplete: its format is not judged (n/a, not a 0)
    row["cut"] = bool(cap and ok and stats.new_tokens >= cap)
    row["style"] = style_check(answer.text) if (style_check and ok and not item.out_of_scope and not row["cut"]) else nan
    return row


SHORT_ANSWER_WORDS = 30  # a reference answer a chunk can contain word for word (a taught 3-bullet output cannot)


def has_retrieval_reference(item: QuestionItem) -> bool:
    """A gold passage, or a gold document with a short answer to find in it: without either, hit@k and MRR are n/a."""
    if item.out_of_scope:
        return False
    return bool(item.source_passage) or bool(item.source_doc and any(len(a.split()) <= SHORT_ANSWER_WORDS for a in item.answers))


def retrieval_row(item: QuestionItem, hits: Sequence[Hit]) -> dict:
    relevance = [
        metrics.chunk_is_relevant(h.text, h.document, item.source_doc, item.answers, item.source_passage) for h in hits
    ] if has_retrieval_reference(item) else []
    return {
        "qid": item.id,
        "known": bool(relevance),
        "rank": metrics.first_relevant_rank(relevance) if relevance else None,
        "hits": [{"rank": h.rank, "document": h.document, "page": h.page, "score": round(h.score, 4),
                  "relevant": bool(relevance[i]) if relevance else None} for i, h in enumerate(hits)],
    }


def summarize(rows: Sequence[dict], retrieval: Sequence[dict], variants: Sequence[str], k: int) -> dict:
    """Per-variant scoreboard plus retrieval metrics."""
    board = {}
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        answered = [r for r in mine if not r.get("error")]
        in_scope = [r for r in answered if not r["out_of_scope"]]
        oos = [r for r in answered if r["out_of_scope"]]
        generated = [r for r in answered if r["new_tokens"] > 0]
        total_tokens = sum(r["new_tokens"] for r in generated)
        total_time = sum(r["total_s"] for r in generated)
        board[variant] = {
            "n": len(mine),
            "errors": len(mine) - len(answered),
            "em": metrics.mean(r["em"] for r in in_scope),
            "f1": metrics.mean(r["f1"] for r in in_scope),
            "rouge_l": metrics.mean(r["rouge_l"] for r in in_scope),
            "contains": metrics.mean(r["contains"] for r in in_scope),
            "groundedness": metrics.mean(r["groundedness"] for r in answered),
            "unsupported_rate": _unsupported_rate(answered),
            "style": metrics.mean(r["style"] for r in in_scope),
            "style_n": sum(1 for r in in_scope if r.get("style") is not None and not (isinstance(r["style"], float) and math.isnan(r["style"]))),
            "cut": sum(1 for r in answered if r.get("cut")),
            "refusal_oos": metrics.mean(float(r["refusal"]) for r in oos) if oos else math.nan,
            "refusal_in_scope": metrics.mean(float(r["refusal"]) for r in in_scope) if in_scope else math.nan,
            "latency_p50_s": metrics.percentile([r["total_s"] for r in answered], 50),
            "latency_p95_s": metrics.percentile([r["total_s"] for r in answered], 95),
            "first_token_p50_s": metrics.percentile([r["first_token_s"] for r in generated if r["first_token_s"] is not None], 50),
            "tokens_per_s": total_tokens / total_time if total_time > 0 else math.nan,
        }
    known = [r["rank"] for r in retrieval if r["known"]]
    return {
        "variants": board,
        "retrieval": {
            "questions_with_gold": len(known),
            "k": k,
            "hit@1": metrics.hit_at_k(known, 1),
            f"hit@{k}": metrics.hit_at_k(known, k),
            "mrr": metrics.mrr(known, k),
        },
    }


def _unsupported_rate(rows: Sequence[dict]) -> float:
    """Share of all numbers and names the answers state that their passages do not hold (NaN when none stated)."""
    claims = sum(len(r.get("claims") or []) for r in rows)
    return sum(len(r.get("unsupported") or []) for r in rows) / claims if claims else math.nan


def json_safe(value: Any) -> Any:
    """NaN is not JSON: store it as null (shown as 'n/a', never as a score)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def nulls_to_nan(row: dict) -> dict:
    """Stored nulls back to NaN for aggregation."""
    return {k: (math.nan if v is None and k in ("em", "f1", "rouge_l", "contains", "groundedness", "style") else v) for k, v in row.items()}
