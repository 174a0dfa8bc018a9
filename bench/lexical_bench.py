"""The lexical ranking's quality, its three engines side by side in one run: rank_bm25 in memory (the first),
SQLite FTS5 bm25() in the catalogue (the second, bench/fts5_peer.py) and tantivy (now, core/lexical_index.py).

    python bench/lexical_bench.py [--results bench/RESULTS_scale.md]

Needs /work/shared/data/squad36 and the real MiniLM: ingests the 36 PDFs once, then hit@5 on the 180 gold
questions, each lexical ranking fused with the same dense ranking (and lexical alone for FTS5 and tantivy).
Speed at 10k-1M chunks is bench/scale_bench.py's (both engines on the same rows). Never collected by pytest.
`synthetic` (chunks of 130 words from a Zipf vocabulary, as issue #12 measured) is shared with scale_bench.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(ROOT / "bench"))
import fts5_peer  # noqa: E402

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


def quality() -> dict:
    from core.catalogue import get_knowledge_base, open_catalogue
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
    kb = get_knowledge_base(ws, "squad36")
    conn = open_catalogue(ws)
    fts5_peer.build(conn, kb.id)
    dense = search_many(ws, "squad36", questions, embedder, RetrievalSettings(k=50, mode="dense", term_check=False))
    new = search_many(ws, "squad36", questions, embedder, RetrievalSettings(k=5, term_check=False))
    lexical_new = search_many(ws, "squad36", questions, embedder, RetrievalSettings(k=5, mode="lexical", term_check=False))
    norm = lambda s: re.sub(r"\s+", " ", s).strip().lower()  # noqa: E731

    def hit(row, ids):
        return any(chunks[i][0] == row["source_doc"] and any(norm(a) in norm(chunks[i][1]) for a in row["answers"]) for i in ids)

    def fused_top5(dense_hits, lexical_ranking):
        fused: dict[int, float] = {}
        for ranking in ([h.chunk_id for h in dense_hits], lexical_ranking):
            for rank, cid in enumerate(ranking):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (60 + rank)
        return sorted(fused, key=lambda c: -fused[c])[:5]

    counts = dict.fromkeys(("bm25plus_hybrid", "fts5_hybrid", "tantivy_hybrid", "fts5_lexical", "tantivy_lexical"), 0)
    for row, question, dense_hits, new_row, lexical_row in zip(rows, questions, dense, new, lexical_new):
        fts5 = fts5_peer.top(conn, kb.id, fts5_peer.query_words(conn, kb.id, kb.chunk_count, question), 50)
        counts["bm25plus_hybrid"] += hit(row, fused_top5(dense_hits, old.top(question, 50)))
        counts["fts5_hybrid"] += hit(row, fused_top5(dense_hits, fts5))
        counts["tantivy_hybrid"] += hit(row, [h.chunk_id for h in new_row])
        counts["fts5_lexical"] += hit(row, fts5[:5])
        counts["tantivy_lexical"] += hit(row, [h.chunk_id for h in lexical_row])
    conn.close()
    return {"questions": len(rows), "chunks": len(chunks), **{k: v / len(rows) for k, v in counts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS_scale.md"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    q = quality()
    print(json.dumps(q))
    lines = [f"## Lexical ranking quality: rank_bm25 (first) vs SQLite FTS5 (second) vs tantivy (now), {dt.datetime.now():%Y-%m-%d %H:%M} (bench/lexical_bench.py)",
             f"Machine: {os.cpu_count()} cores, 1-min load at start {load:.1f}.", "",
             f"squad36, {q['questions']} gold questions, {q['chunks']} chunks; hybrid = dense MiniLM + the lexical ranking, RRF; hit@5:", "",
             "| lexical engine | hybrid hit@5 | lexical alone hit@5 |", "|---|---:|---:|",
             f"| rank_bm25 BM25+ (in memory) | {q['bm25plus_hybrid']:.3f} | - |",
             f"| SQLite FTS5 bm25() | {q['fts5_hybrid']:.3f} | {q['fts5_lexical']:.3f} |",
             f"| tantivy (the app's search path) | **{q['tantivy_hybrid']:.3f}** | {q['tantivy_lexical']:.3f} |", ""]
    text = "\n".join(lines)
    print(text)
    path = Path(args.results)
    previous = path.read_text() if path.exists() else "# Scale benchmarks\n\n"
    path.write_text(previous.rstrip() + "\n\n" + text + "\n")


if __name__ == "__main__":
    main()
