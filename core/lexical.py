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
"""
from __future__ import annotations

import logging
import re
import sqlite3
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


def _exists(conn: sqlite3.Connection, kb_id: int) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (_table(kb_id),)).fetchone() is not None


def create_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    """Create the (empty) index of a knowledge base and its vocabulary view. Call inside a transaction."""
    table = _table(kb_id)
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
        "text, content='chunks', content_rowid='id', tokenize='unicode61 remove_diacritics 0')"
    )
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table}_vocab USING fts5vocab({table}, 'row')")


def ensure_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    """Build the index once for a knowledge base made before it existed (then it is kept up to date)."""
    if _exists(conn, kb_id):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _exists(conn, kb_id):  # another process may have built it while we waited for the lock
            create_lexical_index(conn, kb_id)
            conn.execute(f"INSERT INTO {_table(kb_id)}(rowid, text) SELECT id, text FROM chunks WHERE kb_id = ?", (kb_id,))
            log.info("Built the lexical index of knowledge base %s from its chunks", kb_id)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def add_document(conn: sqlite3.Connection, kb_id: int, document_id: int) -> None:
    """Index a new document's chunks. Call in the transaction that inserts them."""
    create_lexical_index(conn, kb_id)
    conn.execute(f"INSERT INTO {_table(kb_id)}(rowid, text) SELECT id, text FROM chunks WHERE document_id = ?", (document_id,))


def remove_document(conn: sqlite3.Connection, kb_id: int, document_id: int) -> None:
    """Unindex a document's chunks. Call in the transaction that deletes them, BEFORE the delete:
    an external-content index needs the original text to remove its tokens."""
    if not _exists(conn, kb_id):
        return
    table = _table(kb_id)
    conn.execute(
        f"INSERT INTO {table}({table}, rowid, text) SELECT 'delete', id, text FROM chunks WHERE document_id = ?", (document_id,)
    )


def drop_lexical_index(conn: sqlite3.Connection, kb_id: int) -> None:
    table = _table(kb_id)
    conn.execute(f"DROP TABLE IF EXISTS {table}_vocab")
    conn.execute(f"DROP TABLE IF EXISTS {table}")


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
    frequencies = dict(conn.execute(
        f"SELECT term, doc FROM {_table(kb_id)}_vocab WHERE term IN ({','.join('?' * len(words))})", tuple(words)
    ).fetchall())
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
    if not terms:
        return set()
    rows = conn.execute(
        f"SELECT term FROM {_table(kb_id)}_vocab WHERE term IN ({','.join('?' * len(terms))})", tuple(terms)
    ).fetchall()
    return {row[0] for row in rows}
