"""Evaluate tells the truth: a cap that fits the taught format, n/a (never 0) with nothing to check against,
a measured bottom line, and an update drill that leaves the user's knowledge base alone."""
import math

from core import evaluation
from core.evaluation import EvaluationSettings, QuestionItem
from core.knowledge import Hit, list_documents, search
from core.evaluation.bottom_line import bottom_line, bottom_line_text, interval95
from tests.test_evaluation import timed

STYLE_OUTPUT = ("- The 1973 oil crisis began in October 1973 when OAPEC proclaimed an oil embargo against the United States.\n"
                "- By March 1974 the price of oil had risen from US$3 per barrel to nearly $12 globally.\n"
                "- The embargo caused an oil shock with many short- and long-term effects on global politics.\n"
                "Risks: However, the crisis also threatened economic growth and caused a recession in many countries.")


def test_cap_fits_the_taught_format_and_cut_answers_are_not_scored(workspace):
    assert evaluation.format_token_cap([STYLE_OUTPUT] * 5) >= len(STYLE_OUTPUT) / 3
    settings, note = evaluation.fit_format_cap(workspace, EvaluationSettings(max_new_tokens=48), None, [STYLE_OUTPUT])
    assert settings.max_new_tokens > 48 and "raised from 48" in note
    same, note = evaluation.fit_format_cap(workspace, EvaluationSettings(max_new_tokens=400), None, [STYLE_OUTPUT])
    assert same.max_new_tokens == 400 and "fits" in note  # never lowered
    item = QuestionItem(id="q1", question="Brief me.", answers=(STYLE_OUTPUT,))
    check = lambda text: 1.0  # noqa: E731
    cut = evaluation.score_answer(item, timed("finetuned", "- a\n- b", new_tokens=48), [], [], check, 0.5, cap=48)
    whole = evaluation.score_answer(item, timed("finetuned", STYLE_OUTPUT, new_tokens=90), [], [], check, 0.5, cap=160)
    assert cut["cut"] and math.isnan(cut["style"]) and not whole["cut"] and whole["style"] == 1.0
    board = evaluation.summarize([cut, whole], [], ["finetuned"], 5)["variants"]["finetuned"]
    assert board["style"] == 1.0 and board["style_n"] == 1 and board["cut"] == 1


def test_retrieval_without_a_reference_is_n_a_not_zero():
    hits = [Hit(chunk_id=1, document="a.pdf", page=1, page_end=1, text="The bridge opened in 1932.", score=0.9, rank=1)]
    styled = QuestionItem(id="s", question="Explain this passage.", answers=(STYLE_OUTPUT,), source_doc="a.pdf")
    assert not evaluation.has_retrieval_reference(styled)
    row = evaluation.retrieval_row(styled, hits)
    assert row["known"] is False and row["rank"] is None
    summary = evaluation.summarize([], [row], [], 5)["retrieval"]
    assert summary["questions_with_gold"] == 0 and math.isnan(summary["hit@1"]) and math.isnan(summary["mrr"])
    squad_like = QuestionItem(id="q", question="When did it open?", answers=("1932",), source_doc="a.pdf")
    assert evaluation.retrieval_row(squad_like, hits)["rank"] == 1


def rows(variant, key, values, oos=False):
    return [{"variant": variant, key: v, "out_of_scope": oos} for v in values]


def test_bottom_line_names_clear_winners_sample_sizes_and_agreement():
    data = rows("rag", "contains", [1.0] * 36 + [0.0] * 4) + rows("base", "contains", [1.0] * 4 + [0.0] * 36)
    data += rows("rag", "f1", [0.4, 0.5] * 3) + rows("base", "f1", [0.35, 0.45] * 3)
    line = bottom_line(data, {"recommendation": "rag"})
    by = {m["metric"]: m for m in line["metrics"]}
    assert by["contains"]["winner"] == "rag" and by["contains"]["clear"] and by["contains"]["cells"]["rag"]["n"] == 40
    assert by["f1"]["winner"] == "rag" and not by["f1"]["clear"]  # 6 answers: the intervals overlap
    text = bottom_line_text(line)
    assert text[0].startswith("Contains the reference answer: RAG wins. RAG 0.90 [")
    assert "not separable at this sample size" in text[1]
    assert any(t.startswith("Agrees with the Decide recommendation (RAG) on: contains the reference answer") for t in text)
    assert "disagrees" not in " ".join(text).lower()
    assert bottom_line(data, {"recommendation": "finetune"})["disagrees_on"] == ["contains the reference answer"]
    mean, low, high = interval95([1.0] * 9 + [0.0], binary=True)
    assert mean == 0.9 and 0.59 < low < 0.6 and 0.98 < high < 0.99  # Wilson, n=10


def test_report_ends_with_the_bottom_line(workspace, toy_kb, fake_embedder):
    from core.report import build_report
    from tests.test_evaluation import QUESTIONS, FakeRunner

    evaluation_id = evaluation.run_evaluation(workspace, FakeRunner(), QUESTIONS, EvaluationSettings(variants=("base", "rag")),
                                              kb=toy_kb, embedder=fake_embedder)
    html = build_report(workspace, evaluation_id, decision={"recommendation": "rag", "label": "RAG"})
    assert html.rindex('<section id="bottom">') > html.rindex('<section id="method">')
    assert "95% intervals" in html and "(n=" in html and "Decide recommendation (RAG)" in html


def test_drill_copy_leaves_the_knowledge_base_alone(workspace, toy_kb, fake_embedder):
    copy = evaluation.make_drill_copy(workspace, toy_kb)
    assert copy == "toy-drill-copy"
    assert [d.name for d in list_documents(workspace, copy)] == [d.name for d in list_documents(workspace, toy_kb)]
    assert search(workspace, copy, "Harbor Bridge engineer", fake_embedder)[0].document == "harbor.txt"  # vectors came along
    evaluation.replace_document(workspace, copy, "update.txt", b"The Harbor Bridge closes in 2031 for repairs.", fake_embedder)
    assert "update.txt" in [d.name for d in list_documents(workspace, copy)]
    assert "update.txt" not in [d.name for d in list_documents(workspace, toy_kb)]
    assert evaluation.remove_drill_copy(workspace, toy_kb) and not evaluation.remove_drill_copy(workspace, toy_kb)


def test_scoreboard_tab_shows_the_bottom_line(workspace, toy_kb, fake_embedder):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from tests.test_evaluation import QUESTIONS, FakeRunner

    evaluation.run_evaluation(workspace, FakeRunner(), QUESTIONS, EvaluationSettings(variants=("base", "rag")), kb=toy_kb, embedder=fake_embedder)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "evaluate.py"), default_timeout=60)
    from core.decision import decide, default_answers
    from ui.state import DecideResult

    decided = decide(default_answers())
    assert decided.recommendation == "rag"
    at.session_state["decision"] = DecideResult(decided, None)  # what the Decide page leaves for the report
    at.run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown).replace("\\", "")  # md_escape adds backslashes
    assert "**Bottom line**" in text and "(n=" in text and "Decide recommendation (RAG)" in text
