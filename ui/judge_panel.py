"""The optional RAGAS panel of the Evaluate page's Scoreboard tab (the logic lives in core.judge)."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from core import judge
from core.errors import StudioError
from core.evaluation import get_evaluation
from core.settings import Workspace
from ui.common import fmt_number, md_escape
from ui.models import get_embedder

DEFAULT_URL = os.environ.get("STUDIO_JUDGE_URL", "http://127.0.0.1:11434/v1")  # Ollama's OpenAI-compatible API
STATUS_HELP = "Means cover scored cells only. NaN, timeouts and errors are counted in their own columns, never scored."


def _results(state: dict) -> None:
    rows = judge.judgement_rows(state)
    if not rows:
        return
    table = pd.DataFrame(rows)
    table["variant"] = table["variant"].map(judge.variant_label)
    table["metric"] = table["metric"].map(lambda m: m.replace("_", " "))
    table["mean"] = table["mean"].map(fmt_number)
    st.dataframe(table.rename(columns={"mean": "mean (scored cells)"}), hide_index=True, width="stretch")
    judged = state["judge"]
    st.caption(f"Judge: {md_escape(judged['model'])} at `{judged['base_url'].replace('`', '')}` · {STATUS_HELP}")
    cells = pd.DataFrame(state.get("cells") or [])
    if not cells.empty:
        with st.expander("Every judged cell"):
            cells["variant"] = cells["variant"].map(judge.variant_label)
            st.dataframe(cells, hide_index=True, width="stretch")


def judge_panel(workspace: Workspace, evaluation_id: str) -> None:
    st.subheader("RAGAS scores from a judge model (optional)")
    if not judge.ragas_installed():
        st.info(f"RAGAS is not installed, so judge scores are off; every local metric above stands without it. {judge.INSTALL_HINT}.")
        return
    with st.expander("Judge this evaluation", expanded=judge.load_judgement(workspace, evaluation_id) is None):
        st.caption("Any OpenAI-compatible endpoint: Ollama (`http://127.0.0.1:11434/v1`), llama.cpp's `llama-server` "
                   "(`http://127.0.0.1:8080/v1`), vLLM, LM Studio. The answers are judged after the run, so you can "
                   "judge one evaluation with several models.")
        u1, u2 = st.columns([3, 2])
        url = u1.text_input("Endpoint", value=DEFAULT_URL, key="judge_url")
        model = u2.text_input("Judge model", value=os.environ.get("STUDIO_JUDGE_MODEL", ""), key="judge_model",
                              placeholder="e.g. llama3.1:8b")
        api_key = st.text_input("API key (local servers ignore it; never stored)", type="password", key="judge_key")
        c1, c2, c3 = st.columns([1, 1, 3])
        timeout_s = c1.number_input("Timeout per score (s)", 1, 3600, 120, key="judge_timeout")
        limit = c2.number_input("Questions (0 = all)", 0, 100000, 10, key="judge_limit",
                                help="A judge on a CPU can take minutes per answer: start small.")
        metrics = c3.multiselect("Metrics", list(judge.METRICS), default=list(judge.METRICS), key="judge_metrics",
                                 format_func=lambda m: m.replace("_", " "), help="\n\n".join(judge.METRICS.values()))
        b1, b2 = st.columns(2)
        if b1.button("Check the endpoint", key="judge_check"):
            try:
                models = judge.check_endpoint(url)
                listed = f"it lists {', '.join(models[:8])}" if models else "it lists no models"
                warn = model and models and model not in models
                (st.warning if warn else st.success)(f"The judge answers; {listed}." + (f" {model!r} is not among them." if warn else ""))
            except StudioError as error:
                st.error(str(error))
        running = judge.get_judge_job(evaluation_id)
        if b2.button("Judge with RAGAS", type="primary", key="judge_start", disabled=bool(running and running.running)):
            try:
                settings = judge.JudgeSettings(url.strip(), model.strip(), api_key or "local", float(timeout_s),
                                               tuple(metrics), int(limit) or None)
                settings.validate()
                judge.check_endpoint(settings.base_url)  # a clear error now rather than a column of errors later
                embedder = get_embedder()  # loaded here: the model cache (ui/models.py) needs the script thread
                judge.start_judge_job(workspace, evaluation_id, settings, lambda: embedder)
            except StudioError as error:
                st.error(str(error))

    get_evaluation(workspace, evaluation_id)  # an unknown id raises a StudioError before anything polls
    job = judge.get_judge_job(evaluation_id)
    if job is not None and job.running:
        _poll(workspace, evaluation_id)
    else:
        _show(judge.load_judgement(workspace, evaluation_id))


@st.fragment(run_every=1.5)
def _poll(workspace: Workspace, evaluation_id: str) -> None:
    """Redrawn every 1.5 s while the judge thread runs; one full rerun when it ends."""
    job = judge.get_judge_job(evaluation_id)
    alive = job is not None and job.running
    state = judge.load_judgement(workspace, evaluation_id)
    if alive and state is not None and state["status"] == "running":
        st.progress(state["done"] / max(1, state["total"]), text=f"Judging: {state['done']} of {state['total']} scores")
        if st.button("Cancel judging", key="judge_cancel"):
            job.cancel()
            st.toast("Stopping after the current score…")
        _results(state)
    elif alive:
        st.progress(0.0, text="Starting the judge…")
    else:
        st.rerun()


def _show(state: dict | None) -> None:
    if state is None:
        st.caption("Not judged yet.")
        return
    status = state["status"]
    if status == "running":
        st.warning(f"Judging stopped at {state['done']} of {state['total']} (the app restarted); the scores so far are kept.")
    elif status == "failed":
        st.error(f"Judging failed: {state.get('error')}")
    elif status == "cancelled":
        st.info(f"Judging cancelled after {state['done']} of {state['total']} scores.")
    else:
        not_applicable = sum(1 for c in state.get("cells") or [] if c["status"] == "n/a")
        st.success(f"Judged {state['total'] - not_applicable} scores in {state.get('elapsed_s', 0):.0f} s "
                   f"({not_applicable} did not apply).")
    _results(state)
