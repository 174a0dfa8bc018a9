"""`python -m core evaluate`: score base / RAG / fine-tuned / hybrid on a question file."""
from __future__ import annotations

import argparse
import math

from core.cli import print_json
from core.errors import StudioError
from core.settings import get_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="run every variant over a question set and print the metrics")
    p.add_argument("--kb", help="knowledge base for RAG/hybrid and retrieval metrics")
    p.add_argument("--adapter", help="LoRA adapter: a run id (runs/<id>/adapter) or an adapter folder")
    p.add_argument("--questions", required=True, help="JSONL/CSV: question, answer or answers, optional source_doc, source_passage")
    p.add_argument("--variants", default=None, help="comma list of base,rag,finetuned,hybrid (default: all that apply)")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument("--k", type=int, default=5, help="chunks retrieved per question")
    p.add_argument("--max-new-tokens", type=int, default=48, help="answer length cap")
    p.add_argument("--out-of-scope", type=int, default=0, help="add N built-in out-of-scope questions (refusal check)")
    p.add_argument("--dataset", default=None, help="training dataset id whose format the fine-tuned answers should follow")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="1.0 lets RAG quote its sources (see EvaluationSettings)")
    p.add_argument("--dtype", default="auto", help="transformers engine: generator dtype (auto, float32, bfloat16)")
    from core.cli import add_column_engine_argument, add_engine_arguments

    add_engine_arguments(p)
    add_column_engine_argument(p)
    p.add_argument("--judge-url", default=None, help="optional: also score with RAGAS through this OpenAI-compatible endpoint "
                   "(same as running `python -m core judge` afterwards)")
    p.add_argument("--judge-model", default=None, help="the judge model name, with --judge-url")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_evaluate)


def _variants(args: argparse.Namespace) -> tuple[str, ...]:
    from core.variants import USES_ADAPTER, USES_CONTEXT, VARIANTS

    if args.variants:
        chosen = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    else:
        chosen = tuple(v for v in VARIANTS if (args.kb or v not in USES_CONTEXT) and (args.adapter or v not in USES_ADAPTER))
    if any(v in USES_ADAPTER for v in chosen) and not args.adapter:
        raise StudioError("The fine-tuned and hybrid variants need --adapter (a run id or an adapter folder).")
    return chosen


def run_evaluate(args: argparse.Namespace) -> int:
    from core import evaluation

    workspace = get_workspace(args.workspace)
    settings = evaluation.EvaluationSettings(
        variants=_variants(args), k=args.k, max_new_tokens=args.max_new_tokens, limit=args.limit, out_of_scope=args.out_of_scope,
        repetition_penalty=args.repetition_penalty
    )
    settings.validate()
    judge_settings = None
    if args.judge_url or args.judge_model:
        import os

        from core import judge

        judge_settings = judge.JudgeSettings(args.judge_url or "", args.judge_model or "", os.environ.get("STUDIO_JUDGE_API_KEY", "local"))
        judge_settings.validate()
        judge.check_endpoint(judge_settings.base_url)  # fail before the models load, not after the run
    questions = evaluation.load_questions(args.questions)
    from core.adapters import resolve_adapter

    adapter_path = resolve_adapter(workspace, args.adapter)  # fail fast, before loading models
    embedder = evaluation.embedder_for_kb(workspace, args.kb) if args.kb else None
    references = [a for q in questions for a in q.answers[:1]]
    style_check, style_note = evaluation.dataset_style_check(workspace, args.dataset, references)
    if style_check is not None:  # the cap must fit the taught format, else every answer is cut before its last line
        settings, cap_note = evaluation.fit_format_cap(workspace, settings, args.dataset, references)
        style_note = f"{style_note}; {cap_note}; scored on complete answers only (one stopped by the cap is n/a)"
        args.max_new_tokens = settings.max_new_tokens
    from core.cli import column_engine_specs, engine_spec_from_args
    from core.models import GeneratorSpec

    adapter_arg = str(adapter_path) if adapter_path else None
    generator = GeneratorSpec(dtype=args.dtype) if args.dtype != "auto" else None
    runner = evaluation.make_engine_runner(workspace, adapter_arg, args.max_new_tokens, args.repetition_penalty, generator,
                                           engine=engine_spec_from_args(args), engines=column_engine_specs(args.column_engine))
    evaluation_id = evaluation.run_evaluation(
        workspace, runner, questions, settings, kb=args.kb, embedder=embedder, adapter=args.adapter,
        question_source=args.questions, style_check=style_check, style_note=style_note,
    )
    summary = evaluation.load_summary(workspace, evaluation_id)
    judged = None
    if judge_settings is not None:
        from core import judge
        from core.embedding import load_sentence_embedder

        judged = judge.judge_evaluation(workspace, evaluation_id, judge_settings, embedder or load_sentence_embedder())
    if args.json:
        print_json({"id": evaluation_id, **summary, **({"ragas": {k: v for k, v in judged.items() if k != "cells"}} if judged else {})})
        return 0
    engines = sorted({f"{e['engine']} · {e['model']}" for v, e in runner.describe().items() if v in settings.variants})
    print(f"engine: {', '.join(engines)}")
    print(f"evaluation {evaluation_id}: {summary['questions']} questions, {summary['answers']} answers, "
          f"{summary['elapsed_s']:.0f} s ({summary['questions_per_minute']:.2f} questions/min)")
    columns = ("em", "f1", "rouge_l", "contains", "groundedness", "style", "refusal_oos", "latency_p50_s", "latency_p95_s", "tokens_per_s")
    print(f"{'variant':<10}" + "".join(f"{c:>14}" for c in columns))
    for variant, values in summary["variants"].items():
        cells = "".join(f"{'n/a' if values.get(c) is None or (isinstance(values.get(c), float) and math.isnan(values[c])) else f'{values[c]:.3f}':>14}" for c in columns)
        print(f"{variant:<10}{cells}")
    r = summary["retrieval"]
    if r.get("questions_with_gold"):
        k = r["k"]
        hit_k = r[f"hit@{k}"]
        print(f"retrieval over {r['questions_with_gold']} questions: hit@1 {r['hit@1']:.3f}, hit@{k} {hit_k:.3f}, MRR {r['mrr']:.3f}")
    if judged:
        from core.commands.judge import print_table

        print_table(judged)
    print(f"report: python -m core report {evaluation_id} --out report.html")
    return 0

