"""The "Try it with sample documents" block of the Documents page (its own file, so the upload code stays apart)."""
from __future__ import annotations

import streamlit as st

from core.errors import StudioError
from core.ingest import IngestProgress
from core.samples import SAMPLE_KB, SampleSettings, build_sample_knowledge_base, sample_documents
from ui import state
from ui.common import md_escape, show_error
from ui.models import get_embedder


def sample_block(ws, has_knowledge_bases: bool) -> None:
    """One click: a knowledge base from the shipped sample PDFs, and Compare's demo questions from their gold questions."""
    done = st.session_state.pop("sample_build_message", None)
    if done:
        st.success(done, icon=":material/check_circle:")
    try:
        count = len(sample_documents())
    except StudioError:
        return  # no samples/ folder in this install: nothing to offer
    with st.container(border=not has_knowledge_bases):
        left, right = st.columns([3, 2], vertical_alignment="center")  # the button label must not be cut off
        left.caption(f"No documents at hand? {count} Wikipedia articles (CC BY-SA 4.0) with their SQuAD questions "
                     f"ship with the Studio: one click builds the knowledge base “{SAMPLE_KB}” and fills Compare's demo questions.")
        if not right.button("Try it with sample documents", icon=":material/auto_awesome:", key="sample_kb_button",
                            type="secondary" if has_knowledge_bases else "primary", width="stretch"):
            return
    bar = st.progress(0.0, text="Starting…")

    def on_progress(event: IngestProgress) -> None:
        share = (event.file_index + (event.done / event.total if event.total else 0)) / event.file_count
        bar.progress(min(share, 1.0), text=f"Sample {event.file_index + 1}/{event.file_count} · {event.file_name} · {event.stage}")

    try:
        with st.spinner("Reading, chunking and embedding the sample documents…"):
            build = build_sample_knowledge_base(ws, get_embedder(), SampleSettings(), progress=on_progress)
    except StudioError as error:
        show_error(error)
        return
    failed = [r.message for r in build.results if r.status == "failed"]
    for message in failed:
        st.error(md_escape(message), icon=":material/error:")
    state.set_active_kb(build.kb_name)
    st.session_state["sample_build_message"] = (
        f"Knowledge base “{build.kb_name}”: {build.added} sample documents added"
        f"{f', {len(build.results) - build.added - len(failed)} already there' if len(build.results) - build.added - len(failed) else ''}; "
        f"{len(build.questions)} demo questions are ready on the Compare page."
    )
    if not failed:
        st.rerun()
