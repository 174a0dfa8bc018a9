"""AppTest of the Ask page's conversation controls (no model: the history is set directly)."""
from streamlit.testing.v1 import AppTest

from core.ask import GroundedAnswer
from core.generation import GenerationStats
from tests.conftest import ROOT

PAGE = str(ROOT / "pages" / "ask.py")


def test_clear_conversation(workspace, toy_kb):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["ask_history"] = {toy_kb: [GroundedAnswer("When did it open?", "In 1932.", [], GenerationStats())]}
    at.run()
    assert not at.exception
    assert len(at.chat_message) == 2
    at.button(key="ask_clear").click().run()
    assert not at.exception
    assert len(at.chat_message) == 0
    assert not [b for b in at.button if b.key == "ask_clear"]  # nothing to clear: no button


def test_clear_button_appears_with_the_first_answer(workspace, toy_kb, fake_embedder, fake_engine, monkeypatch):
    """The button is drawn after the conversation, so the first answer brings it (it used to need another rerun)."""
    import streamlit as st

    from tests.fake_engines import install_embedder

    install_embedder(monkeypatch, fake_embedder)  # the knowledge base records the fake's model id: the page loads it
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not [b for b in at.button if b.key == "ask_clear"]
    at.chat_input[0].set_value("When did the Harbor Bridge open?").run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert [b for b in at.button if b.key == "ask_clear"]
    assert fake_engine.batches, "the answer came through the registered engine"
    answer = at.session_state["ask_history"][toy_kb][-1]
    assert answer.engine == "fake" and answer.model == "echo-1"  # the answer records what answered
    assert any("answered by" in c.value and "fake" in c.value for c in at.caption)
    st.cache_resource.clear()
