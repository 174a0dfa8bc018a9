"""Evaluate, third tab: the update drill. Change a copy of a knowledge base and ask again: RAG sees the change at once,
the fine-tuned model only knows what it was trained on."""
from __future__ import annotations

import streamlit as st

from core import evaluation
from core.adapters import resolve_adapter
from core.errors import StudioError
from core.knowledge import list_documents, list_knowledge_bases
from ui.evaluate.shared import NONE, kb_embedder, variant_runner

DRILL_KEYS = ("drill_copy", "drill_before", "drill_after", "drill_reindex_s")


def _copy_exists(workspace, copy_name: str) -> bool:
    return st.session_state.get("drill_copy") == copy_name and copy_name in [kb.name for kb in list_knowledge_bases(workspace)]


def _drill_copy(workspace, drill_kb: str, copy_name: str) -> str:
    """The copy the update goes into, made once per drill (step 2 of a new drill makes a fresh one)."""
    if not _copy_exists(workspace, copy_name):
        evaluation.make_drill_copy(workspace, drill_kb)
        st.session_state["drill_copy"] = copy_name
    return copy_name


def _ask(workspace, target: str, drill_kb: str, drill_adapter: str, question: str) -> dict:
    """RAG over `target` and the tuned model (the base when no adapter is chosen), answering the same question."""
    from core.retrieval import RetrievalSettings, retrieve

    adapter_path = resolve_adapter(workspace, None if drill_adapter == NONE else drill_adapter)
    runner = variant_runner(str(adapter_path) if adapter_path else None, 64)
    hits = retrieve(workspace, target, question, kb_embedder(workspace, drill_kb), RetrievalSettings())
    tuned = "finetuned" if adapter_path else "base"
    return {
        "rag": runner.answer(question, "rag", hits).text,
        "sources": [f"[{n}] {h.document}, p. {h.page}" for n, h in enumerate(hits, 1)],
        "tuned": runner.answer(question, tuned, []).text,
        "tuned_label": "Fine-tuned" if adapter_path else "Base (no adapter chosen)",
    }


def _update(workspace, drill_kb: str, copy_name: str) -> None:
    """Step 2: a typed or uploaded document replaces one of the copy's, or a document is removed; the re-index is timed."""
    u1, u2 = st.columns(2)
    with u1:
        doc_name = st.text_input("Document name", value="update.txt", key="drill_doc_name")
        doc_text = st.text_area("Type a short document (ingested as .txt; an existing name is replaced)", key="drill_text")
        new_version = st.file_uploader("…or upload a new version of a document", type=["txt", "md", "pdf", "docx"], key="drill_upload")
        if st.button("Apply update"):
            try:
                if new_version is not None:
                    name, data = new_version.name, new_version.getvalue()
                else:
                    name = doc_name if doc_name.endswith((".txt", ".md")) else f"{doc_name}.txt"
                    data = doc_text.encode("utf-8")
                if not data.strip():
                    raise StudioError("The document is empty; type some text or upload a file.")
                seconds, message = evaluation.replace_document(workspace, _drill_copy(workspace, drill_kb, copy_name), name, data,
                                                               kb_embedder(workspace, drill_kb))
                st.session_state["drill_reindex_s"] = seconds
                st.success(f"{message} Re-indexed in {seconds:.2f} s.")
            except StudioError as error:
                st.error(str(error))
    with u2:
        docs = [d.name for d in list_documents(workspace, copy_name if _copy_exists(workspace, copy_name) else drill_kb)]
        to_remove = st.selectbox("Or remove a document", [NONE] + docs, key="drill_remove")
        if st.button("Remove document", disabled=to_remove == NONE):
            try:
                seconds = evaluation.remove_document_timed(workspace, _drill_copy(workspace, drill_kb, copy_name), to_remove)
                st.session_state["drill_reindex_s"] = seconds
                st.success(f"Removed {to_remove}; re-indexed in {seconds:.2f} s.")
            except StudioError as error:
                st.error(str(error))


def _before_and_after() -> None:
    before, after = st.session_state.get("drill_before"), st.session_state.get("drill_after")
    if not (before or after):
        return
    h1, h2 = st.columns(2)
    for column, label, key in ((h1, "RAG", "rag"), (h2, (after or before)["tuned_label"], "tuned")):
        with column.container(border=True):
            st.markdown(f"**{label}**")
            st.caption("Before")
            st.text(before[key] if before else "—")
            st.caption("After")
            st.text(after[key] if after else "—")
            if key == "rag" and after:
                st.caption("Sources after: " + "; ".join(after["sources"]) if after["sources"] else "No relevant sources")


def _update_costs(workspace) -> None:
    retrain_s, retrain_source = evaluation.retrain_cost(workspace)
    c1, c2 = st.columns(2)
    reindex = st.session_state.get("drill_reindex_s")
    c1.metric("Update cost, RAG: re-index", f"{reindex:.2f} s" if reindex is not None else "not measured yet")
    c2.metric("Update cost, fine-tuning: retrain", f"{retrain_s / 60:.1f} min")
    st.caption(f"Re-index: measured just now on this machine. Retrain: {retrain_source}.")


def _answer_step(label: str, key: str, ask) -> None:
    if st.button(label, disabled=ask is None):
        try:
            with st.spinner("Answering…"):
                st.session_state[key] = ask()
        except StudioError as error:
            st.error(str(error))


def drill_tab(workspace, kbs: list[str], adapters: list[str]) -> None:
    st.markdown("Change a document, ask the same question again: **RAG** sees the change at once; the **fine-tuned** "
                "model only knows what it was trained on.")
    if not kbs:
        st.info("Create a knowledge base on the Documents page first.")
        return
    d1, d2 = st.columns(2)
    drill_kb = d1.selectbox("Knowledge base", [k for k in kbs if not k.endswith(evaluation.DRILL_SUFFIX)] or kbs, key="drill_kb")
    drill_adapter = d2.selectbox("Adapter", [NONE] + adapters, index=1 if adapters else 0, key="drill_adapter",
                                 help="The newest completed run is preselected, as on the first tab.")
    question = st.text_input("Question", key="drill_question", placeholder="e.g. When does the warranty expire?")
    copy_name = evaluation.drill_copy_name(drill_kb)
    st.caption(f"The drill changes a copy, “{copy_name}”, made at step 2; your knowledge base “{drill_kb}” stays as it is.")

    def ask_about(target: str):
        return (lambda: _ask(workspace, target, drill_kb, drill_adapter, question)) if question else None

    _answer_step("1. Ask before the update", "drill_before", ask_about(drill_kb))
    st.markdown("**2. Update the knowledge base**")
    _update(workspace, drill_kb, copy_name)
    _answer_step("3. Ask again", "drill_after", ask_about(copy_name if st.session_state.get("drill_copy") == copy_name else drill_kb))
    _before_and_after()
    if st.session_state.get("drill_copy") == copy_name and st.button("Finish the drill (delete the copy)", key="drill_finish",
                                                                    icon=":material/delete:"):
        evaluation.remove_drill_copy(workspace, drill_kb)
        for key in DRILL_KEYS:
            st.session_state.pop(key, None)
        st.rerun()
    _update_costs(workspace)
