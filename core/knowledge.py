"""Knowledge bases, by their old address: the names now live in the Ground modules below.

- core/catalogue.py: knowledge bases, documents and chunks in SQLite, the list of failed files;
- core/chunking.py: pages -> chunks; core/ingest.py: add files, remove a document, delete a base;
- core/index_cache.py: the FAISS file (a verified cache of SQLite's vectors);
- core/retrieval.py: `retrieve` (dense, lexical, fusion, relevance gate) and `search` (before the gate).

Kept so `from core.knowledge import X` in scripts and benches keeps working; new code imports the homes.
"""
from __future__ import annotations

from core.catalogue import (  # noqa: F401
    SCHEMA,
    DocumentInfo,
    IngestFailure,
    KnowledgeBase,
    all_chunks,
    check_embedder,
    create_knowledge_base,
    dismiss_ingest_failures,
    document_chunks,
    ensure_knowledge_base,
    get_knowledge_base,
    list_documents,
    list_ingest_failures,
    list_knowledge_bases,
    normalize_kb_name,
    open_catalogue,
    validate_kb_name,
)
from core.chunking import Chunk, ChunkingSettings, chunk_document  # noqa: F401
from core.embedding import Embedder, OnnxEmbedder, SentenceTransformerEmbedder, load_sentence_embedder  # noqa: F401
from core.index_cache import _INDEX_CACHE, index_details, load_index, write_index  # noqa: F401
from core.ingest import (  # noqa: F401
    IngestProgress,
    IngestResult,
    delete_knowledge_base,
    ingest_files,
    remove_document,
)
from core.retrieval import (  # noqa: F401
    RETRIEVAL_MODES,
    Hit,
    RetrievalSettings,
    Retrieved,
    VectorIndex,
    question_terms,
    relevant,
    retrieve,
    retrieve_many,
    search,
    search_many,
)

