"""Knowledge bases: chunking, embedding, a FAISS index plus a SQLite docstore; add, remove, search.

SQLite is the source of truth: every chunk row keeps its text, page and float32 embedding. The FAISS
file in `indexes/<kb id>/` is a cache written with `faiss.write_index` (never pickled); when its
manifest disagrees with SQLite (a crash between the two writes) it is rebuilt from the stored vectors.
"""
from __future__ import annotations

import bisect
import hashlib
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from core import lexical, vector_index
from core.documents import DocumentError, ExtractedDocument, ExtractionLimits, Source, extract_document_bounded, safe_filename
from core.errors import StudioError
from core.settings import Workspace
from core.storage import (
    atomic_write_bytes,
    atomic_write_json,
    backup_catalogue,
    connect,
    ensure_schema,
    read_json_or_default,
    transaction,
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge_bases (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    embedding_model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    chunk_overlap INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    kb_id INTEGER NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    page_count INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    added_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (kb_id, sha256)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    kb_id INTEGER NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    page INTEGER NOT NULL,
    page_end INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ingest_failures (
    id INTEGER PRIMARY KEY,
    kb_id INTEGER NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    failed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks(document_id);
CREATE INDEX IF NOT EXISTS chunks_by_kb ON chunks(kb_id);
"""

RETRIEVAL_MODES = ("hybrid", "dense", "lexical")
RRF_K = 60  # reciprocal-rank-fusion constant from Cormack et al. 2009
KB_NAME_PATTERN = re.compile(r"^[\w][\w .\-]{0,63}$", re.UNICODE)


# ---------------------------------------------------------------- settings (one dataclass per stage)
@dataclass(frozen=True)
class ChunkingSettings:
    chunk_size: int = field(default=800, metadata={"help": "characters per chunk (~180 MiniLM tokens; its window is 256)"})
    chunk_overlap: int = field(default=100, metadata={"help": "characters shared by neighbouring chunks"})

    def validate(self) -> None:
        if not 100 <= self.chunk_size <= 8000:
            raise StudioError(f"Chunk size {self.chunk_size} is out of range; use 100 to 8000 characters.")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise StudioError(
                f"Chunk overlap {self.chunk_overlap} must be at least 0 and smaller than the chunk size ({self.chunk_size})."
            )


@dataclass(frozen=True)
class RetrievalSettings:
    k: int = field(default=5, metadata={"help": "chunks retrieved per question"})
    min_score: float = field(
        default=0.30,
        metadata={"help": "cosine similarity below which a chunk counts as not relevant (MiniLM: on-topic ≈ 0.4–0.8)"},
    )
    term_check: bool = field(
        default=True,
        metadata={"help": "also refuse when the question names something (a capitalised word after the first, or a number) "
                          "the knowledge base never mentions, and skip chunks lacking a number the question asks about "
                          "(squad36: out-of-scope refusal 0.075 -> 0.55, answerable 0.978 -> 0.967; bench/RESULTS_oos.md)"},
    )

    mode: str = field(
        default="hybrid",
        metadata={"help": "hybrid fuses dense (MiniLM) and BM25 rankings (RRF); on squad36 hit@5 0.95 vs 0.84 dense, 0.93 BM25"},
    )
    fusion_depth: int = field(default=50, metadata={"help": "candidates taken from each ranking before fusion"})

    def validate(self) -> None:
        if self.mode not in RETRIEVAL_MODES:
            raise StudioError(f"Unknown retrieval mode {self.mode!r}; choose one of {', '.join(RETRIEVAL_MODES)}.")
        if not 1 <= self.k <= 50:
            raise StudioError(f"k = {self.k} is out of range; retrieve 1 to 50 chunks.")
        if not -1.0 <= self.min_score <= 1.0:
            raise StudioError(f"Minimum score {self.min_score} must lie between -1 and 1.")


# ---------------------------------------------------------------- embedding seam
class Embedder(Protocol):
    """What knowledge needs from an embedding model. Real: SentenceTransformerEmbedder; tests: fakes."""

    model_id: str
    dimension: int

    def embed_documents(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


# The real embedders live in core.embedding (torch or ONNX Runtime); re-exported for existing callers.
from core.embedding import OnnxEmbedder, SentenceTransformerEmbedder, load_sentence_embedder  # noqa: E402,F401


# ---------------------------------------------------------------- data types
@dataclass(frozen=True)
class KnowledgeBase:
    id: int
    name: str
    embedding_model: str
    dimension: int
    chunk_size: int
    chunk_overlap: int
    version: int
    document_count: int = 0
    chunk_count: int = 0

    @property
    def chunking(self) -> ChunkingSettings:
        return ChunkingSettings(self.chunk_size, self.chunk_overlap)


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    name: str
    kind: str
    sha256: str
    size_bytes: int
    page_count: int
    chunk_count: int
    added_at: str


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int
    page_end: int
    ordinal: int


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, with everything a citation needs."""

    chunk_id: int
    document: str
    page: int
    page_end: int
    score: float
    text: str
    rank: int = 0
    # Question terms this chunk cannot vouch for (see `question_terms`): names the knowledge base never
    # mentions and numbers missing from this chunk. Non-empty means the gate (`relevant`) drops it.
    missing_terms: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IngestProgress:
    stage: str  # reading | chunking | embedding | saving | done
    file_name: str
    file_index: int
    file_count: int
    done: int
    total: int


@dataclass(frozen=True)
class IngestResult:
    file_name: str
    status: str  # added | duplicate | failed
    message: str
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)


# ---------------------------------------------------------------- catalogue
def open_catalogue(workspace: Workspace) -> sqlite3.Connection:
    conn = connect(workspace)
    ensure_schema(conn, SCHEMA)
    return conn


def _kb_from_row(row: sqlite3.Row) -> KnowledgeBase:
    return KnowledgeBase(**{key: row[key] for key in row.keys()})


_KB_SELECT = """
SELECT kb.id, kb.name, kb.embedding_model, kb.dimension, kb.chunk_size, kb.chunk_overlap, kb.version,
       (SELECT COUNT(*) FROM documents d WHERE d.kb_id = kb.id) AS document_count,
       (SELECT COUNT(*) FROM chunks c WHERE c.kb_id = kb.id) AS chunk_count
FROM knowledge_bases kb
"""


def list_knowledge_bases(workspace: Workspace) -> list[KnowledgeBase]:
    with open_catalogue(workspace) as conn:
        return [_kb_from_row(row) for row in conn.execute(_KB_SELECT + " ORDER BY kb.name")]


def get_knowledge_base(workspace: Workspace, name: str) -> KnowledgeBase:
    name = normalize_kb_name(name)  # the same form creation stores: "docugami " finds "docugami"
    with open_catalogue(workspace) as conn:
        row = conn.execute(_KB_SELECT + " WHERE kb.name = ?", (name,)).fetchone()
    if row is None:
        known = ", ".join(kb.name for kb in list_knowledge_bases(workspace)) or "none yet"
        raise StudioError(f"No knowledge base named {name!r} (known: {known}). Create it by ingesting documents.")
    return _kb_from_row(row)


def normalize_kb_name(name: str) -> str:
    """One form for lookup and creation, so a stray space never makes a second knowledge base or a false 'exists'."""
    return (name or "").strip()


def validate_kb_name(name: str) -> str:
    name = normalize_kb_name(name)
    if not KB_NAME_PATTERN.match(name):
        raise StudioError(
            f"Knowledge base name {name!r} is not allowed: use 1-64 letters, digits, spaces, dots, dashes or underscores."
        )
    return name


def _insert_knowledge_base(
    conn: sqlite3.Connection, name: str, embedder: Embedder, chunking: ChunkingSettings, workspace: Workspace
) -> None:
    # A new id is past every id in the catalogue AND every indexes/<id>/ folder on disk: after a lost or
    # emptied studio.db, SQLite would hand out 1 again and overwrite an orphaned index that may be restored.
    on_disk = [int(path.name) for path in workspace.indexes.glob("*") if path.name.isdigit()]
    in_catalogue = conn.execute("SELECT COALESCE(MAX(id), 0) FROM knowledge_bases").fetchone()[0]
    conn.execute(
        "INSERT INTO knowledge_bases (id, name, embedding_model, dimension, chunk_size, chunk_overlap) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT(name) DO NOTHING",
        (max([in_catalogue, *on_disk]) + 1, name, embedder.model_id, embedder.dimension, chunking.chunk_size, chunking.chunk_overlap),
    )
    lexical.create_lexical_index(conn, conn.execute("SELECT id FROM knowledge_bases WHERE name = ?", (name,)).fetchone()["id"])


def create_knowledge_base(
    workspace: Workspace, name: str, embedder: Embedder, chunking: ChunkingSettings = ChunkingSettings()
) -> KnowledgeBase:
    name = validate_kb_name(name)
    chunking.validate()
    with open_catalogue(workspace) as conn, transaction(conn):
        if conn.execute("SELECT 1 FROM knowledge_bases WHERE name = ?", (name,)).fetchone():
            raise StudioError(f"A knowledge base named {name!r} already exists.")
        _insert_knowledge_base(conn, name, embedder, chunking, workspace)
    return get_knowledge_base(workspace, name)


def ensure_knowledge_base(
    workspace: Workspace, name: str, embedder: Embedder, chunking: ChunkingSettings | None = None
) -> KnowledgeBase:
    """Open an existing knowledge base (its stored settings win) or create it.

    Create-if-missing is one statement in one transaction: two ingests that both create the same
    knowledge base both end up adding their files to it (before, the loser got "already exists").
    """
    name = validate_kb_name(name)
    chunking = chunking or ChunkingSettings()
    chunking.validate()
    with open_catalogue(workspace) as conn, transaction(conn):
        _insert_knowledge_base(conn, name, embedder, chunking, workspace)
    kb = get_knowledge_base(workspace, name)
    check_embedder(kb, embedder)
    return kb


def check_embedder(kb: KnowledgeBase, embedder: Embedder) -> None:
    if kb.embedding_model != embedder.model_id or kb.dimension != embedder.dimension:
        raise StudioError(
            f"Knowledge base {kb.name!r} was built with {kb.embedding_model} ({kb.dimension} dimensions), "
            f"not {embedder.model_id}. Select that embedding model, or create a new knowledge base."
        )


def delete_knowledge_base(workspace: Workspace, name: str) -> None:
    kb = get_knowledge_base(workspace, name)
    with open_catalogue(workspace) as conn, transaction(conn):
        lexical.drop_lexical_index(conn, kb.id)
        conn.execute("DELETE FROM knowledge_bases WHERE id = ?", (kb.id,))
    folder = _index_folder(workspace, kb.id)
    for path in folder.glob("*"):
        path.unlink(missing_ok=True)
    if folder.exists():
        folder.rmdir()
    _forget_cached(workspace, kb.id)


def list_documents(workspace: Workspace, kb_name: str) -> list[DocumentInfo]:
    kb = get_knowledge_base(workspace, kb_name)
    with open_catalogue(workspace) as conn:
        rows = conn.execute(
            "SELECT id, name, kind, sha256, size_bytes, page_count, chunk_count, added_at FROM documents WHERE kb_id = ? ORDER BY name",
            (kb.id,),
        ).fetchall()
    return [DocumentInfo(**dict(row)) for row in rows]


def document_chunks(workspace: Workspace, kb_name: str, document_name: str) -> list[Chunk]:
    kb = get_knowledge_base(workspace, kb_name)
    with open_catalogue(workspace) as conn:
        rows = conn.execute(
            """SELECT c.text, c.page, c.page_end, c.ordinal FROM chunks c JOIN documents d ON d.id = c.document_id
               WHERE c.kb_id = ? AND d.name = ? ORDER BY c.ordinal""",
            (kb.id, document_name),
        ).fetchall()
    return [Chunk(**dict(row)) for row in rows]


def remove_document(workspace: Workspace, kb_name: str, document_name: str) -> int:
    """Remove a document with its chunks and vectors; returns how many chunks went."""
    kb = get_knowledge_base(workspace, kb_name)
    with open_catalogue(workspace) as conn:
        with transaction(conn):
            row = conn.execute("SELECT id, chunk_count FROM documents WHERE kb_id = ? AND name = ?", (kb.id, document_name)).fetchone()
            if row is None:
                raise StudioError(f"Knowledge base {kb_name!r} has no document named {document_name!r}.")
            lexical.remove_document(conn, kb.id, row["id"])
            conn.execute("DELETE FROM documents WHERE id = ?", (row["id"],))
            conn.execute("UPDATE knowledge_bases SET version = version + 1 WHERE id = ?", (kb.id,))
        _write_index(workspace, conn, get_knowledge_base(workspace, kb_name))
    backup_catalogue(workspace)  # a restore must not bring back a document the user removed
    return int(row["chunk_count"])


# ---------------------------------------------------------------- chunking
def chunk_document(document: ExtractedDocument, settings: ChunkingSettings) -> list[Chunk]:
    """Split the whole text (pages joined) with LangChain, and map each chunk back to its pages."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    settings.validate()
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap, add_start_index=True
    )
    starts: list[int] = []
    parts: list[str] = []
    offset = 0
    for page in document.pages:
        starts.append(offset)
        parts.append(page.text)
        offset += len(page.text) + 2
    full_text = "\n\n".join(parts)
    numbers = [page.number for page in document.pages]
    chunks = []
    for ordinal, piece in enumerate(splitter.create_documents([full_text])):
        start = piece.metadata["start_index"]
        end = start + len(piece.page_content) - 1
        first = numbers[max(0, bisect.bisect_right(starts, start) - 1)]
        last = numbers[max(0, bisect.bisect_right(starts, end) - 1)]
        chunks.append(Chunk(text=piece.page_content, page=first, page_end=last, ordinal=ordinal))
    return chunks


# ---------------------------------------------------------------- FAISS index (cache of SQLite)
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


def _forget_cached(workspace: Workspace, kb_id: int) -> None:
    """Drop the cache of a deleted knowledge base: SQLite may hand its id to the next one."""
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


def _write_index(workspace: Workspace, conn: sqlite3.Connection, kb: KnowledgeBase, grown_only: bool = False) -> Any:
    """Bring the FAISS file and manifest up to date with SQLite (atomic renames), and refresh the cache.

    `grown_only` (after an ingest): when the current file verifies and SQLite only gained chunks since,
    the new vectors are added to it instead of rebuilding (an HNSW graph of a million vectors takes
    minutes to build). Otherwise the index is rebuilt from SQLite in batches. The manifest records the
    file's size and SHA-256, so a later load can tell a damaged or swapped file from the one it describes.
    """
    import faiss

    folder = _index_folder(workspace, kb.id)
    settings = vector_index.VectorIndexSettings()
    index, manifest, _ = _read_index_file(folder) if grown_only else (None, {}, "")
    last_id = int(manifest.get("max_chunk_id", -1)) if index is not None else -1
    new_rows = conn.execute("SELECT COUNT(*) FROM chunks WHERE kb_id = ? AND id > ?", (kb.id, last_id)).fetchone()[0] if index is not None else 0
    same_kind = index is not None and (kb.chunk_count > settings.flat_max_vectors) == ("HNSW" in vector_index.describe(index)["type"])
    if index is not None and same_kind and index.ntotal + new_rows == kb.chunk_count and index.d == kb.dimension:
        for ids, vectors in _vector_batches(conn, kb, after_id=last_id):
            index.add_with_ids(vectors, ids)
        how = "extended"
    else:
        index = vector_index.build_index(kb.dimension, kb.chunk_count, _vector_batches(conn, kb), settings)
        how = "built"
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
            "chunking": asdict(kb.chunking),
            "file_bytes": size,
            "file_sha256": digest,
        },
    )
    log.info("Index of %s %s: %d vectors, %s", kb.name, how, index.ntotal, description["type"])
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
    """What the Documents page shows about a knowledge base's vector index: type, vectors, memory, file size."""
    manifest = read_json_or_default(_index_folder(workspace, kb.id) / "manifest.json", default=None)
    if not isinstance(manifest, dict) or manifest.get("version") != kb.version:
        load_index(workspace, kb)  # verifies or rebuilds, and rewrites the manifest
        manifest = read_json_or_default(_index_folder(workspace, kb.id) / "manifest.json", default={}) or {}
    return {key: manifest.get(key) for key in ("index_type", "vectors", "memory_bytes", "file_bytes", "embedding_model", "dimension")}


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
        return _write_index(workspace, conn, kb)


# ---------------------------------------------------------------- ingestion
def ingest_files(
    workspace: Workspace,
    kb_name: str,
    files: Iterable[tuple[str, Source]],
    embedder: Embedder,
    chunking: ChunkingSettings | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
    limits: ExtractionLimits | None = None,
) -> list[IngestResult]:
    """Add files to a knowledge base, each in its own transaction.

    Each file is (name, bytes) or (name, path); with paths, each file is read by its own bounded
    worker process (`ExtractionLimits`), so a batch is never held in memory at once.
    A failing file gets a clear message and changes nothing; the other files still go in.
    """
    limits = limits or ExtractionLimits()
    limits.validate()
    kb = ensure_knowledge_base(workspace, kb_name, embedder, chunking)
    files = list(files)
    results: list[IngestResult] = []
    added_any = False
    for position, (raw_name, data) in enumerate(files):
        name = safe_filename(raw_name)

        def report(stage: str, done: int, total: int) -> None:
            if progress:
                progress(IngestProgress(stage, name, position, len(files), done, total))

        started = time.perf_counter()
        try:
            result = _ingest_one(workspace, kb, name, data, embedder, report, limits)
        except DocumentError as error:
            result = IngestResult(name, "failed", str(error), seconds=time.perf_counter() - started)
        except StudioError as error:
            result = IngestResult(name, "failed", f"“{name}”: {error}", seconds=time.perf_counter() - started)
        except Exception as error:  # an unexpected bug in one file must not lose the batch
            log.exception("Ingest of %s failed", name)
            result = IngestResult(name, "failed", f"“{name}” could not be ingested: {error}", seconds=time.perf_counter() - started)
        added_any = added_any or result.status == "added"
        _note_outcome(workspace, kb, name, result)
        results.append(result)
        report("done", 1, 1)
    if added_any:
        with open_catalogue(workspace) as conn:
            _write_index(workspace, conn, get_knowledge_base(workspace, kb.name), grown_only=True)
        backup_catalogue(workspace)  # a rolling copy of studio.db after every ingest that changed it
    return results


@dataclass(frozen=True)
class IngestFailure:
    """A file that could not be added, kept with its reason until the user dismisses it."""

    id: int
    name: str
    message: str
    failed_at: str


def _note_outcome(workspace: Workspace, kb: KnowledgeBase, name: str, result: IngestResult) -> None:
    """Remember a failure (replacing an older one for the same name); forget it once the file goes in."""
    with open_catalogue(workspace) as conn, transaction(conn):
        conn.execute("DELETE FROM ingest_failures WHERE kb_id = ? AND name = ?", (kb.id, name))
        if result.status == "failed":
            conn.execute("INSERT INTO ingest_failures (kb_id, name, message) VALUES (?,?,?)", (kb.id, name, result.message))


def list_ingest_failures(workspace: Workspace, kb_name: str) -> list[IngestFailure]:
    kb = get_knowledge_base(workspace, kb_name)
    with open_catalogue(workspace) as conn:
        rows = conn.execute(
            "SELECT id, name, message, failed_at FROM ingest_failures WHERE kb_id = ? ORDER BY failed_at, id", (kb.id,)
        ).fetchall()
    return [IngestFailure(**dict(row)) for row in rows]


def dismiss_ingest_failures(workspace: Workspace, kb_name: str, failure_id: int | None = None) -> int:
    """Forget one failure (or all of a knowledge base's with None); returns how many went."""
    kb = get_knowledge_base(workspace, kb_name)
    with open_catalogue(workspace) as conn, transaction(conn):
        if failure_id is None:
            cursor = conn.execute("DELETE FROM ingest_failures WHERE kb_id = ?", (kb.id,))
        else:
            cursor = conn.execute("DELETE FROM ingest_failures WHERE kb_id = ? AND id = ?", (kb.id, int(failure_id)))
    return cursor.rowcount


def _ingest_one(
    workspace: Workspace, kb: KnowledgeBase, name: str, source: Source, embedder: Embedder,
    report: Callable[[str, int, int], None], limits: ExtractionLimits,
) -> IngestResult:
    started = time.perf_counter()
    report("reading", 0, 1)
    document = extract_document_bounded(name, source, lambda done, total: report("reading", done, total), limits)
    extracted = time.perf_counter()
    with open_catalogue(workspace) as conn:
        duplicate = conn.execute("SELECT name FROM documents WHERE kb_id = ? AND sha256 = ?", (kb.id, document.sha256)).fetchone()
    if duplicate:
        return IngestResult(name, "duplicate", f"“{name}” is already in {kb.name!r} as “{duplicate['name']}”; skipped.")
    report("chunking", 0, 1)
    chunks = chunk_document(document, kb.chunking)
    chunked = time.perf_counter()
    vectors = embedder.embed_documents([chunk.text for chunk in chunks], progress=lambda d, t: report("embedding", d, t))
    if vectors.shape != (len(chunks), kb.dimension):
        raise StudioError(f"the embedding model returned {vectors.shape} vectors for {len(chunks)} chunks of {kb.dimension} dimensions.")
    embedded = time.perf_counter()
    report("saving", 0, 1)
    with open_catalogue(workspace) as conn, transaction(conn):
        # Checked again under the write lock: another ingest may have added the same file while we embedded.
        duplicate = conn.execute("SELECT name FROM documents WHERE kb_id = ? AND sha256 = ?", (kb.id, document.sha256)).fetchone()
        if duplicate:
            return IngestResult(name, "duplicate", f"“{name}” is already in {kb.name!r} as “{duplicate['name']}”; skipped.")
        stored_name = _unique_document_name(conn, kb, document.name)
        cursor = conn.execute(
            "INSERT INTO documents (kb_id, name, kind, sha256, size_bytes, page_count, chunk_count) VALUES (?,?,?,?,?,?,?)",
            (kb.id, stored_name, document.kind, document.sha256, document.size_bytes, len(document.pages), len(chunks)),
        )
        document_id = cursor.lastrowid
        conn.executemany(
            "INSERT INTO chunks (kb_id, document_id, ordinal, page, page_end, text, embedding) VALUES (?,?,?,?,?,?,?)",
            [
                (kb.id, document_id, chunk.ordinal, chunk.page, chunk.page_end, chunk.text, vectors[i].astype(np.float32).tobytes())
                for i, chunk in enumerate(chunks)
            ],
        )
        lexical.add_document(conn, kb.id, document_id)
        conn.execute("UPDATE knowledge_bases SET version = version + 1 WHERE id = ?", (kb.id,))
    saved = time.perf_counter()
    return IngestResult(
        stored_name,
        "added",
        f"“{stored_name}”: {_count(len(document.pages), 'page')}, {_count(len(chunks), 'chunk')}.",
        pages=len(document.pages),
        chunks=len(chunks),
        seconds=saved - started,
        timings={"extract": extracted - started, "chunk": chunked - extracted, "embed": embedded - chunked, "save": saved - embedded},
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _unique_document_name(conn: sqlite3.Connection, kb: KnowledgeBase, name: str) -> str:
    """Different content under an existing name gets a ' (2)' suffix, so both stay addressable."""
    taken = {row["name"] for row in conn.execute("SELECT name FROM documents WHERE kb_id = ?", (kb.id,))}
    if name not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    stem, suffix = (stem, f".{suffix}") if dot else (name, "")
    counter = 2
    while f"{stem} ({counter}){suffix}" in taken:
        counter += 1
    return f"{stem} ({counter}){suffix}"


# ---------------------------------------------------------------- search
def search(
    workspace: Workspace, kb_name: str, query: str, embedder: Embedder, settings: RetrievalSettings = RetrievalSettings()
) -> list[Hit]:
    return search_many(workspace, kb_name, [query], embedder, settings)[0]


def search_many(
    workspace: Workspace, kb_name: str, queries: Sequence[str], embedder: Embedder, settings: RetrievalSettings = RetrievalSettings()
) -> list[list[Hit]]:
    """Top-k chunks per query, best first. Queries are embedded in one batch.

    Every hit's `score` is its cosine similarity to the query, whatever the ranking mode, so the
    relevance threshold and the numbers shown mean the same thing in every mode.
    """
    import faiss

    settings.validate()
    if any(not (query or "").strip() for query in queries):
        raise StudioError("A search query is empty; type a question or some words to search for.")
    kb = get_knowledge_base(workspace, kb_name)
    check_embedder(kb, embedder)
    if kb.chunk_count == 0:
        return [[] for _ in queries]
    index = load_index(workspace, kb)
    vectors = np.ascontiguousarray(embedder.embed_queries(list(queries)), dtype=np.float32)
    # One thread is faster for single queries on this CPU (9 ms vs 17 ms on 2 threads, DESIGN.md).
    faiss.omp_set_num_threads(1 if len(queries) == 1 else (os.cpu_count() or 1))
    depth = min(max(settings.k, settings.fusion_depth) if settings.mode != "dense" else settings.k, kb.chunk_count)
    dense_scores, dense_ids = index.search(vectors, depth)
    conn = open_catalogue(workspace)
    try:
        if settings.mode != "dense" or settings.term_check:
            lexical.ensure_lexical_index(conn, kb.id)
        rankings = [
            _rank(conn, kb.id, kb.chunk_count, query, [int(i) for i in dense_ids[position] if i >= 0], depth, settings)
            for position, query in enumerate(queries)
        ]
        known_names = [
            lexical.known_terms(conn, kb.id, question_terms(query)[0]) if settings.term_check else set() for query in queries
        ]
        wanted = sorted({chunk_id for ranking in rankings for chunk_id in ranking})
        if not wanted:
            return [[] for _ in queries]
        rows = {
            row["id"]: row
            for row in conn.execute(
                f"""SELECT c.id, c.text, c.page, c.page_end, c.embedding, d.name FROM chunks c
                    JOIN documents d ON d.id = c.document_id WHERE c.id IN ({','.join('?' * len(wanted))})""",
                tuple(wanted),
            )
        }
    finally:
        conn.close()
    results = []
    for position, ranking in enumerate(rankings):
        names, numbers = question_terms(queries[position]) if settings.term_check else ((), ())
        unknown = tuple(name for name in names if name not in known_names[position]) if names else ()
        hits = []
        for chunk_id in ranking:
            row = rows.get(chunk_id)
            if row is None:  # a vector whose row vanished (the index is rebuilt on the next write)
                continue
            cosine = float(np.frombuffer(row["embedding"], dtype=np.float32) @ vectors[position])
            missing = unknown
            if numbers:
                words = set(lexical.tokenize(row["text"]))
                missing += tuple(number for number in numbers if number not in words and number not in missing)
            hits.append(Hit(chunk_id, row["name"], row["page"], row["page_end"], cosine, row["text"], len(hits) + 1, missing))
        results.append(hits)
    return results


def _rank(
    conn: sqlite3.Connection, kb_id: int, total_chunks: int, query: str, dense_ranking: list[int], depth: int, settings: RetrievalSettings
) -> list[int]:
    """Chunk ids for one query in the settings' mode: dense, lexical, or both fused with reciprocal ranks."""
    if settings.mode == "dense":
        return dense_ranking[: settings.k]
    lexical_ranking = lexical.top(conn, kb_id, query, depth, total_chunks)
    if settings.mode == "lexical":
        return lexical_ranking[: settings.k]
    fused: dict[int, float] = {}
    for ranking in (dense_ranking, lexical_ranking):
        for rank, chunk_id in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused, key=lambda chunk_id: -fused[chunk_id])[: settings.k]


def question_terms(question: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, numbers) a question hinges on, lower-cased like `lexical.tokenize`, each once, in order.

    A name is a word starting with a capital letter other than the question's first word (which is
    capitalised anyway); a number is a run of digits. Lower-case words are left out on purpose: on
    squad36 11% of the gold questions hold a lower-case word the documents never use (paraphrases
    and typos), so requiring them would refuse answerable questions.
    """
    names: list[str] = []
    numbers: list[str] = []
    for position, match in enumerate(re.finditer(r"[^\W_]+", question)):  # the lexical index's words
        word = match.group()
        if word.isdigit():
            target = numbers
        elif position > 0 and word[0].isupper():
            target = names
        else:
            continue
        word = word.lower()
        if word not in target:
            target.append(word)
    return tuple(names), tuple(numbers)


def relevant(hits: Sequence[Hit], settings: RetrievalSettings = RetrievalSettings()) -> list[Hit]:
    """The hits worth citing; empty means 'the documents do not cover this'.

    The one relevance gate (Ask, Compare, Evaluate and the CLI all call it): a hit passes when its
    cosine similarity reaches `min_score` and, with `term_check`, it misses none of the question's
    terms (`Hit.missing_terms`: a name the knowledge base never mentions, or a number not in the chunk).
    """
    return [hit for hit in hits if hit.score >= settings.min_score and not (settings.term_check and hit.missing_terms)]


# ---------------------------------------------------------------- LangChain seam
def make_retriever(workspace: Workspace, kb_name: str, embedder: Embedder, settings: RetrievalSettings = RetrievalSettings()):
    """A LangChain BaseRetriever over a knowledge base (chains, agents and RAGAS plug in here)."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class KnowledgeBaseRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            return [
                Document(
                    page_content=hit.text,
                    metadata={"source": hit.document, "page": hit.page, "page_end": hit.page_end, "score": hit.score, "chunk_id": hit.chunk_id},
                )
                for hit in search(workspace, kb_name, query, embedder, settings)
            ]

    return KnowledgeBaseRetriever()


def all_chunks(workspace: Workspace, kb_name: str) -> list[tuple[int, str, Chunk]]:
    """(chunk id, document name, chunk) for every chunk of a knowledge base, in document order."""
    kb = get_knowledge_base(workspace, kb_name)
    with open_catalogue(workspace) as conn:
        rows = conn.execute(
            """SELECT c.id, d.name, c.text, c.page, c.page_end, c.ordinal FROM chunks c JOIN documents d ON d.id = c.document_id
               WHERE c.kb_id = ? ORDER BY d.name, c.ordinal""",
            (kb.id,),
        ).fetchall()
    return [(row["id"], row["name"], Chunk(row["text"], row["page"], row["page_end"], row["ordinal"])) for row in rows]
