"""Router only: page config, the shared sidebar and st.navigation over the pages that exist."""
from pathlib import Path

import streamlit as st

from ui.common import catalogue_guard, render_sidebar, workspace

ROOT = Path(__file__).parent
PAGES = [  # (file, title, icon): a page whose file is missing is skipped, so features land independently
    ("pages/decide.py", "Decide", ":material/explore:"),
    ("pages/documents.py", "Documents", ":material/folder_open:"),
    ("pages/ask.py", "Ask", ":material/chat:"),
    ("pages/training_data.py", "Training data", ":material/dataset:"),
    ("pages/fine_tune.py", "Fine-tune", ":material/model_training:"),
    ("pages/compare.py", "Compare", ":material/view_column:"),
    ("pages/evaluate.py", "Evaluate", ":material/leaderboard:"),
]

st.set_page_config(page_title="RAG vs Fine-Tuning Studio", page_icon=":material/science:", layout="wide")
pages = [st.Page(str(ROOT / path), title=title, icon=icon) for path, title, icon in PAGES if (ROOT / path).exists()]
navigation = st.navigation(pages)
workspace()  # a damaged studio.db stops every page here with one message (core.storage.check_catalogue)
render_sidebar()
with catalogue_guard():  # ... and one damaged while the app runs, on that page's next run
    navigation.run()
