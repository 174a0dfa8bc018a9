"""The in-repo sample set: small, attributed, self-consistent; one call (or one click) builds its knowledge base."""
import json

from streamlit.testing.v1 import AppTest

from core.compare import load_demo_questions
from core.knowledge import get_knowledge_base, list_documents
from core.samples import SAMPLE_KB, SAMPLES_DIR, build_sample_knowledge_base, sample_documents, sample_questions
from tests.conftest import ROOT, SQUAD


def test_samples_are_small_attributed_and_consistent():
    total = sum(p.stat().st_size for p in SAMPLES_DIR.rglob("*") if p.is_file())
    assert total < 2.5 * 2**20, f"samples/ grew to {total / 2**20:.1f} MB"
    readme = (SAMPLES_DIR / "README.md").read_text()
    assert "CC BY-SA 4.0" in readme and "Wikipedia contributors" in readme and "Rajpurkar" in readme
    docs = {p.name for p in sample_documents()}
    assert len(docs) == 5 and SQUAD == SAMPLES_DIR  # the tests read the samples by default
    for name in ("qa.jsonl", "qa_sample.jsonl"):
        rows = [json.loads(line) for line in (SAMPLES_DIR / name).read_text().splitlines()]
        assert {r["source_doc"] for r in rows} == docs
    assert len(sample_questions(2)) == 10


def test_build_sample_knowledge_base_twice(workspace, fake_embedder):
    first = build_sample_knowledge_base(workspace, fake_embedder)
    assert first.added == 5 and [r.status for r in first.results] == ["added"] * 5
    assert get_knowledge_base(workspace, SAMPLE_KB).document_count == 5
    assert load_demo_questions(workspace, SAMPLE_KB) == first.questions and len(first.questions) == 10
    assert first.questions[0] == sample_questions(1)[0]["question"]
    again = build_sample_knowledge_base(workspace, fake_embedder)  # a second click changes nothing
    assert again.added == 0 and {r.status for r in again.results} == {"duplicate"}
    assert len(list_documents(workspace, SAMPLE_KB)) == 5


def test_documents_page_sample_button(workspace, fake_embedder, monkeypatch):
    from core.models import EmbedderSpec
    from tests.fake_engines import install_embedder

    install_embedder(monkeypatch, fake_embedder)
    at = AppTest.from_file(str(ROOT / "pages" / "documents.py"), default_timeout=60)
    at.session_state["embedder_spec"] = EmbedderSpec(fake_embedder.model_id)  # the sidebar's embedding model: the fake
    at.run()
    assert not at.exception
    button = next(b for b in at.button if b.label == "Try it with sample documents")
    button.click().run()
    assert not at.exception
    assert get_knowledge_base(workspace, SAMPLE_KB).document_count == 5
    assert any("5 sample documents added" in s.value and "10 demo questions" in s.value for s in at.success)
    assert at.selectbox[0].value == SAMPLE_KB and at.metric[0].value == "5"
