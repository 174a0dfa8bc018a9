"""BM25 ranking for the lexical half of hybrid search: a tantivy index per knowledge base, on disk, derived from the catalogue.

Why tantivy: SQLite FTS5 scores every row that matches any query word with bm25(). At 1M chunks that was
116 / 275 ms (p50 / p95) a question, FTS5 alone, so hybrid search missed issue #12's goal at 100k and 1M.
tantivy (Lucene's design, in Rust) keeps per-block score bounds and skips the blocks that cannot reach the
top k (block-max WAND): 1.3 / 1.9 ms at 100k and 22 / 29 ms at 1M on the same synthetic chunks
(bench/RESULTS_scale.md). Same Okapi BM25 (k1 1.2, b 0.75); its idf never goes negative.

Like the FAISS file (core/index_cache.py) this index is derived: the catalogue holds every chunk, and
`sync` brings the index up to date with it. A stamp (stamp.json) records the catalogue version it matches
and, per document, (sha256, first and last chunk id): any difference is settled per document (its chunks
deleted and/or added), so adding or removing a document touches only its own chunks, and a crash between
the catalogue's commit and the index's leaves a difference the next `sync` repairs. One writer at a time,
across processes (a file lock); readers need no lock. Word counts for the relevance gate stay exact in
the catalogue (core/lexical.py), since tantivy counts deleted chunks until it merges segments.
"""
from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Sequence

from core.catalogue import KnowledgeBase, open_catalogue
from core.settings import Workspace
from core.storage import atomic_write_json, exclusive_lock, read_json_or_default

log = logging.getLogger(__name__)

WRITER_HEAP_BYTES = 64_000_000  # tantivy's indexing buffer; it flushes a segment when full (min 15 MB a thread)
ROW_BATCH = 20_000  # chunk rows read from SQLite at a time: a million-chunk base is never all in RAM

_CACHE: dict[tuple[str, int], tuple[int, object]] = {}  # (catalogue, kb id) -> (version, tantivy.Index)
_CACHE_LOCK = threading.Lock()


def _folder(workspace: Workspace, kb_id: int) -> Path:
    return workspace.indexes / str(int(kb_id)) / "lexical"


def _schema():
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("chunk", indexed=False, fast=True)  # read back for the hits (a fast-field lookup)
    builder.add_unsigned_field("document", indexed=True)  # deleted by: a document's chunks go together
    # "default": splits on what is not a letter or digit, lower-cases, drops words over 40 characters; as lexical.tokenize
    builder.add_text_field("text", stored=False, tokenizer_name="default", index_option="freq")
    return builder.build()


def _stamp(folder: Path) -> dict | None:
    stamp = read_json_or_default(folder / "stamp.json", default=None)
    return stamp if isinstance(stamp, dict) else None


def _catalogue_documents(conn: sqlite3.Connection, kb_id: int) -> dict[str, str]:
    """Per document id, what identifies its chunks: a re-used id with other content or chunk ids reads differently."""
    rows = conn.execute(
        "SELECT d.id, d.sha256, MIN(c.id), MAX(c.id), COUNT(c.id) FROM documents d JOIN chunks c ON c.document_id = d.id "
        "WHERE d.kb_id = ? GROUP BY d.id", (kb_id,)
    )
    return {str(doc_id): f"{sha}:{first}:{last}:{count}" for doc_id, sha, first, last, count in rows}


def _stamped_chunks(documents) -> int | None:
    """How many chunks a stamp's documents add up to; None for a stamp that is not one (torn, edited, older)."""
    try:
        return sum(int(key.rsplit(":", 1)[1]) for key in documents.values())
    except (AttributeError, TypeError, ValueError, IndexError):
        return None


def _open_or_create(folder: Path):
    """(index, chunks it holds); a folder tantivy cannot read is only derived data: it is emptied and made anew."""
    import tantivy

    folder.mkdir(parents=True, exist_ok=True)
    try:
        index = tantivy.Index(_schema(), path=str(folder), reuse=True)
        return index, index.searcher().num_docs
    except Exception as error:
        log.warning("The lexical index in %s cannot be read (%s); it is rebuilt from the catalogue", folder, error)
        _wipe(folder)
        return tantivy.Index(_schema(), path=str(folder), reuse=False), 0


def _wipe(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def sync(workspace: Workspace, kb: KnowledgeBase, start_over: bool = False) -> None:
    """Bring the index of `kb` up to date with the catalogue: only the documents added or removed since the last sync
    (`start_over`: from an empty folder, after the index failed to answer)."""
    import tantivy

    folder = _folder(workspace, kb.id)
    # tantivy allows one writer per index; the app, the CLI and a test may all write, so they queue here
    with exclusive_lock(folder.parent / ".lexical.lock"), closing(open_catalogue(workspace)) as conn:
        if start_over:
            _wipe(folder)
        conn.execute("BEGIN")  # one snapshot: the version and the documents read together
        try:
            version = conn.execute("SELECT version FROM knowledge_bases WHERE id = ?", (kb.id,)).fetchone()
            if version is None:
                return
            stamp = None if start_over else _stamp(folder)
            if stamp and stamp.get("version") == version[0]:
                return
            wanted = _catalogue_documents(conn, kb.id)
            index, held = _open_or_create(folder)
            have = stamp.get("documents") if stamp else None
            if _stamped_chunks(have) != held:
                have = None  # no stamp, or an index that is not what its stamp says: start again from the catalogue
            stale = [doc_id for doc_id, key in (have or {}).items() if wanted.get(doc_id) != key]
            missing = [doc_id for doc_id, key in wanted.items() if (have or {}).get(doc_id) != key]
            writer = index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
            if have is None:
                writer.delete_all_documents()
            for doc_id in stale:
                # by query, not delete_documents_by_term: tantivy-py 0.27 makes that a signed term, which matches no u64
                writer.delete_documents_by_query(tantivy.Query.term_query(index.schema, "document", int(doc_id)))
            _add_chunks(writer, conn, [int(doc_id) for doc_id in missing])
            writer.commit()
            writer.wait_merging_threads()
        finally:
            conn.execute("ROLLBACK")
        atomic_write_json(folder / "stamp.json", {"version": version[0], "documents": wanted})
    log.info("Lexical index of %s: %s, %d documents added, %d removed", kb.name,
             "rebuilt" if have is None else "updated", len(missing), len(stale))


def _add_chunks(writer, conn: sqlite3.Connection, document_ids: Sequence[int]) -> None:
    import tantivy

    for start in range(0, len(document_ids), 500):
        part = document_ids[start:start + 500]
        cursor = conn.execute(f"SELECT id, document_id, text FROM chunks WHERE document_id IN ({','.join('?' * len(part))})", part)
        while rows := cursor.fetchmany(ROW_BATCH):
            for chunk_id, document_id, text in rows:
                doc = tantivy.Document()
                doc.add_unsigned("chunk", chunk_id)
                doc.add_unsigned("document", document_id)
                doc.add_text("text", text)
                writer.add_document(doc)


def _index_for(workspace: Workspace, kb: KnowledgeBase):
    """The opened index at this version of the knowledge base: memory cache, else sync, then open once."""
    key = (str(workspace.db_path), kb.id)
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
    if entry and entry[0] == kb.version:
        return entry[1]
    folder = _folder(workspace, kb.id)
    stamp = _stamp(folder)
    if not (stamp and stamp.get("version") == kb.version):  # checked before sync takes the writer lock
        sync(workspace, kb)
    if entry is None:
        import tantivy

        index = tantivy.Index.open(str(folder))
    else:
        index = entry[1]
        index.reload()  # another process (or this one) committed: see its segments
    with _CACHE_LOCK:
        _CACHE[key] = (kb.version, index)
    return index


def top(workspace: Workspace, kb: KnowledgeBase, words: Sequence[str], depth: int) -> list[int]:
    """Chunk ids holding any of `words` (lower-cased, as lexical.tokenize gives them), best BM25 first, at most `depth`."""
    if not words or depth <= 0:
        return []
    try:
        return _search(_index_for(workspace, kb), words, depth)
    except ValueError as error:  # tantivy could not read a file (damaged on disk): rebuilt from the catalogue, asked again
        log.warning("The lexical index of %s failed (%s); it is rebuilt from the catalogue", kb.name, error)
        forget(workspace, kb.id)
        sync(workspace, kb, start_over=True)
        return _search(_index_for(workspace, kb), words, depth)


def _search(index, words: Sequence[str], depth: int) -> list[int]:
    import tantivy

    query = tantivy.Query.boolean_query([(tantivy.Occur.Should, tantivy.Query.term_query(index.schema, "text", word)) for word in words])
    searcher = index.searcher()
    addresses = [address for _, address in searcher.search(query, depth, count=False).hits]
    return [int(chunk) for chunk in searcher.fast_field_values("chunk", addresses)] if addresses else []


def forget(workspace: Workspace, kb_id: int) -> None:
    """Drop the cached index of a deleted knowledge base (its folder goes with index_cache.delete_index)."""
    with _CACHE_LOCK:
        _CACHE.pop((str(workspace.db_path), kb_id), None)
