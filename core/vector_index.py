"""The dense half of hybrid search: which FAISS index a knowledge base gets, built without holding it all in RAM.

Chosen by measurement (bench/RESULTS_scale.md, "Index choice and recall", 2026-12-03; 384-dim clustered unit
vectors, recall@10 against exact fp32 search on 200 question-like / 200 near-tied queries, FAISS alone on one
thread, top 50, on a 2-core machine shared with other jobs):
- up to `flat_max_vectors` (200k): flat, vectors stored as fp16 (FAISS scalar quantizer). Half the memory
  and less than half the scan time of fp32 (3.3 vs 8.3 ms p50 at 100k); recall@10 1.000 / 0.999 at 100k.
- above: IVF (4*sqrt(n) lists, k-means trained on a sample of the stored vectors) with fp16 vectors,
  searching 1/16 of the lists: recall@10 1.000 / 0.993 at 300k (1.2 ms p50), 1.000 / 1.000 at 1M.
  HNSW (M 32, efSearch 96, used before) measured 0.909 / 0.288 at 300k and took 5.7x IVF's build time
  there (163 vs 28 s), and cannot remove vectors, so it is no longer built (old HNSW files still load).
Because an IVF index is approximate, `index_cache` measures its recall@10 against exact search on stored
vectors at every build and records it in the manifest; below `recall_goal` it logs a warning.

Vectors arrive in batches (an iterator over SQLite rows), so building the index of a million-chunk
base never holds every vector twice, nor any chunk text. The index is a cache: SQLite keeps the
vectors, and this module never decides what is stored, only how it is searched. Vectors are unit
length, so the inner product is the cosine similarity.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from core.errors import StudioError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VectorIndexSettings:
    flat_max_vectors: int = field(
        default=200_000,
        metadata={"help": "largest knowledge base searched by a flat (exhaustive) scan; above it IVF "
                          "(flat fp16 measured 3.3 ms p50 per query at 100k and 10.9 ms at 300k, on 1 thread)"},
    )
    flat_fp16: bool = field(default=True, metadata={"help": "store the flat index's vectors as fp16: half the memory and scan time"})
    ivf_lists_factor: float = field(default=4.0, metadata={"help": "IVF lists = factor x sqrt(vectors)"})
    ivf_probe_share: float = field(default=1 / 16, metadata={"help": "share of the IVF lists searched per query (higher: better recall, slower)"})
    ivf_min_probe: int = field(default=32, metadata={"help": "lists searched per query at least"})
    train_sample: int = field(default=50_000, metadata={"help": "stored vectors the IVF k-means is trained on"})
    recall_queries: int = field(default=200, metadata={"help": "stored vectors used as queries to measure an approximate index's recall@10"})
    recall_goal: float = field(default=0.95, metadata={"help": "recall@10 below this is logged and shown as a warning"})

    def validate(self) -> None:
        if self.flat_max_vectors < 0:
            raise StudioError("flat_max_vectors must be 0 or more.")
        if self.ivf_lists_factor <= 0 or not 0 < self.ivf_probe_share <= 1 or self.ivf_min_probe < 1:
            raise StudioError("IVF settings out of range: use a lists factor above 0, a probe share in (0, 1], at least 1 probe.")
        if self.train_sample < 1 or self.recall_queries < 1 or not 0 <= self.recall_goal <= 1:
            raise StudioError("Sample sizes must be 1 or more and the recall goal between 0 and 1.")


def is_exact(expected_vectors: int, settings: VectorIndexSettings = VectorIndexSettings()) -> bool:
    return expected_vectors <= settings.flat_max_vectors


def ivf_lists(vectors: int, settings: VectorIndexSettings = VectorIndexSettings()) -> int:
    return max(1, int(settings.ivf_lists_factor * math.sqrt(max(1, vectors))))


def kind(index: Any) -> str:
    """"flat", "flat-fp16", "ivf" or "hnsw" (files of older versions): what an index is, to decide extend or rebuild."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    return "flat-fp16" if isinstance(inner, faiss.IndexScalarQuantizer) else "flat"


def wanted_kind(vectors: int, settings: VectorIndexSettings = VectorIndexSettings()) -> str:
    if is_exact(vectors, settings):
        return "flat-fp16" if settings.flat_fp16 else "flat"
    return "ivf"


def new_index(
    dimension: int, expected_vectors: int, settings: VectorIndexSettings = VectorIndexSettings(), training: np.ndarray | None = None
) -> Any:
    """An empty index with ids, of the kind that fits `expected_vectors` (IVF needs `training` vectors)."""
    import faiss

    settings.validate()
    fp16 = faiss.ScalarQuantizer.QT_fp16
    if is_exact(expected_vectors, settings):
        inner = faiss.IndexScalarQuantizer(dimension, fp16, faiss.METRIC_INNER_PRODUCT) if settings.flat_fp16 else faiss.IndexFlatIP(dimension)
    else:
        if training is None or not len(training):
            raise StudioError("An IVF index needs a sample of vectors to train on.")
        lists = min(ivf_lists(expected_vectors, settings), len(training))
        inner = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dimension), dimension, lists, fp16, faiss.METRIC_INNER_PRODUCT)
        inner.cp.seed = 1234  # the same vectors give the same lists
        inner.train(np.ascontiguousarray(training, dtype=np.float32))
        inner.nprobe = min(lists, max(settings.ivf_min_probe, math.ceil(lists * settings.ivf_probe_share)))
    return faiss.IndexIDMap2(inner)  # faiss's wrapper keeps `inner` (and the IVF's quantizer) alive


def build_index(
    dimension: int,
    expected_vectors: int,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    settings: VectorIndexSettings = VectorIndexSettings(),
    training: np.ndarray | None = None,
) -> Any:
    """Fill a new index from (ids int64, vectors float32 [n, dimension]) batches."""
    index = new_index(dimension, expected_vectors, settings, training)
    for ids, vectors in batches:
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
    return index


def prepare_for_search(index: Any) -> Any:
    """Search-time parameters not serialised with the file: HNSW's efSearch of an older file (IVF's nprobe is saved)."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = max(inner.hnsw.efSearch, 96)
    return index


def describe(index: Any) -> dict:
    """What the Documents page and the manifest say about an index: its kind, size and memory (approximate)."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    vectors, dimension = int(index.ntotal), int(index.d)
    memory = vectors * 8 * 3  # int64 ids: the map, its reverse map, and the IVF lists' own ids (about)
    if isinstance(inner, faiss.IndexHNSW):
        links = inner.hnsw.nb_neighbors(0)  # level 0 holds 2*M links per vector; upper levels add ~1/M of that
        label = f"HNSW (M={links // 2}, efSearch={inner.hnsw.efSearch}), approximate"
        memory += vectors * dimension * 4 + int(vectors * links * 4 * 1.1)
    elif isinstance(inner, faiss.IndexIVF):
        label = f"IVF ({inner.nlist} lists, {inner.nprobe} searched, fp16 vectors), approximate"
        memory += vectors * inner.code_size + inner.nlist * dimension * 4
    elif isinstance(inner, faiss.IndexScalarQuantizer):
        label = "flat inner product, fp16 vectors, exhaustive"
        memory += vectors * inner.code_size
    else:
        label = "flat inner product, exact"
        memory += vectors * dimension * 4
    return {"type": label, "kind": kind(index), "vectors": vectors, "dimension": dimension, "memory_bytes": memory}


def exact_top_k(queries: np.ndarray, batches: Iterable[tuple[np.ndarray, np.ndarray]], k: int = 10) -> np.ndarray:
    """Ids of the exact top-k inner products for each query, from (ids, vectors) batches: never all vectors at once."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), 0), -1, dtype=np.int64)
    for ids, vectors in batches:
        scores = np.concatenate([best_scores, queries @ np.asarray(vectors, dtype=np.float32).T], axis=1)
        every = np.concatenate([best_ids, np.broadcast_to(ids, (len(queries), len(ids)))], axis=1)
        if scores.shape[1] > k:  # the k best of this batch and the previous best, unordered (cheaper than a full sort)
            keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores, every = np.take_along_axis(scores, keep, 1), np.take_along_axis(every, keep, 1)
        best_scores, best_ids = scores, every
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_ids, order, 1)


def recall_against(index: Any, queries: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Share of the true top-k ids (`truth`, from exact_top_k) that the index also returns."""
    _, found_ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    found = sum(len(set(a[a >= 0]) & set(t[t >= 0])) for a, t in zip(found_ids, truth[:, :k]))
    return found / max(1, int((truth[:, :k] >= 0).sum()))


def recall_at_k(index: Any, exact: Any, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k (from the `exact` index) that the index also returns (1.0 for a flat fp32 index)."""
    _, truth = exact.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return recall_against(index, queries, truth, k)
