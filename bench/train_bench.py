"""Training throughput: our runner (transformers Trainer + peft, core.training.worker's data path) vs the
recipe practitioners copy (TRL SFTTrainer + peft_config, prompt/completion data), same LoRA config,
same rows, same process and thread count; plus the fraction of the CPU's fp32 matmul peak reached.

    HF_HUB_OFFLINE=1 python bench/train_bench.py [--steps 10] [--write bench/RESULTS_train.md]

Never collected by pytest. Tokens = non-pad tokens fed to the model; the first step (warm-up) is excluded.
Model FLOPs: LoRA on a frozen base costs ~4*N per token (forward 2N + input-gradient backward 2N; no
weight gradients for frozen weights), the conventional full-training figure is 6*N.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def matmul_peak(threads: int, size: int = 2048, repeats: int = 6) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def timing_callback(counter):
    from transformers import TrainerCallback

    class Timing(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), counter()))

    return Timing()


def rate(marks) -> float:
    (t0, k0), (t1, k1) = marks[0], marks[-1]  # from the end of step 1 to the end of the last step
    return (k1 - k0) / (t1 - t0)


def run_ours(path, rows, lora, training, out):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from core.training.worker import TokenCountingCollator, build_examples

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path), LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    collator = TokenCountingCollator(tokenizer.pad_token_id)
    timing = timing_callback(lambda: collator.tokens)
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=training.batch_size, learning_rate=training.learning_rate,
                             max_steps=training.max_steps, logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
                             use_cpu=True, remove_unused_columns=False, dataloader_pin_memory=False, seed=0)
    Trainer(model=model, args=args, train_dataset=build_examples(tokenizer, rows, training), data_collator=collator, callbacks=[timing]).train()
    return rate(timing.marks)


def run_trl(path, rows, lora, training, out):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from core.generation import DEFAULT_SYSTEM

    data = Dataset.from_list([{
        "prompt": [{"role": "system", "content": DEFAULT_SYSTEM}, {"role": "user", "content": r["prompt"]}],
        "completion": [{"role": "assistant", "content": r["output"]}],
    } for r in rows])
    config = SFTConfig(output_dir=out, per_device_train_batch_size=training.batch_size, learning_rate=training.learning_rate,
                       max_steps=training.max_steps, max_length=training.max_length, completion_only_loss=True, packing=False,
                       logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
                       dataloader_pin_memory=False, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(path), args=config, train_dataset=data, processing_class=tokenizer,
                         peft_config=LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    seen = {"tokens": 0}
    inner = trainer.data_collator

    def counting(batch):
        out = inner(batch)
        seen["tokens"] += int(out["attention_mask"].sum()) if "attention_mask" in out else int(out["input_ids"].numel())
        return out

    trainer.data_collator = counting  # read when train() builds the dataloader
    timing = timing_callback(lambda: seen["tokens"])
    trainer.add_callback(timing)
    trainer.train()
    return rate(timing.marks)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--write", default=None, help="append a section to this markdown file")
    args = parser.parse_args()
    import torch

    from core import training as T
    from core.training.worker import choose_threads
    from tests.conftest import SQUAD, SQUAD_FULL
    from tune_support import converted_model_dir, style_rows

    threads = choose_threads()
    load_before = os.getloadavg()[0]
    path = str(converted_model_dir())
    rows = style_rows(60, max_input_chars=400, root=SQUAD_FULL or SQUAD)
    lora, training = T.preset("demo")
    training = dataclasses.replace(training, max_steps=args.steps)
    peak = matmul_peak(threads)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_ours(path, rows, lora, training, tmp + "/ours")
        trl = run_trl(path, rows, lora, training, tmp + "/trl")
        ours2 = run_ours(path, rows, lora, training, tmp + "/ours2")  # again, to see drift from other load
    n_params = 134_515_008
    load_after = os.getloadavg()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    lines = [
        f"## Training throughput (bench/train_bench.py), {datetime.date.today().isoformat()}",
        "",
        f"Machine: {os.cpu_count()} CPUs, {cpu}; torch {torch.__version__}, {threads} training thread(s). "
        f"Load average {load_before:.1f} before / {load_after:.1f} after: "
        + ("other processes shared the CPU during the run, so absolute figures are low-side." if max(load_before, load_after) > 1.5 else "the machine was otherwise idle."),
        f"Workload: SmolLM2-135M fp32, LoRA r={lora.r} on {', '.join(lora.target_modules)}, batch {training.batch_size}, "
        f"{args.steps} steps of squad36 style rows (~230 tokens each), completion-only loss; first step excluded.",
        "",
        "| runner | training tokens/s | model GFLOP/s (4N/token) | % of matmul peak |",
        "|---|---|---|---|",
    ]
    for name, value in (("ours: Trainer + peft (run 1)", ours), ("TRL SFTTrainer recipe", trl), ("ours: Trainer + peft (run 2)", ours2)):
        gflops = 4 * n_params * value / 1e9
        lines.append(f"| {name} | {value:.0f} | {gflops:.1f} | {100 * gflops / peak:.0f}% |")
    lines += ["", f"fp32 matmul peak (2048x2048, {threads} thread(s)): {peak:.1f} GFLOP/s. "
              f"With the conventional 6N/token, ours reaches {100 * 6 * n_params * (ours + ours2) / 2 / 1e9 / peak:.0f}% of peak.", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
