"""Support badges and highlighted source sentences (Ask, Compare). The check itself is core.support.

Everything the user or the model wrote goes through md_escape: a chunk that holds HTML or markdown shows
literally; the only markup is our own highlight directive around the (escaped) supporting sentence.
"""
from __future__ import annotations

import streamlit as st

from core.support import SupportReport, highlight_spans
from ui.common import md_escape


def render_support_badge(report: SupportReport, note: str = "") -> None:
    """Green "Supported by [n]" only when every number and name is in the sources; amber with what is missing otherwise."""
    suffix = f" {note}" if note else ""
    if report.unsupported:
        missing = ", ".join(claim.text for claim in report.unsupported)
        st.warning(f"Not in the sources: {md_escape(missing)}{md_escape(suffix)}", icon=":material/report:")
    elif report.supporting:
        numbers = ", ".join(f"[{n}]" for n in report.supporting)
        st.caption(f":green[:material/verified: Supported by {md_escape(numbers)}]{md_escape(suffix)} · every number and name "
                   "of the answer is in these sources, and its wording comes from them")
    else:
        st.caption(f":material/help: No sentence of the answer is backed by the sources{md_escape(suffix)}")


def render_source_text(text: str, sentence: str | None) -> None:
    """A chunk with the sentence that supports the answer highlighted; escaped, never HTML."""
    parts = []
    for piece, highlighted in highlight_spans(text.strip(), sentence or ""):
        escaped = md_escape(piece).replace("\n", "  \n")
        parts.append(f":orange-background[{escaped}]" if highlighted else escaped)
    st.markdown("".join(parts))
