"""The shared sidebar, the workspace check and small rendering helpers.

Heavy objects are loaded in ui/models.py (the one cache); per-user choices shared by pages are read
and written through ui/state.py.
"""
from __future__ import annotations

import math
import numbers
import re
import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import streamlit as st

from core.errors import StudioError
from core.models import (
    DEVICES,
    DTYPES,
    EMBEDDED_EMBEDDER,
    EMBEDDED_GENERATOR,
    EMBEDDER_CHOICES,
    GENERATOR_CHOICES,
    EmbedderSpec,
    GeneratorSpec,
    describe_hardware,
)
from core.settings import Workspace, get_workspace

from ui import state

if TYPE_CHECKING:  # the knowledge stack (numpy, SQLite FTS, FAISS glue) loads with the first page that needs it
    from core.catalogue import KnowledgeBase

OTHER = "Other (Hugging Face id or folder)…"


def similarity_note(mode: str = "hybrid") -> str:
    """core.retrieval.search: every hit's score is its cosine similarity, whatever the ranking mode."""
    if mode == "dense":
        return "Ranked by similarity: how close each passage's meaning is to the question (cosine, 0-1)."
    ranking = "keywords (BM25)" if mode == "lexical" else "meaning and keywords together (hybrid: dense + BM25)"
    return (f"Ranked by {ranking}; the similarity shown is the meaning match alone (cosine, 0-1), "
            "so a passage with the right keywords can rank above one with a higher similarity.")




def workspace() -> Workspace:
    """The workspace, with its catalogue checked: a damaged studio.db stops the page with one clear message."""
    from core.storage import CatalogueError, check_catalogue

    ws = get_workspace()
    try:
        check_catalogue(ws)
    except CatalogueError as error:
        _stop_on_damaged_catalogue(ws, error)
    return ws


@contextmanager
def catalogue_guard() -> Iterator[None]:
    """Around a page's run. quick_check runs once per process, so a studio.db damaged while the app runs shows up
    as a raw sqlite3 error mid-page: check again then, and show the same one message as at start."""
    from core.storage import CatalogueError, check_catalogue

    try:
        yield
    except CatalogueError as error:
        _stop_on_damaged_catalogue(get_workspace(), error)
    except sqlite3.DatabaseError:
        ws = get_workspace()
        try:
            check_catalogue(ws, force=True)  # an intact file (an IntegrityError, a bug) keeps its own error
        except CatalogueError as error:
            _stop_on_damaged_catalogue(ws, error)
        raise


def _stop_on_damaged_catalogue(ws: Workspace, error: StudioError) -> None:
    from core.storage import list_backups, restore_catalogue

    st.error(md_escape(str(error)), icon=":material/error:")
    if list_backups(ws) and st.button("Restore the last good backup", type="primary", key="restore_catalogue"):
        restore_catalogue(ws)  # the damaged file is kept beside it
        st.rerun()
    st.stop()


def knowledge_base_picker(label: str = "Knowledge base", key: str = "kb") -> KnowledgeBase | None:
    """A select box over the workspace's knowledge bases, remembered across pages."""
    from core.catalogue import list_knowledge_bases

    bases = list_knowledge_bases(workspace())
    if not bases:
        st.info("No knowledge base yet. Create one on the **Documents** page by uploading a few PDFs.")
        return None
    names = [kb.name for kb in bases]
    current = state.active_kb()
    index = names.index(current) if current in names else 0
    chosen = st.selectbox(label, names, index=index, key=key, help="Documents you uploaded, indexed for retrieval.")
    state.set_active_kb(chosen)
    return next(kb for kb in bases if kb.name == chosen)


def _model_picker(label: str, choices: list[str], current: str, key: str) -> str:
    options = choices + [OTHER]
    index = options.index(current) if current in options else len(options) - 1
    picked = st.selectbox(label, options, index=index, key=f"{key}_choice")
    if picked == OTHER:
        typed = st.text_input(
            f"{label}: id or folder", value="" if current in choices else current, key=f"{key}_custom",
            help="A Hugging Face id (needs the files cached or hub access) or a local folder with config.json.",
        ).strip()
        return typed or current
    return picked


def render_sidebar() -> None:
    """Workspace and model settings shared by every page."""
    hardware = describe_hardware()
    with st.sidebar:
        st.caption(f"Workspace: `{workspace().root}`")
        with st.expander("Models and hardware", expanded=False):
            gen = state.generator_spec()
            emb = state.embedder_spec()
            model_id = _model_picker("Generator", GENERATOR_CHOICES, gen.model_id, "generator")
            device = st.selectbox("Device", DEVICES, index=DEVICES.index(gen.device))
            dtype = st.selectbox("Precision", DTYPES, index=DTYPES.index(gen.dtype), help="auto: bf16 on CUDA; on a CPU with native bf16 (AMX, AVX512-BF16) bf16 when every core is free, else fp32")
            emb_id = _model_picker("Embeddings (new knowledge bases)", EMBEDDER_CHOICES, emb.model_id, "embedder")
            state.set_sidebar_models(GeneratorSpec(model_id, device, dtype), EmbedderSpec(emb_id, emb.device))
            from ui.engine_picker import sidebar_engine

            sidebar_engine()
            st.caption(f"Device: **{hardware['device'].upper()}** · {hardware['name']} · default dtype {hardware['dtype']}")
            st.caption(f"QLoRA 4-bit: {hardware['qlora']}")
            if model_id == EMBEDDED_GENERATOR and emb_id == EMBEDDED_EMBEDDER:
                st.caption("Embedded defaults: SmolLM2-135M-Instruct and all-MiniLM-L6-v2, offline.")


def show_error(error: StudioError | Exception) -> None:
    st.error(str(error), icon=":material/error:")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


_LINK_SPECIAL = re.compile(r"([\\`\[\]()!<>$])")


def md_model_text(text: str) -> str:
    """Model text in st.markdown: lists and emphasis stay (a taught bullet format should look like bullets),
    but links, images, inline HTML, code spans and LaTeX are shown literally."""
    return _LINK_SPECIAL.sub(r"\\\1", text or "")


def fmt_number(value, digits: int = 3) -> str:
    """A table or metric cell: numbers with fixed digits; None and NaN read "n/a" (never "None", a blank or 0)."""
    if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value)):
        return "n/a"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.{digits}f}"
    return str(value)


def format_seconds(seconds: float | None) -> str:
    """A duration as m:ss, or XhYYm from an hour on; "–" when unknown."""
    if seconds is None:
        return "–"
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def md_escape(text: str) -> str:
    """Render user or model text literally in st.markdown (no links, images, HTML or formatting)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text or "")
