"""The one model cache of the app: every heavy object a page needs is loaded here, once per server.

The only module with st.cache_resource. Load in the script thread (the cache needs the script's
context); a background job gets the loaded object, never a loader.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from core.models import EmbedderSpec, GeneratorSpec
from core.settings import Workspace, get_workspace
from ui.common import workspace
from ui.state import embedder_spec, engine_spec, generator_spec

if TYPE_CHECKING:  # the knowledge stack (numpy, SQLite FTS, FAISS glue) loads with the first page that needs it
    from core.knowledge import KnowledgeBase


@st.cache_resource(show_spinner="Loading the language model… (the first time on a new workspace converts it: ~20 s, longer on a busy CPU)")
def _cached_engine(kind: str, target: str, model: str, api_key_env: str, model_id: str, device: str, dtype: str, root: str):
    from core.engines.registry import EngineSpec, open_engine

    return open_engine(EngineSpec(kind, target, model, api_key_env), get_workspace(root), GeneratorSpec(model_id, device, dtype))


@st.cache_resource(show_spinner="Loading the embedding model… (the first time on a new workspace exports it to ONNX: ~20 s)")
def _cached_embedder(model_id: str, device: str, backend: str, root: str):
    from core.embedding import load_sentence_embedder

    return load_sentence_embedder(EmbedderSpec(model_id, device, backend), get_workspace(root))


@st.cache_resource(show_spinner="Reading the model's layers…")
def _cached_model_facts(root: str, base_model: str):
    from core.training import model_facts

    return model_facts(get_workspace(root), base_model)


@st.cache_resource(show_spinner="Reading the model's config.json…")
def _cached_config_spec(root: str, model: str):
    from core.estimate.specs import model_from_config

    return model_from_config(model, get_workspace(root))


def get_engine(spec=None, generator: GeneratorSpec | None = None):
    """The engine `spec` names (default: the sidebar's), loaded once per server and shared by every page."""
    from core.engines.registry import EngineSpec, resolve_kind

    spec = spec or engine_spec()
    generator = generator or generator_spec()
    kind = resolve_kind(spec, generator)  # `auto` and its concrete engine share one cached copy
    concrete = spec if kind == spec.kind else EngineSpec(kind, spec.target, spec.model, spec.api_key_env)
    return _cached_engine(concrete.kind, concrete.target, concrete.model, concrete.api_key_env,
                          generator.model_id, generator.device, generator.dtype, str(workspace().root))


def get_embedder(spec: EmbedderSpec | None = None):
    """The embedding model `spec` names (default: the sidebar's, which new knowledge bases are built with)."""
    spec = spec or embedder_spec()
    return _cached_embedder(spec.model_id, spec.device, spec.backend, str(workspace().root))


def embedder_for(kb: KnowledgeBase):
    """The embedding model a knowledge base was built with (queries must use the same one)."""
    from core.embedding import spec_for_recorded

    return get_embedder(spec_for_recorded(kb.embedding_model, embedder_spec().device))


def model_spec_for(ws: Workspace, model: str):
    """core.estimate.specs.model_from_config (the CLI's `estimate --model`): the exact size from config.json, no weights."""
    return _cached_config_spec(str(ws.root), model)


def model_facts_for(ws: Workspace, base_model: str):
    """core.training.model_facts (layer names, sizes, family) of a base model, read once per server."""
    return _cached_model_facts(str(ws.root), base_model)
