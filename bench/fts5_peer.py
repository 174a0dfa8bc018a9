"""The lexical ranking as it was before tantivy (SQLite FTS5 bm25() in the catalogue), kept as the benchmarks' peer.

Same words in, same depth out as core.lexical.top: the benches hand both the words that core.lexical keeps
(informative ones), so the two differ only in the engine that ranks them.
"""
from __future__ import annotations

import sqlite3
from typing import Sequence


def build(conn: sqlite3.Connection, kb_id: int) -> None:
    """An external-content FTS5 index over the knowledge base's chunks, as core/lexical.py built it."""
    table = f"fts5_peer_{int(kb_id)}"
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE VIRTUAL TABLE {table} USING fts5(text, content='chunks', content_rowid='id', tokenize='unicode61 remove_diacritics 0')")
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO {table}(rowid, text) SELECT id, text FROM chunks WHERE kb_id = ?", (kb_id,))
    conn.execute("COMMIT")


def top(conn: sqlite3.Connection, kb_id: int, words: Sequence[str], depth: int) -> list[int]:
    if not words:
        return []
    table = f"fts5_peer_{int(kb_id)}"
    match = " OR ".join('"' + word.replace('"', '""') + '"' for word in words)
    rows = conn.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH ? ORDER BY bm25({table}), rowid LIMIT ?", (match, depth)).fetchall()
    return [int(row[0]) for row in rows]


def query_words(conn: sqlite3.Connection, kb_id: int, total_chunks: int, query: str) -> list[str]:
    """The words core.lexical.top ranks for this query (common ones left out when rarer ones exist)."""
    from core import lexical

    words = sorted(set(lexical.tokenize(query)))
    frequencies = lexical.chunk_counts(conn, kb_id, words)
    informative = [w for w, c in frequencies.items() if c <= total_chunks * lexical.COMMON_WORD_SHARE]
    return sorted(informative or frequencies)
