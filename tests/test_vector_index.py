"""The dense index per size (core/vector_index.py) and its measured recall in the manifest (core/index_cache.py)."""
import logging

import numpy as np

from core import vector_index
from core.catalogue import get_knowledge_base
from core.chunking import ChunkingSettings
from core.index_cache import index_details
from core.ingest import ingest_files, remove_document
from core.vector_index import VectorIndexSettings


def clustered(n, d=64, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(4, n // 500), d)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def question_like(data, count=200, cosine=0.7, seed=1):
    """A stored vector plus noise, cosine ~0.7 to it: a question near its answer chunk."""
    rng = np.random.default_rng(seed)
    sources = data[rng.choice(len(data), count, replace=False)]
    q = sources + np.sqrt((1 / cosine**2 - 1) / data.shape[1]) * rng.standard_normal(sources.shape).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def batches(data, size=1000):
    for start in range(0, len(data), size):
        yield np.arange(start, min(start + size, len(data)), dtype=np.int64) + 100, data[start:start + size]


def test_recall_text_never_calls_an_unmeasured_approximate_index_lossless():
    from core.index_cache import recall_below_goal, recall_text

    old_hnsw = {"index_type": "HNSW (M=32, efSearch=96), approximate", "recall_at_10": None}
    assert "not measured" in recall_text(old_hnsw) and not recall_below_goal(old_hnsw)
    assert "no recall loss" in recall_text({"index_type": "flat inner product, fp16 vectors, exhaustive", "recall_at_10": None})
    assert recall_below_goal({"recall_at_10": 0.9, "recall_goal": 0.95}) and not recall_below_goal({"recall_at_10": 0.95, "recall_goal": 0.95})


def test_exact_top_k_over_batches_matches_a_flat_search():
    import faiss

    data = clustered(3000)
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(64))
    flat.add_with_ids(data, np.arange(len(data), dtype=np.int64) + 100)
    queries = question_like(data, 20)
    assert (vector_index.exact_top_k(queries, batches(data, 700), 10) == flat.search(queries, 10)[1]).all()


def test_small_bases_get_an_fp16_flat_index_that_removes_and_round_trips(tmp_path):
    import faiss

    data = clustered(2000)
    index = vector_index.build_index(64, len(data), batches(data))
    assert vector_index.kind(index) == "flat-fp16" and vector_index.describe(index)["memory_bytes"] < len(data) * 64 * 4
    assert index.remove_ids(np.array([100, 101], dtype=np.int64)) == 2  # remove a document without a rebuild
    faiss.write_index(index, str(tmp_path / "i.faiss"))
    again = faiss.read_index(str(tmp_path / "i.faiss"))
    queries = question_like(data[2:], 50)
    truth = vector_index.exact_top_k(queries, ((ids[ids > 101], v[ids > 101]) for ids, v in batches(data)), 10)
    assert again.ntotal == len(data) - 2 and vector_index.recall_against(again, queries, truth) >= 0.99


def test_large_bases_get_ivf_whose_default_recall_reaches_the_goal():
    data = clustered(10_000)
    settings = VectorIndexSettings(flat_max_vectors=5_000)
    index = vector_index.build_index(64, len(data), batches(data), settings, training=data[::2])
    queries = question_like(data)
    recall = vector_index.recall_against(index, queries, vector_index.exact_top_k(queries, batches(data)))
    assert vector_index.kind(index) == "ivf" and "IVF" in vector_index.describe(index)["type"]
    assert recall >= settings.recall_goal


def _starved_ivf():
    """IVF from 4 vectors up, one list searched per query: recall well below the goal on purpose."""
    return VectorIndexSettings(flat_max_vectors=3, ivf_min_probe=1, ivf_probe_share=0.01, recall_goal=0.95)


def test_recall_below_the_goal_is_measured_logged_and_shown(workspace, fake_embedder, monkeypatch, caplog, capsys):
    import json

    from core.cli import main

    caplog.set_level(logging.INFO, logger="core.index_cache")
    monkeypatch.setattr(vector_index, "VectorIndexSettings", _starved_ivf)
    text = " ".join(f"Sentence {i} mentions topic{i % 7} and item{i}." for i in range(120))
    ingest_files(workspace, "kb1", [("a.txt", text.encode()), ("b.txt", text.upper().encode())], fake_embedder, ChunkingSettings(200, 20))
    kb = get_knowledge_base(workspace, "kb1")
    details = index_details(workspace, kb)
    assert kb.chunk_count >= 20 and details["index_type"].startswith("IVF")
    assert details["recall_at_10"] < 0.95 and details["recall_queries"] > 0
    assert "below 0.95" in caplog.text
    assert main(["--workspace", str(workspace.root), "kb", "info", "kb1"]) == 0
    shown = capsys.readouterr().out
    assert "Vector index: IVF" in shown and f"recall@10 vs exact search {details['recall_at_10']:.3f}" in shown and "warning:" in shown
    assert main(["--workspace", str(workspace.root), "kb", "info", "kb1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"]["recall_at_10"] == details["recall_at_10"]
    caplog.clear()
    remove_document(workspace, "kb1", "b.txt")  # removed from the IVF file in place, and measured again (half the base went)
    assert "shrunk" in caplog.text and "recall@10" in caplog.text and "measured at" not in caplog.text
    caplog.clear()
    ingest_files(workspace, "kb1", [("c.txt", b"One short extra line.")], fake_embedder, ChunkingSettings(200, 20))
    grown = get_knowledge_base(workspace, "kb1")
    assert "extended" in caplog.text and f"(measured at {grown.chunk_count - 1} vectors)" in caplog.text  # < 10% more: not re-measured and index_details(workspace, get_knowledge_base(workspace, "kb1"))["vectors"] < kb.chunk_count
