"""Hybrid search at scale through the app's own search path: synthetic knowledge bases of 10k, 100k (and 1M) chunks.

    python bench/scale_bench.py [--sizes 10000,100000,1000000] [--results bench/RESULTS_scale.md]

For each size: a real catalogue (studio.db, the app's schema) is filled with synthetic chunks (130 words from a
Zipf vocabulary, as issue #12 measured) and clustered unit vectors of MiniLM's 384 dimensions; then the lexical
index (word counts in the catalogue, then tantivy; the previous FTS5 engine is built beside it as the peer) and the vector index (flat fp16, or IVF above VectorIndexSettings.flat_max_vectors) are built as an
ingest builds them. Reported: build times, disk, peak RAM of this process, recall@10 against exact fp32 search for
question-like queries (a stored vector + noise), near-tied ones (the worst case) and the build's own measure,
and `core.knowledge.search` latency p50/p95 over single questions, query embedding with the real MiniLM included,
in a fresh process state (caches cleared, the index read from disk once). Never collected by pytest.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lexical_bench import pct, synthetic  # noqa: E402

import fts5_peer  # noqa: E402
from core import index_cache, knowledge, lexical, lexical_index, vector_index  # noqa: E402
from core.settings import get_workspace  # noqa: E402
from core.storage import transaction  # noqa: E402

DIMENSION = 384


def clustered_vectors(n: int, seed: int = 1, batch: int = 50_000):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(10, n // 500), DIMENSION)).astype(np.float32)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        x = centers[rng.integers(0, len(centers), size)] + 0.6 * rng.standard_normal((size, DIMENSION)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield x


def realistic_queries(sources: np.ndarray, cosine: float = 0.7, seed: int = 11) -> np.ndarray:
    """Stored vectors plus Gaussian noise, cosine ~0.7 to their source: a question near its answer chunk."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt((1 / cosine**2 - 1) / DIMENSION)  # |noise|^2 ~ sigma^2 * d, so cos ~ 1/sqrt(1 + sigma^2 d)
    q = sources + sigma * rng.standard_normal(sources.shape).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def fill(ws, n: int, texts: list[str], embedder) -> dict:
    documents = max(1, n // 1000)
    started = time.perf_counter()
    conn = knowledge.open_catalogue(ws)
    with transaction(conn):
        conn.execute("INSERT INTO knowledge_bases (name, embedding_model, dimension, chunk_size, chunk_overlap) VALUES ('scale', ?, ?, 800, 100)",
                     (embedder.model_id, DIMENSION))
        kb_id = conn.execute("SELECT id FROM knowledge_bases WHERE name = 'scale'").fetchone()[0]
        conn.executemany("INSERT INTO documents (id, kb_id, name, kind, sha256, size_bytes, page_count, chunk_count) VALUES (?, ?, ?, 'txt', ?, 0, 1, ?)",
                         ((d + 1, kb_id, f"doc{d}.txt", f"{d:064d}", n // documents) for d in range(documents)))
        position = 0
        for vectors in clustered_vectors(n):
            rows = ((position + i + 1, kb_id, (position + i) % documents + 1, position + i, texts[(position + i) % len(texts)], vectors[i].tobytes())
                    for i in range(len(vectors)))
            conn.executemany("INSERT INTO chunks (id, kb_id, document_id, ordinal, page, page_end, text, embedding) VALUES (?, ?, ?, ?, 1, 1, ?, ?)", rows)
            position += len(vectors)
        conn.execute("UPDATE knowledge_bases SET version = 1 WHERE id = ?", (kb_id,))
    stored = time.perf_counter()
    with transaction(conn):
        lexical.create_lexical_index(conn, kb_id)
        for d in range(documents):  # as ingest does, one document at a time
            lexical.add_document(conn, kb_id, d + 1)
    counted = time.perf_counter()
    kb = knowledge.get_knowledge_base(ws, "scale")
    lexical_index.sync(ws, kb)  # the tantivy index, built from the catalogue as after an ingest
    lexical_done = time.perf_counter()
    index_cache.write_index(ws, conn, kb)
    vectors_done = time.perf_counter()
    fts5_peer.build(conn, kb_id)  # the previous engine, on the same rows (not part of the app's build)
    fts5_done = time.perf_counter()
    conn.close()
    return {"store_s": stored - started, "counts_s": counted - stored, "lexical_s": lexical_done - counted,
            "vector_s": vectors_done - lexical_done, "fts5_s": fts5_done - vectors_done}


def run(n: int, embedder) -> dict:
    texts, queries = synthetic(min(n, 100_000))
    with tempfile.TemporaryDirectory() as tmp:
        ws = get_workspace(Path(tmp) / "ws")
        out = {"chunks": n, **fill(ws, n, texts, embedder)}
        out["disk_mb"] = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
        index_cache._INDEX_CACHE.clear()  # a new process: the index file is read and verified once
        kb = knowledge.get_knowledge_base(ws, "scale")
        started = time.perf_counter()
        index = knowledge.load_index(ws, kb)
        out["load_s"] = time.perf_counter() - started
        details = vector_index.describe(index)
        out["index"] = details["type"].split(", approximate")[0]
        out["memory_mb"] = details["memory_bytes"] / 2**20
        out["build_recall"] = index_cache.index_details(ws, kb)["recall_at_10"]  # measured at build, in the manifest
        # recall@10 against exact fp32 search, streamed from SQLite, for two query sets of 200 (bench/index_choice_bench.py):
        # near-tied (fresh cluster centres, away from the data: the worst case) and question-like (a stored vector + noise).
        conn = knowledge.open_catalogue(ws)
        tied = next(clustered_vectors(200, seed=7))
        real = realistic_queries(index_cache._sample_vectors(conn, kb, 200, salt=3))
        for name, sample in (("recall_tied", tied), ("recall_real", real)):
            truth = vector_index.exact_top_k(sample, index_cache._vector_batches(conn, kb), 10)
            out[name] = vector_index.recall_against(index, sample, truth, 10)
        # The lexical half alone, tantivy (core.lexical.top) against FTS5 (the previous engine) on the same words.
        kb = knowledge.get_knowledge_base(ws, "scale")
        words = [fts5_peer.query_words(conn, kb.id, kb.chunk_count, q) for q in queries]
        lexical.top(ws, conn, kb, queries[0], 50)
        for name, rank in (("tantivy", lambda q, w: lexical.top(ws, conn, kb, q, 50)), ("fts5", lambda q, w: fts5_peer.top(conn, kb.id, w, 50))):
            times, ranked = [], []
            for q, w in zip(queries[1:], words[1:]):
                t = time.perf_counter()
                ranked.append(rank(q, w))
                times.append(time.perf_counter() - t)
            out[f"{name}_p50_ms"], out[f"{name}_p95_ms"], out[f"{name}_ranked"] = pct(times, 0.5) * 1e3, pct(times, 0.95) * 1e3, ranked
        overlaps = [len(set(a[:10]) & set(b[:10])) / max(1, min(10, len(b))) for a, b in zip(out.pop("tantivy_ranked"), out.pop("fts5_ranked"))]
        out["top10_overlap"] = sum(overlaps) / len(overlaps)
        conn.close()
        settings = knowledge.RetrievalSettings()
        knowledge.search(ws, "scale", queries[0], embedder, settings)  # warm-up: first query loads nothing more
        times = []
        for q in queries[1:]:
            t = time.perf_counter()
            knowledge.search(ws, "scale", q, embedder, settings)
            times.append(time.perf_counter() - t)
        out["p50_ms"], out["p95_ms"], out["queries"] = pct(times, 0.5) * 1e3, pct(times, 0.95) * 1e3, len(times)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS_scale.md"))
    args = parser.parse_args()
    embedder = knowledge.load_sentence_embedder()
    load = os.getloadavg()[0]
    lines = [f"## Hybrid search through core.knowledge.search, {dt.datetime.now():%Y-%m-%d %H:%M} (bench/scale_bench.py)",
             f"Machine: {cpu_model()}, {os.cpu_count()} cores, 1-min load at start {load:.1f} (above 2 means other jobs shared the cores).", "",
             "| chunks | store rows | word counts + tantivy index (FTS5 before) | vector index | index | recall@10 question-like / near-tied / at build | index memory | disk | lexical alone p50 / p95: tantivy / FTS5 (top-10 overlap) | hybrid search p50 / p95 (query embedding included) | peak RSS |",
             "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for n in (int(s) for s in args.sizes.split(",")):
        r = run(n, embedder)
        print(r, flush=True)
        lines.append(f"| {n:,} | {r['store_s']:.0f} s | {r['counts_s']:.0f} + {r['lexical_s']:.0f} s ({r['fts5_s']:.0f} s) | {r['vector_s']:.0f} s | {r['index']} | "
                     f"{r['recall_real']:.3f} / {r['recall_tied']:.3f} / {'-' if r['build_recall'] is None else format(r['build_recall'], '.3f')} | "
                     f"{r['memory_mb']:.0f} MB | {r['disk_mb']:.0f} MB | {r['tantivy_p50_ms']:.1f} / {r['tantivy_p95_ms']:.1f} ms vs {r['fts5_p50_ms']:.0f} / {r['fts5_p95_ms']:.0f} ms ({r['top10_overlap']:.2f}) | "
                     f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f} ms | {r['peak_rss_mb']:.0f} MB |")
    lines += ["", f"1-min load at the end {os.getloadavg()[0]:.1f}.", ""]
    text = "\n".join(lines)
    print(text)
    path = Path(args.results)
    previous = path.read_text() if path.exists() else "# Scale benchmarks\n\n"
    path.write_text(previous.rstrip() + "\n\n" + text)


if __name__ == "__main__":
    main()
