"""Decide: questionnaire -> transparent recommendation, cost estimate, and a plan for the other pages.

Thin view: widgets -> core.decision / core.estimate -> render. app.py sets the page config.
Session state of this page: "decide_answers" (question id -> answer), "decide_q_<id>" (widgets),
"decide_est_*" (estimate inputs). What other pages read goes through ui.state: the current
recommendation and estimate (the report's), and the plan Apply saves.
"""
from __future__ import annotations

import plotly.graph_objects as go  # not plotly.express: px.bar imports pandas+pyarrow (4 s of a cold start under load)
import streamlit as st

import ui  # noqa: F401  (first import leaves Streamlit's legacy pages/ router)
from ui import state as shared

from core.decision.export import render_markdown
from core.decision.plan import estimate_defaults, hardware_note, plan_pipelines
from core.decision.questions import OPTION_LABELS, OPTIONS, QUESTION_GROUPS, QUESTIONS_BY_ID, default_answers
from core.decision.scoring import contribution_rows, decide
from core.errors import StudioError
from core.estimate.formulas import EstimateInputs, estimate
from core.estimate.specs import HARDWARE, MODELS
from core.estimate.summary import human_bytes, human_seconds, summary_lines
from core.models import EMBEDDED_GENERATOR

COLORS = {"RAG": "#0EA5E9", "Fine-tune": "#F59E0B", "Hybrid": "#4F46E5"}
ANSWERS_KEY = "decide_answers"
YOURS = "yours"  # the model key of "Your model": a folder or hub id, sized from its config.json
state = st.session_state


def widget_key(qid: str) -> str:
    return f"decide_q_{qid}"


def reset_answers() -> None:
    state[ANSWERS_KEY] = default_answers()
    for qid, value in state[ANSWERS_KEY].items():
        state[widget_key(qid)] = value


def ask(qid: str) -> str:
    """One widget per question, restored from the saved answers after page switches."""
    q = QUESTIONS_BY_ID[qid]
    key = widget_key(qid)
    if key not in state:
        state[key] = state[ANSWERS_KEY].get(qid, q.default)
    labels = {c.value: c.label for c in q.choices}
    common = dict(options=q.values, format_func=labels.__getitem__, help=q.help, key=key)
    if q.widget == "slider":
        return st.select_slider(q.label, **common)
    if q.widget == "radio":
        return st.radio(q.label, horizontal=len(q.choices) <= 3, **common)
    return st.selectbox(q.label, **common)


def contribution_chart(decision):
    rows = contribution_rows(decision)
    questions = list(dict.fromkeys(r["question"] for r in rows))
    fig = go.Figure()
    for option, color in COLORS.items():  # one bar series per option, grouped per question
        mine = [r for r in rows if r["option"] == option]
        fig.add_trace(go.Bar(
            name=option, x=[r["points"] for r in mine], y=[r["question"] for r in mine], orientation="h", marker_color=color,
            customdata=[[r["answer"]] for r in mine],
            hovertemplate="%{y}<br>answer: %{customdata[0]}<br>points: %{x}<extra>" + option + "</extra>",
        ))
    fig.update_layout(barmode="group")
    fig.update_yaxes(categoryorder="array", categoryarray=questions, autorange="reversed")  # first question on top
    fig.update_layout(height=540, margin=dict(l=0, r=10, t=40, b=0), legend_title_text="",
                      legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0), xaxis_title="points toward each option",
                      yaxis_title="", bargap=0.25)
    fig.add_vline(x=0, line_width=1, line_color="#94A3B8")
    return fig


def follow_answers(answers) -> None:
    """The estimate follows the questionnaire: a changed compute answer re-sets hardware, model and training tokens,
    a changed volume answer the document count; a hand-picked value stays until the answer it depends on changes."""
    defaults = estimate_defaults(answers)
    if sidebar_model():  # the model the user works with beats the catalogue's stand-in
        defaults["model"] = YOURS
    basis = {"compute_budget": answers["compute_budget"], "doc_volume": answers["doc_volume"]}
    previous = state.get("decide_est_basis") or {}
    follows = {"decide_est_hardware": ("compute_budget", "hardware"), "decide_est_model": ("compute_budget", "model"),
               "decide_est_tokens": ("compute_budget", "train_tokens"), "decide_est_docs": ("doc_volume", "docs")}
    for key, (question, default) in follows.items():
        # Streamlit drops a widget's state when another page runs: refill it as well as on a changed answer
        if previous.get(question) != basis[question] or key not in state:
            state[key] = defaults[default]
    state["decide_est_basis"] = basis


def sidebar_model() -> str:
    """The sidebar's generator when the user chose one ("" for the embedded default, which the catalogue holds)."""
    chosen = shared.generator_spec().model_id
    return "" if chosen == EMBEDDED_GENERATOR else chosen


def own_model(column):
    """The ModelSpec of the folder or hub id typed in, from its config.json alone (None until one is read)."""
    from ui.common import md_escape, workspace
    from ui.models import model_spec_for

    if "decide_est_yours" not in state:  # Streamlit drops it on other pages: start again from the sidebar's model
        state["decide_est_yours"] = sidebar_model()
    name = column.text_input("Folder or hub id", key="decide_est_yours", placeholder="~/models/Phi-3-mini or microsoft/Phi-3-mini-4k-instruct",
                             help="Only config.json is read (a local folder, or a hub id in the Hugging Face cache); "
                                  "no weights are downloaded.").strip()
    if not name:
        column.info("Enter a model folder or hub id; its size is read from config.json.")
        return None
    try:
        spec = model_spec_for(workspace(), name)
    except StudioError as error:
        column.error(f"{md_escape(str(error))} Or pick **Custom size** and type the parameter count.")  # the path is user text
        return None
    column.caption(f"From config.json: {spec.params:,.0f} parameters, {spec.layers} layers, hidden size {spec.hidden}.")
    return spec


def estimate_panel(answers):
    """Inputs and results of core.estimate; returns the Estimate (or None on a bad input)."""
    model_keys = list(MODELS) + [YOURS, "custom"]
    hw_keys = list(HARDWARE)
    follow_answers(answers)
    c1, c2 = st.columns(2)  # two per row: the model and hardware names were cut off at three
    labels = {**{k: m.label for k, m in MODELS.items()}, YOURS: "Your model (config.json)", "custom": "Custom size"}
    model_key = c1.selectbox("Base model", model_keys, key="decide_est_model", format_func=labels.__getitem__)
    model = None  # None: core.estimate derives the shape from the size
    if model_key == "custom":
        params = c1.number_input("Parameters (billions)", 0.01, 500.0, 3.0, step=0.5, key="decide_est_custom") * 1e9
    elif model_key == YOURS:
        model = own_model(c1)
        params = model.params if model else None
    else:
        params = MODELS[model_key].params
    hardware = c2.selectbox("Hardware", hw_keys, key="decide_est_hardware", format_func=lambda k: HARDWARE[k].label,
                            help="Set by the compute-budget answer; pick another to compare (decision.md says which).")
    st.caption(hardware_note(answers, hardware))
    c3, c4, c5 = st.columns(3)
    tokens = c3.number_input("Training tokens", 1_000, 10_000_000_000, step=100_000, key="decide_est_tokens",
                             help="Size of the fine-tuning set in tokens (about 0.75 words per token).")
    docs = c4.number_input("Documents", 0, 100_000_000, step=10, key="decide_est_docs")
    pages = c5.number_input("Pages", 0, 1_000_000_000, 0, step=100, key="decide_est_pages",
                            help="Total pages; 0 = assume 10 per document.")
    if params is None:  # no readable config yet: own_model said why
        return None
    try:
        est = estimate(EstimateInputs(params=params, train_tokens=tokens, hardware=hardware,
                                      docs=int(docs), pages=int(pages) or None), model)
    except StudioError as error:
        st.error(str(error))
        return None
    t, r = est.training, est.rag
    # Two metrics per row: four in this narrow column cut the values off ("20 …", "19.8…")
    m1, m2 = st.columns(2)
    m3, m4 = st.columns(2)
    for col, mem in ((m1, est.lora), (m2, est.qlora)):
        verdict = "fits" if mem.fits else ("not available" if not mem.supported else "does not fit")
        col.metric(f"{mem.method} memory", f"{mem.total_gb:.1f} GB", verdict,
                   delta_color="normal" if mem.fits else "inverse", delta_arrow="off",
                   help=f"of {mem.available_gb:.0f} GB; weights {mem.weights_gb:.1f}, adapter+optimizer "
                        f"{mem.trainable_gb:.2f}, activations {mem.activations_gb:.1f}, overhead {mem.overhead_gb:.1f}"
                        + (f". {mem.note}" if mem.note else ""))
    m3.metric("LoRA training", human_seconds(t.lora_seconds), f"QLoRA {human_seconds(t.qlora_seconds)}",
              delta_color="off", delta_arrow="off",
              help=f"4 x params x tokens / effective FLOP/s; QLoRA x {t.qlora_seconds / t.lora_seconds:.2f} "
                   f"({'published, CUDA' if est.hardware.is_gpu else 'measured on this CPU'})")
    m4.metric("RAG index", human_bytes(r.index_bytes), f"{r.chunks:,} chunks", delta_color="off", delta_arrow="off")
    m5, m6 = st.columns(2)
    m7, m8 = st.columns(2)
    m5.metric("Parse + embed", human_seconds(r.parse_seconds + r.embed_seconds))
    m6.metric("Retrieval / query", f"{r.retrieval_ms:.0f} ms")
    m7.metric("RAG answer", human_seconds(r.rag_answer_seconds))
    m8.metric("Answer, no retrieval", human_seconds(r.plain_answer_seconds))
    for note in est.notes:
        st.warning(note)
    with st.expander("How these are computed"):
        st.caption("Formulas and constants: core/estimate/. CPU figures are measured on a 2-core machine; "
                   "GPU figures are vendor peaks x a utilisation constant.")
        st.text("\n".join(summary_lines(est)))
    return est


# ------------------------------------------------------------------ page
def questionnaire() -> dict:
    """The questions in their tabs; returns the answers (also kept for the next visit)."""
    tabs = st.tabs([name for name, _ in QUESTION_GROUPS])
    answers = {}
    for tab, (_, ids) in zip(tabs, QUESTION_GROUPS):
        with tab:
            for qid in ids:
                answers[qid] = ask(qid)
    state[ANSWERS_KEY] = dict(answers)
    st.button("Reset answers", on_click=reset_answers, icon=":material/restart_alt:")
    return answers


def recommendation_card(decision):
    """Headline, scores and reasons; returns the container the Apply and download buttons go into."""
    with st.container(border=True):
        st.markdown(f"### {decision.headline}")
        cols = st.columns(3)
        for col, option in zip(cols, OPTIONS):
            col.metric(OPTION_LABELS[option], f"{decision.scores[option]:+.1f}",
                       f"{decision.probabilities[option]:.0%} likely", delta_color="off", delta_arrow="off")
        st.markdown("**Why**")
        st.markdown("\n".join(f"{i}. {r.text}" for i, r in enumerate(decision.reasons, 1))
                    or "No answer favours one option strongly.")
        st.info(decision.sensitivity_text, icon=":material/balance:")
        return st.container()  # filled once the estimate for the export exists


def render_plan(plan) -> None:
    st.markdown(f"**Chunks:** {plan.chunk_size} characters, {plan.chunk_overlap} overlap  \n"
                f"**LoRA preset:** {plan.lora_preset}  \n"
                f"**Compare:** {', '.join(plan.compare_variants)}")
    st.markdown("**Evaluation plan**\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(plan.eval_plan, 1)))


def apply_buttons(decision, plan, markdown: str) -> None:
    b1, b2 = st.columns(2)
    if b1.button("Apply to the other pages", type="primary", icon=":material/check_circle:", key="decide_apply",
                 help="Pre-fills chunking, the LoRA preset, the Compare columns and the evaluation plan."):
        shared.apply_plan(plan, markdown)
        st.success(f"Applied: {decision.label} plan. Documents, Fine-tune, Compare and Evaluate are pre-filled. "
                   "Next: create a knowledge base from your files on the **Documents** page.")
    elif shared.applied_plan() not in (None, plan):
        st.caption("The answers changed since the last Apply; apply again to update the other pages.")
    b2.download_button("Download (Markdown)", markdown, file_name="decision.md", mime="text/markdown",
                       icon=":material/download:", key="decide_download",
                       help="The recommendation, reasons, estimate and plan as a Markdown file (decision.md).")


def main() -> None:
    if ANSWERS_KEY not in state:
        state[ANSWERS_KEY] = default_answers()
    st.title("Decide: RAG, fine-tuning, or both?")
    st.caption("Answer the questions on the left. Every point behind the recommendation is shown, and the weights "
               "live in one file (core/decision/weights.json).")
    left, right = st.columns([5, 7], gap="large")
    with left:
        answers = questionnaire()
    decision = decide(answers)
    plan = plan_pipelines(decision)
    with right:
        actions = recommendation_card(decision)
        chart_tab, cost_tab, plan_tab = st.tabs(["What each answer contributed", "Cost & feasibility", "Pipeline plan"])
        with chart_tab:
            st.plotly_chart(contribution_chart(decision), width="stretch", config={"displayModeBar": False})
        with cost_tab:
            est = estimate_panel(answers)
        with plan_tab:
            render_plan(plan)
    shared.set_decide_result(shared.DecideResult(decision, est))  # the Evaluate page's report includes them
    with actions:
        apply_buttons(decision, plan, render_markdown(decision, plan, est))


main()
