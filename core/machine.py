"""How many CPU threads torch should use right now: the one thread policy of training, embedding and generation.

On a CPU shared with other jobs, OpenMP threads that lose their core stall each other at every barrier: on the
2-core box, LoRA training ran 117-122 tokens/s with 1 thread and 15-33 with 2 while other jobs ran, and a 625-token
prefill took 2.9 s with 1 thread against 5.2 s with 2. So torch gets the cores nobody else is using.

"Nobody else" is measured over a short sample (psutil), not with the 1-minute load average: that average lags by a
minute, so a training run started right after a busy minute (a test suite, an ingest that just ended) ran on 1 of 2
idle cores at about half speed.
"""
from __future__ import annotations

import os

import psutil


def cores() -> int:
    return os.cpu_count() or 1


def cores_used_by_others(sample_s: float = 0.2) -> float:
    """CPU in use by other processes over the next `sample_s` seconds, in cores (this process's own use excluded)."""
    me = psutil.Process()
    me.cpu_percent(None)
    total = psutil.cpu_percent(interval=sample_s)  # % of all cores
    own = me.cpu_percent(None)  # % of one core
    return max(0.0, total / 100 * cores() - own / 100)


def free_cores(sample_s: float = 0.2) -> int:
    """Cores nobody else is using right now, at least 1 (half a core in use by others counts as taken)."""
    return max(1, round(cores() - cores_used_by_others(sample_s) - 0.01))


def torch_threads(sample_s: float = 0.2, override_env: str = "STUDIO_TORCH_THREADS") -> int:
    """Threads for the next piece of torch work; `override_env` (a number) wins when set."""
    if os.environ.get(override_env):
        return max(1, int(os.environ[override_env]))
    return free_cores(sample_s)


def machine_is_quiet(sample_s: float = 0.2) -> bool:
    """Every core free: the condition for bf16 kernels, which collapse (10x slower) when the cores are shared."""
    return free_cores(sample_s) >= cores()
