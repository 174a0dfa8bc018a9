"""AppTest of the Ask page: a grounded streamed answer with sources, and the no-context refusal."""
import pytest
from streamlit.testing.v1 import AppTest

from core.generation import NO_CONTEXT_ANSWER
from core.knowledge import ingest_files
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
PAGE = str(ROOT / "pages" / "ask.py")


def test_no_knowledge_base_explains_what_to_do(app_workspace):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert "Documents" in at.info[0].value


def test_answer_with_sources_and_refusal(app_workspace, real_embedder):
    ingest_files(app_workspace, "handbook", [
        ("leave.txt", b"Every employee has twenty-six days of paid leave per year. Leave requests go to the team lead. " * 4),
    ], real_embedder)
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    at.chat_input[0].set_value("How many days of paid leave does an employee have?").run()
    assert not at.exception
    assert len(at.chat_message) == 2
    assert any("Sources (1)" in e.label for e in at.expander)
    assert any("tokens/s" in c.value for c in at.caption)
    at.chat_input[0].set_value("What is the best pizza topping in Naples?").run()
    assert len(at.chat_message) == 4
    texts = " ".join(m.value for m in at.markdown)
    assert "don't cover that question" in texts.replace("\\", "") or NO_CONTEXT_ANSWER in texts
