"""Benchmark: does the relevance gate (`core.knowledge.relevant`) refuse out-of-scope questions?

    cp -r /tmp/eval-bench-ws /tmp/my-ws   # a workspace with the 36 squad36 PDFs in kb "squad36"
    STUDIO_WORKSPACE=/tmp/my-ws HF_HUB_OFFLINE=1 python bench/oos_bench.py [--kb squad36] [--record bench/RESULTS_oos.md]

In scope: the 180 squad36 gold questions. Out of scope: bench/out_of_scope_questions.jsonl (40 questions
the 36 articles do not answer: other countries/people/companies, future dates, private facts, near misses).
For each gate it prints
  answerable = share of gold questions where the gate passes at least one chunk,
  gold doc   = share of gold questions where a passed chunk comes from the gold document,
  refused    = share of out-of-scope questions where the gate passes nothing,
over all questions, the tuning half (even positions) and the held-out half (odd positions) of both sets.
Retrieval only (no generation): a few seconds after the embedder loads. Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import get_workspace  # noqa: E402

SQUAD = Path("/work/shared/data/squad36")
OOS = Path(__file__).resolve().parent / "out_of_scope_questions.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def gate_rates(gold: list[dict], gold_hits: list, oos_hits: list, settings) -> dict:
    from core.knowledge import relevant

    passed = [relevant(hits, settings) for hits in gold_hits]
    return {
        "answerable": sum(bool(p) for p in passed) / len(gold) if gold else float("nan"),
        "gold_doc": sum(any(h.document == row["source_doc"] for h in p) for row, p in zip(gold, passed)) / len(gold) if gold else float("nan"),
        "refused": sum(not relevant(hits, settings) for hits in oos_hits) / len(oos_hits) if oos_hits else float("nan"),
    }


def measure(gold: list[dict], oos: list[dict], gold_hits: list, oos_hits: list, gates: dict) -> list[tuple]:
    halves = {
        "all": (range(len(gold)), range(len(oos))),
        "tuning (even)": (range(0, len(gold), 2), range(0, len(oos), 2)),
        "held-out (odd)": (range(1, len(gold), 2), range(1, len(oos), 2)),
    }
    rows = []
    for gate_name, settings in gates.items():
        for half, (gi, oi) in halves.items():
            rates = gate_rates([gold[i] for i in gi], [gold_hits[i] for i in gi], [oos_hits[i] for i in oi], settings)
            rows.append((gate_name, half, len(gi), len(oi), rates))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kb", default="squad36")
    parser.add_argument("--questions", default=str(SQUAD / "qa_sample.jsonl"))
    parser.add_argument("--oos", default=str(OOS))
    parser.add_argument("--min-score", type=float, action="append", default=None,
                        help="extra cosine cut-offs to report for the old gate (repeatable)")
    parser.add_argument("--record", default=None, help="append a results section to this markdown file")
    parser.add_argument("--note", default="")
    parser.add_argument("--latency", action="store_true", help="also time one-query searches with the check off and on")
    parser.add_argument("--show", action="store_true", help="list the out-of-scope questions the new gate still answers")
    args = parser.parse_args()

    from core.knowledge import RetrievalSettings, load_sentence_embedder, relevant, search_many

    workspace = get_workspace()
    gold = read_jsonl(Path(args.questions))
    oos = read_jsonl(Path(args.oos))
    started = time.perf_counter()
    embedder = load_sentence_embedder()
    loaded = time.perf_counter()
    new = RetrievalSettings()
    # term_check only annotates hits (Hit.missing_terms); the ranking is the same, so one search serves every gate.
    from core.evaluation import OUT_OF_SCOPE_QUESTIONS

    builtin = list(OUT_OF_SCOPE_QUESTIONS)
    hits = search_many(workspace, args.kb, [r["question"] for r in gold] + [r["question"] for r in oos] + builtin, embedder, new)
    searched = time.perf_counter()
    gold_hits, oos_hits, builtin_hits = hits[: len(gold)], hits[len(gold): len(gold) + len(oos)], hits[len(gold) + len(oos):]
    old = replace(new, term_check=False)
    gates = {f"before: cosine >= {old.min_score:.2f}": old}
    for cut in args.min_score or ():
        gates[f"cosine >= {cut:.2f} only"] = replace(old, min_score=cut)
    gates[f"after: cosine >= {new.min_score:.2f} + term check"] = new
    rows = measure(gold, oos, gold_hits, oos_hits, gates)

    by_category: dict[str, list[int]] = {}
    for i, row in enumerate(oos):
        by_category.setdefault(row.get("category", "?"), []).append(i)
    category_lines = []
    for name, settings in (("before", old), ("after", new)):
        parts = [f"{cat} {sum(not relevant(oos_hits[i], settings) for i in idx)}/{len(idx)}" for cat, idx in by_category.items()]
        category_lines.append(f"refused by category, {name}: " + ", ".join(parts))
    category_lines.append(
        f"core.evaluation's {len(builtin)} built-in out-of-scope questions refused: "
        f"before {sum(not relevant(h, old) for h in builtin_hits)}/{len(builtin)}, after {sum(not relevant(h, new) for h in builtin_hits)}/{len(builtin)}"
    )
    lost = [gold[i]["question"] for i in range(len(gold)) if relevant(gold_hits[i], old) and not relevant(gold_hits[i], new)]
    still = [(oos[i]["question"], max(h.score for h in oos_hits[i])) for i in range(len(oos)) if relevant(oos_hits[i], new)]

    if args.latency:
        import statistics

        from core.knowledge import search

        sample = [r["question"] for r in gold[::3]] + [r["question"] for r in oos]
        for name, settings in (("term check off", old), ("term check on", new)):
            search(workspace, args.kb, sample[0], embedder, settings)  # warm the caches
            times = []
            for question in sample:
                tick = time.perf_counter()
                search(workspace, args.kb, question, embedder, settings)
                times.append((time.perf_counter() - tick) * 1000)
            times.sort()
            category_lines.append(f"one-query search incl. embedding, {name}: p50 {statistics.median(times):.1f} ms, "
                                  f"p95 {times[int(0.95 * (len(times) - 1))]:.1f} ms over {len(times)} questions")
    load = os.getloadavg()
    header = (f"kb {args.kb}: {len(gold)} gold questions, {len(oos)} out-of-scope; k={new.k}, mode={new.mode}; "
              f"embedder load {loaded - started:.1f} s, search {searched - loaded:.1f} s; "
              f"{platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.2f}")
    table = ["| gate | half | gold n | oos n | answerable | gold doc passed | OOS refused |", "|---|---|---|---|---|---|---|"]
    for gate_name, half, ng, no, r in rows:
        table.append(f"| {gate_name} | {half} | {ng} | {no} | {r['answerable']:.3f} | {r['gold_doc']:.3f} | {r['refused']:.3f} |")
    lines = [header, "", *table, "", *category_lines,
             f"gold questions the term check refuses ({len(lost)}): " + ("; ".join(lost) or "none")]
    if args.show:
        lines.append(f"out-of-scope questions still answered ({len(still)}): " + "; ".join(f"{q} ({s:.2f})" for q, s in still))
    print("\n".join(lines))
    if args.record:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        note = f"\n{args.note}\n" if args.note else ""
        with open(args.record, "a", encoding="utf-8") as out:
            out.write(f"\n## Out-of-scope gate, {stamp}\n{note}\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
