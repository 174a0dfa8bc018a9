"""Changing what a knowledge base holds: add files (read, chunk, embed, store), remove a document, delete a base.

Each file goes in its own transaction, with its chunks, vectors and lexical index rows; the vector
index file is brought up to date once per batch (core/index_cache.py).
"""
from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from core import lexical, lexical_index
from core.bounded_reader import extract_document_bounded
from core.catalogue import KnowledgeBase, ensure_knowledge_base, get_knowledge_base, open_catalogue
from core.chunking import ChunkingSettings, chunk_document
from core.documents import DocumentError, ExtractionLimits, Source, safe_filename
from core.embedding import Embedder
from core.errors import StudioError
from core.index_cache import delete_index, write_index
from core.settings import Workspace
from core.storage import backup_catalogue, transaction

log = logging.getLogger(__name__)


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
        changed = get_knowledge_base(workspace, kb.name)
        with open_catalogue(workspace) as conn:
            write_index(workspace, conn, changed, grown_only=True)
        lexical_index.sync(workspace, changed)
        backup_catalogue(workspace)  # a rolling copy of studio.db after every ingest that changed it
    return results


def _note_outcome(workspace: Workspace, kb: KnowledgeBase, name: str, result: IngestResult) -> None:
    """Remember a failure (replacing an older one for the same name); forget it once the file goes in."""
    with open_catalogue(workspace) as conn, transaction(conn):
        conn.execute("DELETE FROM ingest_failures WHERE kb_id = ? AND name = ?", (kb.id, name))
        if result.status == "failed":
            conn.execute("INSERT INTO ingest_failures (kb_id, name, message) VALUES (?,?,?)", (kb.id, name, result.message))


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


def remove_document(workspace: Workspace, kb_name: str, document_name: str) -> int:
    """Remove a document with its chunks and vectors; returns how many chunks went."""
    kb = get_knowledge_base(workspace, kb_name)
    with open_catalogue(workspace) as conn:
        with transaction(conn):
            row = conn.execute("SELECT id, chunk_count FROM documents WHERE kb_id = ? AND name = ?", (kb.id, document_name)).fetchone()
            if row is None:
                raise StudioError(f"Knowledge base {kb_name!r} has no document named {document_name!r}.")
            chunk_ids = np.array([r[0] for r in conn.execute("SELECT id FROM chunks WHERE document_id = ?", (row["id"],))], dtype=np.int64)
            lexical.remove_document(conn, kb.id, row["id"])
            conn.execute("DELETE FROM documents WHERE id = ?", (row["id"],))
            conn.execute("UPDATE knowledge_bases SET version = version + 1 WHERE id = ?", (kb.id,))
        changed = get_knowledge_base(workspace, kb_name)
        write_index(workspace, conn, changed, removed_ids=chunk_ids)
    lexical_index.sync(workspace, changed)
    backup_catalogue(workspace)  # a restore must not bring back a document the user removed
    return int(row["chunk_count"])


def delete_knowledge_base(workspace: Workspace, name: str) -> None:
    kb = get_knowledge_base(workspace, name)
    with open_catalogue(workspace) as conn, transaction(conn):
        lexical.drop_lexical_index(conn, kb.id)
        conn.execute("DELETE FROM knowledge_bases WHERE id = ?", (kb.id,))
    delete_index(workspace, kb.id)
    lexical_index.forget(workspace, kb.id)

