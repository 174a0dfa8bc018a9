"""What more than one Evaluate tab uses: the evaluation picker, the runner over the sidebar's engine, a KB's embedder."""
from __future__ import annotations

import streamlit as st

from core import evaluation
from core.knowledge import get_knowledge_base
from ui.models import embedder_for, get_engine

NONE = "(none)"


def evaluation_picker(workspace, label: str, preferred: str | None, empty: str, key: str | None = None) -> str | None:
    """A select box over the stored evaluations, starting on `preferred`; shows `empty` and returns None when there are none."""
    records = evaluation.list_evaluations(workspace)
    if not records:
        st.info(empty)
        return None
    ids = [r.id for r in records]
    labels = {r.id: f"{r.id} · {r.status} · {r.kb or 'no KB'} · {r.adapter or 'no adapter'} · {r.question_source}" for r in records}
    return st.selectbox(label, ids, index=ids.index(preferred) if preferred in ids else 0, key=key, format_func=labels.get)


def kb_embedder(workspace, kb_name: str):
    """The embedding model `kb_name` was built with, from the app's one model cache."""
    return embedder_for(get_knowledge_base(workspace, kb_name))


def variant_runner(adapter: str | None, max_new_tokens: int, repetition_penalty: float = 1.0, engines: dict | None = None):
    """Every variant of a question in one batch through the sidebar's engine (loaded once, shared with Compare and Ask);
    `engines` ({variant: EngineSpec}) gives some variants their own engine, as Compare's columns can.

    Call it in the script thread (the model cache needs the script's context); the job then answers in its own thread."""
    from core.generation import DecodingSettings

    settings = DecodingSettings(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
    per_variant = {variant: get_engine(spec) for variant, spec in (engines or {}).items()}
    return evaluation.EngineVariantRunner(get_engine(), adapter, settings, per_variant)
