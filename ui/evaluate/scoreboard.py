"""Evaluate, second tab: the scoreboard of one evaluation, its bottom line, charts, every answer, best and worst, the judge."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import charts, evaluation
from ui import state
from ui.common import fmt_number as fmt
from ui.common import md_escape
from ui.evaluate.shared import evaluation_picker
from ui.judge_panel import judge_panel


def scoreboard_table(summary: dict) -> None:
    board = pd.DataFrame(evaluation.scoreboard_rows(summary))
    if board.empty:
        return
    # Text cells, so n/a reads "n/a" (not "None" or a blank) and every metric has the same digits.
    digits = {column.label: column.digits for column in evaluation.SCOREBOARD_COLUMNS}
    for column in board.columns[1:]:
        board[column] = board[column].map(lambda v, d=digits.get(column, 3): fmt(v, d))
    st.dataframe(board.set_index("variant"), width="stretch")
    st.caption("n/a = not applicable or not measurable, never a score.")


def retrieval_and_methods(summary: dict) -> None:
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


def bottom_line_box(rows: list[dict]) -> None:
    """The same measured bottom line the report ends with, against the Decide page's current recommendation."""
    from core.decision.export import decision_to_dict
    from core.evaluation import bottom_line, bottom_line_text

    decided = state.decide_result()
    decision = decision_to_dict(decided.decision) if decided else None
    with st.container(border=True):
        st.markdown("**Bottom line**")
        st.markdown("\n".join(f"- {md_escape(text)}" for text in bottom_line_text(bottom_line(rows, decision))))
        st.caption("Means with 95% intervals, n = answers that could be scored; a variant wins only when its interval "
                   "lies above the others'. The recommendation compared is the Decide page's current one.")


def per_question(rows: list[dict]) -> None:
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


def best_and_worst(summary: dict, rows: list[dict]) -> None:
    from core.report import pick_examples

    st.subheader("Best and worst")
    variant = st.selectbox("Variant", summary.get("variants", {}).keys(), format_func=evaluation.VARIANT_LABELS.get)
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


def scoreboard_tab(workspace) -> None:
    chosen = evaluation_picker(workspace, "Evaluation", state.started_evaluation(),
                               "No evaluations yet. Run one in the first tab, or with `python -m core evaluate`.")
    if chosen is None:
        return
    state.set_viewed_evaluation(chosen)
    summary = evaluation.load_summary(workspace, chosen)
    rows = evaluation.load_results(workspace, chosen)
    st.subheader("Scoreboard")
    scoreboard_table(summary)
    retrieval_and_methods(summary)
    if rows:
        bottom_line_box(rows)
        col_a, col_b = st.columns(2)
        col_a.plotly_chart(charts.scoreboard_figure(summary), key="scoreboard_chart")
        col_b.plotly_chart(charts.latency_figure(rows), key="latency_chart")
        st.plotly_chart(charts.metric_bars(summary), key="metric_bars")
        per_question(rows)
        best_and_worst(summary, rows)
    st.divider()
    judge_panel(workspace, chosen)
