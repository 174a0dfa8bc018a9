"""The catalogue: knowledge bases, their documents and chunks (text, pages, float32 vectors) in SQLite.

SQLite is the source of truth: every chunk row keeps its text, page and embedding. The vector index
(core/index_cache.py) and the lexical index (core/lexical.py) are derived from these rows. Writes
that change a base's content live in core/ingest.py; ranking lives in core/retrieval.py.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from core import lexical
from core.chunking import Chunk, ChunkingSettings
from core.embedding import Embedder
from core.errors import StudioError
from core.settings import Workspace
from core.storage import connect, ensure_schema, transaction

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

KB_NAME_PATTERN = re.compile(r"^[\w][\w .\-]{0,63}$", re.UNICODE)


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
class IngestFailure:
    """A file that could not be added, kept with its reason until the user dismisses it."""

    id: int
    name: str
    message: str
    failed_at: str


# ---------------------------------------------------------------- knowledge bases
def open_catalogue(workspace: Workspace) -> sqlite3.Connection:
    conn = connect(workspace)
    ensure_schema(conn, SCHEMA)
    return conn


def _kb_from_row(row: sqlite3.Row) -> KnowledgeBase:
    return KnowledgeBase(**{key: row[key] for key in row.keys()})


_KB_SELECT = """
SELECT kb.id, kb.name, kb.embedding_model, kb.dimension, kb.chunk_size, kb.chunk_overlap, kb.version,
       (SELECT COUNT(*) FROM documents d WHERE d.kb_id = kb.id) AS document_count,
       -- each document row records its chunk count in the transaction that inserts its chunks: summing a few document
       -- rows is exact and does not scan the chunks (COUNT(*) cost 5 ms a search at 100k chunks)
       (SELECT COALESCE(SUM(d.chunk_count), 0) FROM documents d WHERE d.kb_id = kb.id) AS chunk_count
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


# ---------------------------------------------------------------- documents and chunks
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


# ---------------------------------------------------------------- files that could not be added
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

