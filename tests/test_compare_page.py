"""AppTest of pages/compare.py: a fake engine through the same seam (fast) and the real models (slow)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.engines import StreamEvent
from core.generation import GenerationStats
from tests.conftest import applied_plan
from tests.fake_engines import install

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "compare.py")


class FakeEngine:
    name = "fake"
    model = "fake-model"

    def stream_many(self, requests, settings):
        for request in requests:
            stats = GenerationStats(prompt_tokens=5, new_tokens=2, first_token_s=0.05, total_s=0.1)
            yield StreamEvent(request.key, "text", f"Answer from {request.key} <b>not html</b>", stats)
            yield StreamEvent(request.key, "done", "", stats)


@pytest.fixture
def fake_engine(monkeypatch, tmp_path):
    """FakeEngine registered as the "fake" engine, which `auto` (the sidebar default) then opens."""
    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path))
    install(monkeypatch, FakeEngine())
    import streamlit as st

    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def _texts(at) -> str:
    return "\n".join(str(e.value) for e in list(at.markdown) + list(at.caption) + list(at.info) + list(at.error) + list(at.warning))


def test_page_without_kb_or_adapter_explains_and_answers_base(fake_engine):
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["decision_plan"] = applied_plan(compare_variants=["base", "finetuned"])
    at.run()
    assert not at.exception
    assert at.title[0].value == "Compare"
    assert "Fine-tune" in _texts(at)
    assert at.checkbox(key="compare_term_check").value is True  # the relevance gate's term check, on by default
    at.chat_input[0].set_value("What is new?").run()
    at.run()  # the page reruns once to disable the input, then generates
    assert not at.exception
    text = _texts(at)
    assert "Answer from base" in text
    assert "tok/s" in text
    assert "No adapter yet" in text  # the fine-tuned column says how to get one
    assert "Answer from rag" not in text  # only the preselected columns
    assert len(at.session_state["compare_history"]) == 1
    at.run()  # finished answers survive a rerun
    assert "Answer from base" in _texts(at)


def test_demo_questions_save_and_run(fake_engine):
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    area = [t for t in at.text_area if t.label.startswith("One question per line")][0]
    area.set_value("First demo?\nSecond demo?").run()
    next(b for b in at.button if b.label == "Save list").click().run()
    from core.compare import load_demo_questions
    from core.settings import get_workspace

    assert load_demo_questions(get_workspace(fake_engine), "(no knowledge base)") == ["First demo?", "Second demo?"]
    next(b for b in at.button if b.label.startswith("Run all")).click().run()
    for _ in range(4):
        at.run()
    history = at.session_state["compare_history"]
    assert [c.question for c in history] == ["First demo?", "Second demo?"]


@pytest.mark.slow
def test_page_real_models_four_columns(tmp_path_factory, monkeypatch):
    from compare_fixtures import KB_NAME, prepare_workspace

    workspace = prepare_workspace(tmp_path_factory.mktemp("compare-page"))
    monkeypatch.setenv("STUDIO_WORKSPACE", str(workspace.root))
    import streamlit as st

    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception
    assert at.selectbox[0].value == KB_NAME
    at.slider(key="compare_max_new").set_value(16)
    at.chat_input[0].set_value("When did the 1973 oil crisis begin?").run()
    at.run()
    assert not at.exception, at.exception
    (comparison,) = at.session_state["compare_history"]
    assert set(comparison.answers) == {"base", "rag", "finetuned", "hybrid"}
    for answer in comparison.answers.values():
        assert answer.error is None and answer.text and answer.stats.new_tokens > 0, answer
    assert comparison.answers["rag"].hits and comparison.answers["rag"].hits == comparison.answers["hybrid"].hits
    assert any(e.label.startswith("Sources") for e in at.expander)
    st.cache_resource.clear()


def test_the_question_is_shown_literally(fake_engine):
    """The user's question goes through md_escape: markdown in it is shown, not rendered."""
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    at.chat_input[0].set_value("Is *this* [a link](http://example.com)?").run()
    at.run()
    assert not at.exception
    shown = [m.value for m in at.markdown if "this" in m.value and "link" in m.value]
    assert shown and all("\\*this\\*" in v and "\\[a link\\]" in v for v in shown), shown


def test_model_text_keeps_bullets_but_not_links_or_images():
    from ui.common import md_model_text

    text = md_model_text("- one\n- two ![x](http://evil/p.png) [click](http://evil) <b>hi</b> [1]")
    assert text.startswith("- one\n- two ")  # bullets stay markdown
    assert "\\!\\[x\\]\\(http://evil/p.png\\)" in text and "\\[click\\]" in text and "\\<b\\>" in text and "\\[1\\]" in text
