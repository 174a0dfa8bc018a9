"""Ingestion and retrieval benchmark on squad36 with the real MiniLM embedder.

    python bench/ingest_bench.py [--workspace DIR] [--results bench/RESULTS.md]

1. Ingests the 36 PDFs of /work/shared/data/squad36/docs with core.knowledge.ingest_files and
   reports pages/s, chunks/s and wall time, split into extraction, chunking, embedding and saving
   (IngestResult.timings).
2. Runs the 180 questions of qa_sample.jsonl one at a time through core.knowledge.search (query
   embedding included) in each retrieval mode: latency p50/p95, hit@1, hit@5 and MRR@10.
   A hit is a retrieved chunk from `source_doc` that contains any reference answer, after
   whitespace-normalising and lower-casing both.
3. Writes the figures to bench/RESULTS.md under "## Ingestion and retrieval (squad36)", replacing
   only that section.

Never collected by pytest (bench/ is outside testpaths and the file is not named test_*).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SQUAD = Path("/work/shared/data/squad36")
HEADING = "## Ingestion and retrieval (squad36)"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (no interpolation), enough for 180 samples."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "ram": f"{ram_kb / 2**20:.1f} GiB", "python": platform.python_version()}


def load_average() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return out.split("load average:")[-1].strip() if "load average:" in out else out


def run(workspace_dir: Path) -> dict:
    from core.knowledge import (
        RETRIEVAL_MODES,
        ChunkingSettings,
        RetrievalSettings,
        ingest_files,
        load_sentence_embedder,
        search,
    )
    from core.settings import get_workspace

    report: dict = {"machine": machine(), "load_start": load_average(), "started": dt.datetime.now().isoformat(timespec="minutes")}
    workspace = get_workspace(workspace_dir)
    kb_name = f"squad36-bench-{int(time.time())}"

    started = time.perf_counter()
    embedder = load_sentence_embedder()
    report["embedder_load_s"] = time.perf_counter() - started

    files = [(path.name, path.read_bytes()) for path in sorted((SQUAD / "docs").glob("*.pdf"))]
    chunking = ChunkingSettings()
    started = time.perf_counter()
    results = ingest_files(workspace, kb_name, files, embedder, chunking)
    wall = time.perf_counter() - started
    failed = [r for r in results if r.status != "added"]
    if failed:
        raise SystemExit(f"ingest failed: {[r.message for r in failed]}")
    stages = {stage: sum(r.timings[stage] for r in results) for stage in ("extract", "chunk", "embed", "save")}
    pages = sum(r.pages for r in results)
    chunks = sum(r.chunks for r in results)
    report["ingest"] = {
        "files": len(results), "pages": pages, "chunks": chunks, "bytes": sum(len(d) for _, d in files),
        "wall_s": wall, "stages_s": stages, "index_write_s": wall - sum(r.seconds for r in results),
        "pages_per_s": pages / wall, "chunks_per_s": chunks / wall,
        "extract_pages_per_s": pages / stages["extract"], "embed_chunks_per_s": chunks / stages["embed"],
        "chunking": f"{chunking.chunk_size}/{chunking.chunk_overlap}",
    }
    print(f"ingest: {len(results)} files, {pages} pages, {chunks} chunks in {wall:.1f} s", flush=True)

    questions = [json.loads(line) for line in (SQUAD / "qa_sample.jsonl").read_text().splitlines() if line.strip()]
    report["questions"] = len(questions)
    report["modes"] = {}
    for mode in RETRIEVAL_MODES:
        settings = RetrievalSettings(k=10, mode=mode)
        cold = time.perf_counter()
        search(workspace, kb_name, "warm-up query about oil", embedder, settings)  # loads FAISS / builds BM25 once
        cold_s = time.perf_counter() - cold
        latencies, ranks = [], []
        for row in questions:
            answers = [normalise(a) for a in row["answers"] if a.strip()]
            t0 = time.perf_counter()
            hits = search(workspace, kb_name, row["question"], embedder, settings)
            latencies.append(time.perf_counter() - t0)
            rank = next(
                (hit.rank for hit in hits if hit.document == row["source_doc"] and any(a in normalise(hit.text) for a in answers)),
                None,
            )
            ranks.append(rank)
        n = len(ranks)
        report["modes"][mode] = {
            "first_query_s": cold_s,
            "p50_ms": 1000 * percentile(latencies, 0.50), "p95_ms": 1000 * percentile(latencies, 0.95),
            "mean_ms": 1000 * statistics.fmean(latencies),
            "hit@1": sum(1 for r in ranks if r == 1) / n, "hit@5": sum(1 for r in ranks if r and r <= 5) / n,
            "mrr@10": sum(1 / r for r in ranks if r and r <= 10) / n,
        }
        m = report["modes"][mode]
        print(f"{mode}: p50 {m['p50_ms']:.1f} ms p95 {m['p95_ms']:.1f} ms hit@1 {m['hit@1']:.3f} hit@5 {m['hit@5']:.3f} "
              f"MRR@10 {m['mrr@10']:.3f}", flush=True)
    report["load_end"] = load_average()
    report["finished"] = dt.datetime.now().isoformat(timespec="minutes")
    return report


def render(report: dict) -> str:
    m, ing, st = report["machine"], report["ingest"], report["ingest"]["stages_s"]
    lines = [
        HEADING,
        "",
        f"Run {report['started']} to {report['finished']} with `python bench/ingest_bench.py`.",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, no GPU, Python {m['python']}.",
        f"Load average (1/5/15 min) at start: {report['load_start']}; at end: {report['load_end']}.",
        ("Other jobs shared the CPU during this run (1-minute load at or above the core count), so the figures are "
         "pessimistic and noisy." if float(str(report["load_start"]).split(",")[0]) >= m["nproc"]
         else "The machine was otherwise quiet (1-minute load below the core count)."),
        "",
        f"### Ingestion: {ing['files']} PDFs, {ing['pages']} pages, {ing['chunks']} chunks "
        f"({ing['bytes'] / 2**20:.1f} MB, chunking {ing['chunking']} characters, all-MiniLM-L6-v2)",
        "",
        "| stage | seconds | share | rate |",
        "|---|---:|---:|---|",
        f"| extraction (pypdf) | {st['extract']:.1f} | {st['extract'] / ing['wall_s']:.0%} | {ing['extract_pages_per_s']:.0f} pages/s |",
        f"| chunking | {st['chunk']:.1f} | {st['chunk'] / ing['wall_s']:.0%} | |",
        f"| embedding | {st['embed']:.1f} | {st['embed'] / ing['wall_s']:.0%} | {ing['embed_chunks_per_s']:.1f} chunks/s |",
        f"| saving (SQLite) | {st['save']:.1f} | {st['save'] / ing['wall_s']:.0%} | |",
        f"| other (duplicate check, FAISS write) | {ing['index_write_s']:.1f} | {ing['index_write_s'] / ing['wall_s']:.0%} | |",
        f"| **wall time** | **{ing['wall_s']:.1f}** | | **{ing['pages_per_s']:.1f} pages/s, {ing['chunks_per_s']:.1f} chunks/s** |",
        "",
        f"Loading the embedding model (not included above): {report['embedder_load_s']:.1f} s.",
        "",
        f"### Retrieval: {report['questions']} questions of qa_sample.jsonl, one query at a time, k = 10",
        "",
        "Latency is one `core.knowledge.search` call including the query embedding; the first query of each mode "
        "(FAISS load or BM25 build) is excluded and shown separately.",
        "",
        "| mode | p50 ms | p95 ms | mean ms | first query s | hit@1 | hit@5 | MRR@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, r in report["modes"].items():
        lines.append(f"| {mode} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['mean_ms']:.1f} | {r['first_query_s']:.2f} | "
                     f"{r['hit@1']:.3f} | {r['hit@5']:.3f} | {r['mrr@10']:.3f} |")
    lines += [
        "",
        "A hit is a retrieved chunk from the question's `source_doc` that contains any reference answer "
        "(whitespace-normalised, lower-cased). hit@k: share of questions with a hit in the top k; "
        "MRR@10: mean of 1/rank of the first hit (0 if none in the top 10).",
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace only our section (up to the next '## ' heading), keeping the rest of the file."""
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, help="workspace folder (default: a fresh temporary one)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    args = parser.parse_args()
    if args.workspace:
        report = run(args.workspace)
    else:
        with tempfile.TemporaryDirectory(prefix="ingest-bench-") as folder:
            report = run(Path(folder))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    write_section(args.results, render(report))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
