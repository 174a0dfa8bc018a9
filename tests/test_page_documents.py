"""AppTest of the Documents page with the real embedder (uploads are covered by the browser test)."""
import pytest
from streamlit.testing.v1 import AppTest

from core.knowledge import get_knowledge_base, ingest_files
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
PAGE = str(ROOT / "pages" / "documents.py")


def test_create_a_knowledge_base(app_workspace):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert at.selectbox[0].value == "+ New knowledge base"
    at.text_input[0].set_value("handbook")
    at.number_input[0].set_value(600)
    next(b for b in at.button if b.label == "Create knowledge base").click().run()
    assert not at.exception
    kb = get_knowledge_base(app_workspace, "handbook")
    assert kb.chunk_size == 600
    assert [m.value for m in at.metric][:2] == ["0", "0"]


def test_bad_name_shows_an_error(app_workspace):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.text_input[0].set_value("../etc")
    next(b for b in at.button if b.label == "Create knowledge base").click().run()
    assert any("not allowed" in e.value for e in at.error)


def test_list_search_and_remove(app_workspace, real_embedder):
    ingest_files(app_workspace, "handbook", [
        ("travel.txt", b"Employees book trains for trips under four hours. Flights need approval. " * 5),
        ("leave.txt", b"Every employee has twenty-six days of paid leave per year. " * 5),
    ], real_embedder)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert at.metric[0].value == "2"
    assert any(c.value.startswith("Vector index: flat inner product, fp16 vectors, exhaustive") and "exhaustive scan (no recall loss)" in c.value
               and "tantivy" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["Document"]) == ["leave.txt", "travel.txt"]
    at.text_input[0].set_value("how many days of paid leave").run()
    labels = [e.label.replace("\\", "") for e in at.expander]
    assert any("leave.txt" in label and "similarity" in label for label in labels)  # cosine, not the hybrid rank score
    assert any("Ranked by meaning and keywords" in c.value for c in at.caption)
    remove = next(b for b in at.button if b.label == "Remove document")
    remove.click().run()
    confirm = next(b for b in at.button if b.label == "Yes, remove")
    confirm.click().run()
    assert get_knowledge_base(app_workspace, "handbook").document_count == 1
