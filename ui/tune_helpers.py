"""Streamlit helpers for the Training data and Fine-tune pages: cached heavy objects only."""
from __future__ import annotations

import streamlit as st

from core.settings import Workspace


@st.cache_resource(show_spinner="Reading the model's layers…")
def cached_model_facts(root: str, base_model: str):
    from core.settings import Workspace
    from core.training import model_facts

    return model_facts(Workspace(__import__("pathlib").Path(root)), base_model)


def model_facts_for(ws: Workspace, base_model: str):
    return cached_model_facts(str(ws.root), base_model)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
