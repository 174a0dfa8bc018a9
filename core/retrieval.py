"""Retrieval: a question -> the chunks worth citing, in one call (`retrieve`).

The steps, each a named function: the question is embedded; `dense_rankings` asks a `VectorIndex`
(by default the knowledge base's FAISS flat/IVF index, core/index_cache.py) for the nearest chunks;
`lexical.top` ranks by BM25 (tantivy, core/lexical_index.py); `fuse` merges both by reciprocal rank;
`_hits` scores each chunk by its cosine to the question and notes the question terms it cannot vouch
for; `relevant` is the gate. `search`/`search_many` stop before the gate: the Documents page and
`core search` show every ranked chunk with its score, and evaluation scores the ranking itself.
"""
from __future__ import annotations

import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

import numpy as np

from core import lexical
from core.catalogue import KnowledgeBase, check_embedder, get_knowledge_base, open_catalogue
from core.embedding import Embedder
from core.errors import StudioError
from core.index_cache import load_index
from core.settings import Workspace

RETRIEVAL_MODES = ("hybrid", "dense", "lexical")
RRF_K = 60  # reciprocal-rank-fusion constant from Cormack et al. 2009


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
class Retrieved:
    """One question's retrieval: the ranked chunks (what retrieval metrics score) and the ones the gate passes (what a model is given)."""

    question: str
    ranked: list[Hit]
    hits: list[Hit]


class VectorIndex(Protocol):
    """What dense retrieval needs from a vector index: for each query row, the ids of the k nearest vectors.

    Scores are inner products of unit vectors (cosine similarity); ids are chunk ids, and -1 pads a row
    with fewer than k (FAISS's convention). The default is the knowledge base's own FAISS index (flat fp16
    up to 200k vectors, IVF above: core/vector_index.py); another index or a vector server plugs in here.
    """

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


# ---------------------------------------------------------------- the one call
def retrieve(
    workspace: Workspace, kb_name: str, question: str, embedder: Embedder,
    settings: RetrievalSettings = RetrievalSettings(), index: VectorIndex | None = None,
) -> list[Hit]:
    """The chunks worth citing for a question, best first; empty means 'the documents do not cover this'.

    Ask, Compare, Evaluate and the CLI all retrieve through here: rank (dense and lexical, fused), then gate.
    """
    return retrieve_many(workspace, kb_name, [question], embedder, settings, index)[0].hits


def retrieve_many(
    workspace: Workspace, kb_name: str, questions: Sequence[str], embedder: Embedder,
    settings: RetrievalSettings = RetrievalSettings(), index: VectorIndex | None = None,
) -> list[Retrieved]:
    """`retrieve` for many questions (one embedding batch), keeping each question's ranking before the gate."""
    rankings = search_many(workspace, kb_name, questions, embedder, settings, index)
    return [Retrieved(question, ranked, relevant(ranked, settings)) for question, ranked in zip(questions, rankings)]


# ---------------------------------------------------------------- ranking
def search(
    workspace: Workspace, kb_name: str, query: str, embedder: Embedder,
    settings: RetrievalSettings = RetrievalSettings(), index: VectorIndex | None = None,
) -> list[Hit]:
    return search_many(workspace, kb_name, [query], embedder, settings, index)[0]


def search_many(
    workspace: Workspace, kb_name: str, queries: Sequence[str], embedder: Embedder,
    settings: RetrievalSettings = RetrievalSettings(), index: VectorIndex | None = None,
) -> list[list[Hit]]:
    """Top-k chunks per query, best first, before the relevance gate. Queries are embedded in one batch.

    Every hit's `score` is its cosine similarity to the query, whatever the ranking mode, so the
    relevance threshold and the numbers shown mean the same thing in every mode.
    """
    settings.validate()
    if any(not (query or "").strip() for query in queries):
        raise StudioError("A search query is empty; type a question or some words to search for.")
    kb = get_knowledge_base(workspace, kb_name)
    check_embedder(kb, embedder)
    if kb.chunk_count == 0:
        return [[] for _ in queries]
    depth = min(max(settings.k, settings.fusion_depth) if settings.mode != "dense" else settings.k, kb.chunk_count)
    conn = open_catalogue(workspace)
    try:
        if settings.mode != "dense" or settings.term_check:
            lexical.ensure_lexical_index(conn, kb.id)
        # The lexical half runs in a second thread while this one embeds and searches FAISS: SQLite, ONNX Runtime and
        # FAISS all release the GIL, so on 2+ cores a hybrid search costs the slower half, not the sum (bench/RESULTS_scale.md).
        with ThreadPoolExecutor(max_workers=1) as pool:
            lexical_job = pool.submit(lexical_rankings, workspace, kb, queries, depth) if settings.mode != "dense" else None
            vectors = np.ascontiguousarray(embedder.embed_queries(list(queries)), dtype=np.float32)
            if settings.mode == "lexical":
                dense: list[list[int]] = [[] for _ in queries]
            else:
                dense = dense_rankings(index if index is not None else load_index(workspace, kb), vectors, depth)
            lexical_ranked = lexical_job.result() if lexical_job else [[] for _ in queries]
        rankings = [_rank(dense[position], lexical_ranked[position], settings) for position in range(len(queries))]
        unknown = [unknown_names(conn, kb.id, query) if settings.term_check else () for query in queries]
        rows = _chunk_rows(conn, {chunk_id for ranking in rankings for chunk_id in ranking})
    finally:
        conn.close()
    return [
        _hits(ranking, rows, vectors[position], unknown[position], question_terms(queries[position])[1] if settings.term_check else ())
        for position, ranking in enumerate(rankings)
    ]


def dense_rankings(index: VectorIndex, vectors: np.ndarray, depth: int) -> list[list[int]]:
    """Chunk ids nearest each query vector, best first: the dense half of hybrid search."""
    import faiss

    # One thread is faster for single queries on this CPU (9 ms vs 17 ms on 2 threads, DESIGN.md).
    faiss.omp_set_num_threads(1 if len(vectors) == 1 else (os.cpu_count() or 1))
    _, ids = index.search(vectors, depth)
    return [[int(i) for i in row if i >= 0] for row in ids]


def fuse(*rankings: Sequence[int]) -> list[int]:
    """Reciprocal rank fusion: ids by the sum over rankings of 1 / (RRF_K + rank), best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused, key=lambda chunk_id: -fused[chunk_id])


def lexical_rankings(workspace: Workspace, kb: KnowledgeBase, queries: Sequence[str], depth: int) -> list[list[int]]:
    """Chunk ids per query by BM25 (tantivy), best first: the lexical half of hybrid search, on its own connection."""
    conn = open_catalogue(workspace)
    try:
        return [lexical.top(workspace, conn, kb, query, depth) for query in queries]
    finally:
        conn.close()


def _rank(dense_ranking: list[int], lexical_ranking: list[int], settings: RetrievalSettings) -> list[int]:
    """Chunk ids for one query in the settings' mode: dense, lexical, or both fused."""
    if settings.mode == "dense":
        return dense_ranking[: settings.k]
    if settings.mode == "lexical":
        return lexical_ranking[: settings.k]
    return fuse(dense_ranking, lexical_ranking)[: settings.k]


def _chunk_rows(conn: sqlite3.Connection, chunk_ids: set[int]) -> dict[int, sqlite3.Row]:
    if not chunk_ids:
        return {}
    wanted = sorted(chunk_ids)
    return {
        row["id"]: row
        for row in conn.execute(
            f"""SELECT c.id, c.text, c.page, c.page_end, c.embedding, d.name FROM chunks c
                JOIN documents d ON d.id = c.document_id WHERE c.id IN ({','.join('?' * len(wanted))})""",
            tuple(wanted),
        )
    }


def _hits(
    ranking: list[int], rows: dict[int, sqlite3.Row], vector: np.ndarray, unknown: tuple[str, ...], numbers: tuple[str, ...]
) -> list[Hit]:
    """The ranked chunks as hits: cosine to the query, and the question terms each cannot vouch for."""
    hits = []
    for chunk_id in ranking:
        row = rows.get(chunk_id)
        if row is None:  # a vector whose row vanished (the index is rebuilt on the next write)
            continue
        cosine = float(np.frombuffer(row["embedding"], dtype=np.float32) @ vector)
        missing = unknown
        if numbers:
            words = set(lexical.tokenize(row["text"]))
            missing += tuple(number for number in numbers if number not in words and number not in missing)
        hits.append(Hit(chunk_id, row["name"], row["page"], row["page_end"], cosine, row["text"], len(hits) + 1, missing))
    return hits


# ---------------------------------------------------------------- the relevance gate
def unknown_names(conn: sqlite3.Connection, kb_id: int, question: str) -> tuple[str, ...]:
    """The names the question hinges on that the knowledge base never mentions."""
    names = question_terms(question)[0]
    known = lexical.known_terms(conn, kb_id, names)
    return tuple(name for name in names if name not in known)


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

    The one relevance gate (every `retrieve` ends here): a hit passes when its
    cosine similarity reaches `min_score` and, with `term_check`, it misses none of the question's
    terms (`Hit.missing_terms`: a name the knowledge base never mentions, or a number not in the chunk).
    """
    return [hit for hit in hits if hit.score >= settings.min_score and not (settings.term_check and hit.missing_terms)]

