"""Compare benchmark: four columns (base, RAG, fine-tuned, hybrid) on this CPU.

    python bench/compare_bench.py [--new-tokens 150] [--no-sequential] [--out bench/RESULTS_compare.md]

Measures, in one run and on the same four prompts (RAG/hybrid: a question plus ~600 tokens of squad36
passages; 150 new tokens forced, so every engine does the same work):
  1. our engine (core.engines.transformers.TorchEngine), one column (RAG) and all four in one mixed-adapter batch;
  2. our engine answering the four one after another (one request per call);
  3. llama.cpp (llama-cpp-python, Q4_1 GGUF, bench/llama_ref.py under $LLAMA_PYTHON) answering the four one after another,
     fine-tuned/hybrid with the same LoRA converted by llama.cpp's convert_lora_to_gguf.py.
Not part of the test suite. llama-cpp-python is optional: without it, step 3 is skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.compare import plan_comparison  # noqa: E402
from core.engines import GenerationRequest, generate_many, open_engine  # noqa: E402
from core.generation import DecodingSettings, GenerationStats  # noqa: E402
from core.knowledge import Hit  # noqa: E402
from core.models import embedded_generator_gguf  # noqa: E402
from core.settings import get_workspace  # noqa: E402

SQUAD = Path("/work/shared/data/squad36/qa.jsonl")


def build_hits(target_tokens: int, tokenizer) -> tuple[str, list[Hit]]:
    rows = [json.loads(line) for line in SQUAD.read_text().splitlines()[:400]]
    question = rows[0]["question"]
    hits, seen, total = [], set(), 0
    for row in rows:
        passage = row["source_passage"]
        if passage in seen:
            continue
        seen.add(passage)
        hits.append(Hit(len(hits) + 1, row["source_doc"], 1, 1, 0.6, passage, len(hits) + 1))
        total += len(tokenizer(passage)["input_ids"])
        if total >= target_tokens:
            break
    return question, hits


def make_adapter(workspace) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from core.models import GeneratorSpec, load_generator

    target = workspace.runs / "bench-run" / "adapter"
    if not (target / "adapter_config.json").exists():
        torch.manual_seed(1234)
        model = load_generator(GeneratorSpec(dtype="float32"), workspace).model
        config = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
        get_peft_model(model, config).save_pretrained(target)
    return target


def summarize(results: dict, wall: float) -> dict:
    stats = [r.stats if hasattr(r, "stats") else r for r in results.values()]
    tokens = sum(s.new_tokens for s in stats)
    return {
        "wall_s": round(wall, 2),
        "first_token_s": round(min(s.first_token_s or 0 for s in stats), 2),
        "new_tokens": tokens,
        "aggregate_tok_s": round(tokens / wall, 1),
        "per_column_tok_s": [round(s.tokens_per_s, 1) for s in stats],
    }


def bench_ours(engine, requests, settings) -> dict:
    generate_many(engine, requests[:1], DecodingSettings(max_new_tokens=4))  # warm-up
    out = {}
    started = time.perf_counter()
    single = generate_many(engine, [r for r in requests if r.key == "rag"], settings)
    out["one_column"] = summarize(single, time.perf_counter() - started)
    started = time.perf_counter()
    four = generate_many(engine, requests, settings)
    out["four_columns"] = summarize(four, time.perf_counter() - started)
    out["prompt_tokens"] = {k: v.stats.prompt_tokens for k, v in four.items()}
    import torch

    out["threads_last_run"] = torch.get_num_threads()
    return out


def convert_lora(adapter: Path, base_folder: Path, out: Path) -> Path | None:
    """llama.cpp's convert_lora_to_gguf.py from the llama-cpp-python sdist, if we can find one."""
    candidates = list(Path("/tmp").glob("compare-build/llama_cpp_python-*/vendor/llama.cpp/convert_lora_to_gguf.py"))
    if not candidates:
        return None
    script = candidates[0]
    env = dict(os.environ, PYTHONPATH=str(script.parent / "gguf-py"))
    result = subprocess.run(
        [sys.executable, str(script), "--base", str(base_folder), "--outfile", str(out), str(adapter)],
        cwd=script.parent, env=env, capture_output=True, text=True,
    )
    return out if result.returncode == 0 and out.exists() else None


def run_llama_cpp_isolated(texts: dict, lora: Path | None, new_tokens: int) -> dict | None:
    """llama.cpp in a child process (bench/llama_ref.py): a crash in the native library must not lose our numbers.

    The child runs under $LLAMA_PYTHON (e.g. a venv holding llama-cpp-python) or this interpreter.
    """
    from core.machine import generation_threads

    python = os.environ.get("LLAMA_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import llama_cpp"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None
    threads = generation_threads()  # the same thread policy as our engine, decided now
    args = dict(texts=texts, gguf=str(embedded_generator_gguf()), lora_gguf=str(lora) if lora else None, new_tokens=new_tokens, threads=threads)
    result = subprocess.run([python, str(Path(__file__).with_name("llama_ref.py"))], input=json.dumps(args), capture_output=True, text=True, timeout=900)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    tail = [line for line in result.stderr.splitlines() if "lora for" not in line][-3:]
    return {"error": f"llama-cpp-python exited with code {result.returncode} (-11 = segmentation fault)", "stderr_tail": tail}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": cpu, "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=150)
    parser.add_argument("--context-tokens", type=int, default=600)
    parser.add_argument("--no-sequential", action="store_true", help="skip the old one-at-a-time transformers path")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_compare.md")))
    args = parser.parse_args()
    workspace = get_workspace(os.environ.get("STUDIO_WORKSPACE") or tempfile.mkdtemp(prefix="compare-bench-"))
    adapter = make_adapter(workspace)
    before = machine()
    engine = open_engine("transformers", workspace)
    question, hits = build_hits(args.context_tokens, engine.loaded.tokenizer)
    answers, requests = plan_comparison(question, ["base", "rag", "finetuned", "hybrid"], hits, adapter=str(adapter))
    settings = DecodingSettings(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, temperature=0.0)
    texts = {r.key: engine.loaded.tokenizer.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in requests}

    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine_before": before, "engine": f"transformers {engine.loaded.dtype}"}
    print("ours ...", flush=True)
    report["ours"] = bench_ours(engine, requests, settings)
    print(json.dumps(report["ours"]), flush=True)
    print("llama.cpp ...", flush=True)
    lora = convert_lora(adapter, Path(engine.loaded.path), workspace.root / "bench-lora.gguf")
    report["llama_cpp_sequential"] = run_llama_cpp_isolated(texts, lora, args.new_tokens)
    print(json.dumps(report["llama_cpp_sequential"]), flush=True)
    if not args.no_sequential:
        print("transformers one at a time ...", flush=True)
        started = time.perf_counter()
        seq = {}
        for request in requests:
            seq.update(generate_many(engine, [request], settings))
        report["transformers_sequential"] = summarize(seq, time.perf_counter() - started)
        print(json.dumps(report["transformers_sequential"]), flush=True)
    report["machine_after"] = machine()
    llama = report["llama_cpp_sequential"]
    if llama and "error" not in llama:
        report["ratio_ours_over_llama_cpp_wall"] = round(report["ours"]["four_columns"]["wall_s"] / llama["wall_s"], 2)
    print(json.dumps(report, indent=2))
    write_markdown(Path(args.out), report, args)
    return 0


def write_markdown(path: Path, report: dict, args) -> None:
    ours, llama, seq = report["ours"], report.get("llama_cpp_sequential"), report.get("transformers_sequential")
    llama_error = llama.get("error") if llama else "llama-cpp-python not installed"
    llama = None if llama_error else llama
    lines = [
        "# Compare benchmark (bench/compare_bench.py)",
        "",
        f"- date: {report['date']}",
        f"- machine: {report['machine_before']['nproc']} CPUs, {report['machine_before']['cpu']}",
        f"- load before: `{report['machine_before']['uptime']}`",
        f"- load after: `{report['machine_after']['uptime']}`",
        f"- prompts: base/fine-tuned = question only; RAG/hybrid = question + ~{args.context_tokens} tokens of squad36 passages; "
        f"prompt tokens {ours['prompt_tokens']}; {args.new_tokens} new tokens forced per column; greedy.",
        f"- our engine: {report['engine']}, one model; each equal-length prompt group prefilled unpadded, then all rows decoded in one left-padded batch mixing `__base__` and the LoRA (peft adapter_names).",
        "",
        "| path | columns | first token (s) | wall (s) | new tokens | aggregate tok/s | per-column tok/s |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(name, cols, s):
        lines.append(f"| {name} | {cols} | {s['first_token_s']} | {s['wall_s']} | {s['new_tokens']} | {s['aggregate_tok_s']} | {s['per_column_tok_s']} |")

    row("ours (transformers batch)", 1, ours["one_column"])
    row(f"ours (transformers batch, {ours['threads_last_run']} threads)", 4, ours["four_columns"])
    if llama:
        row(f"llama.cpp sequential (Q4_1, {llama['threads']} threads, LoRA={'yes' if llama['lora'] else 'no'})", 4, llama)
    if seq:
        row("ours, one column at a time", 4, seq)
    if seq:
        lines += ["", f"**Four columns batched vs one at a time (our engine): {ours['four_columns']['wall_s']} s vs {seq['wall_s']} s "
                  f"({round(seq['wall_s'] / ours['four_columns']['wall_s'], 2)}x faster).**"]
    if llama_error:
        lines += ["", f"llama.cpp: not measured in this run: {llama_error}."]
    if llama:
        lines += ["", f"**Four columns, ours / llama.cpp sequential wall time: {report['ratio_ours_over_llama_cpp_wall']}** (below 1 = we are faster)."]
    if llama:
        lines.append(f"llama.cpp first token per column (s): {llama['first_token_s_by_column']}")
    lines += ["", "Raw:", "", "```json", json.dumps(report, indent=2), "```", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
