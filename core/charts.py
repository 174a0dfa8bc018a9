"""Plotly figures for the scoreboard, shared by the Evaluate page and the HTML report (no streamlit here)."""
from __future__ import annotations

import math
from typing import Sequence

from core.evaluation.views import SCOREBOARD_COLUMNS
from core.variants import VARIANT_LABELS

# The scores between 0 and 1 that share one axis, labelled as in the scoreboard's columns.
BAR_METRICS = ("em", "f1", "rouge_l", "contains", "groundedness", "style", "refusal_oos")
METRIC_LABELS = {c.key: c.label for c in SCOREBOARD_COLUMNS if c.key in BAR_METRICS}
VARIANT_COLORS = {"base": "#94A3B8", "rag": "#4F46E5", "finetuned": "#F59E0B", "hybrid": "#10B981"}


def _value(value) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def metric_bars(summary: dict, metrics: Sequence[str] = BAR_METRICS):
    """Grouped bars: one group per metric, one bar per variant. Missing values (n/a) draw no bar."""
    import plotly.graph_objects as go

    board = summary.get("variants", {})
    shown = [m for m in metrics if any(_value(v.get(m)) is not None for v in board.values())]
    fig = go.Figure()
    for variant, values in board.items():
        ys = [_value(values.get(m)) for m in shown]
        fig.add_bar(
            name=VARIANT_LABELS.get(variant, variant),
            x=[METRIC_LABELS[m] for m in shown],
            y=ys,
            marker_color=VARIANT_COLORS.get(variant),
            # "0" rather than "0.00": four zero labels side by side otherwise run into each other
            text=[("n/a" if y is None else "0" if y == 0 else f"{y:.2f}") for y in ys],
            textposition="outside",
            textfont=dict(size=10),
        )
    fig.update_layout(
        barmode="group", yaxis=dict(range=[0, 1.1], title="score (0-1)"), title="Metrics per variant",
        legend=dict(orientation="h", y=-0.2), margin=dict(t=50, b=40, l=50, r=20), height=420,
    )
    return fig


def scoreboard_figure(summary: dict):
    """One headline bar per variant: token F1 (answer correctness against the references)."""
    import plotly.graph_objects as go

    board = summary.get("variants", {})
    variants = list(board)
    ys = [_value(board[v].get("f1")) for v in variants]
    fig = go.Figure(
        go.Bar(
            x=[VARIANT_LABELS.get(v, v) for v in variants],
            y=[y or 0 for y in ys],
            marker_color=[VARIANT_COLORS.get(v) for v in variants],
            # "0" rather than "0.00": four zero labels side by side otherwise run into each other
            text=[("n/a" if y is None else "0" if y == 0 else f"{y:.2f}") for y in ys],
            textposition="outside",
            textfont=dict(size=10),
        )
    )
    fig.update_layout(title="Scoreboard: token F1 per variant", yaxis=dict(range=[0, 1.1], title="token F1"),
                      margin=dict(t=50, b=40, l=50, r=20), height=340)
    return fig


def latency_figure(rows: Sequence[dict]):
    """Distribution of answer time per variant (box with every point)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for variant in VARIANT_LABELS:
        times = [r["total_s"] for r in rows if r.get("variant") == variant and not r.get("error") and r.get("total_s") is not None]
        if times:
            fig.add_box(y=times, name=VARIANT_LABELS[variant], marker_color=VARIANT_COLORS[variant], boxpoints="all", jitter=0.3)
    fig.update_layout(title="Latency per answer", yaxis_title="seconds", showlegend=False,
                      margin=dict(t=50, b=40, l=50, r=20), height=360)
    return fig


def loss_figure(events: Sequence[dict]):
    """Training loss per step from a run's progress.jsonl."""
    import plotly.graph_objects as go

    points = [
        (e.get("step"), e.get("loss"))
        for e in events
        if isinstance(e.get("loss"), (int, float)) and e.get("step") is not None and e.get("event", "step") == "step"
    ]
    fig = go.Figure(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers", line_color="#F59E0B"))
    fig.update_layout(title="Training loss", xaxis_title="step", yaxis_title="loss", margin=dict(t=50, b=40, l=50, r=20), height=320)
    return fig
