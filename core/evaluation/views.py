"""Tables for the Evaluate page and the report: the scoreboard's columns (one table for both) and its rows,
and flat per-answer rows for a filterable table."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from core.variants import VARIANT_LABELS


@dataclass(frozen=True)
class ScoreColumn:
    key: str  # the field of a variant in the summary (core.evaluation.scoring.summarize)
    label: str  # the column's heading, on the page and in the report
    digits: int = 3  # decimals shown


SCOREBOARD_COLUMNS = (
    ScoreColumn("n", "answers", 0),
    ScoreColumn("em", "exact match"),
    ScoreColumn("f1", "token F1"),
    ScoreColumn("rouge_l", "ROUGE-L"),
    ScoreColumn("contains", "contains answer"),
    ScoreColumn("groundedness", "lexical support"),
    ScoreColumn("unsupported_rate", "unsupported claims"),
    ScoreColumn("style", "format adherence"),
    ScoreColumn("refusal_oos", "refuses out-of-scope"),
    ScoreColumn("latency_p50_s", "p50 s", 2),
    ScoreColumn("latency_p95_s", "p95 s", 2),
    ScoreColumn("first_token_p50_s", "first token p50 s", 2),
    ScoreColumn("tokens_per_s", "tokens/s", 1),
    ScoreColumn("cut", "cut at the cap", 0),
    ScoreColumn("errors", "errors", 0),
)


def scoreboard_rows(summary: dict) -> list[dict]:
    """One row per variant with readable column names; None stays None (rendered as n/a)."""
    out = []
    for variant, values in (summary or {}).get("variants", {}).items():
        row = {"variant": VARIANT_LABELS.get(variant, variant)}
        for column in SCOREBOARD_COLUMNS:
            value = values.get(column.key)
            row[column.label] = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
        out.append(row)
    return out


def question_rows(rows: Sequence[dict]) -> list[dict]:
    """Flat per-answer rows for a filterable table."""
    return [
        {
            "question id": r["qid"], "variant": VARIANT_LABELS.get(r["variant"], r["variant"]), "question": r["question"],
            "answer": r.get("answer") or (f"error: {r['error']}" if r.get("error") else ""),
            "reference": " | ".join(r.get("answers") or []), "F1": r.get("f1"), "EM": r.get("em"), "ROUGE-L": r.get("rouge_l"),
            "lexical support": r.get("groundedness"), "not in the sources": ", ".join(r.get("unsupported") or []),
            "refused": r.get("refusal"), "out of scope": r.get("out_of_scope"),
            "seconds": r.get("total_s"),
            "sources": "; ".join(f"[{c['n']}] {c['document']} p.{c['page']}" for c in r.get("citations") or []),
        }
        for r in rows
    ]
