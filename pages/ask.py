"""Ask: a chat over one knowledge base. Answers stream in and cite their sources as [1], [2]."""
from __future__ import annotations

import streamlit as st

from core.ask import GroundedAnswer, stream_grounded_answer
from core.errors import StudioError
from core.generation import DecodingSettings, GenerationStats
from core.retrieval import RetrievalSettings, retrieve
from ui.support_view import render_source_text, render_support_badge
from ui.common import similarity_note, knowledge_base_picker, md_escape, show_error, workspace
from ui.models import embedder_for, get_engine


def render_sources(answer: GroundedAnswer) -> None:
    if not answer.sources:
        return
    cited = set(answer.cited_numbers())
    report = answer.support()
    render_support_badge(report)
    with st.expander(f"Sources ({len(answer.sources)})", expanded=False):
        st.caption(similarity_note() + " The highlighted sentence is the one that supports the answer.")
        for number, hit in enumerate(answer.sources, start=1):
            pages = f"p. {hit.page}" if hit.page == hit.page_end else f"pp. {hit.page}–{hit.page_end}"
            marker = " · cited" if number in cited else " · supports the answer" if number in report.supporting else ""
            st.markdown(f"**[{number}] {md_escape(hit.document)}** · {pages} · similarity {hit.score:.2f}{marker}")
            render_source_text(hit.text, report.sentences.get(number))


def render_timing(answer: GroundedAnswer) -> None:
    stats = answer.stats
    if stats.new_tokens:
        first = f"{stats.first_token_s:.2f} s to first token · " if stats.first_token_s else ""
        engine = f" · answered by **{md_escape(answer.engine)}** ({md_escape(answer.model)})" if answer.engine else ""
        st.caption(f"{first}{stats.total_s:.1f} s · {stats.new_tokens} tokens · {stats.tokens_per_s:.1f} tokens/s{engine}")


def render_answer(answer: GroundedAnswer) -> None:
    with st.chat_message("user"):
        st.text(answer.question)
    with st.chat_message("assistant"):
        st.markdown(md_escape(answer.text))
        render_timing(answer)
        render_sources(answer)


def answer_settings() -> tuple[RetrievalSettings, DecodingSettings]:
    with st.expander("Answer settings"):
        col1, col2, col3 = st.columns(3)
        k = col1.slider("Sources per answer (k)", 1, 10, 4)
        max_new = col2.slider("Max new tokens", 16, 512, 150, 8)
        temperature = col3.slider("Temperature", 0.0, 1.5, 0.0, 0.1, help="0 = deterministic")
    return RetrievalSettings(k=k), DecodingSettings(max_new_tokens=max_new, temperature=temperature)


def answer_question(kb, question: str, retrieval: RetrievalSettings, decoding: DecodingSettings) -> GroundedAnswer | None:
    """Retrieve, stream the answer into the chat and show its sources; None when it failed (the error is shown)."""
    with st.chat_message("user"):
        st.text(question)
    with st.chat_message("assistant"):
        try:
            st.session_state["ask_busy"] = True
            with st.spinner("Searching the documents…"):
                sources = retrieve(workspace(), kb.name, question, embedder_for(kb), retrieval)
            engine = get_engine() if sources else None  # the sidebar's engine; nothing to load when nothing is relevant
            stats = GenerationStats()
            text = st.write_stream(stream_grounded_answer(engine, question, sources, decoding, stats))
            answer = GroundedAnswer(question, str(text).strip(), sources, stats,
                                    getattr(engine, "name", ""), getattr(engine, "model", ""))
            render_timing(answer)
            render_sources(answer)
            return answer
        except StudioError as error:
            show_error(error)
            return None
        finally:
            st.session_state["ask_busy"] = False


def main() -> None:
    st.title("Ask your documents")
    st.caption("Retrieval-augmented answers: the model reads the most relevant chunks and cites them. "
               "If nothing relevant is found, it says so instead of guessing.")
    kb = knowledge_base_picker()
    if kb is None:
        return
    if kb.chunk_count == 0:
        st.info("This knowledge base has no documents yet. Add some on the **Documents** page.")
        return
    retrieval, decoding = answer_settings()
    history: list[GroundedAnswer] = st.session_state.setdefault("ask_history", {}).setdefault(kb.name, [])
    for answer in history:
        render_answer(answer)
    question = st.chat_input(f"Ask about {kb.name}…", disabled=st.session_state.get("ask_busy", False))
    if question:
        answer = answer_question(kb, question, retrieval, decoding)
        if answer is not None:
            history.append(answer)
    # After the conversation, so it also shows right after the first answer
    if history and st.button("Clear conversation", icon=":material/delete_sweep:", key="ask_clear",
                             help="Start again on this knowledge base (the documents are not touched)."):
        history.clear()
        st.rerun()


main()
