"""The FAISS file of a knowledge base: a verified cache of the vectors SQLite holds.

The file in `indexes/<kb id>/` is written with `faiss.write_index` (never pickled), next to a manifest
with its size and SHA-256; when the manifest disagrees with SQLite (a crash between the two writes)
or the file with its manifest, it is rebuilt from the stored vectors. Which kind of index a base
gets (flat or IVF) is core/vector_index.py's choice; this module keeps it on disk and in memory.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from core import vector_index
from core.catalogue import KnowledgeBase, open_catalogue
from core.settings import Workspace
from core.storage import atomic_write_json, read_json_or_default

log = logging.getLogger(__name__)

# Per-process caches of derived indexes, keyed by (catalogue, kb id) and valid for one kb version.
_INDEX_CACHE: dict[tuple[str, int], tuple[int, Any]] = {}
_INDEX_LOCK = threading.Lock()


def _cached(cache: dict, workspace: Workspace, kb: KnowledgeBase) -> Any | None:
    with _INDEX_LOCK:
        entry = cache.get((str(workspace.db_path), kb.id))
    return entry[1] if entry and entry[0] == kb.version else None


def _remember(cache: dict, workspace: Workspace, kb: KnowledgeBase, value: Any) -> Any:
    with _INDEX_LOCK:
        cache[(str(workspace.db_path), kb.id)] = (kb.version, value)
    return value


def delete_index(workspace: Workspace, kb_id: int) -> None:
    """Remove a deleted knowledge base's files and cached index: SQLite may hand its id to the next one."""
    shutil.rmtree(_index_folder(workspace, kb_id), ignore_errors=True)  # the FAISS file and the lexical index (lexical_index.py)
    with _INDEX_LOCK:
        _INDEX_CACHE.pop((str(workspace.db_path), kb_id), None)


def _index_folder(workspace: Workspace, kb_id: int) -> Path:
    return workspace.indexes / str(int(kb_id))


VECTOR_BATCH = 20_000  # rows read from SQLite at a time: a million-chunk base is never all in RAM as rows


def _vector_batches(conn: sqlite3.Connection, kb: KnowledgeBase, after_id: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of the chunks with id > after_id, in id order, VECTOR_BATCH at a time (keyset paging)."""
    while True:
        rows = conn.execute(
            "SELECT id, embedding FROM chunks WHERE kb_id = ? AND id > ? ORDER BY id LIMIT ?", (kb.id, after_id, VECTOR_BATCH)
        ).fetchall()
        if not rows:
            return
        ids = np.fromiter((row["id"] for row in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(row["embedding"] for row in rows), dtype=np.float32).reshape(len(rows), kb.dimension)
        yield ids, vectors
        after_id = int(ids[-1])


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_index_file(folder: Path) -> tuple[Any | None, dict, str]:
    """(index, manifest, "") when index.faiss is the file its manifest describes (size and SHA-256), else (None, manifest, why)."""
    import faiss

    manifest = read_json_or_default(folder / "manifest.json", default=None)
    if not isinstance(manifest, dict):
        return None, {}, "the manifest is missing or unreadable"
    if "file_sha256" not in manifest:
        return None, manifest, "the manifest predates checksums"
    path = folder / "index.faiss"
    try:
        size = path.stat().st_size
        if size != manifest.get("file_bytes"):
            return None, manifest, f"the index file has {size} bytes, the manifest says {manifest.get('file_bytes')}"
        if _file_sha256(path) != manifest["file_sha256"]:
            return None, manifest, "the index file's checksum does not match the manifest"
    except OSError as error:
        return None, manifest, f"the index file cannot be read ({error})"
    try:
        index = faiss.read_index(str(path))
    except (RuntimeError, ValueError, MemoryError) as error:  # faiss raises RuntimeError for a bad file
        return None, manifest, f"FAISS cannot read the index file ({error})"
    return vector_index.prepare_for_search(index), manifest, ""


def _sample_vectors(conn: sqlite3.Connection, kb: KnowledgeBase, count: int, salt: int = 0) -> np.ndarray:
    """About `count` stored vectors spread over the whole base (every n-th chunk id), read without loading the rest."""
    step = max(1, kb.chunk_count // max(1, count))
    rows = conn.execute(
        "SELECT embedding FROM chunks WHERE kb_id = ? AND id % ? = ? LIMIT ?", (kb.id, step, salt % step, count)
    ).fetchall()
    if not rows:
        return np.zeros((0, kb.dimension), dtype=np.float32)
    return np.frombuffer(b"".join(row["embedding"] for row in rows), dtype=np.float32).reshape(len(rows), kb.dimension)


def measure_recall(conn: sqlite3.Connection, kb: KnowledgeBase, index: Any, settings: vector_index.VectorIndexSettings, k: int = 10) -> tuple[float, int]:
    """(recall@k, queries) of `index` against exact search, stored vectors used as queries; exact ranks streamed from SQLite."""
    queries = _sample_vectors(conn, kb, settings.recall_queries, salt=1)
    if not len(queries):
        return 1.0, 0
    truth = vector_index.exact_top_k(queries, _vector_batches(conn, kb), k)
    return vector_index.recall_against(index, queries, truth, k), len(queries)


def _can_extend(index: Any, kb: KnowledgeBase, settings: vector_index.VectorIndexSettings) -> bool:
    """Same kind as a fresh build would pick; an IVF index only while its lists are at least half the ideal number."""
    import faiss

    if vector_index.kind(index) != vector_index.wanted_kind(kb.chunk_count, settings) or index.d != kb.dimension:
        return False
    if vector_index.kind(index) == "ivf":
        return 2 * faiss.downcast_index(index.index).nlist >= vector_index.ivf_lists(kb.chunk_count, settings)
    return True


def write_index(
    workspace: Workspace, conn: sqlite3.Connection, kb: KnowledgeBase, grown_only: bool = False, removed_ids: np.ndarray | None = None
) -> Any:
    """Bring the FAISS file and manifest up to date with SQLite (atomic renames), and refresh the cache.

    `grown_only` (after an ingest): when the current file verifies and SQLite only gained chunks since,
    the new vectors are added to it instead of rebuilding. `removed_ids` (after removing a document): those
    vectors are removed from the verified file (a 1M-vector IVF rebuild took ~3 min, bench/RESULTS_scale.md).
    Otherwise the index is rebuilt from SQLite in
    batches (an IVF index first trains on a sample of the stored vectors). An approximate index gets its
    recall@10 measured against exact search, in the manifest: at every build, and when an ingest or removal
    has changed the base by 10% or more since the last measurement. The manifest records the file's size and
    SHA-256, so a later load can tell a damaged or swapped file from the one it describes.
    """
    import faiss

    folder = _index_folder(workspace, kb.id)
    settings = vector_index.VectorIndexSettings()
    index, manifest, _ = _read_index_file(folder) if grown_only or removed_ids is not None else (None, {}, "")
    how = ""
    if index is not None and _can_extend(index, kb, settings):
        if removed_ids is not None:
            removed = np.ascontiguousarray(removed_ids, dtype=np.int64)
            # _can_extend already refused an old HNSW file (it cannot remove); a count that does not add up means the
            # file was not the one before the removal
            if index.ntotal - len(removed) == kb.chunk_count and index.remove_ids(removed) == len(removed):
                how = "shrunk"
        else:
            last_id = int(manifest.get("max_chunk_id", -1))
            new_rows = conn.execute("SELECT COUNT(*) FROM chunks WHERE kb_id = ? AND id > ?", (kb.id, last_id)).fetchone()[0]
            if index.ntotal + new_rows == kb.chunk_count:
                for ids, vectors in _vector_batches(conn, kb, after_id=last_id):
                    index.add_with_ids(vectors, ids)
                how = "extended"
    exact = vector_index.is_exact(kb.chunk_count, settings)
    if not how:
        training = None if exact else _sample_vectors(conn, kb, settings.train_sample)
        index = vector_index.build_index(kb.dimension, kb.chunk_count, _vector_batches(conn, kb), settings, training)
        del training
        how = "built"
    recall, recall_queries, measured_at = None, 0, None
    if not exact:
        previous = manifest.get("recall_measured_at_vectors")
        if how != "built" and manifest.get("recall_at_10") is not None and previous and abs(kb.chunk_count - previous) < 0.1 * previous:
            # a small ingest or removal: a full pass over the stored vectors per batch would cost more than it tells
            recall, recall_queries, measured_at = manifest["recall_at_10"], manifest.get("recall_queries", 0), previous
        else:
            (recall, recall_queries), measured_at = measure_recall(conn, kb, index, settings), kb.chunk_count
    max_id = conn.execute("SELECT MAX(id) FROM chunks WHERE kb_id = ?", (kb.id,)).fetchone()[0]
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".index.faiss.", suffix=".tmp")
    os.close(fd)
    try:
        faiss.write_index(index, tmp)  # straight to disk: no second in-memory copy of a large index
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        size, digest = os.path.getsize(tmp), _file_sha256(Path(tmp))
        os.replace(tmp, folder / "index.faiss")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    description = vector_index.describe(index)
    atomic_write_json(
        folder / "manifest.json",
        {
            "knowledge_base": kb.name,
            "version": kb.version,
            "vectors": int(index.ntotal),
            "max_chunk_id": int(max_id) if max_id is not None else -1,
            "embedding_model": kb.embedding_model,
            "dimension": kb.dimension,
            "index_type": description["type"] + "; unit vectors: score = cosine similarity",
            "memory_bytes": description["memory_bytes"],
            "recall_at_10": recall,
            "recall_queries": recall_queries,
            "recall_measured_at_vectors": measured_at,
            "recall_goal": settings.recall_goal,
            "chunking": asdict(kb.chunking),
            "file_bytes": size,
            "file_sha256": digest,
        },
    )
    log.info("Index of %s %s: %d vectors, %s%s", kb.name, how, index.ntotal, description["type"],
             "" if recall is None else f", recall@10 {recall:.3f} on {recall_queries} stored vectors"
             + ("" if measured_at == kb.chunk_count else f" (measured at {measured_at} vectors)"))
    if recall is not None and recall < settings.recall_goal:
        log.warning("Index of %s: recall@10 %.3f against exact search is below %.2f; raise ivf_probe_share", kb.name, recall, settings.recall_goal)
    return _remember(_INDEX_CACHE, workspace, kb, index)


def _read_verified_index(folder: Path, kb: KnowledgeBase) -> tuple[Any | None, str]:
    """(index, "") when the file on disk is the one the manifest describes for this kb version, else (None, why)."""
    manifest = read_json_or_default(folder / "manifest.json", default=None)
    if isinstance(manifest, dict) and (manifest.get("version") != kb.version or manifest.get("vectors") != kb.chunk_count):
        return None, f"the manifest is for version {manifest.get('version')}, the catalogue is at {kb.version}"
    index, _, why = _read_index_file(folder)
    if index is None:
        return None, why
    if index.ntotal != kb.chunk_count or index.d != kb.dimension:
        return None, f"the index holds {index.ntotal} vectors of {index.d} dimensions, expected {kb.chunk_count} of {kb.dimension}"
    return index, ""


def index_details(workspace: Workspace, kb: KnowledgeBase) -> dict:
    """What the Documents page and `kb info` show about a knowledge base's vector index: type, vectors, memory,
    file size, and for an approximate index its recall@10 against exact search (None for a flat one)."""
    manifest = read_json_or_default(_index_folder(workspace, kb.id) / "manifest.json", default=None)
    if not isinstance(manifest, dict) or manifest.get("version") != kb.version:
        load_index(workspace, kb)  # verifies or rebuilds, and rewrites the manifest
        manifest = read_json_or_default(_index_folder(workspace, kb.id) / "manifest.json", default={}) or {}
    keys = ("index_type", "vectors", "memory_bytes", "file_bytes", "embedding_model", "dimension", "recall_at_10", "recall_queries", "recall_goal")
    return {key: manifest.get(key) for key in keys}


def recall_text(details: dict) -> str:
    """One phrase for the page and the CLI: the measured recall@10 of an approximate index, or that the scan is exhaustive."""
    if details.get("recall_at_10") is None:
        approximate = "approximate" in (details.get("index_type") or "")
        return "recall not measured (built by an older version)" if approximate else "exhaustive scan (no recall loss)"
    return f"recall@10 vs exact search {details['recall_at_10']:.3f} ({details.get('recall_queries') or 0} stored vectors as queries)"


def recall_below_goal(details: dict) -> bool:
    recall, goal = details.get("recall_at_10"), details.get("recall_goal")
    return recall is not None and goal is not None and recall < goal


def load_index(workspace: Workspace, kb: KnowledgeBase) -> Any:
    """The FAISS index for this version of the knowledge base: memory cache, then verified file, then rebuild.

    SQLite holds every vector, so any doubt about the file (torn manifest, wrong size or checksum,
    a file FAISS cannot read) is settled by rebuilding it from the catalogue, with the reason logged.
    """
    cached = _cached(_INDEX_CACHE, workspace, kb)
    if cached is not None:
        return cached
    folder = _index_folder(workspace, kb.id)
    index, why = _read_verified_index(folder, kb)
    if index is not None:
        return _remember(_INDEX_CACHE, workspace, kb, index)
    log.warning("Index of %s (%s) is rebuilt from the catalogue: %s", kb.name, folder, why)
    with open_catalogue(workspace) as conn:
        return write_index(workspace, conn, kb)

