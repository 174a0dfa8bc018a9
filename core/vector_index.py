"""The dense half of hybrid search: which FAISS index a knowledge base gets, built without holding it all in RAM.

Flat inner product (exact) up to `flat_max_vectors`, HNSW above: flat costs 9 ms per query at 100k
vectors but 164 ms at 1M on one thread (DESIGN.md); HNSW stays in single-digit milliseconds at 1M
with recall@10 above 0.95 at the efSearch below (bench/RESULTS_scale.md). Vectors are unit length,
so the inner product is the cosine similarity either way.

Vectors arrive in batches (an iterator over SQLite rows), so building the index of a million-chunk
base never holds every vector twice, nor any chunk text. The index is a cache: SQLite keeps the
vectors, and this module never decides what is stored, only how it is searched.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from core.errors import StudioError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VectorIndexSettings:
    flat_max_vectors: int = field(
        default=200_000,
        metadata={"help": "largest knowledge base searched exactly (flat); above it HNSW (flat p95 passes ~30 ms near 200k on 1 thread)"},
    )
    hnsw_m: int = field(default=32, metadata={"help": "HNSW links per vector (memory ~ 4*2*M bytes per vector on top of the vectors)"})
    hnsw_ef_construction: int = field(default=64, metadata={"help": "HNSW build effort (higher: better graph, slower ingest)"})
    hnsw_ef_search: int = field(default=96, metadata={"help": "HNSW search effort (higher: better recall, slower queries)"})

    def validate(self) -> None:
        if self.flat_max_vectors < 0:
            raise StudioError("flat_max_vectors must be 0 or more.")
        if not 4 <= self.hnsw_m <= 128 or self.hnsw_ef_construction < self.hnsw_m or self.hnsw_ef_search < 1:
            raise StudioError("HNSW settings out of range: use M 4-128, efConstruction >= M, efSearch >= 1.")


def new_index(dimension: int, expected_vectors: int, settings: VectorIndexSettings = VectorIndexSettings()) -> Any:
    """An empty index with ids, of the kind that fits `expected_vectors`."""
    import faiss

    settings.validate()
    if expected_vectors <= settings.flat_max_vectors:
        inner = faiss.IndexFlatIP(dimension)
    else:
        inner = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = settings.hnsw_ef_construction
        inner.hnsw.efSearch = settings.hnsw_ef_search
    return faiss.IndexIDMap2(inner)


def build_index(
    dimension: int, expected_vectors: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], settings: VectorIndexSettings = VectorIndexSettings()
) -> Any:
    """Fill a new index from (ids int64, vectors float32 [n, dimension]) batches."""
    index = new_index(dimension, expected_vectors, settings)
    for ids, vectors in batches:
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
    return index


def prepare_for_search(index: Any, settings: VectorIndexSettings = VectorIndexSettings()) -> Any:
    """Search-time parameters are not all serialised (efSearch is): set them after loading a file."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = settings.hnsw_ef_search
    return index


def describe(index: Any) -> dict:
    """What the Documents page and the manifest say about an index: its kind, size and memory."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    vectors = int(index.ntotal)
    memory = vectors * (index.d * 4 + 8)  # float32 vectors + int64 ids
    if isinstance(inner, faiss.IndexHNSW):
        links = inner.hnsw.nb_neighbors(0)  # level 0 holds 2*M links per vector; upper levels add ~1/M of that
        kind = f"HNSW (M={links // 2}, efSearch={inner.hnsw.efSearch}), approximate"
        memory += int(vectors * links * 4 * 1.1)
    else:
        kind = "flat inner product, exact"
    return {"type": kind, "vectors": vectors, "dimension": int(index.d), "memory_bytes": memory}


def recall_at_k(index: Any, exact: Any, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k that the index also returns (1.0 for a flat index)."""
    _, approximate = index.search(queries, k)
    _, truth = exact.search(queries, k)
    found = sum(len(set(a[a >= 0]) & set(t[t >= 0])) for a, t in zip(approximate, truth))
    return found / max(1, int((truth >= 0).sum()))
