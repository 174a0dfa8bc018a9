"""`python -m core decide` and `python -m core estimate`: the Decide page from the command line."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from core.cli import print_json
from core.decision.export import decision_to_dict
from core.decision.plan import plan_pipelines
from core.decision.questions import OPTION_LABELS, OPTIONS
from core.decision.scoring import decide
from core.errors import StudioError
from core.estimate.formulas import EstimateInputs, estimate
from core.estimate.specs import HARDWARE
from core.estimate.summary import estimate_to_dict, summary_lines


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("decide", help="score RAG, fine-tune and hybrid from questionnaire answers")
    p.add_argument("--answers", required=True, help="JSON file mapping question id -> answer; missing ids take defaults")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_decide)

    e = subparsers.add_parser("estimate", help="memory, training time and RAG cost estimates")
    e.add_argument("--params", type=float, default=None, help="base model parameters, e.g. 3.8e9")
    e.add_argument("--model", default=None, help="or a Hugging Face id / local folder: the size is read from its config.json (no weights)")
    e.add_argument("--train-tokens", required=True, type=float, help="training-set size in tokens, e.g. 2e6")
    e.add_argument("--hardware", default="cpu", help=f"one of: {', '.join(HARDWARE)}")
    e.add_argument("--docs", type=int, default=0, help="number of documents")
    e.add_argument("--pages", type=int, default=None, help="total pages (default: docs x 10)")
    e.add_argument("--epochs", type=int, default=1)
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=run_estimate)


def _read_answers(path: str) -> dict:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise StudioError(f"answers file not found: {path}") from error
    except ValueError as error:
        raise StudioError(f"answers file {path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise StudioError(f"answers file {path} must hold a JSON object mapping question id -> answer")
    return raw


def run_decide(args: argparse.Namespace) -> int:
    decision = decide(_read_answers(args.answers))
    if args.json:
        print_json({**decision_to_dict(decision), "plan": asdict(plan_pipelines(decision))})
        return 0
    print(decision.headline)
    print("scores: " + ", ".join(f"{OPTION_LABELS[o]} {decision.scores[o]:+.1f}" for o in OPTIONS))
    print("reasons:")
    for i, reason in enumerate(decision.reasons, 1):
        print(f"  {i}. {reason.text}")
    print(f"sensitivity: {decision.sensitivity_text}")
    return 0


def run_estimate(args: argparse.Namespace) -> int:
    model = None
    if args.model:
        from core.estimate.specs import model_from_config
        from core.settings import get_workspace

        model = model_from_config(args.model, get_workspace(args.workspace))
    elif args.params is None:
        raise StudioError("Give --params (e.g. 3.8e9) or --model (a Hugging Face id or folder).")
    result = estimate(EstimateInputs(params=model.params if model else args.params, train_tokens=args.train_tokens,
                                     hardware=args.hardware, docs=args.docs, pages=args.pages, epochs=args.epochs), model)
    if args.json:
        print_json(estimate_to_dict(result))
    else:
        print("\n".join(summary_lines(result)))
    return 0
