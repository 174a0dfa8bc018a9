"""LoRA training speed by precision on 1 torch thread while another process spins on a core (the shared-machine case).

    python bench/precision_ab_bench.py [--steps 16] [--order float32,bfloat16,float32,bfloat16] [--no-busy]

Runs the real worker (demo preset, 130 squad36 style rows: the full squad36 if present, else samples/) once per
entry of --order, alternating, with STUDIO_TRAIN_THREADS=1 and a busy-loop process on another core. Prints steps/s
after the first 3 steps and the last logged loss. Why: `core.training.worker.training_device` takes bf16 on 1
thread wherever bf16 is native; bf16's collapse on shared cores was seen with 2 threads. Never collected by pytest.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["STUDIO_TRAIN_THREADS"] = "1"

from core import training as T  # noqa: E402
from core.datasets import save_dataset  # noqa: E402
from tests.conftest import SQUAD, SQUAD_FULL  # noqa: E402
from tune_support import style_rows, workspace_with_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--order", default="float32,bfloat16,float32,bfloat16")
    parser.add_argument("--no-busy", action="store_true", help="leave the other core idle")
    args = parser.parse_args()
    hog = None if args.no_busy else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        ws = workspace_with_model(Path(tempfile.mkdtemp(prefix="precision-ab-")))
        save_dataset(ws, "s", style_rows(130, max_input_chars=400, root=SQUAD_FULL or SQUAD), kind="style",
                     style_rule="bullets3_risk", heldout_fraction=0.1, seed=0)
        lora, training = T.preset("demo")
        print(f"load {os.getloadavg()[0]:.1f}, other core {'idle' if args.no_busy else 'spinning'}, 1 training thread")
        for precision in args.order.split(","):
            run = T.start_run(ws, "s", lora, dataclasses.replace(training, max_steps=args.steps, precision=precision))
            run = T.wait_for_run(ws, run.id, timeout=1800, poll=1.0)
            steps = [e for e in T.read_progress(ws, run.id) if e.get("event") == "step"]
            timed = steps[3:]
            rate = len(timed) / (timed[-1]["time"] - steps[2]["time"])
            print(f"{precision}: {run.status}, {rate:.3f} steps/s, {steps[-1]['tokens_per_s']:.0f} tokens/s at the end, "
                  f"loss {steps[-1]['loss']:.4f}", flush=True)
    finally:
        if hog:
            hog.kill()


if __name__ == "__main__":
    main()
