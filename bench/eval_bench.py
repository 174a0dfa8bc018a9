"""Benchmark: questions per minute for a four-variant evaluation, and the squad36 scoreboard.

    STUDIO_WORKSPACE=/tmp/eval-bench-ws HF_HUB_OFFLINE=1 python bench/eval_bench.py --limit 20 \
        --adapter RUN_OR_FOLDER [--kb squad36] [--record bench/RESULTS_eval.md]

Ingests every squad36 PDF the chosen questions need into --kb (skipped when already there), then
runs `core.evaluation.run_evaluation` through the engine --engine names (transformers, llamacpp, openai:URL). Without --adapter only
base and RAG run. Appends a dated section with the machine to --record. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import evaluation  # noqa: E402
from core.settings import get_workspace  # noqa: E402

SQUAD = Path("/work/shared/data/squad36")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", default=str(SQUAD / "qa_sample.jsonl"))
    parser.add_argument("--kb", default="squad36")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--spread", action="store_true", help="take questions round-robin across articles instead of the first N")
    parser.add_argument("--variants", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--out-of-scope", type=int, default=0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--record", default=None, help="append a results section to this markdown file")
    parser.add_argument("--note", default="")
    parser.add_argument("--engine", default="transformers", help="transformers, llamacpp[:FILE.gguf] or openai:URL (with --model)")
    parser.add_argument("--model", default="", help="openai: the served model name")
    parser.add_argument("--dataset", default=None, help="training dataset id whose format adherence is checked")
    args = parser.parse_args()

    from core.knowledge import ingest_files, list_documents, list_knowledge_bases, load_sentence_embedder

    workspace = get_workspace()
    questions = evaluation.load_questions(args.questions)
    if args.spread:
        by_doc: dict[str, list] = {}
        for q in questions:
            by_doc.setdefault(q.source_doc, []).append(q)
        spread = [group[i] for i in range(max(len(g) for g in by_doc.values())) for group in by_doc.values() if i < len(group)]
        questions = spread
    questions = questions[: args.limit]
    embedder = load_sentence_embedder()
    have = set()
    if any(kb.name == args.kb for kb in list_knowledge_bases(workspace)):
        have = {d.name for d in list_documents(workspace, args.kb)}
    need = sorted({q.source_doc for q in questions} - have)
    if need:
        started = time.perf_counter()
        ingest_files(workspace, args.kb, [(d, (SQUAD / "docs" / d).read_bytes()) for d in need], embedder)
        print(f"ingested {len(need)} documents in {time.perf_counter() - started:.1f} s", flush=True)
    variants = tuple(args.variants.split(",")) if args.variants else (evaluation.VARIANTS if args.adapter else ("base", "rag"))
    settings = evaluation.EvaluationSettings(variants=variants, max_new_tokens=args.max_new_tokens, out_of_scope=args.out_of_scope,
                                            repetition_penalty=args.repetition_penalty)
    from core.engines.registry import parse_engine_spec

    runner = evaluation.make_engine_runner(workspace, args.adapter, args.max_new_tokens, repetition_penalty=args.repetition_penalty,
                                           engine=parse_engine_spec(args.engine, model=args.model))

    def progress(p):
        if p.done % 10 == 0:
            print(f"{p.done}/{p.total}", flush=True)

    style_check, style_note = evaluation.dataset_style_check(workspace, args.dataset, [q.answers[0] for q in questions if q.answers])
    eval_id = evaluation.run_evaluation(workspace, runner, questions, settings, kb=args.kb, embedder=embedder, adapter=args.adapter,
                                        question_source=Path(args.questions).name, progress=progress,
                                        style_check=style_check, style_note=style_note)
    summary = evaluation.load_summary(workspace, eval_id)
    print(json.dumps(summary, indent=2))
    if args.record:
        record(Path(args.record), eval_id, summary, args, variants)
    return 0


def _f(value, digits=3):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def record(path: Path, eval_id: str, summary: dict, args, variants) -> None:
    facts = evaluation.describe_machine()
    r = summary["retrieval"]
    lines = [
        f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {summary['questions'] - args.out_of_scope} squad36 questions"
        f" + {args.out_of_scope} out-of-scope x {len(variants)} variants",
        "",
        f"- Machine: {facts.get('cpu', platform.processor())}, {facts.get('cpu_count')} cores, torch {facts.get('torch')} "
        f"({facts.get('threads')} threads), {facts.get('platform')}; load average {os.getloadavg()[0]:.1f} at the end.",
        f"- Questions: first {summary['questions'] - args.out_of_scope} of {Path(args.questions).name}{' (round-robin across articles)' if args.spread else ''}; "
        f"variants {', '.join(variants)}; max_new_tokens {args.max_new_tokens}; repetition_penalty {args.repetition_penalty}; k 5; SmolLM2-135M; engine {args.engine}{' (all variants of a question in one mixed-adapter batch, dtype chosen by fast_cpu_dtype)' if args.engine == 'transformers' else ''}; evaluation {eval_id}.",
        f"- Adapter: {args.adapter or 'none'}. Format check: {summary.get('style_note')}. {args.note}",
        f"- Elapsed {summary['elapsed_s']:.0f} s: **{summary['questions_per_minute']:.2f} questions/minute** for all {len(variants)} variants "
        f"({summary['answers'] / summary['elapsed_s'] * 60:.1f} answers/minute).",
        f"- Retrieval ({r['questions_with_gold']} questions): hit@1 {_f(r['hit@1'])}, hit@5 {_f(r.get('hit@5'))}, MRR@5 {_f(r['mrr'])}.",
        "",
        "| variant | EM | F1 | ROUGE-L | contains | lexical support | format | refuses out-of-scope | p50 s | p95 s | tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, m in summary["variants"].items():
        lines.append(
            f"| {variant} | {_f(m['em'])} | {_f(m['f1'])} | {_f(m['rouge_l'])} | {_f(m['contains'])} | {_f(m['groundedness'])} | "
            f"{_f(m['style'])} | {_f(m['refusal_oos'])} | {_f(m['latency_p50_s'], 2)} | {_f(m['latency_p95_s'], 2)} | {_f(m['tokens_per_s'], 1)} |"
        )
    existing = path.read_text() if path.exists() else "# Evaluation benchmark\n\nWritten by `bench/eval_bench.py`.\n"
    path.write_text(existing + "\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
