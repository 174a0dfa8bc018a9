"""The measured bottom line: which variant wins each metric, on how many answers, with 95% intervals, and
whether that agrees with the Decide page's recommendation. The report ends with it; the Scoreboard tab shows it."""
from __future__ import annotations

import math
from typing import Sequence

from core.variants import VARIANT_LABELS, VARIANT_OF_OPTION

# Metrics the bottom line compares, with the answer rows they are measured on. Binary ones get a Wilson interval,
# the others a normal-approximation interval of the mean; n counts answers that could be scored (n/a cells excluded).
BOTTOM_METRICS = {
    "contains": ("contains the reference answer", True, False),
    "f1": ("token F1", False, False),
    "style": ("format adherence (complete answers)", True, False),
    "groundedness": ("lexical support in the sources", False, False),
    "refusal": ("refuses out-of-scope questions", True, True),
}
Z95 = 1.96


def _values(rows: Sequence[dict], variant: str, key: str, out_of_scope: bool) -> list[float]:
    values = []
    for row in rows:
        if row.get("variant") != variant or bool(row.get("out_of_scope")) != out_of_scope or row.get("error"):
            continue
        value = row.get(key)
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)) and not math.isnan(value):
            values.append(float(value))
    return values


def interval95(values: Sequence[float], binary: bool) -> tuple[float, float, float]:
    """(mean, low, high): Wilson score interval for a rate, normal approximation for a mean of scores."""
    n = len(values)
    mean = sum(values) / n
    if binary:
        centre = (mean + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 * math.sqrt(mean * (1 - mean) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
        return mean, max(0.0, centre - half), min(1.0, centre + half)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def bottom_line(rows: Sequence[dict], decision: dict | None = None) -> dict:
    """Which variant wins each metric, on how many answers, with 95% intervals, and whether that matches Decide.

    A winner is "clear" only when its interval lies above every other variant's; otherwise the sample cannot
    separate them, and the text says so instead of naming a winner."""
    variants = list(dict.fromkeys(row["variant"] for row in rows if row.get("variant")))
    recommended = VARIANT_OF_OPTION.get((decision or {}).get("recommendation") or "")
    metrics_out = []
    for key, (label, binary, oos) in BOTTOM_METRICS.items():
        cells = {}
        for variant in variants:
            values = _values(rows, variant, key, oos)
            if values:
                mean, low, high = interval95(values, binary)
                cells[variant] = {"mean": mean, "low": low, "high": high, "n": len(values)}
        if len(cells) < 2:
            continue
        ranked = sorted(cells, key=lambda v: -cells[v]["mean"])
        best, others = ranked[0], ranked[1:]
        clear = all(cells[best]["low"] > cells[o]["high"] for o in others)
        tied = cells[best]["mean"] == cells[ranked[1]]["mean"]
        metrics_out.append({"metric": key, "label": label, "cells": cells, "winner": None if tied else best, "clear": clear and not tied,
                            "agrees": None if recommended is None or tied else best == recommended})
    agree = [m["label"] for m in metrics_out if m["agrees"] and m["clear"]]
    disagree = [m["label"] for m in metrics_out if m["agrees"] is False and m["clear"]]
    return {"metrics": metrics_out, "recommended": recommended, "agrees_on": agree, "disagrees_on": disagree}


def bottom_line_text(line: dict) -> list[str]:
    """Plain sentences of the bottom line (the report renders them; the page can too)."""
    out = []
    for m in line["metrics"]:
        cells = m["cells"]
        parts = ", ".join(f"{VARIANT_LABELS.get(v, v)} {c['mean']:.2f} [{c['low']:.2f}, {c['high']:.2f}] (n={c['n']})"
                          for v, c in sorted(cells.items(), key=lambda kv: -kv[1]["mean"]))
        if m["winner"] is None:
            verdict = "a tie"
        elif m["clear"]:
            verdict = f"{VARIANT_LABELS.get(m['winner'], m['winner'])} wins"
        else:
            verdict = f"{VARIANT_LABELS.get(m['winner'], m['winner'])} leads, but the 95% intervals overlap: not separable at this sample size"
        out.append(f"{m['label'][:1].upper()}{m['label'][1:]}: {verdict}. {parts}.")
    if not out:
        out.append("Fewer than two variants were scored on any metric, so there is nothing to compare.")
    recommended = line["recommended"]
    if recommended is None:
        out.append("No Decide recommendation was attached, so agreement with it is not assessed.")
    else:
        name = VARIANT_LABELS.get(recommended, recommended)
        if line["agrees_on"] or line["disagrees_on"]:
            if line["agrees_on"]:
                out.append(f"Agrees with the Decide recommendation ({name}) on: {', '.join(line['agrees_on'])}.")
            if line["disagrees_on"]:
                out.append(f"Disagrees with the Decide recommendation ({name}) on: {', '.join(line['disagrees_on'])}.")
        else:
            out.append(f"No metric separates the variants clearly enough to confirm or contradict the Decide recommendation ({name}).")
    return out
