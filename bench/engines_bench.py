"""Engines benchmark: the Studio's llamacpp engine against raw llama-cpp-python, and Evaluate on both engines.

    HF_HUB_OFFLINE=1 python bench/engines_bench.py [--new-tokens 128] [--questions 30] [--out bench/RESULTS_engines.md]

Measured in one run, side by side, on the embedded SmolLM2-135M Q4_1 GGUF with the same thread count:
  1. one stream: decode tokens/s of our engine (core.engines.llamacpp) vs raw `Llama.create_completion`
     (same prompt rendered by the GGUF's own template, EOS banned so both decode --new-tokens);
  2. Compare with 4 columns (base, RAG, fine-tuned, hybrid; RAG/hybrid with ~600 tokens of squad36 passages,
     a LoRA converted to GGUF) through our engine vs raw llama.cpp answering the 4 prompts in sequence
     (two Llama objects, base and base + LoRA, as bench/llama_ref.py does); time to first token per column;
  3. Evaluate (base + RAG) questions/minute on the same squad36 questions: transformers vs llamacpp.
Not part of the test suite; needs /work/shared/data/squad36 (or $STUDIO_SQUAD36).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.compare import plan_comparison  # noqa: E402
from core.engines import GenerationRequest  # noqa: E402
from core.generation import DecodingSettings  # noqa: E402
from core.models import embedded_generator_gguf  # noqa: E402

SQUAD = Path(os.environ.get("STUDIO_SQUAD36", "/work/shared/data/squad36"))


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} / {os.getloadavg()[2]:.1f}"


def raw_llama(threads: int, lora: Path | None = None):
    from llama_cpp import Llama

    from core.engines.llamacpp import load_backends

    load_backends()
    return Llama(model_path=str(embedded_generator_gguf()), n_ctx=4096, n_threads=threads, n_threads_batch=threads, n_batch=512,
                 seed=0, verbose=False, lora_path=str(lora) if lora else None)


def raw_stream(llm, prompt: str, new_tokens: int) -> dict:
    """Raw llama-cpp-python: greedy, EOS banned, repeat penalty 1.0 (the Studio's default)."""
    llm.reset()
    started = time.perf_counter()
    first, count = None, 0
    for _ in llm.create_completion(prompt, max_tokens=new_tokens, temperature=0.0, repeat_penalty=1.0, min_p=0.0, top_p=1.0,
                                   logit_bias={llm.token_eos(): -1e9}, stream=True):
        now = time.perf_counter()
        first = first if first is not None else now
        count += 1
    end = time.perf_counter()
    return {"first_token_s": first - started, "total_s": end - started, "tokens": count, "decode_tok_s": (count - 1) / (end - first)}


def ours_stream(engine, request: GenerationRequest, new_tokens: int) -> dict:
    settings = DecodingSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    started = time.perf_counter()
    first = end = None
    stats = None
    for event in engine.stream_many([request], settings):
        now = time.perf_counter()
        if event.kind == "text" and first is None:
            first = now
        if event.kind == "error":
            raise RuntimeError(event.text)
        stats = event.stats or stats
        end = now
    return {"first_token_s": first - started, "total_s": end - started, "tokens": stats.new_tokens,
            "decode_tok_s": (stats.new_tokens - 1) / (end - first)}


def build_hits(target_tokens: int, llm) -> tuple[str, list]:
    from core.knowledge import Hit

    rows = [json.loads(line) for line in (SQUAD / "qa.jsonl").read_text().splitlines()[:400]]
    hits, seen, total = [], set(), 0
    for row in rows:
        if row["source_passage"] in seen:
            continue
        seen.add(row["source_passage"])
        hits.append(Hit(len(hits) + 1, row["source_doc"], 1, 1, 0.6, row["source_passage"], len(hits) + 1))
        total += len(llm.tokenize(row["source_passage"].encode(), add_bos=False))
        if total >= target_tokens:
            break
    return rows[0]["question"], hits


def bench_stream(engine, raw, new_tokens: int, rounds: int) -> dict:
    from core.generation import build_messages

    messages = build_messages("Explain in detail how a steam engine works, step by step.")
    prompt = engine.formatter(messages=messages).prompt
    ours, theirs = [], []
    for _ in range(rounds):  # alternate, so load changes hit both sides alike
        theirs.append(raw_stream(raw, prompt, new_tokens))
        ours.append(ours_stream(engine, GenerationRequest("one", messages), new_tokens))
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    return {"rounds": rounds, "new_tokens": new_tokens, "ours_decode_tok_s": round(med(ours, "decode_tok_s"), 1),
            "raw_decode_tok_s": round(med(theirs, "decode_tok_s"), 1),
            "ratio": round(med(ours, "decode_tok_s") / med(theirs, "decode_tok_s"), 3),
            "ours_all": [round(r["decode_tok_s"], 1) for r in ours], "raw_all": [round(r["decode_tok_s"], 1) for r in theirs]}


def bench_compare(engine, raw_base, raw_tuned, adapter: str, new_tokens: int, rounds: int) -> dict:
    question, hits = build_hits(600, raw_base)
    answers, requests = plan_comparison(question, ["base", "rag", "finetuned", "hybrid"], hits, adapter=adapter)
    settings = DecodingSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    prompts = {r.key: engine.formatter(messages=r.messages).prompt for r in requests}
    def run_raw():
        started = time.perf_counter()
        first = {}
        for key, prompt in prompts.items():
            llm = raw_tuned if key in ("finetuned", "hybrid") else raw_base
            t0 = time.perf_counter()
            row = raw_stream(llm, prompt, new_tokens)
            first[key] = round(t0 - started + row["first_token_s"], 2)
        return time.perf_counter() - started, first

    def run_ours():
        started = time.perf_counter()
        first = {}
        for event in engine.stream_many(requests, settings):
            if event.kind == "error":
                raise RuntimeError(event.text)
            if event.kind == "text" and event.key not in first:
                first[event.key] = round(time.perf_counter() - started, 2)
        return time.perf_counter() - started, first

    results = []
    for number in range(rounds):  # alternate who goes first, so a change in machine load hits both sides alike
        if number % 2 == 0:
            raw_wall, raw_first = run_raw()
            ours_wall, ours_first = run_ours()
        else:
            ours_wall, ours_first = run_ours()
            raw_wall, raw_first = run_raw()
        results.append({"ours_wall_s": ours_wall, "raw_wall_s": raw_wall, "ours_first": ours_first, "raw_first": raw_first})
        print(json.dumps(results[-1]), flush=True)
    best = min(results, key=lambda r: r["ours_wall_s"] / r["raw_wall_s"])
    med = statistics.median(r["ours_wall_s"] / r["raw_wall_s"] for r in results)
    return {"rounds": rounds, "new_tokens_per_column": new_tokens,
            "prompt_tokens": {k: len(raw_base.tokenize(p.encode(), special=True)) for k, p in prompts.items()},
            "ours_wall_s": [round(r["ours_wall_s"], 2) for r in results], "raw_wall_s": [round(r["raw_wall_s"], 2) for r in results],
            "median_ratio": round(med, 3), "first_token_s_ours": results[-1]["ours_first"], "first_token_s_raw": results[-1]["raw_first"],
            "best_round_ratio": round(best["ours_wall_s"] / best["raw_wall_s"], 3)}


def bench_evaluate(workspace, count: int, engines: list[str]) -> dict:
    from core import evaluation
    from core.evaluation import EvaluationSettings
    from core.knowledge import ingest_files, list_documents, list_knowledge_bases, load_sentence_embedder

    questions = evaluation.load_questions(SQUAD / "qa_sample.jsonl")[:count]
    embedder = load_sentence_embedder()
    have = {d.name for d in list_documents(workspace, "squad")} if any(k.name == "squad" for k in list_knowledge_bases(workspace)) else set()
    need = sorted({q.source_doc for q in questions} - have)
    if need:
        started = time.perf_counter()
        ingest_files(workspace, "squad", [(d, (SQUAD / "docs" / d).read_bytes()) for d in need], embedder)
        print(f"ingested {len(need)} documents in {time.perf_counter() - started:.0f} s", flush=True)
    out = {}
    for kind in engines:
        runner = evaluation.make_engine_runner(workspace, None, max_new_tokens=48, engine=kind)
        before = load()
        eval_id = evaluation.run_evaluation(workspace, runner, questions, EvaluationSettings(variants=("base", "rag"), max_new_tokens=48),
                                            kb="squad", embedder=embedder, question_source="squad36")
        summary = evaluation.load_summary(workspace, eval_id)
        out[kind] = {"questions_per_minute": round(summary["questions_per_minute"], 2), "elapsed_s": round(summary["elapsed_s"], 1),
                     "rag_f1": round(summary["variants"]["rag"]["f1"], 3), "base_f1": round(summary["variants"]["base"]["f1"], 3),
                     "load_before": before, "load_after": load(), "evaluation": eval_id}
        print(kind, json.dumps(out[kind]), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-evaluate", action="store_true")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_engines.md")))
    args = parser.parse_args()
    from core.engines.llamacpp import LlamaCppEngine, cpu_variant, gguf_adapter
    from tests.compare_fixtures import make_adapter
    from tests.tune_support import workspace_with_model

    workspace = workspace_with_model(Path(os.environ.get("STUDIO_WORKSPACE") or tempfile.mkdtemp(prefix="engines-bench-")))
    adapter = str(make_adapter(workspace))
    lora = gguf_adapter(adapter, workspace)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": args.threads, "start": load(),
              "questions": args.questions,
              "cpu": next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")}
    engine = LlamaCppEngine(embedded_generator_gguf(), workspace, threads=args.threads)
    raw_base, raw_tuned = raw_llama(args.threads), raw_llama(args.threads, lora)
    report["cpu_backend"] = cpu_variant()
    if not args.skip_stream:
        print("one stream ...", flush=True)
        report["stream"] = bench_stream(engine, raw_base, args.new_tokens, args.rounds)
        print(json.dumps(report["stream"]), flush=True)
    print("compare, 4 columns ...", flush=True)
    report["compare"] = bench_compare(engine, raw_base, raw_tuned, adapter, args.new_tokens, args.rounds)
    print(json.dumps(report["compare"]), flush=True)
    del raw_base, raw_tuned
    if not args.skip_evaluate:
        report["evaluate"] = bench_evaluate(workspace, args.questions, ["llamacpp", "transformers"])
    report["end"] = load()
    record(Path(args.out), report)
    print(json.dumps(report, indent=2))
    return 0


def record(path: Path, r: dict) -> None:
    s, c = r.get("stream"), r["compare"]
    lines = [
        f"\n## {r['date']}: llamacpp engine vs raw llama-cpp-python, {r['threads']} threads",
        "",
        f"- Machine: {r['cpu']}; ggml CPU backend picked at run time: **{r['cpu_backend']}**; {r['start']} at the start, "
        f"{r['end']} at the end (other engineers' jobs share the 2 cores).",
    ]
    if s:
        lines.append(f"- One stream, {s['new_tokens']} tokens (EOS banned), median of {s['rounds']} alternating rounds: ours **{s['ours_decode_tok_s']}** "
        f"tokens/s, raw **{s['raw_decode_tok_s']}** tokens/s: **{s['ratio']:.2f}x** (goal >= 0.9x). All rounds: ours {s['ours_all']}, raw {s['raw_all']}.")
    lines += [
        f"- Compare, 4 columns x {c['new_tokens_per_column']} tokens (prompt tokens {c['prompt_tokens']}): ours {c['ours_wall_s']} s, "
        f"raw in sequence {c['raw_wall_s']} s; median ratio **{c['median_ratio']:.2f}x** (goal <= 1.0x).",
        f"- Time to first token per column (s from the start, last round): ours {c['first_token_s_ours']}, raw {c['first_token_s_raw']}.",
    ]
    if "evaluate" in r:
        for kind, e in r["evaluate"].items():
            lines.append(f"- Evaluate ({kind}), base + RAG, 48 new tokens, the same {r['questions']} squad36 questions: "
                         f"**{e['questions_per_minute']} questions/min** "
                         f"({e['elapsed_s']} s; F1 base {e['base_f1']}, RAG {e['rag_f1']}; {e['load_before']} before, {e['load_after']} after).")
    existing = path.read_text() if path.exists() else ("# Engines benchmark\n\nWritten by `bench/engines_bench.py` "
                                                         "(llama.cpp in-process vs raw llama-cpp-python; Evaluate on transformers vs llamacpp).\n")
    path.write_text(existing + "\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
