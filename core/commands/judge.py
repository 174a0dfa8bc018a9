"""`python -m core judge EVAL_ID --url URL --model M`: optional RAGAS scores from a judge model."""
from __future__ import annotations

import argparse
import os

from core.cli import print_json
from core.settings import get_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    from core.judge import METRICS

    p = subparsers.add_parser("judge", help="score a finished evaluation with RAGAS through an OpenAI-compatible judge endpoint")
    p.add_argument("evaluation_id", help="an evaluation id (see `python -m core evaluate` or the Evaluate page)")
    p.add_argument("--url", default=os.environ.get("STUDIO_JUDGE_URL"), required=not os.environ.get("STUDIO_JUDGE_URL"),
                   help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (Ollama); default $STUDIO_JUDGE_URL")
    p.add_argument("--model", default=os.environ.get("STUDIO_JUDGE_MODEL"), required=not os.environ.get("STUDIO_JUDGE_MODEL"),
                   help="judge model name; default $STUDIO_JUDGE_MODEL")
    p.add_argument("--metrics", default=",".join(METRICS), help=f"comma list of {','.join(METRICS)}")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per score before it counts as a timeout")
    p.add_argument("--limit", type=int, default=None, help="judge only the first N questions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_judge)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run_judge(args: argparse.Namespace) -> int:
    from core import judge

    workspace = get_workspace(args.workspace)
    settings = judge.JudgeSettings(args.url, args.model or "", os.environ.get("STUDIO_JUDGE_API_KEY", "local"), args.timeout,
                                   tuple(m.strip() for m in args.metrics.split(",") if m.strip()), args.limit)
    settings.validate()
    judge.check_endpoint(settings.base_url)
    embedder = None
    if "answer_relevancy" in settings.metrics:
        from core.evaluation import embedder_for_kb, get_evaluation
        from core.embedding import load_sentence_embedder

        kb = get_evaluation(workspace, args.evaluation_id).kb
        embedder = embedder_for_kb(workspace, kb) if kb else load_sentence_embedder()
    state = judge.judge_evaluation(workspace, args.evaluation_id, settings, embedder)
    if args.json:
        print_json({key: value for key, value in state.items() if key != "cells"})
        return 0
    print_table(state)
    return 0


def print_table(state: dict) -> None:
    from core import judge

    print(f"judged with {state['judge']['model']}: {state['done']} scores in {state.get('elapsed_s', 0):.0f} s ({state['status']})")
    print(f"{'variant':<11}{'metric':<19}{'mean':>8}{'scored':>8}{'NaN':>6}{'timeout':>9}{'error':>7}{'n/a':>6}")
    for row in judge.judgement_rows(state):
        print(f"{row['variant']:<11}{row['metric']:<19}{_fmt(row['mean']):>8}{row['scored']:>8}{row['NaN']:>6}"
              f"{row['timeouts']:>9}{row['errors']:>7}{row['not applicable']:>6}")
    print("means cover scored cells only; NaN, timeouts and errors are counted, never scored")
