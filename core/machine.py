"""What this CPU offers right now: the one thread policy of training, embedding and generation, its feature flags,
and the dtype generation runs in on it.

On a CPU shared with other jobs, OpenMP threads that lose their core stall each other at every barrier: on the
2-core box, LoRA training ran 117-122 tokens/s with 1 thread and 15-33 with 2 while other jobs ran, and a 625-token
prefill took 2.9 s with 1 thread against 5.2 s with 2. So torch gets the cores nobody else is using.

"Nobody else" is measured over a short sample (psutil), not with the 1-minute load average: that average lags by a
minute, so a training run started right after a busy minute (a test suite, an ingest that just ended) ran on 1 of 2
idle cores at about half speed.

bf16 is the same kind of decision: ~20% faster than fp32 on a quiet CPU with native bf16, 10x slower when the cores
are shared (`fast_cpu_dtype`).
"""
from __future__ import annotations

import os
import threading
import time
from functools import lru_cache
from pathlib import Path

import psutil

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cores() -> int:
    return os.cpu_count() or 1


_last_value: float | None = None  # what the last measurement found, in cores
_snapshot_lock = threading.Lock()


def _snapshot() -> tuple[float, float, float]:
    times = psutil.cpu_times()
    busy = sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))
    own = psutil.Process().cpu_times()
    return time.monotonic(), busy, own.user + own.system


# (monotonic time, busy CPU seconds of all, of this process); taken at import so the first hot-path call measures
# from then instead of waiting
_last_snapshot: tuple[float, float, float] = _snapshot()


def cores_used_by_others(sample_s: float = 0.2, reuse_within_s: float = 30.0) -> float:
    """CPU used by other processes, in cores (this process's own use excluded).

    Measured since the previous call when that was 0.05 to `reuse_within_s` seconds ago, so a caller on a hot path (every
    query embedding, every generation) does not wait; otherwise over a fresh `sample_s` sample. A blocking sample on each
    call cost 200 ms per query embedding (the 10k-chunk search p50 went from tens of ms to 231 ms).
    """
    global _last_snapshot, _last_value
    with _snapshot_lock:
        now, previous = _snapshot(), _last_snapshot
        window = now[0] - previous[0]
        if window < 0.05 and _last_value is not None and reuse_within_s > 0:
            return _last_value  # asked again within 50 ms (a burst of searches): too short a window to measure
        if not 0.05 <= window <= reuse_within_s:
            time.sleep(sample_s)
            previous, now = now, _snapshot()
        _last_snapshot = now
        _last_value = max(0.0, ((now[1] - previous[1]) - (now[2] - previous[2])) / (now[0] - previous[0]))
        return _last_value


def free_cores(sample_s: float = 0.2, reuse_within_s: float = 30.0) -> int:
    """Cores nobody else is using right now, at least 1 (half a core in use by others counts as taken)."""
    return max(1, round(cores() - cores_used_by_others(sample_s, reuse_within_s) - 0.01))


def torch_threads(sample_s: float = 0.2, override_env: str = "STUDIO_TORCH_THREADS", reuse_within_s: float = 30.0) -> int:
    """Threads for the next piece of torch work; `override_env` (a number) wins when set."""
    if os.environ.get(override_env):
        return max(1, int(os.environ[override_env]))
    return free_cores(sample_s=sample_s, reuse_within_s=reuse_within_s)


def machine_is_quiet(sample_s: float = 0.2) -> bool:
    """Every core free: the condition for bf16 kernels, which collapse (10x slower) when the cores are shared."""
    return free_cores(sample_s) >= cores()


def generation_threads() -> int:
    """Threads for one generation (the transformers and llama.cpp engines), decided when it starts.

    Measured on the 2-core box (prefill of 625 tokens, fp32): load ~5 -> 2 threads 5.2 s, 1 thread 2.9 s;
    load ~3 -> 32 tokens x 4 rows: 2 threads 2.1 s, 1 thread 3.4 s. A short sample: it runs before every generation.
    """
    return torch_threads(sample_s=0.1)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 "flags", ARM "Features"); empty where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def fast_cpu_dtype() -> str:
    """bf16 on a CPU with native bf16 (AMX / AVX512-BF16) that is not busy, else fp32; by measurement.

    Quiet 2-core AMX machine, 4 columns x 150 tokens, same run: fp32 14.0 / 14.3 s, bf16 11.6 / 11.8 s.
    But bf16 kernels collapse when the cores are shared (4 rows x 32 tokens: fp32 2 threads 2.1 s, bf16
    2 threads 21 s under load), so a machine with a core in use elsewhere gets fp32. Decided once, when
    the model loads; GeneratorSpec(dtype=...) overrides it.
    """
    native_bf16 = any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)
    return "bfloat16" if native_bf16 and machine_is_quiet() else "float32"
