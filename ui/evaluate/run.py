"""Evaluate, first tab: choose questions, variants and engines, start an evaluation and follow its progress.

The evaluation runs in a background thread that only writes to the workspace; the progress panel polls it.
"""
from __future__ import annotations

import streamlit as st

from core import evaluation
from core.adapters import adapter_name, resolve_adapter
from core.errors import StudioError
from ui import state
from ui.engine_picker import engines_per_variant
from ui.evaluate.shared import NONE, kb_embedder, variant_runner

FOLDER = "folder path…"


def choose_questions(workspace, kb: str) -> tuple[list, str, str | None]:
    """(questions, where they came from, the held-out dataset's id or None)."""
    source = st.radio("Questions", ["Held-out split of a training dataset", "Upload JSONL or CSV", "Generate from the documents"],
                      horizontal=True)
    questions: list = []
    question_source = ""
    dataset_id = None
    try:
        if source.startswith("Held-out"):
            sets = evaluation.list_heldout_sets(workspace)
            if sets:
                dataset_id = st.selectbox("Dataset", sets)
                questions = evaluation.load_heldout(workspace, dataset_id)
                question_source = f"held-out split of {dataset_id}"
            else:
                st.info("No dataset has a held-out split yet: build one on the Training data page, or upload questions.")
        elif source.startswith("Upload"):
            upload = st.file_uploader("Question file", type=["jsonl", "json", "csv"],
                                      help="fields: question, answer or answers, optional source_doc, source_passage")
            if upload is not None:
                questions = evaluation.parse_questions(upload.name, upload.getvalue())
                question_source = upload.name
        elif kb == NONE:
            st.info("Choose a knowledge base to generate questions from its chunks.")
        else:
            count = st.number_input("Questions to generate", 1, 200, 10)
            questions = evaluation.generate_questions(workspace, kb, int(count))
            question_source = f"generated (cloze) from {kb}"
    except StudioError as error:
        st.error(str(error))
    if questions:
        st.caption(f"{len(questions)} questions loaded, e.g. “{' '.join(questions[0].question.split())[:120]}”")
    return questions, question_source, dataset_id


def variant_engines(variants: list[str]) -> tuple[dict, str | None]:
    """({variant: EngineSpec} for the variants given their own engine, the first problem with a choice or None)."""
    from core.engines.registry import resolve_kind

    spec = state.engine_spec()
    st.caption(f"Engine: **{resolve_kind(spec, state.generator_spec())}**{' · ' + spec.model if spec.model else ''} "
               "(the sidebar's choice; every answer records the engine and model that gave it).")
    return engines_per_variant(variants, evaluation.VARIANT_LABELS, "Engine per variant",
                               "Each variant can answer from its own engine, as on Compare: e.g. base and RAG from your team's "
                               "Ollama or vLLM model, the fine-tune from the local adapter.")


def start(workspace, settings, questions, question_source: str, dataset_id, kb_name, adapter, engines: dict) -> None:
    """Validate, fit the token cap to a taught format, load the models here and hand the answering to a job."""
    settings.validate()
    adapter_path = resolve_adapter(workspace, adapter)
    embedder = kb_embedder(workspace, kb_name) if kb_name else None
    references = [q.answers[0] for q in questions if q.answers]
    style_check, style_note = evaluation.dataset_style_check(workspace, dataset_id, references)
    if style_check is not None:  # the cap must fit the taught format, else every answer is cut before its last line
        asked_cap = settings.max_new_tokens
        settings, cap_note = evaluation.fit_format_cap(workspace, settings, dataset_id, references)
        style_note = f"{style_note}; {cap_note}; scored on complete answers only (one stopped by the cap is n/a)"
        if settings.max_new_tokens != asked_cap:
            st.info(cap_note[:1].upper() + cap_note[1:] + ".", icon=":material/straighten:")
    # Load in the script thread (the model cache needs the script context), answer in the worker thread.
    runner = variant_runner(str(adapter_path) if adapter_path else None, settings.max_new_tokens,
                            settings.repetition_penalty, engines)
    job = evaluation.start_evaluation_job(
        workspace, lambda: runner, questions, settings, kb=kb_name, embedder=embedder, adapter=adapter,
        question_source=question_source, style_check=style_check, style_note=style_note,
    )
    state.set_started_evaluation(job.key)


@st.fragment(run_every=1.5)
def progress_panel(workspace) -> None:
    evaluation_id = state.started_evaluation()
    if not evaluation_id:
        return
    try:
        record = evaluation.get_evaluation(workspace, evaluation_id)
    except StudioError as error:
        st.error(str(error))
        return
    job = evaluation.get_job(evaluation_id)
    st.progress(record.done / max(1, record.total), text=f"Evaluation {evaluation_id}: {record.done} of {record.total} answers · {record.status}")
    if record.status == "running" and job is not None and job.running:
        if st.button("Cancel", key="cancel_eval"):
            job.cancel()
            st.toast("Cancelling after the current answer…")
    elif record.status == "failed":
        st.error(f"The evaluation failed: {record.error}")
    elif record.status in ("done", "cancelled"):
        st.success(f"Evaluation {record.status}. Open the Scoreboard tab.")
        if st.session_state.get("evaluation_refreshed") != evaluation_id:
            st.session_state["evaluation_refreshed"] = evaluation_id
            st.rerun()  # once, so the Scoreboard tab shows the finished run
    elif job is None:
        st.warning("This evaluation is not running in this app process (it was interrupted); its partial results are kept.")


def run_tab(workspace, kbs: list[str], adapters: list[str]) -> None:
    left, right = st.columns(2)
    kb_options = [NONE] + kbs
    active_kb = state.active_kb()
    kb = left.selectbox("Knowledge base", kb_options, index=kb_options.index(active_kb) if active_kb in kbs else min(1, len(kbs)),
                        help="RAG and hybrid retrieve from it; retrieval metrics need it")
    adapter_choice = right.selectbox("Adapter (training run)", [NONE] + adapters + [FOLDER], index=1 if adapters else 0,
                                     help="The newest completed run is preselected.",
                                     format_func=lambda run_id: adapter_name(workspace, run_id) if run_id in adapters else run_id)
    adapter = None if adapter_choice == NONE else adapter_choice
    if adapter_choice == FOLDER:
        adapter = right.text_input("Adapter folder", placeholder="/path/to/adapter") or None
    questions, question_source, dataset_id = choose_questions(workspace, kb)

    available = [v for v in evaluation.VARIANTS
                 if (kb != NONE or v not in evaluation.USES_CONTEXT) and (adapter or v not in evaluation.USES_ADAPTER)]
    variants = st.multiselect("Variants", list(evaluation.VARIANTS), default=available,
                              format_func=evaluation.VARIANT_LABELS.get,
                              help="fine-tuned and hybrid need an adapter; RAG and hybrid need a knowledge base")
    c1, c2, c3, c4 = st.columns(4)
    limit = c1.number_input("Limit (0 = all)", 0, 10000, 10)
    k = c2.number_input("Chunks (k)", 1, 50, 5)
    max_new_tokens = c3.number_input("Max new tokens", 8, 1024, 48)
    out_of_scope = c4.number_input("Out-of-scope questions", 0, len(evaluation.OUT_OF_SCOPE_QUESTIONS), 3,
                                   help="built-in questions the documents can't answer: RAG should say so")
    repetition_penalty = st.number_input(
        "Repetition penalty", 1.0, 2.0, 1.0, 0.05,
        help=evaluation.EvaluationSettings.__dataclass_fields__["repetition_penalty"].metadata["help"],
    )
    st.caption("Optional RAGAS scores from a judge model (any OpenAI-compatible endpoint) are added afterwards, "
               "in the Scoreboard tab.")
    if questions and variants:
        asked = min(len(questions), int(limit)) if int(limit) else len(questions)
        total = asked + int(out_of_scope)
        st.caption(f"Will ask {asked} question{'s' * (asked != 1)} + {int(out_of_scope)} out-of-scope = {total}, "
                   f"× {len(variants)} variant{'s' * (len(variants) != 1)} = **{total * len(variants)} answers**.")
    engines, engine_problem = variant_engines(variants)
    if st.button("Start evaluation", type="primary", disabled=not questions or not variants or engine_problem is not None):
        try:
            settings = evaluation.EvaluationSettings(
                variants=tuple(variants), k=int(k), max_new_tokens=int(max_new_tokens), limit=int(limit) or None,
                out_of_scope=int(out_of_scope), repetition_penalty=float(repetition_penalty),
            )
            start(workspace, settings, questions, question_source, dataset_id, None if kb == NONE else kb, adapter, engines)
        except StudioError as error:
            st.error(str(error))
    progress_panel(workspace)
