"""Rename an adapter (Fine-tune page): the name is kept with the run (core.adapters.rename_adapter)."""
from __future__ import annotations

import streamlit as st

from core.adapters import adapter_name, rename_adapter
from core.errors import StudioError


def rename_adapter_form(workspace, run_ids: list[str]) -> None:
    if not run_ids:
        return
    with st.expander("Name an adapter", icon=":material/edit:"):
        with st.form("adapter_rename"):
            run_id = st.selectbox("Adapter", run_ids, format_func=lambda i: f"{adapter_name(workspace, i)} ({i})")
            name = st.text_input("New name", placeholder="e.g. Support desk voice, March", max_chars=80,
                                 help="Shown wherever adapters are listed (Compare, Evaluate, the report). Empty: dataset · preset · date.")
            if st.form_submit_button("Rename"):
                try:
                    st.success(f"Renamed to “{rename_adapter(workspace, run_id, name)}”.")
                except StudioError as error:
                    st.error(str(error))
