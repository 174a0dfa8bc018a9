"""Engine choice widgets: the sidebar's default engine, and one engine per Compare column.

The choice is an `EngineSpec` (core.engines.registry); pages get the engine itself from
`ui.models.get_engine(spec)`, which loads it once per server.
"""
from __future__ import annotations

import streamlit as st

from core.engines.registry import AUTO, ENGINE_HELP, EngineSpec, engine_kinds, resolve_kind
from core.errors import StudioError
from ui import state

SERVER_URL = "engine_server_url"
SERVER_MODEL = "engine_server_model"


def _spec_inputs(kind: str, key: str, current: EngineSpec) -> EngineSpec:
    if kind == "openai":
        url = st.text_input("Server base URL", current.target or st.session_state.get(SERVER_URL, "http://127.0.0.1:11434/v1"),
                            key=f"{key}_url", help="Ollama: http://127.0.0.1:11434/v1 · vLLM: http://HOST:8000/v1 · "
                            "llama.cpp server: http://HOST:8080/v1. The API key is read from $STUDIO_OPENAI_API_KEY.")
        model = st.text_input("Served model name", current.model or st.session_state.get(SERVER_MODEL, ""), key=f"{key}_model",
                              help="The name the server knows the model by (for a fine-tune: the name you served it under).")
        return EngineSpec("openai", url.strip(), model.strip())
    if kind == "llamacpp":
        path = st.text_input("GGUF file (empty: the embedded model)", current.target, key=f"{key}_gguf")
        return EngineSpec("llamacpp", path.strip())
    return EngineSpec(kind)


def sidebar_engine() -> EngineSpec:
    """The default engine for every page (ui.state.engine_spec)."""
    current = state.engine_spec()
    kinds = engine_kinds()
    kind = st.selectbox("Engine", kinds, index=kinds.index(current.kind) if current.kind in kinds else 0, key="engine_kind",
                        help="\n".join(f"- **{k}**: {ENGINE_HELP.get(k, 'registered engine')}" for k in kinds))
    spec = _spec_inputs(kind, "engine", current if current.kind == kind else EngineSpec(kind))
    try:
        spec.validate()
    except StudioError as error:
        st.warning(str(error), icon=":material/warning:")
        spec = current if current.kind != kind else EngineSpec()
    if spec.kind == "openai":
        st.session_state[SERVER_URL], st.session_state[SERVER_MODEL] = spec.target, spec.model
    state.set_engine_spec(spec)
    if spec.kind == AUTO:
        st.caption(f"auto answers with **{resolve_kind(spec, state.generator_spec())}** on this machine.")
    return spec


def column_engine(variant: str, label: str) -> EngineSpec | None:
    """One Compare column's engine: None means the sidebar's default."""
    default = state.engine_spec()
    choices = ["default", *[k for k in engine_kinds() if k != AUTO]]
    kind = st.selectbox(label, choices, key=f"column_engine_{variant}",
                        format_func=lambda k: f"sidebar default ({default.kind})" if k == "default" else k)
    if kind == "default":
        return None
    spec = _spec_inputs(kind, f"column_engine_{variant}", EngineSpec(kind))
    spec.validate()  # a StudioError the page shows next to the form
    return spec


def engines_per_variant(variants: list[str], labels: dict[str, str], title: str, caption: str) -> tuple[dict, str | None]:
    """One engine choice per chosen variant (Compare's columns, Evaluate's variants) in an expander.

    Returns ({variant: EngineSpec} for those given their own engine, the first invalid choice's message or None)."""
    engines, problem = {}, None
    with st.expander(title, icon=":material/memory:"):
        st.caption(caption)
        for column, variant in zip(st.columns(max(1, len(variants))), variants):
            with column:
                try:
                    chosen = column_engine(variant, f"{labels[variant]} engine")
                except StudioError as error:
                    st.error(str(error))
                    problem = problem or str(error)
                    continue
                if chosen is not None:
                    engines[variant] = chosen
    return engines, problem
