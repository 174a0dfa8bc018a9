"""Compare: one question, up to four columns (base, RAG, fine-tuned, hybrid), streamed side by side.

A thin view: core.compare plans the variants, core.engines generates them (one batch per engine; a column may pick its own engine). Never calls
st.set_page_config (app.py does). User and model text is never rendered as HTML.
"""
from __future__ import annotations

import time

import streamlit as st

from ui import state
from ui.support_view import render_source_text, render_support_badge
from ui.common import md_escape, md_model_text, similarity_note
from ui.engine_picker import engines_per_variant
from ui.models import embedder_for, get_engine

from core.adapters import find_adapters
from core.compare import (
    Comparison,
    export_html,
    export_markdown,
    load_demo_questions,
    save_demo_questions,
    stream_comparison,
)
from core.errors import StudioError
from core.variants import USES_ADAPTER, USES_CONTEXT, VARIANT_BLURBS, VARIANT_TITLES, VARIANTS
from core.generation import DecodingSettings
from core.knowledge import RetrievalSettings, list_knowledge_bases
from core.settings import get_workspace

HISTORY = "compare_history"
PENDING = "compare_pending"
QUEUE = "compare_queue"
ICONS = {"base": ":material/smart_toy:", "rag": ":material/menu_book:", "finetuned": ":material/tune:", "hybrid": ":material/join:"}


def _retrieve(workspace, kb_name: str, question: str, retrieval: RetrievalSettings):
    from core.knowledge import get_knowledge_base
    from core.retrieval import retrieve

    # Queries must use the embedding model the knowledge base was built with.
    embedder = embedder_for(get_knowledge_base(workspace, kb_name))
    return retrieve(workspace, kb_name, question, embedder, retrieval)


def _timing_line(answer) -> str:
    s = answer.stats
    first = f"{s.first_token_s:.2f} s" if s.first_token_s is not None else "–"
    engine = f"  \n:material/memory: {md_escape(answer.engine_label)}" if answer.engine else ""
    return (f":material/timer: first token **{first}** · total **{s.total_s:.1f} s**  \n:material/speed: **{s.tokens_per_s:.1f}** tok/s · "
            f"{s.new_tokens} tokens{engine}")


def _render_sources(answer, report) -> None:
    if not answer.hits:
        return
    with st.expander(f"Sources ({len(answer.hits)})", icon=":material/description:"):
        st.caption(similarity_note() + " The highlighted sentence is the one that supports the answer.")
        for number, hit in enumerate(answer.hits, start=1):
            pages = f"p. {hit.page}" if hit.page == hit.page_end else f"pp. {hit.page}–{hit.page_end}"
            st.markdown(f"**[{number}] {md_escape(hit.document)}** · {pages} · similarity {hit.score:.2f}")
            render_source_text(hit.text, report.sentences.get(number) if report else None)


def _render_answer(answer) -> None:
    """A finished column: answer, timings, sources. Model text goes through markdown, never HTML."""
    if answer.error:
        (st.info if answer.variant in USES_ADAPTER and "Fine-tune page" in answer.error else st.error)(answer.error)
        return
    if answer.note:
        st.warning(answer.text, icon=":material/search_off:")
        st.caption(answer.note)
        return
    st.markdown(md_model_text(answer.text) or "_(empty answer)_")
    report = None
    if answer.hits:
        report = answer.support()
        render_support_badge(report)
    elif answer.checked_against:
        # base / fine-tuned saw no documents: check them against what retrieval found, and say so
        render_support_badge(answer.support(), note="(checked against the retrieved passages; this column did not see them)")
    st.caption(_timing_line(answer))
    _render_sources(answer, report)


def _column_header(variant: str) -> None:
    st.markdown(f"#### {ICONS[variant]} {VARIANT_TITLES[variant]}")
    st.caption(VARIANT_BLURBS[variant])


def _render_turn(comparison: Comparison) -> None:
    with st.chat_message("user"):
        st.markdown(md_escape(comparison.question))  # the user's text, shown literally
    columns = st.columns(len(comparison.answers), gap="small")
    for column, answer in zip(columns, comparison.answers.values()):
        with column, st.container(border=True):
            _column_header(answer.variant)
            _render_answer(answer)
    st.caption(f"All columns in {comparison.wall_s:.1f} s on {md_escape(comparison.engine or 'the engine')} · "
               f"knowledge base: {md_escape(comparison.kb or '–')}")


def _generate(workspace, question: str, options: dict) -> Comparison:
    """Stream every chosen column into its own placeholder; returns the finished comparison."""
    variants = options["variants"]
    hits = []
    if options["kb"] and any(v in USES_CONTEXT for v in variants):
        hits = _retrieve(workspace, options["kb"], question, options["retrieval"])
    engines = {variant: get_engine(spec) for variant, spec in options["engines"].items() if variant in variants}
    # The sidebar's engine answers the other columns; it is not even loaded when every column has its own.
    engine = get_engine() if any(v not in engines for v in variants) else next(iter(engines.values()))
    comparison, events = stream_comparison(
        engine, question, variants, hits=hits, adapter=options["adapter"], settings=options["decoding"], system=options["system"],
        engines=engines,
    )
    comparison.kb = options["kb"]
    with st.chat_message("user"):
        st.markdown(md_escape(question))
    columns = st.columns(len(variants), gap="small")
    bodies, captions = {}, {}
    for column, variant in zip(columns, variants):
        with column, st.container(border=True):
            _column_header(variant)
            bodies[variant] = st.empty()
            captions[variant] = st.empty()
            answer = comparison.answers[variant]
            if answer.error or answer.note:
                with bodies[variant].container():
                    _render_answer(answer)
            else:
                bodies[variant].markdown("_thinking…_")
    last_paint: dict[str, float] = {}
    for event in events:
        answer = comparison.answers[event.key]
        now = time.perf_counter()
        if event.kind == "text" and now - last_paint.get(event.key, 0.0) < 0.15:
            continue  # ~7 repaints/s per column keeps the browser smooth
        last_paint[event.key] = now
        if event.kind == "error":
            bodies[event.key].error(answer.error)
            continue
        bodies[event.key].markdown(md_model_text(answer.text) + ("" if event.kind == "done" else " ▌"))
        captions[event.key].caption(_timing_line(answer))
    return comparison


def _settings_form(workspace) -> dict | None:
    kbs = list_knowledge_bases(workspace)
    adapters = find_adapters(workspace)
    plan = state.applied_plan()
    preselect = [v for v in (plan.compare_variants if plan else []) if v in VARIANTS] or list(VARIANTS)

    top = st.columns(2)
    kb_names = [kb.name for kb in kbs]
    kb = top[0].selectbox(
        "Knowledge base", kb_names, index=0 if kb_names else None, placeholder="No knowledge base yet",
        help="RAG and hybrid retrieve from it. Create one on the Documents page.", key="compare_kb",
    )
    adapter_labels = {str(info.path): info.label for info in adapters}
    adapter = top[1].selectbox(
        "Adapter", list(adapter_labels), index=0 if adapter_labels else None, format_func=adapter_labels.get,
        placeholder="No adapter yet", help="Fine-tuned and hybrid use it. Train one on the Fine-tune page.", key="compare_adapter",
    )
    variants = st.pills(
        "Columns", list(VARIANTS), selection_mode="multi", default=preselect, key="compare_variants",
        format_func=lambda v: {"hybrid": "Hybrid"}.get(v, VARIANT_TITLES[v]),
    )
    if not kb_names:
        st.info("No knowledge base yet: RAG and hybrid will say so. Add documents on the **Documents** page.", icon=":material/info:")
    if not adapters:
        st.info("No adapter yet: train one on the **Fine-tune** page to fill the fine-tuned and hybrid columns.", icon=":material/info:")

    with st.expander("Generation settings (the same for every column)", icon=":material/settings:"):
        left, middle, right = st.columns(3)
        max_new = left.slider("Max new tokens", 16, 512, 150, 8, key="compare_max_new")
        temperature = middle.slider("Temperature", 0.0, 1.5, 0.0, 0.05, key="compare_temperature", help="0 = greedy and deterministic")
        top_p = right.slider("Top-p", 0.05, 1.0, 0.9, 0.05, key="compare_top_p")
        seed = left.number_input("Seed", 0, 2**31 - 1, 0, key="compare_seed")
        k = middle.slider("Chunks retrieved (k)", 1, 10, 3, key="compare_k", help="RAG and hybrid get the same chunks")
        min_score = right.slider("Minimum relevance", 0.0, 1.0, 0.30, 0.05, key="compare_min_score",
                                 help="cosine similarity below which a chunk is not given to RAG and hybrid")
        term_check = middle.checkbox(
            "Refuse unknown names", True, key="compare_term_check",
            help="RAG and hybrid say the documents don't cover it when the question names something (a capitalised word "
                 "or a number) the documents never mention; chunks lacking a number the question asks about are dropped",
        )
        system = st.text_area("System voice (optional)", "", key="compare_system", placeholder="e.g. You are our support desk. Answer in two sentences.")
    engines, problem = engines_per_variant(
        [v for v in VARIANTS if v in (variants or [])], VARIANT_TITLES, "Engine per column",
        "Each column can answer from its own engine: e.g. base and RAG from your team's Ollama or vLLM model, "
        "the fine-tune from the local adapter. A server column's model is what answers (serve your fine-tune under "
        "its own name for the fine-tuned column).")
    if problem is not None:
        return None
    try:
        decoding = DecodingSettings(max_new_tokens=int(max_new), temperature=float(temperature), top_p=float(top_p), seed=int(seed))
        decoding.validate()
        retrieval = RetrievalSettings(k=int(k), min_score=float(min_score), term_check=bool(term_check))
        retrieval.validate()
    except StudioError as error:
        st.error(str(error))
        return None
    return {
        "kb": kb, "adapter": adapter, "variants": [v for v in VARIANTS if v in (variants or [])],
        "decoding": decoding, "retrieval": retrieval, "system": system.strip() or None, "engines": engines,
    }


def _demo_questions(workspace, kb: str | None, busy: bool) -> None:
    key = kb or "(no knowledge base)"
    with st.expander("Demo questions", icon=":material/playlist_play:"):
        stored = load_demo_questions(workspace, key)
        text = st.text_area("One question per line (saved per knowledge base)", "\n".join(stored), key=f"compare_demo_{key}", height=120)
        left, right = st.columns(2)
        if left.button("Save list", icon=":material/save:", disabled=busy, width="stretch"):
            try:
                saved = save_demo_questions(workspace, key, text.splitlines())
                st.toast(f"Saved {len(saved)} demo questions for {key}.")
            except StudioError as error:
                st.error(str(error))
        if right.button("Run all, one after another", icon=":material/play_arrow:", type="primary", disabled=busy, width="stretch"):
            questions = [q.strip() for q in text.splitlines() if q.strip()]
            if questions:
                st.session_state[QUEUE] = questions[1:]
                st.session_state[PENDING] = questions[0]
                st.rerun()


def _export(history: list[Comparison]) -> None:
    if not history:
        return
    left, right, clear = st.columns([2, 2, 1])
    left.download_button("Export Markdown", export_markdown(history), "comparison.md", "text/markdown", icon=":material/download:", width="stretch")
    right.download_button("Export HTML", export_html(history), "comparison.html", "text/html", icon=":material/download:", width="stretch")
    if clear.button("Clear", icon=":material/delete:", width="stretch"):
        st.session_state[HISTORY] = []
        st.rerun()


def main() -> None:
    st.title("Compare")
    st.caption("One question, every approach side by side: what each answers, where its facts came from, and how fast it was.")
    workspace = get_workspace()
    history: list[Comparison] = st.session_state.setdefault(HISTORY, [])
    pending = st.session_state.get(PENDING)
    options = _settings_form(workspace)
    _demo_questions(workspace, options["kb"] if options else None, busy=pending is not None)

    for comparison in history:
        _render_turn(comparison)
    if st.session_state.get("compare_error"):
        st.error(st.session_state.pop("compare_error"))

    question = st.chat_input("Ask one question; every column answers it", disabled=pending is not None or options is None, key="compare_input")
    if question and pending is None:
        st.session_state[PENDING] = question  # rerun first so the input shows disabled while we generate
        st.rerun()
    if pending is not None and options is not None:
        if not options["variants"]:
            st.warning("Choose at least one column.")
            st.session_state[PENDING] = None
        else:
            try:
                comparison = _generate(workspace, pending, options)
                history.append(comparison)
            except StudioError as error:
                st.session_state["compare_error"] = f"{pending}: {error}"
            finally:
                queue = st.session_state.get(QUEUE) or []
                st.session_state[PENDING] = queue.pop(0) if queue else None
                st.session_state[QUEUE] = queue
            st.rerun()
    _export(history)


main()
