"""Answers that loop, invent or lose their format: before/after, per variant (bench/RESULTS_answers.md).

    STUDIO_WORKSPACE=/tmp/loop-ws HF_HUB_OFFLINE=1 python bench/loop_bench.py run --adapter RUN_ID \
        --out /tmp/loop-default.jsonl [--config default] [--squad-limit 180] [--tenq]
    python bench/loop_bench.py summarize /tmp/loop-*.jsonl [--record bench/RESULTS_answers.md --note "..."]

`run` (needs bench/loop_setup.py first) answers the 20 questions of bench/tenq_questions.jsonl on the 10-Q-like
PDF (tests/tenq_pdf.py, knowledge base "tenq") and the squad36 gold questions (knowledge base "squad36") with
five rows per question in one transformers-engine batch: base, RAG, fine-tuned, hybrid (the taught-format
prompt) and hybrid with the old RAG prompt. Generation runs with the loop guard OFF so the raw answer is kept;
the guarded answer is the same raw text passed through core.guards.RepeatGuard in 4-character pieces, which is
exactly what the live guard shows (it only cuts; tests/test_guards.py checks piece-size independence).
Rows are appended to --out as they finish, and a re-run skips rows already there (resumable).

`summarize` reads those rows and prints (or appends) per config and variant: answers with a line or sentence
repeated 3+ times (and phrase loops), before and after the guard; format adherence (bullets3_risk) for the
fine-tuned and hybrid columns; gold-answer containment; the unsupported-claim rate (core.support).
Not collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CONFIGS = {
    # name: DecodingSettings overrides (the guard is applied offline, see the docstring)
    "default": {},
    "rp1.1": {"repetition_penalty": 1.1},
    "ngram4": {"no_repeat_ngram": 4},
    "ngram8": {"no_repeat_ngram": 8},
}
ROWS = ("base", "rag", "finetuned", "hybrid", "hybrid_ragprompt")


def _load_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _guarded(text: str) -> tuple[str, str]:
    from core.guards import RepeatGuard

    guard = RepeatGuard()
    for i in range(0, len(text), 4):
        guard.feed(text[i : i + 4])
        if guard.stopped:
            break
    guard.finish()
    return guard.answer.strip(), guard.reason


def _questions(args) -> list[tuple[str, dict]]:
    items = []
    if args.tenq:
        for line in (ROOT / "bench" / "tenq_questions.jsonl").read_text().splitlines():
            if line.strip():
                items.append(("tenq", json.loads(line)))
    if args.squad_limit:
        rows = [json.loads(line) for line in Path(args.squad_questions).read_text().splitlines() if line.strip()]
        by_doc: dict[str, list] = {}
        for row in rows:
            by_doc.setdefault(row["source_doc"], []).append(row)
        spread = [g[i] for i in range(max(len(g) for g in by_doc.values())) for g in by_doc.values() if i < len(g)]
        items += [("squad36", row) for row in spread[: args.squad_limit]]
    return items


def _ensure_tenq(workspace) -> None:
    from core.knowledge import ingest_files, list_knowledge_bases, load_sentence_embedder
    from tenq_pdf import make_10q_pdf

    if any(kb.name == "tenq" for kb in list_knowledge_bases(workspace)):
        return
    pdf = make_10q_pdf(Path(workspace.root) / "northwind-10q.pdf")
    ingest_files(workspace, "tenq", [(pdf.name, pdf.read_bytes())], load_sentence_embedder())


def run(args) -> int:
    from core.adapters import resolve_adapter
    from core.compare import guarded_stream, plan_comparison
    from core.engines.base import GenerationRequest, collect
    from core.engines.registry import open_engine
    from core.generation import DecodingSettings
    from core.retrieval import RetrievalSettings, retrieve_many
    from core.evaluation import embedder_for_kb
    from core.settings import get_workspace

    workspace = get_workspace()
    if args.tenq:
        _ensure_tenq(workspace)
    out = Path(args.out)
    done = {(r["config"], r["set"], r["qid"], r["variant"]) for r in _load_rows(out)}
    adapter = str(resolve_adapter(workspace, args.adapter))
    engine = open_engine(args.engine, workspace)  # transformers: the engine with the answer-only n-gram ban
    settings = replace(DecodingSettings(max_new_tokens=args.max_new_tokens), stop_on_repeat=False, **CONFIGS[args.config])
    retrieval = RetrievalSettings(k=args.k)
    questions = _questions(args)
    hits_by: dict[tuple[str, str], list] = {}
    for kb in sorted({s for s, _ in questions}):
        mine = [q for s, q in questions if s == kb]
        found = retrieve_many(workspace, kb, [q["question"] for q in mine], embedder_for_kb(workspace, kb), retrieval)
        for q, retrieved in zip(mine, found):
            hits_by[(kb, q["id"])] = retrieved.hits
    print(f"{len(questions)} questions, config {args.config}, {len(done)} rows already done; load {os.getloadavg()}", flush=True)
    pending: list[tuple[str, dict, str, GenerationRequest]] = []
    for kb, q in questions:
        hits = hits_by[(kb, q["id"])]
        _, requests = plan_comparison(q["question"], ["base", "rag", "finetuned", "hybrid"], hits, adapter, key_prefix=f"{kb}|{q['id']}|")
        old = []
        if not args.no_old_hybrid:
            _, old = plan_comparison(q["question"], ["hybrid"], hits, adapter, key_prefix=f"{kb}|{q['id']}|old-", hybrid_prompt="rag")
        for request in requests + old:
            variant = request.key.rsplit("|", 1)[1].replace("old-hybrid", "hybrid_ragprompt")
            if (args.config, kb, q["id"], variant) not in done:
                pending.append((kb, q, variant, request))
        for variant in ("rag", "hybrid") + (() if args.no_old_hybrid else ("hybrid_ragprompt",)):
            if not hits and (args.config, kb, q["id"], variant) not in done:  # answered without the model
                _write(out, args, kb, q, variant, "", hits, 0, 0.0, note="nothing relevant retrieved")
    started, count = time.perf_counter(), 0
    for start in range(0, len(pending), args.batch_rows):
        batch = pending[start : start + args.batch_rows]
        t0 = time.perf_counter()
        results = collect(guarded_stream(engine, [r for *_, r in batch], settings), [r.key for *_, r in batch])
        elapsed = time.perf_counter() - t0
        for kb, q, variant, request in batch:
            result = results[request.key]
            _write(out, args, kb, q, variant, result.text, hits_by[(kb, q["id"])], result.stats.new_tokens, elapsed, error=result.error)
        count += len(batch)
        rate = count / (time.perf_counter() - started) * 60
        print(f"{count}/{len(pending)} answers, {rate:.1f} answers/min, load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


def _write(out: Path, args, kb, q, variant, text, hits, new_tokens, elapsed, error=None, note=None) -> None:
    row = {
        "config": args.config, "set": kb, "qid": q["id"], "question": q["question"], "variant": variant,
        "answers": q.get("answers") or [q.get("answer")], "raw": text, "error": error, "note": note,
        "new_tokens": new_tokens, "batch_s": round(elapsed, 2), "max_new_tokens": args.max_new_tokens,
        "sources": [h.text for h in hits],
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load": round(os.getloadavg()[0], 1),
    }
    with out.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- summary
def score(row: dict) -> dict:
    from core.datasets import follows_style
    from core.generation import NO_CONTEXT_ANSWER
    from core.guards import loops, repeated_line_count
    from core.metrics import contains_answer, is_refusal
    from core.support import check_support

    raw = row["raw"] if not row.get("note") else NO_CONTEXT_ANSWER
    guarded, reason = _guarded(raw)
    support = check_support(guarded, row["sources"])
    return {
        "loop_before": repeated_line_count(raw) >= 3, "loop_after": repeated_line_count(guarded) >= 3,
        "phrase_before": loops(raw), "phrase_after": loops(guarded), "cut": bool(reason),
        "format": follows_style(guarded, "bullets3_risk"), "format_raw": follows_style(raw, "bullets3_risk"), "contains": contains_answer(guarded, row["answers"]),
        "claims": len(support.claims), "unsupported": len(support.unsupported), "badge": support.supported,
        "refusal": is_refusal(guarded), "answered": not row.get("note") and not row.get("error"),
    }


def summarize(args) -> int:
    rows = [r for path in args.files for r in _load_rows(Path(path))]
    # Only questions the run reached (gate refusals are written up front for every question, without generating).
    reached = {(r["config"], r["set"], r["qid"]) for r in rows if r["variant"] == "base"}
    rows = [r for r in rows if (r["config"], r["set"], r["qid"]) in reached]
    if not rows:
        print("no rows")
        return 1
    lines = []
    by_config: dict[str, list] = {}
    for row in rows:
        by_config.setdefault(row["config"], []).append(row)
    for config, mine in by_config.items():
        sets = sorted({r["set"] for r in mine})
        loads = [r["load"] for r in mine]
        lines += [f"### config `{config}` ({CONFIGS.get(config, {}) or 'repetition penalty 1.0, no n-gram ban'}), "
                  f"max new tokens {mine[0]['max_new_tokens']}", "",
                  f"{len({(r['set'], r['qid']) for r in mine})} questions ({_per_set(mine, sets)}); "
                  f"load average during the run {min(loads):.1f}-{max(loads):.1f}.", "",
                  "| set | variant | answers | line repeated 3+ before guard | after guard | phrase loops before / after | cut by the guard | "
                  "format followed (3 bullets + Risks:), after guard | without guard | gold answer contained | claims | unsupported claims | 'Supported by' badges |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for kb in sets + ["all"]:
            for variant in ROWS:
                chosen = [r for r in mine if r["variant"] == variant and (kb == "all" or r["set"] == kb)]
                if not chosen:
                    continue
                scores = [score(r) for r in chosen]
                generated = [s for s in scores if s["answered"]]
                n = len(scores)
                claims = sum(s["claims"] for s in generated)
                unsupported = sum(s["unsupported"] for s in generated)
                rate = f"{unsupported}/{claims} = {unsupported / claims:.2f}" if claims else "n/a"
                lines.append(
                    f"| {kb} | {variant} | {n} | {sum(s['loop_before'] for s in scores)} | {sum(s['loop_after'] for s in scores)} | "
                    f"{sum(s['phrase_before'] for s in scores)} / {sum(s['phrase_after'] for s in scores)} | {sum(s['cut'] for s in scores)} | "
                    f"{_share(sum(s['format'] for s in generated), len(generated))} | {_share(sum(s['format_raw'] for s in generated), len(generated))} | {_share(int(sum(s['contains'] for s in scores)), n)} | "
                    f"{claims} | {rate} | {_share(sum(s['badge'] for s in generated), len(generated))} |"
                )
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.record:
        header = (f"\n## {datetime.now(timezone.utc).isoformat(timespec='minutes')} · {platform.node()} · "
                  f"{os.cpu_count()} CPUs · {args.note}\n\n")
        with open(args.record, "a", encoding="utf-8") as handle:
            handle.write(header + text + "\n")
    return 0


def _per_set(rows: list[dict], sets: list[str]) -> str:
    return ", ".join(f"{kb}: {len({r['qid'] for r in rows if r['set'] == kb})}" for kb in sets)


def _share(k: int, n: int) -> str:
    return f"{k}/{n} = {k / n:.2f}" if n else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--adapter", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--config", default="default", choices=sorted(CONFIGS))
    r.add_argument("--squad-questions", default="/work/shared/data/squad36/qa_sample.jsonl")
    r.add_argument("--squad-limit", type=int, default=180)
    r.add_argument("--tenq", action="store_true")
    r.add_argument("--k", type=int, default=3)
    r.add_argument("--engine", default="transformers", help="engine spec for core.engines.registry.open_engine")
    r.add_argument("--max-new-tokens", type=int, default=150)
    r.add_argument("--batch-rows", type=int, default=5)
    r.add_argument("--no-old-hybrid", action="store_true", help="skip the hybrid row with the old RAG prompt (faster)")
    s = sub.add_parser("summarize")
    s.add_argument("files", nargs="+")
    s.add_argument("--record", default=None)
    s.add_argument("--note", default="")
    args = parser.parse_args()
    return run(args) if args.command == "run" else summarize(args)


if __name__ == "__main__":
    raise SystemExit(main())
