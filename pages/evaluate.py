"""Evaluate: the scoreboard on held-out questions, the update drill, and the decision report.

A thin view: everything it shows comes from core.evaluation / core.report. Evaluations run in a
background thread that only writes to the workspace; this page polls with st.fragment(run_every=...).
"""
from __future__ import annotations

from dataclasses import asdict, is_dataclass

import pandas as pd
import streamlit as st

from core.adapters import adapter_name

import ui  # noqa: F401  (first import leaves Streamlit's legacy pages/ router)

from core import charts, evaluation
from core.errors import StudioError
from core.knowledge import list_documents, list_knowledge_bases
from core.settings import get_workspace
from ui.common import generator_spec, md_escape
from ui.engine_picker import column_engine
from ui.common import fmt_number as fmt
from ui.judge_panel import judge_panel

NONE = "(none)"


@st.cache_resource(show_spinner="Loading the embedding model…")
def cached_embedder(workspace_root: str, kb_name: str):
    return evaluation.embedder_for_kb(get_workspace(workspace_root), kb_name)


def cached_runner(workspace_root: str, adapter: str | None, max_new_tokens: int, repetition_penalty: float = 1.0,
                  engines: dict | None = None):
    """Every variant of a question in one batch through the sidebar's engine (loaded once, shared with Compare and Ask);
    `engines` ({variant: EngineSpec}) gives some variants their own engine, as Compare's columns can."""
    from core.generation import DecodingSettings
    from ui.common import get_engine

    settings = DecodingSettings(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
    per_variant = {variant: get_engine(spec) for variant, spec in (engines or {}).items()}
    return evaluation.EngineVariantRunner(get_engine(), adapter, settings, per_variant)


st.title("Evaluate")
st.caption("Every variant answers the same held-out questions; every number below is measured on this machine.")
try:
    workspace = get_workspace()
    kbs = [kb.name for kb in list_knowledge_bases(workspace)]
    adapters = evaluation.list_adapter_runs(workspace)
except StudioError as error:
    st.error(str(error))
    st.stop()

run_tab, results_tab, drill_tab, report_tab = st.tabs(["Run an evaluation", "Scoreboard", "Update drill", "Decision report"])

# ---------------------------------------------------------------- run
with run_tab:
    left, right = st.columns(2)
    kb_options = [NONE] + kbs
    active_kb = st.session_state.get("active_kb")
    kb = left.selectbox("Knowledge base", kb_options, index=kb_options.index(active_kb) if active_kb in kbs else min(1, len(kbs)),
                        help="RAG and hybrid retrieve from it; retrieval metrics need it")
    adapter_options = [NONE] + adapters + ["folder path…"]
    adapter_choice = right.selectbox("Adapter (training run)", adapter_options, index=1 if adapters else 0,
                                     help="The newest completed run is preselected.",
                                     format_func=lambda run_id: adapter_name(workspace, run_id) if run_id in adapters else run_id)
    adapter = None if adapter_choice == NONE else adapter_choice
    if adapter_choice == "folder path…":
        adapter = right.text_input("Adapter folder", placeholder="/path/to/adapter") or None
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
        else:
            if kb == NONE:
                st.info("Choose a knowledge base to generate questions from its chunks.")
            else:
                count = st.number_input("Questions to generate", 1, 200, 10)
                questions = evaluation.generate_questions(workspace, kb, int(count))
                question_source = f"generated (cloze) from {kb}"
    except StudioError as error:
        st.error(str(error))
    if questions:
        st.caption(f"{len(questions)} questions loaded, e.g. “{' '.join(questions[0].question.split())[:120]}”")

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
    from ui.common import engine_spec, generator_spec

    from core.engines.registry import resolve_kind

    spec = engine_spec()
    st.caption(f"Engine: **{resolve_kind(spec, generator_spec())}**{' · ' + spec.model if spec.model else ''} "
               "(the sidebar's choice; every answer records the engine and model that gave it).")
    variant_engines, engine_problem = {}, None
    with st.expander("Engine per variant", icon=":material/memory:"):
        st.caption("Each variant can answer from its own engine, as on Compare: e.g. base and RAG from your team's "
                   "Ollama or vLLM model, the fine-tune from the local adapter.")
        for column, variant in zip(st.columns(max(1, len(variants))), variants):
            with column:
                try:
                    chosen = column_engine(variant, f"{evaluation.VARIANT_LABELS[variant]} engine")
                except StudioError as error:
                    st.error(str(error))
                    engine_problem = str(error)
                    continue
                if chosen is not None:
                    variant_engines[variant] = chosen
    start = st.button("Start evaluation", type="primary", disabled=not questions or not variants or engine_problem is not None)
    if start:
        try:
            settings = evaluation.EvaluationSettings(
                variants=tuple(variants), k=int(k), max_new_tokens=int(max_new_tokens), limit=int(limit) or None,
                out_of_scope=int(out_of_scope), repetition_penalty=float(repetition_penalty),
            )
            settings.validate()
            adapter_path = evaluation.resolve_adapter(workspace, adapter)
            kb_name = None if kb == NONE else kb
            embedder = cached_embedder(str(workspace.root), kb_name) if kb_name else None
            references = [q.answers[0] for q in questions if q.answers]
            style_check, style_note = evaluation.dataset_style_check(workspace, dataset_id, references)
            if style_check is not None:  # the cap must fit the taught format, else every answer is cut before its last line
                settings, cap_note = evaluation.fit_format_cap(workspace, settings, dataset_id, references)
                style_note = f"{style_note}; {cap_note}; scored on complete answers only (one stopped by the cap is n/a)"
                if settings.max_new_tokens != int(max_new_tokens):
                    st.info(cap_note[:1].upper() + cap_note[1:] + ".", icon=":material/straighten:")
            # Load in the script thread (st.cache_resource needs the script context), answer in the worker thread.
            runner = cached_runner(str(workspace.root), str(adapter_path) if adapter_path else None, settings.max_new_tokens,
                                   float(repetition_penalty), variant_engines)
            job = evaluation.start_evaluation_job(
                workspace,
                lambda: runner,
                questions, settings, kb=kb_name, embedder=embedder, adapter=adapter, question_source=question_source,
                style_check=style_check, style_note=style_note,
            )
            st.session_state["evaluation_id"] = job.key
        except StudioError as error:
            st.error(str(error))

    @st.fragment(run_every=1.5)
    def progress_panel() -> None:
        evaluation_id = st.session_state.get("evaluation_id")
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

    progress_panel()

# ---------------------------------------------------------------- scoreboard
with results_tab:
    records = evaluation.list_evaluations(workspace)
    if not records:
        st.info("No evaluations yet. Run one in the first tab, or with `python -m core evaluate`.")
    else:
        ids = [r.id for r in records]
        current = st.session_state.get("evaluation_id")
        labels = {r.id: f"{r.id} · {r.status} · {r.kb or 'no KB'} · {r.adapter or 'no adapter'} · {r.question_source}" for r in records}
        chosen = st.selectbox("Evaluation", ids, index=ids.index(current) if current in ids else 0, format_func=labels.get)
        st.session_state["report_evaluation_id"] = chosen
        summary = evaluation.load_summary(workspace, chosen)
        rows = evaluation.load_results(workspace, chosen)
        st.subheader("Scoreboard")
        board = pd.DataFrame(evaluation.scoreboard_rows(summary))
        if not board.empty:
            # Text cells, so n/a reads "n/a" (not "None" or a blank) and every metric has the same digits.
            digits = {column.label: column.digits for column in evaluation.SCOREBOARD_COLUMNS}
            for column in board.columns[1:]:
                board[column] = board[column].map(lambda v, d=digits.get(column, 3): fmt(v, d))
            st.dataframe(board.set_index("variant"), width="stretch")
            st.caption("n/a = not applicable or not measurable, never a score.")
        r = summary.get("retrieval", {})
        if r.get("questions_with_gold"):
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("Questions with known source", r["questions_with_gold"])
            m2.metric("hit@1", fmt(r.get("hit@1")))
            m3.metric(f"hit@{r['k']}", fmt(r.get(f"hit@{r['k']}")))
            m4.metric(f"MRR@{r['k']}", fmt(r.get("mrr")))
        elif r:
            st.caption("Retrieval hit@1, hit@k and MRR: n/a, since no question has a reference passage or a source document "
                       "with a short answer to check the retrieved chunks against.")
        if summary.get("groundedness_method"):
            st.caption(f"Groundedness is {summary['groundedness_method']}. Format adherence: {summary.get('style_note') or 'not checked'}.")
        if summary.get("unsupported_method"):
            st.caption(f"Unsupported claims (lower is better): {summary['unsupported_method']}.")
        if rows:
            from core.report import bottom_line, bottom_line_text

            with st.container(border=True):  # the same measured bottom line the report ends with
                st.markdown("**Bottom line**")
                st.markdown("\n".join(f"- {md_escape(text)}" for text in bottom_line_text(bottom_line(rows, st.session_state.get("decision")))))
                st.caption("Means with 95% intervals, n = answers that could be scored; a variant wins only when its interval "
                           "lies above the others'. The recommendation compared is the Decide page's current one.")
            col_a, col_b = st.columns(2)
            col_a.plotly_chart(charts.scoreboard_figure(summary), key="scoreboard_chart")
            col_b.plotly_chart(charts.latency_figure(rows), key="latency_chart")
            st.plotly_chart(charts.metric_bars(summary), key="metric_bars")
            st.subheader("Per question")
            table = pd.DataFrame(evaluation.question_rows(rows))
            f1, f2, f3 = st.columns([2, 2, 1])
            present = set(table["variant"])  # in the scoreboard's order (Base, RAG, Fine-tuned, Hybrid), not alphabetical
            ordered = [label for label in evaluation.VARIANT_LABELS.values() if label in present] + sorted(present - set(evaluation.VARIANT_LABELS.values()))
            show = f1.multiselect("Variants", ordered, default=ordered, key="eval_table_variants")
            text = f2.text_input("Search questions and answers")
            wrong_only = f3.checkbox("Only F1 < 0.5")
            view = table[table["variant"].isin(show)]
            if text:
                mask = view["question"].str.contains(text, case=False, regex=False) | view["answer"].str.contains(text, case=False, regex=False)
                view = view[mask]
            if wrong_only:
                view = view[view["F1"].fillna(1.0) < 0.5]
            # Text cells, like the scoreboard: a missing score (out-of-scope questions) reads n/a, never None
            shown = view.copy()
            for column, digits in (("F1", 3), ("EM", 0), ("ROUGE-L", 3), ("lexical support", 3), ("seconds", 1)):
                shown[column] = shown[column].map(lambda v, d=digits: fmt(v, d))
            st.dataframe(shown, width="stretch", hide_index=True)
            st.subheader("Best and worst")
            variant = st.selectbox("Variant", summary.get("variants", {}).keys(), format_func=evaluation.VARIANT_LABELS.get)
            from core.report import pick_examples

            best, worst = pick_examples(rows, variant, 3)
            b, w = st.columns(2)
            for column, items, title in ((b, best, "Best"), (w, worst, "Worst")):
                column.markdown(f"**{title}**")
                for item in items:
                    with column.container(border=True):
                        st.caption(f"F1 {fmt(item.get('f1'))} · {fmt(item.get('total_s'), 1)} s")
                        # one line, escaped: a multi-line question (instruction + passage) broke the bold markers
                        question = " ".join(str(item["question"]).split())  # the full text is in the per-question table
                        st.markdown(f"**{md_escape(question[:160])}{'…' if len(question) > 160 else ''}**")
                        st.text(item.get("answer") or item.get("error") or "")
                        st.caption("Reference: " + md_escape(" | ".join(" ".join(str(a).split()) for a in item.get("answers") or [])))
                        for c in item.get("citations") or []:
                            st.caption(f"[{c['n']}] {c['document']}, p. {c['page']}")
        st.divider()
        judge_panel(workspace, chosen)

# ---------------------------------------------------------------- update drill
with drill_tab:
    st.markdown("Change a document, ask the same question again: **RAG** sees the change at once; the **fine-tuned** "
                "model only knows what it was trained on.")
    if not kbs:
        st.info("Create a knowledge base on the Documents page first.")
    else:
        d1, d2 = st.columns(2)
        drill_kb = d1.selectbox("Knowledge base", [k_ for k_ in kbs if not k_.endswith(evaluation.DRILL_SUFFIX)] or kbs, key="drill_kb")
        drill_adapter = d2.selectbox("Adapter", [NONE] + adapters, index=1 if adapters else 0, key="drill_adapter",
                                     help="The newest completed run is preselected, as on the first tab.")
        question = st.text_input("Question", key="drill_question", placeholder="e.g. When does the warranty expire?")

        copy_name = evaluation.drill_copy_name(drill_kb)
        st.caption(f"The drill changes a copy, “{copy_name}”, made at step 2; your knowledge base “{drill_kb}” stays as it is.")

        def drill_copy() -> str:
            """The copy the update goes into, made once per drill (step 2 of a new drill makes a fresh one)."""
            if st.session_state.get("drill_copy") != copy_name or copy_name not in [kb_.name for kb_ in list_knowledge_bases(workspace)]:
                evaluation.make_drill_copy(workspace, drill_kb)
                st.session_state["drill_copy"] = copy_name
            return copy_name

        def ask(target: str) -> dict:
            from core.knowledge import RetrievalSettings, relevant, search

            root = str(workspace.root)
            adapter_path = evaluation.resolve_adapter(workspace, None if drill_adapter == NONE else drill_adapter)
            runner = cached_runner(root, str(adapter_path) if adapter_path else None, 64)
            hits = relevant(search(workspace, target, question, cached_embedder(root, drill_kb), RetrievalSettings()))
            tuned = "finetuned" if adapter_path else "base"
            return {
                "rag": runner.answer(question, "rag", hits).text,
                "sources": [f"[{n}] {h.document}, p. {h.page}" for n, h in enumerate(hits, 1)],
                "tuned": runner.answer(question, tuned, []).text,
                "tuned_label": "Fine-tuned" if adapter_path else "Base (no adapter chosen)",
            }

        if st.button("1. Ask before the update", disabled=not question):
            try:
                with st.spinner("Answering…"):
                    st.session_state["drill_before"] = ask(drill_kb)
            except StudioError as error:
                st.error(str(error))
        st.markdown("**2. Update the knowledge base**")
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
                    seconds, message = evaluation.replace_document(workspace, drill_copy(), name, data, cached_embedder(str(workspace.root), drill_kb))
                    st.session_state["drill_reindex_s"] = seconds
                    st.success(f"{message} Re-indexed in {seconds:.2f} s.")
                except StudioError as error:
                    st.error(str(error))
        with u2:
            has_copy = st.session_state.get("drill_copy") == copy_name and copy_name in [kb_.name for kb_ in list_knowledge_bases(workspace)]
            docs = [d.name for d in list_documents(workspace, copy_name if has_copy else drill_kb)]
            to_remove = st.selectbox("Or remove a document", [NONE] + docs, key="drill_remove")
            if st.button("Remove document", disabled=to_remove == NONE):
                try:
                    seconds = evaluation.remove_document_timed(workspace, drill_copy(), to_remove)
                    st.session_state["drill_reindex_s"] = seconds
                    st.success(f"Removed {to_remove}; re-indexed in {seconds:.2f} s.")
                except StudioError as error:
                    st.error(str(error))
        if st.button("3. Ask again", disabled=not question):
            try:
                with st.spinner("Answering…"):
                    st.session_state["drill_after"] = ask(copy_name if st.session_state.get("drill_copy") == copy_name else drill_kb)
            except StudioError as error:
                st.error(str(error))
        before, after = st.session_state.get("drill_before"), st.session_state.get("drill_after")
        if before or after:
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
        if st.session_state.get("drill_copy") == copy_name and st.button("Finish the drill (delete the copy)", key="drill_finish",
                                                                        icon=":material/delete:"):
            evaluation.remove_drill_copy(workspace, drill_kb)
            for key in ("drill_copy", "drill_before", "drill_after", "drill_reindex_s"):
                st.session_state.pop(key, None)
            st.rerun()
        retrain_s, retrain_source = evaluation.retrain_cost(workspace)
        c1, c2 = st.columns(2)
        reindex = st.session_state.get("drill_reindex_s")
        c1.metric("Update cost, RAG: re-index", f"{reindex:.2f} s" if reindex is not None else "not measured yet")
        c2.metric("Update cost, fine-tuning: retrain", f"{retrain_s / 60:.1f} min")
        st.caption(f"Re-index: measured just now on this machine. Retrain: {retrain_source}.")

# ---------------------------------------------------------------- report
with report_tab:
    records = evaluation.list_evaluations(workspace)
    if not records:
        st.info("Run an evaluation first; the report is built around its scoreboard.")
    else:
        ids = [r.id for r in records]
        default = st.session_state.get("report_evaluation_id")
        report_labels = {r.id: f"{r.id} · {r.status} · {r.kb or 'no KB'} · {r.adapter or 'no adapter'} · {r.question_source}" for r in records}
        report_id = st.selectbox("Evaluation for the report", ids, index=ids.index(default) if default in ids else 0, key="report_id",
                                 format_func=report_labels.get)
        decision = st.session_state.get("decision")
        estimate = st.session_state.get("estimate")
        decision = asdict(decision) if is_dataclass(decision) else decision
        estimate = asdict(estimate) if is_dataclass(estimate) else estimate
        st.caption("Questionnaire: " + ("included from the Decide page." if decision else "not answered in this session (the report says so)."))
        if st.button("Build the report"):
            from core.report import write_report

            st.session_state.pop("report_pdf_path", None)
            try:
                path = write_report(workspace, report_id, decision=decision, estimate=estimate)
                st.session_state["report_path"] = str(path)
                st.success(f"Saved {path}")
            except StudioError as error:
                st.error(str(error))
        path = st.session_state.get("report_path")
        if path:
            from pathlib import Path

            from core.report_pdf import pdf_available, write_report_pdf

            st.download_button("Download the report (HTML, opens offline)", Path(path).read_bytes(), file_name=Path(path).name, mime="text/html")
            if pdf_available():
                # on demand: printing starts a headless browser for a couple of seconds on this shared machine
                if st.button("Make a PDF of the report"):
                    try:
                        with st.spinner("Printing the PDF with headless Chromium…"):
                            st.session_state["report_pdf_path"] = str(write_report_pdf(path))
                    except StudioError as error:
                        st.error(str(error))
                pdf_path = st.session_state.get("report_pdf_path")
                if pdf_path and Path(pdf_path).exists():
                    st.download_button("Download the report (PDF)", Path(pdf_path).read_bytes(), file_name=Path(pdf_path).name, mime="application/pdf")
            else:
                st.caption("No PDF here: it is printed by headless Chromium, which this server does not have (apt-get install chromium, "
                           "or set STUDIO_CHROMIUM). The HTML report is complete and opens offline; a browser's Print > Save as PDF works too.")
