"""The lexical index before and after, side by side in one run: rank_bm25 in memory vs SQLite FTS5 on disk.

    python bench/lexical_bench.py [--sizes 10000,100000] [--quality] [--results bench/RESULTS_scale.md]

1. Scale (synthetic chunks of 130 words drawn from a Zipf vocabulary, as issue #12 measured): for each size,
   the old index (rank_bm25 BM25Plus, built in memory in every process) against the new one (core.lexical,
   FTS5 in the catalogue): build time, time of the first query in a fresh process/connection, and query
   p50/p95 over the same questions; plus the time to add one more document to an existing index.
2. Quality (--quality, needs /work/shared/data/squad36 and the real MiniLM): ingest the 36 PDFs once, then
   hybrid hit@5 on the 180 gold questions with each lexical half fused with the same dense ranking.

Never collected by pytest.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core import lexical  # noqa: E402

SQUAD = Path("/work/shared/data/squad36")


class OldBM25Plus:
    """The lexical index as it was (core/knowledge.py `_LexicalIndex` before #12), kept here as the peer."""

    def __init__(self, ids, texts):
        from rank_bm25 import BM25Plus

        self.ids = np.array(ids, dtype=np.int64)
        self.bm25 = BM25Plus([re.findall(r"\w+", t.lower()) or [""] for t in texts])

    def top(self, query, depth):
        words = set(re.findall(r"\w+", query.lower()))
        scores = self.bm25.get_scores(list(words))
        matching = np.fromiter((not words.isdisjoint(f) for f in self.bm25.doc_freqs), dtype=bool, count=len(scores))
        scores = np.where(matching, scores, -np.inf)
        depth = min(depth, int(matching.sum()))
        if depth == 0:
            return []
        best = np.argpartition(-scores, depth - 1)[:depth]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [int(self.ids[i]) for i in best]


def pct(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(share * len(ordered) + 0.5)) - 1))]


def synthetic(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(50_000)]
    ranks = np.arange(1, len(vocab) + 1)
    p = 1 / ranks
    p /= p.sum()
    words = rng.choice(len(vocab), size=(n, 130), p=p)
    texts = [" ".join(vocab[j] for j in row) for row in words]
    qrng = random.Random(seed)
    queries = []
    for _ in range(60):
        row = words[qrng.randrange(n)]
        queries.append(" ".join(vocab[j] for j in qrng.sample(list(row), 6)))
    return texts, queries


def scale(n: int) -> dict:
    texts, queries = synthetic(n)
    out = {"chunks": n}
    # Old: build in memory (once per process), then query.
    started = time.perf_counter()
    old = OldBM25Plus(list(range(1, n + 1)), texts)
    out["old_build_s"] = time.perf_counter() - started
    old_q = queries[: 20 if n >= 100_000 else 60]
    times = []
    for q in old_q:
        t = time.perf_counter()
        old.top(q, 50)
        times.append(time.perf_counter() - t)
    out["old_first_query_s"] = out["old_build_s"] + times[0]
    out["old_p50_ms"], out["old_p95_ms"] = pct(times, 0.5) * 1e3, pct(times, 0.95) * 1e3
    out["old_queries"] = len(old_q)
    del old
    # New: FTS5 in a real catalogue file, the same schema the app uses for chunks' text.
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "studio.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, kb_id INTEGER, document_id INTEGER, text TEXT)")
        docs = 100
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO chunks VALUES (?, 1, ?, ?)", ((i + 1, i % docs, t) for i, t in enumerate(texts)))
        conn.execute("COMMIT")
        started = time.perf_counter()
        conn.execute("BEGIN")
        lexical.create_lexical_index(conn, 1)
        for d in range(docs):  # as ingest does: one document at a time, in its own transaction's worth of work
            lexical.add_document(conn, 1, d)
        conn.execute("COMMIT")
        out["new_build_s"] = time.perf_counter() - started
        # One more document into the existing index (incremental: no rebuild).
        extra = texts[:50]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO chunks VALUES (?, 1, ?, ?)", ((n + 1 + i, docs, t) for i, t in enumerate(extra)))
        started = time.perf_counter()
        lexical.add_document(conn, 1, docs)
        conn.execute("COMMIT")
        out["new_add_50_chunks_ms"] = (time.perf_counter() - started) * 1e3
        conn.close()
        out["disk_mb"] = db.stat().st_size / 2**20 + sum(p.stat().st_size for p in Path(tmp).glob("studio.db-*")) / 2**20
        fresh = sqlite3.connect(db)  # a new process opens the file and queries at once
        times = []
        for q in queries:
            t = time.perf_counter()
            lexical.top(fresh, 1, q, 50, n + len(extra))
            times.append(time.perf_counter() - t)
        out["new_first_query_s"] = times[0]
        out["new_p50_ms"], out["new_p95_ms"] = pct(times, 0.5) * 1e3, pct(times, 0.95) * 1e3
        out["new_queries"] = len(queries)
        fresh.close()
    return out


def quality() -> dict:
    from core.knowledge import RetrievalSettings, all_chunks, ingest_files, load_sentence_embedder, search_many
    from core.settings import get_workspace

    embedder = load_sentence_embedder()
    ws = get_workspace(Path(tempfile.mkdtemp()) / "ws")
    pdfs = sorted((SQUAD / "docs").glob("*.pdf"))
    ingest_files(ws, "squad36", [(p.name, p.read_bytes()) for p in pdfs], embedder)
    rows = [json.loads(line) for line in (SQUAD / "qa_sample.jsonl").read_text().splitlines() if line.strip()]
    questions = [r["question"] for r in rows]
    chunks = {cid: (doc, chunk.text) for cid, doc, chunk in all_chunks(ws, "squad36")}
    old = OldBM25Plus(list(chunks), [t for _, t in chunks.values()])
    dense = search_many(ws, "squad36", questions, embedder, RetrievalSettings(k=50, mode="dense", term_check=False))
    new = search_many(ws, "squad36", questions, embedder, RetrievalSettings(k=5, term_check=False))
    norm = lambda s: re.sub(r"\s+", " ", s).strip().lower()  # noqa: E731

    def hit(row, ids):
        return any(chunks[i][0] == row["source_doc"] and any(norm(a) in norm(chunks[i][1]) for a in row["answers"]) for i in ids)

    old_hits = new_hits = 0
    for row, question, dense_hits, new_hits_row in zip(rows, questions, dense, new):
        fused: dict[int, float] = {}
        for ranking in ([h.chunk_id for h in dense_hits], old.top(question, 50)):
            for rank, cid in enumerate(ranking):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (60 + rank)
        old_hits += hit(row, sorted(fused, key=lambda c: -fused[c])[:5])
        new_hits += hit(row, [h.chunk_id for h in new_hits_row])
    return {"questions": len(rows), "chunks": len(chunks), "old_hybrid_hit5": old_hits / len(rows), "new_hybrid_hit5": new_hits / len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS_scale.md"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    lines = [f"## Lexical index: rank_bm25 in memory (old) vs SQLite FTS5 on disk (new), {dt.date.today()}",
             f"Machine: {os.cpu_count()} cores, 1-min load at start {load:.1f} (other jobs shared the cores when above 2).", ""]
    if args.quality:
        q = quality()
        print(json.dumps(q))
        lines += [f"squad36, {q['questions']} gold questions, {q['chunks']} chunks, hybrid (dense MiniLM + lexical, RRF):",
                  f"- hit@5 with rank_bm25 BM25+: **{q['old_hybrid_hit5']:.3f}**; with FTS5 bm25(): **{q['new_hybrid_hit5']:.3f}**", ""]
    lines += ["| chunks | old build (every process) | new build (once, at ingest) | new: add a 50-chunk document | first query, new process: old / new | query p50 old / new | query p95 old / new | catalogue on disk |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in (int(s) for s in args.sizes.split(",")):
        r = scale(n)
        print(json.dumps(r))
        lines.append(f"| {n:,} | {r['old_build_s']:.1f} s | {r['new_build_s']:.1f} s | {r['new_add_50_chunks_ms']:.0f} ms | "
                     f"{r['old_first_query_s']:.1f} s / {r['new_first_query_s'] * 1e3:.0f} ms | {r['old_p50_ms']:.0f} / {r['new_p50_ms']:.1f} ms | "
                     f"{r['old_p95_ms']:.0f} / {r['new_p95_ms']:.1f} ms | {r['disk_mb']:.0f} MB |")
    lines += ["", f"Old queries timed: {r['old_queries']} at the largest size (1 s each); new: {r['new_queries']}. "
              "Synthetic chunks: 130 words from a 50k-word Zipf vocabulary; queries: 6 words of a random chunk.", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.results).write_text("# Lexical index at scale (bench/lexical_bench.py)\n\n" + text)

if __name__ == "__main__":
    main()
