"""Evaluate: the scoreboard on held-out questions, the update drill, and the decision report.

A thin view: each tab is a view module in ui/evaluate/, everything shown comes from core.evaluation /
core.report. Evaluations run in a background thread that only writes to the workspace; the run tab
polls it with st.fragment(run_every=...).
"""
from __future__ import annotations

import streamlit as st

import ui  # noqa: F401  (first import leaves Streamlit's legacy pages/ router)

from core.adapters import find_adapters
from core.errors import StudioError
from core.knowledge import list_knowledge_bases
from core.settings import get_workspace
from ui.evaluate.drill import drill_tab
from ui.evaluate.report import report_tab
from ui.evaluate.run import run_tab
from ui.evaluate.scoreboard import scoreboard_tab


def main() -> None:
    st.title("Evaluate")
    st.caption("Every variant answers the same held-out questions; every number below is measured on this machine.")
    try:
        workspace = get_workspace()
        kbs = [kb.name for kb in list_knowledge_bases(workspace)]
        adapters = [info.run_id for info in find_adapters(workspace)]  # the list every page offers (core/adapters.py)
    except StudioError as error:
        st.error(str(error))
        return
    run, results, drill, report = st.tabs(["Run an evaluation", "Scoreboard", "Update drill", "Decision report"])
    with run:
        run_tab(workspace, kbs, adapters)
    with results:
        scoreboard_tab(workspace)
    with drill:
        drill_tab(workspace, kbs, adapters)
    with report:
        report_tab(workspace)


main()
