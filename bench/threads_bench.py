"""A training run when another job starts beside it: threads re-chosen every step vs fixed at the start.

    HF_HUB_OFFLINE=1 python bench/threads_bench.py [--steps 24] [--hog-at 8]

Trains the demo preset on the embedded SmolLM2 (style rows from samples/) twice, one run after the other, on an idle
machine: once as the worker does by itself (threads follow the cores others use, `core.training.worker.retune_threads`),
once with STUDIO_TRAIN_THREADS=<all cores> (the old behaviour of a run started on an idle machine). At step `--hog-at`
a process spinning on one core starts; it is killed when the run ends. Prints tokens/s before and after, and the
threads of every step. Never collected by pytest.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def one_run(steps: int, hog_at: int, fixed_threads: str | None) -> str:
    from core import training as T
    from core.datasets import save_dataset
    from tune_support import style_rows, workspace_with_model

    if fixed_threads:
        os.environ["STUDIO_TRAIN_THREADS"] = fixed_threads
    else:
        os.environ.pop("STUDIO_TRAIN_THREADS", None)
    ws = workspace_with_model(Path(tempfile.mkdtemp(prefix="threads-bench-")))
    save_dataset(ws, "s", style_rows(60, max_input_chars=400), kind="style", style_rule="bullets3_risk", heldout_fraction=0.1, seed=0)
    lora, training = T.preset("demo")
    run = T.start_run(ws, "s", lora, dataclasses.replace(training, max_steps=steps, save_steps=1000))
    hog = None
    try:
        while T.get_run(ws, run.id).status in T.ACTIVE:
            done = [e for e in T.read_progress(ws, run.id) if e.get("event") == "step"]
            if hog is None and done and done[-1]["step"] >= hog_at:
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                hog_step = done[-1]["step"]
            time.sleep(0.5)
    finally:
        if hog:
            hog.kill()
    steps_done = [e for e in T.read_progress(ws, run.id) if e.get("event") == "step"]

    def rate(a: int, b: int) -> float:  # tokens/s between steps a and b (events hold cumulative tokens/s and elapsed)
        ea, eb = steps_done[a - 1], steps_done[b - 1]
        return (eb["tokens_per_s"] * eb["elapsed"] - ea["tokens_per_s"] * ea["elapsed"]) / (eb["elapsed"] - ea["elapsed"])

    mode = f"fixed {fixed_threads} threads" if fixed_threads else "threads follow the machine"
    return (f"{mode}: alone (steps 2-{hog_at}) {rate(2, hog_at):.0f} tokens/s; with the spinning process (steps {hog_step + 2}-{steps}) "
            f"{rate(hog_step + 2, steps):.0f} tokens/s; threads per step {[e.get('threads') for e in steps_done]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--hog-at", type=int, default=8)
    args = parser.parse_args()
    if not 2 < args.hog_at < args.steps - 2:
        parser.error("--hog-at must leave steps to measure on both sides: 2 < hog-at < steps - 2")
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the start")
    print(one_run(args.steps, args.hog_at, None))
    print(one_run(args.steps, args.hog_at, str(os.cpu_count() or 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
