"""Documents: knowledge bases. Upload, chunk, embed and index; list, inspect, remove and search."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import tempfile
from pathlib import Path

from core.documents import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, ExtractionLimits
from core.errors import StudioError
from core.index_cache import recall_below_goal, recall_text
from core.knowledge import (
    RETRIEVAL_MODES,
    ChunkingSettings,
    IngestProgress,
    RetrievalSettings,
    delete_knowledge_base,
    dismiss_ingest_failures,
    document_chunks,
    get_knowledge_base,
    index_details,
    ingest_files,
    list_documents,
    list_ingest_failures,
    list_knowledge_bases,
    remove_document,
    search,
    validate_kb_name,
)
from ui import state
from ui.samples import sample_block  # the one-click sample knowledge base (its own block)
from ui.common import similarity_note, md_escape, show_error, workspace
from ui.models import embedder_for, get_embedder

NEW = "+ New knowledge base"  # plain text: an emoji showed as an empty box where Chromium has no emoji font

def new_kb_form(ws, names: list[str]) -> None:
    """Name and chunking of a new knowledge base; chunking pre-filled from the Decide page's applied plan."""
    plan = state.applied_plan()
    defaults = ChunkingSettings(plan.chunk_size, plan.chunk_overlap) if plan else ChunkingSettings()
    with st.form("new_kb"):
        name = st.text_input("Name", value="my-docs" if "my-docs" not in names else "", max_chars=64)
        col1, col2 = st.columns(2)
        size = col1.number_input("Chunk size (characters)", 100, 8000, defaults.chunk_size, 50,
                                 help=ChunkingSettings.__dataclass_fields__["chunk_size"].metadata["help"])
        overlap = col2.number_input("Chunk overlap (characters)", 0, 4000, defaults.chunk_overlap, 10,
                                    help=ChunkingSettings.__dataclass_fields__["chunk_overlap"].metadata["help"])
        if plan:
            st.caption("Chunking pre-filled from the Decide page.")
        if st.form_submit_button("Create knowledge base", type="primary"):
            try:
                from core.knowledge import create_knowledge_base

                settings = ChunkingSettings(int(size), int(overlap))
                create_knowledge_base(ws, validate_kb_name(name), get_embedder(), settings)
                state.set_active_kb(name.strip())
                st.rerun()
            except StudioError as error:
                show_error(error)


def kb_header(ws, kb) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric("Documents", kb.document_count)
    c2.metric("Chunks", kb.chunk_count)
    c3.metric("Chunk size / overlap", f"{kb.chunk_size} / {kb.chunk_overlap}", help="characters")
    st.caption(f"Embeddings: {md_escape(kb.embedding_model.split(':')[-1])} · {kb.dimension} dimensions · "
               "hybrid retrieval (dense + BM25)")
    if kb.chunk_count:
        details = index_details(ws, kb)
        st.caption(f"Vector index: {details['index_type'] or 'n/a'} · {details['vectors'] or 0:,} vectors · "
                   f"~{(details['memory_bytes'] or 0) / 2**20:.1f} MB in memory · {recall_text(details)} · "
                   "keyword index: BM25 on disk (tantivy)")
        if recall_below_goal(details):
            st.caption(f":warning: The vector index finds only {details['recall_at_10']:.0%} of the exact top 10 "
                       f"(goal {details['recall_goal']:.0%}): dense search may miss chunks. Searching more IVF lists "
                       "(VectorIndexSettings.ivf_probe_share) raises it.")


def reading_limits() -> ExtractionLimits:
    with st.expander("Reading limits", expanded=False):
        field_help = {f: ExtractionLimits.__dataclass_fields__[f].metadata["help"]
                      for f in ("seconds_per_file", "max_page_stream_mb", "max_total_chars", "max_memory_mb")}
        base = ExtractionLimits()
        l1, l2, l3, l4 = st.columns(4)
        read_seconds = l1.number_input("Seconds per file", 1.0, 3600.0, base.seconds_per_file, 10.0, help=field_help["seconds_per_file"])
        page_mb = l2.number_input("Page content (MB)", 0.1, 4096.0, base.max_page_stream_mb, 8.0, help=field_help["max_page_stream_mb"])
        max_chars = l3.number_input("Characters per file", 1000, 500_000_000, base.max_total_chars, 1_000_000, help=field_help["max_total_chars"])
        memory_mb = l4.number_input("Reader memory (MB)", 256, 1_048_576, base.max_memory_mb, 512, help=field_help["max_memory_mb"])
    return ExtractionLimits(seconds_per_file=float(read_seconds), max_page_stream_mb=float(page_mb), max_total_chars=int(max_chars),
                            max_memory_mb=int(memory_mb))


def add_documents(ws, kb) -> None:
    uploads = st.file_uploader(
        "Drop files here", type=[s.lstrip(".") for s in SUPPORTED_SUFFIXES], accept_multiple_files=True,
        help=f"PDF, TXT, Markdown or DOCX, up to {MAX_FILE_BYTES // 2**20} MB each. Re-uploading the same file is detected.",
        key=f"uploader_{kb.name}_{st.session_state.get('upload_round', 0)}",
    )
    limits = reading_limits()
    if st.button("Add to knowledge base", type="primary", disabled=not uploads):
        bar = st.progress(0.0, text="Starting…")
        spool = tempfile.TemporaryDirectory(dir=ws.root, prefix=".uploads-")

        def spooled():
            # Each upload goes to disk and is read there by a bounded worker: no second in-memory copy of the batch.
            for number, upload in enumerate(uploads):
                path = Path(spool.name) / f"{number:04d}"
                path.write_bytes(upload.getbuffer())
                yield upload.name, path

        files = list(spooled())

        def on_progress(event: IngestProgress) -> None:
            share = (event.file_index + (event.done / event.total if event.total else 0)) / event.file_count
            bar.progress(min(share, 1.0), text=f"File {event.file_index + 1}/{event.file_count} · {md_escape(event.file_name)} · "
                         f"{event.stage} {event.done}/{event.total}")

        try:
            with st.spinner("Reading, chunking and embedding…"):
                results = ingest_files(ws, kb.name, files, embedder_for(kb), progress=on_progress, limits=limits)
        except StudioError as error:
            show_error(error)
        else:
            bar.progress(1.0, text="Done")
            st.session_state["ingest_results"] = results
            st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1
            st.rerun()
        finally:
            spool.cleanup()
    for result in st.session_state.pop("ingest_results", []):
        icon = {"added": ":material/check_circle:", "duplicate": ":material/content_copy:"}.get(result.status, ":material/error:")
        if result.status == "added":
            st.success(f"{md_escape(result.message)} ({result.seconds:.1f} s)", icon=icon)
        elif result.status == "duplicate":
            st.info(md_escape(result.message), icon=icon)
    ingest_failures(ws, kb)


def ingest_failures(ws, kb) -> None:
    failures = list_ingest_failures(ws, kb.name)
    if not failures:
        return
    st.markdown(f"**Files that could not be added ({len(failures)})**: they stay listed until you dismiss them.")
    for failure in failures:
        message_col, dismiss_col = st.columns([6, 1])
        message_col.error(md_escape(failure.message), icon=":material/error:")
        if dismiss_col.button("Dismiss", key=f"dismiss_{failure.id}"):
            dismiss_ingest_failures(ws, kb.name, failure.id)
            st.rerun()
    if len(failures) > 1 and st.button("Dismiss all"):
        dismiss_ingest_failures(ws, kb.name)
        st.rerun()


def documents_and_chunks(ws, kb) -> None:
    documents = list_documents(ws, kb.name)
    if not documents:
        st.info("No documents yet. Add some on the first tab.")
    else:
        table = pd.DataFrame(
            [{"Document": d.name, "Type": d.kind.upper(), "Pages": d.page_count, "Chunks": d.chunk_count,
              "Size (KB)": round(d.size_bytes / 1024, 1), "Added": d.added_at} for d in documents]
        )
        st.dataframe(table, hide_index=True, width="stretch")
        picked = st.selectbox("Document", [d.name for d in documents], key="doc_pick")
        view_col, remove_col = st.columns([3, 1])
        with remove_col:
            if st.button("Remove document", icon=":material/delete:", help="Removes its chunks and vectors too."):
                st.session_state["confirm_remove"] = picked
            if st.session_state.get("confirm_remove") == picked:
                st.warning(f"Remove {md_escape(picked)}?")
                if st.button("Yes, remove", type="primary"):
                    removed = remove_document(ws, kb.name, picked)
                    st.session_state.pop("confirm_remove")
                    st.toast(f"Removed {picked} ({removed} chunks)")
                    st.rerun()
        with view_col:
            chunks = document_chunks(ws, kb.name, picked)
            st.caption(f"{len(chunks)} chunks")
            for chunk in chunks[:200]:
                pages = f"p. {chunk.page}" if chunk.page == chunk.page_end else f"pp. {chunk.page}–{chunk.page_end}"
                with st.expander(f"Chunk {chunk.ordinal + 1} · {pages} · {len(chunk.text)} chars"):
                    st.text(chunk.text)
    with st.expander("Danger zone"):
        if st.button(f"Delete knowledge base “{kb.name}”", icon=":material/delete_forever:"):
            delete_knowledge_base(ws, kb.name)
            state.set_active_kb(None)
            st.rerun()


def search_chunks(ws, kb) -> None:
    col_q, col_k, col_mode = st.columns([4, 1, 1])
    query = col_q.text_input("Search the chunks", placeholder="e.g. When did the oil crisis begin?")
    k = col_k.number_input("Top k", 1, 50, 5)
    mode = col_mode.selectbox("Ranking", RETRIEVAL_MODES, help=RetrievalSettings.__dataclass_fields__["mode"].metadata["help"])
    if query.strip():
        try:
            hits = search(ws, kb.name, query, embedder_for(kb), RetrievalSettings(k=int(k), mode=mode))
        except StudioError as error:
            show_error(error)
        else:
            if not hits:
                st.info("No chunks yet: add documents first.")
            else:
                st.caption(similarity_note(mode))
            for hit in hits:
                pages = f"p. {hit.page}" if hit.page == hit.page_end else f"pp. {hit.page}–{hit.page_end}"
                with st.expander(f"#{hit.rank} · {md_escape(hit.document)} · {pages} · similarity {hit.score:.2f}", expanded=hit.rank <= 2):
                    st.text(hit.text)


def main() -> None:
    st.title("Documents")
    st.caption("Build knowledge bases from your PDFs, text and Word files. Every answer on the Ask and Compare pages cites them.")
    ws = workspace()
    bases = list_knowledge_bases(ws)
    sample_block(ws, has_knowledge_bases=bool(bases))
    names = [kb.name for kb in bases]
    current = state.active_kb()
    choice = st.selectbox(
        "Knowledge base", names + [NEW], index=names.index(current) if current in names else 0,
        help="Each knowledge base has its own documents, chunking settings and vector index.",
    )
    if choice == NEW:
        new_kb_form(ws, names)
        return
    kb = get_knowledge_base(ws, choice)
    state.set_active_kb(kb.name)
    kb_header(ws, kb)
    add_tab, docs_tab, search_tab = st.tabs(["Add documents", "Documents and chunks", "Search"])
    with add_tab:
        add_documents(ws, kb)
    with docs_tab:
        documents_and_chunks(ws, kb)
    with search_tab:
        search_chunks(ws, kb)


main()
