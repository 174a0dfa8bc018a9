"""What the Fine-tune page says about time: a pre-launch ETA scaled to the machine load now, and a run's live label.

A training run gets the cores' share the other jobs leave it, so a speed measured at one load is scaled to the
load now (measured: a 3:07 estimate became a 10:47 run on a busy machine when the idle speed was used).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from core import training as T
from core.settings import Workspace

IDLE_LOAD = 1.0  # the reference speed (core.training.DEFAULT_CPU_TOKENS_PER_S) was measured with only the run itself busy


@dataclass(frozen=True)
class SpeedNow:
    tokens_per_s: float
    seconds: float
    basis: str


def cpu_share(load: float, cpus: int) -> float:
    """Share of the machine one busy process gets at this 1-minute load average (it counts itself)."""
    return min(1.0, cpus / max(load, 1.0))


def last_measured_speed(workspace: Workspace, base_model: str) -> tuple[float, float | None, str] | None:
    """(tokens/s, load average while measured or None, run id) of the latest run of this model with 3+ steps."""
    for run in T.list_runs(workspace):
        if run.base_model != base_model:
            continue
        steps = [e for e in T.read_progress(workspace, run.id) if e.get("event") == "step" and e.get("tokens_per_s")]
        if len(steps) >= 3:
            loads = [float(e["load"]) for e in steps if e.get("load") is not None]
            return float(steps[-1]["tokens_per_s"]), (sum(loads) / len(loads) if loads else None), run.id
    return None


def speed_now(workspace: Workspace, plan: T.RunPlan, base_model: str, load_now: float | None = None,
              cpus: int | None = None) -> SpeedNow:
    """The plan's tokens at the speed measured last (or the reference speed), scaled from the load then to the load now.

    load_now is the load without the run; the run adds one busy process."""
    cpus = cpus or os.cpu_count() or 1
    load_now = os.getloadavg()[0] if load_now is None else load_now
    measured = last_measured_speed(workspace, base_model) if plan.device == "cpu" else None
    if measured:
        tps, load_then, run_id = measured
        source = f"{tps:.0f} tokens/s measured by {run_id}" + (f" at load {load_then:.1f}" if load_then is not None else "")
        load_then = IDLE_LOAD if load_then is None else load_then
    else:
        tps, load_then, source = plan.tokens_per_s, IDLE_LOAD, f"the reference speed ({plan.tokens_per_s:.0f} tokens/s, idle machine)"
    if plan.device != "cpu":
        return SpeedNow(tps, plan.tokens / tps + 15, f"{source}; GPU speed does not follow the CPU load")
    scaled = tps * cpu_share(load_now + 1, cpus) / cpu_share(load_then, cpus)
    basis = (f"{source}, scaled to the machine load now ({load_now:.1f} on {cpus} cores, so this run gets "
             f"{cpu_share(load_now + 1, cpus):.0%} of the CPU): ~{scaled:.0f} tokens/s. Other jobs starting or stopping change it.")
    return SpeedNow(scaled, plan.tokens / max(scaled, 1e-6) + 15, basis)


def _fmt(seconds: float | None) -> str:
    seconds = int(max(0, seconds or 0))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_label(status: str, events: Sequence[dict], planned_total: int = 0) -> tuple[float, str]:
    """(fraction done, text) for a run's progress bar.

    While the worker loads the model (a new run, or a resumed one whose new session has not started) it says
    "loading the model…", never an old step's ETA; an ETA only shows on a running run, from the speed it measured."""
    steps = [e for e in events if e.get("event") == "step"]
    total = next((e.get("total") for e in reversed(events) if e.get("total")), planned_total) or planned_total
    step = steps[-1]["step"] if steps else 0
    fraction = min(1.0, step / total) if total else 0.0
    last_end = max((i for i, e in enumerate(events) if e.get("event") == "end"), default=-1)
    last_start = max((i for i, e in enumerate(events) if e.get("event") == "start"), default=-1)
    elapsed = f" · {_fmt(steps[-1].get('elapsed'))} trained" if steps else ""
    if status in T.ACTIVE:
        if last_start <= last_end:  # no session running yet: the worker is starting and loading the model
            return fraction, f"step {step}/{total}{elapsed} · loading the model…"
        if not any(e.get("event") == "step" for e in events[last_start:]):
            return fraction, f"step {step}/{total}{elapsed} · model loaded, first step running…"
        eta = steps[-1].get("eta")
        left = f" · about {_fmt(eta)} left at the speed measured so far" if eta is not None else ""
        return fraction, f"step {step}/{total}{elapsed}{left} · {status}"
    return fraction, f"step {step}/{total}{elapsed} · {status}"
