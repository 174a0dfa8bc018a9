"""`python -m core report EVAL_ID --out report.html`: the self-contained decision report."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.errors import StudioError
from core.settings import get_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write the decision report (one offline HTML file) for an evaluation")
    p.add_argument("evaluation_id", help="an evaluation id (see the Evaluate page or `python -m core evaluate`)")
    p.add_argument("--out", default=None, help="output .html (default: workspace/reports/report-<id>.html)")
    p.add_argument("--decision", default=None, help="optional JSON file with the questionnaire decision")
    p.add_argument("--estimate", default=None, help="optional JSON file with the cost estimate")
    p.set_defaults(func=run_report)


def _read(path: str | None):
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise StudioError(f"{path} does not exist.") from error
    except ValueError as error:
        raise StudioError(f"{path} is not valid JSON: {error}") from error


def run_report(args: argparse.Namespace) -> int:
    from core.report import write_report

    workspace = get_workspace(args.workspace)
    path = write_report(workspace, args.evaluation_id, args.out, decision=_read(args.decision), estimate=_read(args.estimate))
    print(path)
    return 0
