"""Streamlit helpers shared by the pages (the only place besides pages/ that imports streamlit).

Every page imports this package, so its first import in a server process runs the check below.
"""
import streamlit as st


def leave_legacy_page_router() -> None:
    """Route a server's first session through app.py even when it opens a deep link such as /ask.

    Streamlit starts in its legacy multipage mode when a `pages/` folder exists and switches to
    st.navigation only once app.py has run, so the very first request to /ask after a start ran
    pages/ask.py bare (no sidebar, legacy navigation). Leave legacy mode and rerun through app.py.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


leave_legacy_page_router()
