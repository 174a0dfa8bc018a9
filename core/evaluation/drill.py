"""The update drill: what it costs to bring each approach up to date when a document changes.

RAG re-indexes the changed document (timed here on a copy of the knowledge base, never the user's own);
fine-tuning retrains, and its cost is the recorded duration of the last completed training run.
"""
from __future__ import annotations

import logging
import time

from core.errors import StudioError
from core.settings import Workspace


log = logging.getLogger(__name__)

DRILL_SUFFIX = "-drill-copy"


def drill_copy_name(kb_name: str) -> str:
    return f"{kb_name[: 64 - len(DRILL_SUFFIX)]}{DRILL_SUFFIX}"


def make_drill_copy(workspace: Workspace, kb_name: str) -> str:
    """A fresh copy of a knowledge base (documents, chunks and vectors, no re-embedding) for the update drill, so
    the drill's update never lands in the user's own knowledge base. An older drill copy is replaced."""
    from core import lexical, lexical_index
    from core.catalogue import get_knowledge_base, open_catalogue
    from core.index_cache import write_index
    from core.ingest import delete_knowledge_base
    from core.storage import transaction

    source = get_knowledge_base(workspace, kb_name)
    target = drill_copy_name(kb_name)
    if _kb_exists(workspace, target):
        delete_knowledge_base(workspace, target)
    with open_catalogue(workspace) as conn:
        with transaction(conn):
            new_id = conn.execute(
                "INSERT INTO knowledge_bases (name, embedding_model, dimension, chunk_size, chunk_overlap) "
                "SELECT ?, embedding_model, dimension, chunk_size, chunk_overlap FROM knowledge_bases WHERE id = ?",
                (target, source.id)).lastrowid
            for doc in conn.execute("SELECT id, name, kind, sha256, size_bytes, page_count, chunk_count FROM documents WHERE kb_id = ?",
                                    (source.id,)).fetchall():
                doc_id = conn.execute(
                    "INSERT INTO documents (kb_id, name, kind, sha256, size_bytes, page_count, chunk_count) VALUES (?,?,?,?,?,?,?)",
                    (new_id, doc[1], doc[2], doc[3], doc[4], doc[5], doc[6])).lastrowid
                conn.execute("INSERT INTO chunks (kb_id, document_id, ordinal, page, page_end, text, embedding) "
                             "SELECT ?, ?, ordinal, page, page_end, text, embedding FROM chunks WHERE document_id = ? ORDER BY id",
                             (new_id, doc_id, doc[0]))
                lexical.add_document(conn, new_id, doc_id)  # word counts in this transaction, as ingest does
        copy = get_knowledge_base(workspace, target)
        write_index(workspace, conn, copy)
    lexical_index.sync(workspace, copy)  # the copy is searchable at once
    log.info("Update drill: copied knowledge base %s to %s", kb_name, target)
    return target


def remove_drill_copy(workspace: Workspace, kb_name: str) -> bool:
    """Delete the drill copy of kb_name (True when there was one)."""
    from core.ingest import delete_knowledge_base

    target = drill_copy_name(kb_name)
    if not _kb_exists(workspace, target):
        return False
    delete_knowledge_base(workspace, target)
    return True


def replace_document(workspace: Workspace, kb_name: str, name: str, data: bytes, embedder) -> tuple[float, str]:
    """Add a document, or a new version of one (the old version goes first). Returns (seconds, message)."""
    from core.catalogue import list_documents
    from core.ingest import ingest_files, remove_document

    started = time.perf_counter()
    existing = {d.name for d in list_documents(workspace, kb_name)} if _kb_exists(workspace, kb_name) else set()
    if name in existing:
        remove_document(workspace, kb_name, name)
    results = ingest_files(workspace, kb_name, [(name, data)], embedder)
    seconds = time.perf_counter() - started
    result = results[0]
    if result.status == "failed":
        raise StudioError(result.message)
    return seconds, result.message


def remove_document_timed(workspace: Workspace, kb_name: str, name: str) -> float:
    from core.ingest import remove_document

    started = time.perf_counter()
    remove_document(workspace, kb_name, name)
    return time.perf_counter() - started


def _kb_exists(workspace: Workspace, kb_name: str) -> bool:
    from core.catalogue import list_knowledge_bases

    return any(kb.name == kb_name for kb in list_knowledge_bases(workspace))


def last_run_duration(workspace: Workspace) -> tuple[float, str] | None:
    """Recorded seconds of the most recent *completed* training run (its record's duration_s), and its id.

    Cancelled or failed runs are skipped: their partial duration would understate a retrain."""
    from core.training import list_runs

    for run in list_runs(workspace):  # newest first
        if run.status == "completed" and run.duration_s:
            return float(run.duration_s), run.id
    return None


def retrain_cost(workspace: Workspace, training_tokens: int | None = None, epochs: int = 3) -> tuple[float, str]:
    """Seconds a retrain would take: the last completed run's recorded duration, else an estimate at the
    measured CPU LoRA speed (core.estimate.CPU_LORA_TOKENS_PER_S)."""
    from core.estimate import CPU_LORA_TOKENS_PER_S

    measured = last_run_duration(workspace)
    if measured:
        seconds, run_id = measured
        return seconds, f"measured: duration of the last completed training run in this workspace ({run_id})"
    if training_tokens is None:
        training_tokens = 0
        for path in workspace.datasets.glob("*/train.jsonl") if workspace.datasets.exists() else []:
            training_tokens = max(training_tokens, len(path.read_text(encoding="utf-8")) // 4)
        if not training_tokens:
            training_tokens = 20_000  # a small demo dataset: ~100 rows of ~200 tokens
    seconds = training_tokens * epochs / CPU_LORA_TOKENS_PER_S
    return seconds, (f"estimate: {training_tokens:,} training tokens x {epochs} epochs at {CPU_LORA_TOKENS_PER_S:.0f} tokens/s "
                     "(LoRA on SmolLM2-135M on this CPU); no measured run in this workspace")
