"""What the Fine-tune page says about time: a pre-launch ETA scaled to the machine load now, and a run's live label.

A training run gets the cores' share the other jobs leave it, so a speed measured at one load is scaled to the
load now (measured: a 3:07 estimate became a 10:47 run on a busy machine when the idle speed was used).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Sequence

from core import training as T
from core.settings import Workspace

IDLE_LOAD = 1.0  # the reference speed (core.estimate.CPU_LORA_TOKENS_PER_S) was measured with only the run itself busy


@dataclass(frozen=True)
class SpeedNow:
    tokens_per_s: float
    seconds: float
    basis: str


def cpu_share(load: float, cpus: int) -> float:
    """Share of the machine one busy process gets at this 1-minute load average (it counts itself)."""
    return min(1.0, cpus / max(load, 1.0))


def cpu_probe(seconds: float = 0.25, threads: int | None = None) -> float:
    """GFLOP/s of float32 256x256 matmuls over ~`seconds`, with the thread count training would use: how much
    CPU this machine gives a job right now. The worker records it when a run starts; the page compares."""
    import torch

    from core.training.worker import choose_threads

    before = torch.get_num_threads()
    torch.set_num_threads(threads or choose_threads())
    try:
        a, b = torch.randn(256, 256), torch.randn(256, 256)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            a @ b
            count += 1
        return count * 2 * 256**3 / (time.perf_counter() - started) / 1e9
    finally:
        torch.set_num_threads(before)


def last_measured_speed(workspace: Workspace, base_model: str) -> tuple[float, float | None, float | None, str] | None:
    """(tokens/s, load average while measured, CPU probe GFLOP/s at its start, run id) of the latest run of this
    model with 3+ steps; the load and probe are None for runs recorded before they were."""
    for run in T.list_runs(workspace):
        if run.base_model != base_model:
            continue
        events = T.read_progress(workspace, run.id)
        steps = [e for e in events if e.get("event") == "step" and e.get("tokens_per_s")]
        if len(steps) >= 3:
            loads = [float(e["load"]) for e in steps if e.get("load") is not None]
            probes = [float(e["gflops"]) for e in events if e.get("event") == "probe" and e.get("gflops")]
            return float(steps[-1]["tokens_per_s"]), (sum(loads) / len(loads) if loads else None), (probes[-1] if probes else None), run.id
    return None


def speed_now(workspace: Workspace, plan: T.RunPlan, base_model: str, load_now: float | None = None,
              cpus: int | None = None, probe_now: float | None = None) -> SpeedNow:
    """The plan's tokens at the speed measured last, scaled to what the CPU gives now.

    Best: the last run recorded a CPU probe at its start, so speed now = its tokens/s x probe now / probe then.
    Else the 1-minute load average scales it (the run adds one busy process); with no run at all, the reference speed."""
    cpus = cpus or os.cpu_count() or 1
    load_now = os.getloadavg()[0] if load_now is None else load_now
    measured = last_measured_speed(workspace, base_model) if plan.device == "cpu" else None
    if plan.device != "cpu":
        return SpeedNow(plan.tokens_per_s, plan.est_seconds, f"{plan.tokens_per_s_basis}; GPU speed does not follow the CPU load")
    if measured and measured[2]:
        tps, _, probe_then, run_id = measured
        probe_now = cpu_probe() if probe_now is None else probe_now
        scaled = tps * probe_now / probe_then
        basis = (f"{tps:.0f} tokens/s measured by {run_id}, when a CPU probe gave {probe_then:.1f} GFLOP/s; the same probe gives "
                 f"{probe_now:.1f} GFLOP/s now (load {load_now:.1f} on {cpus} cores), so ~{scaled:.0f} tokens/s. "
                 "Other jobs starting or stopping change it.")
        return SpeedNow(scaled, plan.tokens / max(scaled, 1e-6) + 15, basis)
    if measured:
        tps, load_then, _, run_id = measured
        source = f"{tps:.0f} tokens/s measured by {run_id}" + (f" at load {load_then:.1f}" if load_then is not None else "")
        load_then = IDLE_LOAD if load_then is None else load_then
    else:
        tps, load_then, source = plan.tokens_per_s, IDLE_LOAD, f"the reference speed ({plan.tokens_per_s:.0f} tokens/s, idle machine)"
    scaled = tps * cpu_share(load_now + 1, cpus) / cpu_share(load_then, cpus)
    basis = (f"{source}, scaled to the machine load now ({load_now:.1f} on {cpus} cores, so this run gets "
             f"{cpu_share(load_now + 1, cpus):.0%} of the CPU): ~{scaled:.0f} tokens/s. Load is a rough guide; the first "
             "run measures this machine. Other jobs starting or stopping change it.")
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
