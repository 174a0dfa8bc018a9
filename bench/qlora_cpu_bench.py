"""LoRA (fp32 base) vs QLoRA (4-bit NF4 base, bitsandbytes CPU backend) on the embedded SmolLM2-135M, on this CPU.

Measures training tokens/s (forward + backward + AdamW step on the LoRA weights) and the base weights' bytes.
Run: python3 bench/qlora_cpu_bench.py [--steps 6] [--batch 2] [--length 128]; results go to bench/RESULTS_families.md by hand.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(mode: str, path: str, steps: int, batch: int, length: int, threads: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from core import training as T

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if mode == "qlora":
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=T.qlora_config("float32"), dtype=torch.float32,
                                                     device_map={"": "cpu"})
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                               "up_proj", "down_proj"], task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(100, 40000, (batch, length))
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    steady = sorted(times[1:])[len(times[1:]) // 2]  # median, first step excluded (allocation warm-up)
    return {"mode": mode, "tokens_per_s": batch * length / steady, "weight_mb": weight_bytes / 2**20, "loss": float(loss)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from core.models import convert_embedded_generator
    from core.settings import get_workspace

    path = str(convert_embedded_generator(get_workspace(os.environ.get("STUDIO_TEST_MODEL_CACHE", "/tmp/tune-model-cache"))))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {args.threads} thread(s)")
    for mode in ("lora", "qlora"):
        r = run(mode, path, args.steps, args.batch, args.length, args.threads)
        print(f"{r['mode']:>6}: {r['tokens_per_s']:7.1f} tokens/s, base parameters {r['weight_mb']:6.1f} MiB, last loss {r['loss']:.3f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
