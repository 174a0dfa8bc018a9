"""The lexical half of hybrid search: which words a question shares with the chunks, and how rare each is.

Ranking is BM25 in a tantivy index per knowledge base (core/lexical_index.py), derived from the catalogue
like the FAISS file. Here, in the catalogue itself, `lexical_<kb id>_terms` holds each word's chunk count,
written in the same transaction as the chunks (exact after every add and removal): a query uses them to leave
out words found everywhere, and the relevance gate to know which names the base never mentions.

History (issue #12, figures in bench/RESULTS_scale.md): rank_bm25 was rebuilt in memory in every process
(67 s at 100k chunks) and scored every chunk in Python (1.2 s p50 at 100k); SQLite FTS5 then lived in the
catalogue but scored every matching row (116 / 275 ms p50 / p95 at 1M); its vocabulary walk for word counts
cost 103 / 218 ms more, hence the counts table. Bases from those versions are upgraded on their first search.
"""
from __future__ import annotations

import logging
import re
import sqlite3
from collections import Counter
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # core.catalogue imports this module
    from core.catalogue import KnowledgeBase
    from core.settings import Workspace

log = logging.getLogger(__name__)

COMMON_WORD_SHARE = 0.2  # see `top`: chosen on squad36 (0.5 / 0.2 / 0.1 / 0.05 -> hybrid hit@5 0.956 / 0.950 / 0.950 / 0.939)

# tantivy's default tokenizer splits like this (letters and digits; "_" separates; no diacritic folding).
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased words as the lexical index sees them (also used by the relevance gate's term check)."""
    return _TOKEN.findall(text.lower())


def _table(kb_id: int) -> str:
    return f"lexical_{int(kb_id)}"


def _exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def create_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    """Create the (empty) word counts of a knowledge base. Call inside a transaction."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {_table(kb_id)}_terms (term TEXT PRIMARY KEY, chunks INTEGER NOT NULL) WITHOUT ROWID")


def _drop_fts5(conn: sqlite3.Connection, kb_id: int) -> None:
    """The FTS5 index of versions before tantivy: its space is given back."""
    table = _table(kb_id)
    conn.execute(f"DROP TABLE IF EXISTS {table}_vocab")
    conn.execute(f"DROP TABLE IF EXISTS {table}")


def ensure_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    """Count the words of a knowledge base made by an older version, once (and drop its FTS5 index)."""
    table = _table(kb_id)
    if _exists(conn, f"{table}_terms") and not _exists(conn, table):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _exists(conn, f"{table}_terms"):  # another process may have counted them while we waited for the lock
            create_lexical_index(conn, kb_id)
            _count_words(conn, kb_id, "SELECT text FROM chunks WHERE kb_id = ?", kb_id, +1)
            log.info("Counted the words of knowledge base %s", kb_id)
        _drop_fts5(conn, kb_id)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _count_words(conn: sqlite3.Connection, kb_id: int, texts_sql: str, key: int, sign: int) -> None:
    """Add (+1) or take away (-1) the chunks `texts_sql` selects from each word's chunk count."""
    counts: Counter[str] = Counter()
    for (text,) in conn.execute(texts_sql, (key,)):
        counts.update(set(tokenize(text)))
    table = f"{_table(kb_id)}_terms"
    conn.executemany(
        f"INSERT INTO {table}(term, chunks) VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET chunks = chunks + excluded.chunks",
        ((term, sign * count) for term, count in counts.items()),
    )
    if sign < 0:
        conn.execute(f"DELETE FROM {table} WHERE chunks <= 0")


def add_document(conn: sqlite3.Connection, kb_id: int, document_id: int) -> None:
    """Count a new document's words. Call in the transaction that inserts its chunks (the BM25 index follows in
    lexical_index.sync, after the commit)."""
    create_lexical_index(conn, kb_id)
    _count_words(conn, kb_id, "SELECT text FROM chunks WHERE document_id = ?", document_id, +1)


def remove_document(conn: sqlite3.Connection, kb_id: int, document_id: int) -> None:
    """Uncount a document's words. Call in the transaction that deletes its chunks, BEFORE the delete."""
    if _exists(conn, f"{_table(kb_id)}_terms"):  # else ensure_lexical_index counts what is left on the next search
        _count_words(conn, kb_id, "SELECT text FROM chunks WHERE document_id = ?", document_id, -1)


def drop_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {_table(kb_id)}_terms")
    _drop_fts5(conn, kb_id)


def chunk_counts(conn: sqlite3.Connection, kb_id: int, words: Sequence[str]) -> dict[str, int]:
    """How many chunks hold each word (words no chunk holds are left out)."""
    if not words:
        return {}
    return dict(conn.execute(
        f"SELECT term, chunks FROM {_table(kb_id)}_terms WHERE term IN ({','.join('?' * len(words))})", tuple(words)
    ).fetchall())


def top(workspace: Workspace, conn: sqlite3.Connection, kb: KnowledgeBase, query: str, depth: int) -> list[int]:
    """Chunk ids sharing a word with the query, best BM25 first (at most `depth`).

    Words found in more than COMMON_WORD_SHARE of the chunks are left out of the match when the query
    has rarer ones: their idf is small, and they rank little but matching chunks. Chosen on squad36 with FTS5
    (hybrid hit@5 0.950 with the share, 0.956 with every word); measured again with tantivy in bench/RESULTS_scale.md.
    """
    words = sorted(set(tokenize(query)))
    if not words or depth <= 0:
        return []
    frequencies = chunk_counts(conn, kb.id, words)
    if not frequencies:
        return []
    informative = [word for word, count in frequencies.items() if count <= kb.chunk_count * COMMON_WORD_SHARE]
    from core import lexical_index

    return lexical_index.top(workspace, kb, sorted(informative or frequencies), depth)


def known_terms(conn: sqlite3.Connection, kb_id: int, terms: Sequence[str]) -> set[str]:
    """The terms that occur somewhere in the knowledge base."""
    return set(chunk_counts(conn, kb_id, terms))
