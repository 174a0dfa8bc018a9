"""Training throughput: our runner (transformers Trainer + peft, core.training.worker's data path) vs the
recipe practitioners copy (TRL SFTTrainer + peft_config, prompt/completion data), same LoRA config,
same rows, same process and thread count; plus the fraction of the CPU's fp32 matmul peak reached.

    HF_HUB_OFFLINE=1 python bench/train_bench.py [--steps 10] [--also padded,fp32,bf16,padding-free] [--write bench/RESULTS_train.md]

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
            self.losses = []

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), counter()))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return Timing()


@dataclasses.dataclass
class Result:
    name: str
    tokens_per_s: float
    final_loss: float  # the last step's loss
    tail_loss: float  # mean loss of the last 5 steps (one step of 2 rows is noisy)
    dtype: str


def result(name, timing, dtype) -> Result:
    (t0, k0), (t1, k1) = timing.marks[0], timing.marks[-1]  # from the end of step 1 to the end of the last step
    tail = timing.losses[-5:]
    return Result(name, (k1 - k0) / (t1 - t0), timing.losses[-1], sum(tail) / len(tail), dtype)


def run_ours(path, rows, lora, training, out, layout="padded+keep", bf16=False, name="ours"):
    """The worker's data path: layout "padded+keep" (its default: padded rows, logits only where a label follows),
    "padded" (the previous runner: logits everywhere) or "padding-free" (rows concatenated, attention kept per row);
    bf16 = autocast over fp32 weights (the LoRA weights and Adam state stay fp32)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed

    from core.training.batches import (PaddingFreeCollator, TokenCountingCollator, build_examples, completion_loss,
                                      logits_subset_ok, packed_attention_ok)

    set_seed(0)  # the same LoRA initialisation in every run of ours
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForCausalLM.from_pretrained(path)
    base.config.use_cache = False  # as the worker: no cache in training (and the packed mask needs none)
    model = get_peft_model(base, LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    if layout == "padding-free" and packed_attention_ok(model):
        collator = PaddingFreeCollator()
    else:
        layout = "padded+keep" if layout == "padded+keep" and logits_subset_ok(model) else "padded"
        collator = TokenCountingCollator(tokenizer.pad_token_id, keep_logits=layout == "padded+keep")
    timing = timing_callback(lambda: collator.tokens)
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=training.batch_size, learning_rate=training.learning_rate,
                             max_steps=training.max_steps, logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
                             use_cpu=True, bf16=bf16, remove_unused_columns=False, dataloader_pin_memory=False, seed=0)
    Trainer(model=model, args=args, train_dataset=build_examples(tokenizer, rows, training), data_collator=collator, callbacks=[timing],
            compute_loss_func=None if layout == "padded" else completion_loss).train()
    return result(f"{name}: {layout}", timing, "bf16 autocast" if bf16 else "fp32")


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
    return result("TRL SFTTrainer recipe (padded)", timing, "fp32")


def fits_whole(tokenizer, row, max_length: int) -> bool:
    """Does the row's whole chat (system, prompt, answer) fit in max_length tokens, so no runner cuts it?"""
    from core.generation import DEFAULT_SYSTEM

    chat = [{"role": "system", "content": DEFAULT_SYSTEM}, {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["output"]}]
    return len(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False)) <= max_length


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--also", default="", help="comma-separated extra runs of ours: padded (the previous runner), "
                        "padding-free, fp32, bf16 (padded+keep in that dtype)")
    parser.add_argument("--write", default=None, help="append a section to this markdown file")
    args = parser.parse_args()
    import torch

    from core import training as T
    from core.machine import NATIVE_BF16_FLAGS, cpu_flags
    from core.training.worker import choose_threads, training_device
    from tests.conftest import SQUAD, SQUAD_FULL
    from core.settings import Workspace
    from tune_support import MODEL_CACHE, converted_model_dir, style_rows

    threads = choose_threads()
    load_before = os.getloadavg()[0]
    _, auto_dtype = training_device("auto")  # what the worker would pick now: bf16 only on a quiet native-bf16 CPU
    path = str(converted_model_dir())
    lora, training = T.preset("demo")
    # Only rows that fit max_length whole: the two runners cut a long row differently (ours shortens the passage so the
    # answer fits, TRL cuts the answer's end), and one such row made the final losses differ by 6% in an earlier run.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)  # once: the fit check reads every candidate row
    rows = [r for r in style_rows(2 * args.rows, max_input_chars=400, root=SQUAD_FULL or SQUAD) if fits_whole(tokenizer, r, training.max_length)]
    rows = rows[: args.rows]
    lora = T.resolve_lora(lora, T.model_facts(Workspace(MODEL_CACHE)))  # "all linear" -> the family's layer names
    training = dataclasses.replace(training, max_steps=args.steps)
    peak = matmul_peak(threads)
    torch.set_num_threads(threads)
    extra = [x for x in args.also.split(",") if x]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run_ours(path, rows, lora, training, tmp + "/ours", bf16=auto_dtype == "bfloat16", name="ours (worker's choice)"))
        results.append(run_trl(path, rows, lora, training, tmp + "/trl"))
        for i, variant in enumerate(extra):
            results.append(run_ours(path, rows, lora, training, f"{tmp}/x{i}", layout=variant if variant in ("padded", "padding-free") else "padded+keep",
                                    bf16=variant == "bf16", name=f"ours ({variant})"))
        results.append(run_ours(path, rows, lora, training, tmp + "/ours2", bf16=auto_dtype == "bfloat16",
                                name="ours (worker's choice), again"))  # again, to see drift from other load
    n_params = 134_515_008
    load_after = os.getloadavg()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    native = sorted(set(NATIVE_BF16_FLAGS) & cpu_flags())
    trl = results[1]
    ours = (results[0].tokens_per_s + results[-1].tokens_per_s) / 2
    lines = [
        f"## Training throughput (bench/train_bench.py), {datetime.date.today().isoformat()}",
        "",
        f"Machine: {os.cpu_count()} CPUs, {cpu} (native bf16: {', '.join(native) or 'none'}); torch {torch.__version__}, "
        f"{threads} training thread(s). Load average {load_before:.1f} before / {load_after:.1f} after: "
        + ("other processes shared the CPU during the run, so absolute figures are low-side." if max(load_before, load_after) > 1.5 else "the machine was otherwise idle.")
        + f" The worker's precision 'auto' chose {auto_dtype} here.",
        f"Workload: SmolLM2-135M, LoRA r={lora.r} on {', '.join(lora.target_modules)}, batch {training.batch_size}, "
        f"{args.steps} steps over {len(rows)} squad36 style rows (~230 tokens each, each whole within max length {training.max_length}), completion-only loss, same seed and row order; "
        "first step excluded from the speed. Tail loss = mean of the last 5 steps' losses.",
        "",
        "| runner | dtype | training tokens/s | vs TRL | model GFLOP/s (4N/token) | % of matmul peak | final loss | tail loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        gflops = 4 * n_params * r.tokens_per_s / 1e9
        lines.append(f"| {r.name} | {r.dtype} | {r.tokens_per_s:.0f} | {r.tokens_per_s / trl.tokens_per_s:.2f}x | {gflops:.1f} | "
                     f"{100 * gflops / peak:.0f}% | {r.final_loss:.4f} | {r.tail_loss:.4f} |")
    lines += ["", f"Side by side: ours {ours:.0f} tokens/s (mean of its 2 runs) vs TRL {trl.tokens_per_s:.0f} tokens/s = "
              f"**{ours / trl.tokens_per_s:.2f}x**; final loss {results[0].final_loss:.4f} vs {trl.final_loss:.4f} "
              f"({100 * (results[0].final_loss / trl.final_loss - 1):+.1f}%), tail loss {results[0].tail_loss:.4f} vs {trl.tail_loss:.4f} "
              f"({100 * (results[0].tail_loss / trl.tail_loss - 1):+.1f}%).",
              f"fp32 matmul peak (2048x2048, {threads} thread(s)): {peak:.1f} GFLOP/s.", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
