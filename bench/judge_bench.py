"""Benchmark: RAGAS judging of a finished evaluation through a real OpenAI-compatible judge server.

    STUDIO_WORKSPACE=/tmp/eval-bench-ws python bench/judge_bench.py EVAL_ID \
        --url http://127.0.0.1:8765/v1 --model smollm2-135m [--limit 5] [--record bench/RESULTS_judge.md]

What it measures: seconds per score and per judge call, and how many scores came back as a number,
NaN, timeout or error. The judge is whatever serves the URL; on this machine we used llama.cpp's
OpenAI-compatible server (llama-cpp-python 0.3.16 in a side venv, see bench/llama_ref.py) with the
embedded SmolLM2-135M GGUF:

    /tmp/llama-venv/bin/python -m llama_cpp.server --model .../SmolLM2-135M-Instruct.Q4_1.gguf \
        --host 127.0.0.1 --port 8765 --n_ctx 4096 --n_threads 2 --model_alias smollm2-135m

Not collected by pytest.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import evaluation, judge  # noqa: E402
from core.settings import get_workspace  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("evaluation_id")
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--limit", type=int, default=5, help="questions to judge")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--metrics", default=",".join(judge.METRICS))
    parser.add_argument("--record", default=None)
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    workspace = get_workspace()
    record = evaluation.get_evaluation(workspace, args.evaluation_id)
    embedder = evaluation.embedder_for_kb(workspace, record.kb) if record.kb else None
    settings = judge.JudgeSettings(args.url, args.model, timeout_s=args.timeout,
                                   metrics=tuple(args.metrics.split(",")), limit=args.limit)
    print("endpoint lists", judge.check_endpoint(args.url), flush=True)
    state = judge.judge_evaluation(workspace, args.evaluation_id, settings, embedder,
                                   progress=lambda p: print(f"{p.done}/{p.total} {p.variant} {p.metric}", flush=True))
    cells = judge.load_judgement(workspace, args.evaluation_id)["cells"]
    judged = [c for c in cells if c["status"] != "n/a"]
    statuses = Counter(c["status"] for c in judged)
    seconds = [c["seconds"] for c in judged]
    lines = [
        f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: judge {args.model} on evaluation {args.evaluation_id}",
        "",
        f"- Judge endpoint {args.url}; {args.limit} questions; metrics {args.metrics}; timeout {args.timeout:.0f} s per score. {args.note}",
        f"- Machine: {evaluation.describe_machine().get('cpu')}; load average {os.getloadavg()[0]:.1f} at the end.",
        f"- {len(judged)} scores attempted in {state.get('elapsed_s', 0):.0f} s: "
        + ", ".join(f"{n} {s}" for s, n in statuses.most_common())
        + (f"; seconds per score median {statistics.median(seconds):.1f}, max {max(seconds):.1f}." if seconds else "."),
        "",
        "| variant | metric | mean (scored only) | scored | NaN | timeouts | errors | n/a |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in judge.judgement_rows(state):
        mean = "n/a" if row["mean"] is None else f"{row['mean']:.3f}"
        lines.append(f"| {row['variant']} | {row['metric']} | {mean} | {row['scored']} | {row['NaN']} | {row['timeouts']} | "
                     f"{row['errors']} | {row['not applicable']} |")
    details = Counter(c["detail"] for c in judged if c["status"] != "ok")
    if details:
        lines += ["", "Why the unscored cells have no score:", ""] + [f"- {n} × {d}" for d, n in details.most_common()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        path = Path(args.record)
        existing = path.read_text() if path.exists() else "# RAGAS judge benchmark\n\nWritten by `bench/judge_bench.py`.\n"
        path.write_text(existing + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
