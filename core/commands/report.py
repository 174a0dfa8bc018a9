"""`python -m core report EVAL_ID --out report.html`: the self-contained decision report.

`--out report.pdf` prints it to PDF instead (headless Chromium; the HTML goes to a temporary file beside it), and
`--pdf` writes both, the PDF next to the HTML.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from core.errors import StudioError
from core.settings import get_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write the decision report (one offline HTML file, optionally a PDF) for an evaluation")
    p.add_argument("evaluation_id", help="an evaluation id (see the Evaluate page or `python -m core evaluate`)")
    p.add_argument("--out", default=None,
                   help="output .html, or .pdf for a PDF only (default: workspace/reports/report-<id>.html)")
    p.add_argument("--pdf", action="store_true", help="also write a PDF next to the HTML (needs Chromium)")
    p.add_argument("--paper", choices=("A4", "Letter"), default="A4", help="PDF paper size (default A4)")
    p.add_argument("--decision", default=None, help="optional JSON file with the questionnaire decision")
    p.add_argument("--estimate", default=None, help="optional JSON file with the cost estimate")
    p.add_argument("--json", action="store_true", help="print JSON")
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
    from core.cli import print_json
    from core.report import write_report
    from core.report_pdf import write_report_pdf

    workspace = get_workspace(args.workspace)
    decision, estimate = _read(args.decision), _read(args.estimate)
    html_path = pdf_path = None
    pdf_seconds = None
    if args.out and Path(args.out).suffix.lower() == ".pdf":
        # PDF only: the HTML is an intermediate, written beside the PDF (same folder, same disk) and removed
        pdf_target = Path(args.out)
        pdf_target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=pdf_target.parent, prefix=f".{pdf_target.stem}.", suffix=".html")
        os.close(fd)
        try:
            write_report(workspace, args.evaluation_id, tmp, decision=decision, estimate=estimate)
            started = time.monotonic()
            pdf_path = write_report_pdf(tmp, pdf_target, paper=args.paper)
            pdf_seconds = time.monotonic() - started
        finally:
            Path(tmp).unlink(missing_ok=True)
    else:
        html_path = write_report(workspace, args.evaluation_id, args.out, decision=decision, estimate=estimate)
        if args.pdf:
            started = time.monotonic()
            try:
                pdf_path = write_report_pdf(html_path, paper=args.paper)
            except StudioError as error:
                raise StudioError(f"{error} (The HTML report was written: {html_path})") from error
            pdf_seconds = time.monotonic() - started
    if args.json:
        print_json({"html": str(html_path) if html_path else None, "pdf": str(pdf_path) if pdf_path else None,
                    "pdf_seconds": round(pdf_seconds, 2) if pdf_seconds is not None else None})
    else:
        for path in (html_path, pdf_path):
            if path:
                print(path)
    return 0
