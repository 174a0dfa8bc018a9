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
