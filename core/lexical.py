"""The lexical half of hybrid search: a BM25 index per knowledge base, kept on disk in the catalogue.

SQLite FTS5 (its `bm25()` ranking) in the same `studio.db` as the chunks, written in the same
transaction as them: adding or removing a document updates the index incrementally, and a new
process queries it at once. Before, rank_bm25 was rebuilt in memory in every process (67 s at
100k chunks) and scored every chunk in a Python loop per query (1.2 s p50 at 100k) - issue #12,
figures in bench/RESULTS_scale.md.

One FTS5 table per knowledge base (`lexical_<kb id>`), so each base has its own document
frequencies, and an external-content table: the text stays only in `chunks`, the index holds
tokens. FTS5 floors a term's idf at 1e-6 when it appears in over half the rows (Okapi's idf goes
negative), so a tiny knowledge base still ranks the chunks that share a word with the question
(rank_bm25's BM25Okapi returned nothing there; that is why the old index was BM25+).

Beside it, `lexical_<kb id>_terms` holds each word's chunk count, kept in the same transactions. A query needs
those counts (to leave out words found everywhere, and to know which names the base never mentions); FTS5's
own vocabulary table computes them by walking every posting of the word, which at 1M chunks cost 103 / 218 ms
(p50 / p95) a question, more than the ranking itself (bench/RESULTS_scale.md). Here it is one B-tree lookup a word.
"""
from __future__ import annotations

import logging
import re
import sqlite3
from collections import Counter
from typing import Sequence

log = logging.getLogger(__name__)

COMMON_WORD_SHARE = 0.2  # see `top`: chosen on squad36 (0.5 / 0.2 / 0.1 / 0.05 -> hybrid hit@5 0.956 / 0.950 / 0.950 / 0.939)

# FTS5's unicode61 tokenizer without diacritic folding splits like this (letters and digits; "_" separates).
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased words as the lexical index sees them (also used by the relevance gate's term check)."""
    return _TOKEN.findall(text.lower())


def _table(kb_id: int) -> str:
    return f"lexical_{int(kb_id)}"


def _exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def create_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    """Create the (empty) index of a knowledge base, its vocabulary view and its word counts. Call inside a transaction."""
    table = _table(kb_id)
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
        "text, content='chunks', content_rowid='id', tokenize='unicode61 remove_diacritics 0')"
    )
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table}_vocab USING fts5vocab({table}, 'row')")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table}_terms (term TEXT PRIMARY KEY, chunks INTEGER NOT NULL) WITHOUT ROWID")


def ensure_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    """Build what a knowledge base made by an older version lacks, once: the index, or its word counts."""
    table = _table(kb_id)
    if _exists(conn, f"{table}_terms"):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _exists(conn, table):  # another process may have built it while we waited for the lock
            create_lexical_index(conn, kb_id)
            conn.execute(f"INSERT INTO {table}(rowid, text) SELECT id, text FROM chunks WHERE kb_id = ?", (kb_id,))
            _count_words(conn, kb_id, "SELECT text FROM chunks WHERE kb_id = ?", kb_id, +1)
            log.info("Built the lexical index of knowledge base %s from its chunks", kb_id)
        elif not _exists(conn, f"{table}_terms"):  # an index from before the word counts: one walk of its vocabulary
            create_lexical_index(conn, kb_id)
            conn.execute(f"INSERT INTO {table}_terms(term, chunks) SELECT term, doc FROM {table}_vocab")
            log.info("Counted the words of knowledge base %s's lexical index", kb_id)
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
    """Index a new document's chunks. Call in the transaction that inserts them."""
    create_lexical_index(conn, kb_id)
    conn.execute(f"INSERT INTO {_table(kb_id)}(rowid, text) SELECT id, text FROM chunks WHERE document_id = ?", (document_id,))
    _count_words(conn, kb_id, "SELECT text FROM chunks WHERE document_id = ?", document_id, +1)


def remove_document(conn: sqlite3.Connection, kb_id: int, document_id: int) -> None:
    """Unindex a document's chunks. Call in the transaction that deletes them, BEFORE the delete:
    an external-content index needs the original text to remove its tokens."""
    table = _table(kb_id)
    if not _exists(conn, table):
        return
    conn.execute(
        f"INSERT INTO {table}({table}, rowid, text) SELECT 'delete', id, text FROM chunks WHERE document_id = ?", (document_id,)
    )
    if _exists(conn, f"{table}_terms"):  # else ensure_lexical_index counts them from the index on the next search
        _count_words(conn, kb_id, "SELECT text FROM chunks WHERE document_id = ?", document_id, -1)


def drop_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    table = _table(kb_id)
    conn.execute(f"DROP TABLE IF EXISTS {table}_terms")
    conn.execute(f"DROP TABLE IF EXISTS {table}_vocab")
    conn.execute(f"DROP TABLE IF EXISTS {table}")


def chunk_counts(conn: sqlite3.Connection, kb_id: int, words: Sequence[str]) -> dict[str, int]:
    """How many chunks hold each word (words no chunk holds are left out)."""
    if not words:
        return {}
    return dict(conn.execute(
        f"SELECT term, chunks FROM {_table(kb_id)}_terms WHERE term IN ({','.join('?' * len(words))})", tuple(words)
    ).fetchall())


def _match_expression(words: Sequence[str]) -> str:
    # Each word quoted (no FTS5 operators from user text), any of them may match.
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words)


def top(conn: sqlite3.Connection, kb_id: int, query: str, depth: int, total_chunks: int) -> list[int]:
    """Chunk ids sharing a word with the query, best BM25 first (at most `depth`).

    Words found in more than COMMON_WORD_SHARE of the chunks are left out of the match when the query
    has rarer ones: their idf is small (FTS5 floors it at 1e-6 above half), yet matching them makes
    SQLite score a large share of all rows. On squad36 hybrid hit@5 stays 0.950 (0.956 with every
    word, lexical alone 0.933 vs 0.939); at 100k synthetic chunks query p50 halves (bench/RESULTS_scale.md).
    """
    words = sorted(set(tokenize(query)))
    if not words or depth <= 0:
        return []
    frequencies = chunk_counts(conn, kb_id, words)
    if not frequencies:
        return []
    informative = [word for word, count in frequencies.items() if count <= total_chunks * COMMON_WORD_SHARE]
    table = _table(kb_id)
    rows = conn.execute(
        f"SELECT rowid FROM {table} WHERE {table} MATCH ? ORDER BY bm25({table}), rowid LIMIT ?",
        (_match_expression(sorted(informative or frequencies)), depth),
    ).fetchall()
    return [int(row[0]) for row in rows]


def known_terms(conn: sqlite3.Connection, kb_id: int, terms: Sequence[str]) -> set[str]:
    """The terms that occur somewhere in the knowledge base."""
    return set(chunk_counts(conn, kb_id, terms))
