"""Evaluate, fourth tab: the decision report (HTML, and a PDF where headless Chromium is installed)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import StudioError
from ui import state
from ui.evaluate.shared import evaluation_picker


def _decide_dicts() -> tuple[dict | None, dict | None]:
    """The Decide page's current recommendation and estimate as the report records them (None: not answered)."""
    from core.decision.export import decision_to_dict
    from core.estimate.summary import estimate_to_dict

    decided = state.decide_result()
    if decided is None:
        return None, None
    return decision_to_dict(decided.decision), estimate_to_dict(decided.estimate) if decided.estimate else None


def _pdf(path: str) -> None:
    from core.report_pdf import pdf_available, write_report_pdf

    if not pdf_available():
        st.caption("No PDF here: it is printed by headless Chromium, which this server does not have (apt-get install chromium, "
                   "or set STUDIO_CHROMIUM). The HTML report is complete and opens offline; a browser's Print > Save as PDF works too.")
        return
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


def report_tab(workspace) -> None:
    report_id = evaluation_picker(workspace, "Evaluation for the report", state.viewed_evaluation(),
                                  "Run an evaluation first; the report is built around its scoreboard.", key="report_id")
    if report_id is None:
        return
    decision, estimate = _decide_dicts()
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
        st.download_button("Download the report (HTML, opens offline)", Path(path).read_bytes(), file_name=Path(path).name, mime="text/html")
        _pdf(path)
