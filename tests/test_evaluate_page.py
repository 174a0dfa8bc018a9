"""AppTest of pages/evaluate.py (the page file directly: AppTest and st.navigation don't mix)."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import evaluation
from tests.fake_engines import install as install_fake_engine
from tests.fake_engines import install_embedder
from core.evaluation import EvaluationSettings
from tests.test_evaluation import QUESTIONS, FakeRunner
from tests.tune_support import record_run

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "evaluate.py")


def test_page_renders_empty_workspace(workspace):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Evaluate"
    assert any("No evaluations yet" in info.value for info in at.info)


def test_page_shows_a_past_evaluation(workspace, toy_kb, fake_embedder):
    eval_id = evaluation.run_evaluation(workspace, FakeRunner(), QUESTIONS, EvaluationSettings(variants=("base", "rag"), min_score=0.05),
                                        kb=toy_kb, embedder=fake_embedder, question_source="toy")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    assert len(at.dataframe) >= 2  # scoreboard + per-question table
    board = at.dataframe[0].value
    assert list(board.index) == ["Base", "RAG"]
    assert (board["format adherence"] == "n/a").all()  # not checked: n/a, never None or 0
    assert all(len(v.split(".")[1]) == 3 for v in board["token F1"])  # same digits for every variant
    # filter the per-question table to failures only
    at.checkbox[0].check().run()
    assert not at.exception
    # the report tab builds a report for the evaluation
    build = next(b for b in at.button if b.label == "Build the report")
    build.click().run()
    assert not at.exception
    assert any("Saved" in s.value for s in at.success)
    assert (workspace.reports / f"report-{eval_id}.html").exists()


def test_update_drill_rag_reflects_change_finetuned_does_not(workspace, toy_kb, fake_embedder, monkeypatch):
    """Fakes enter where the real parts do: the embedder by the model id the knowledge base records, the engine
    through the registry; the page's runner, retrieval and copy are real."""
    install_embedder(monkeypatch, fake_embedder)
    engine = install_fake_engine(monkeypatch)
    adapter = workspace.runs / "run-20260101-000000-aaaa" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    record_run(workspace, "run-20260101-000000-aaaa")  # only a completed run's adapter is offered
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.text_input(key="drill_question").input("When did the Harbor Bridge open?").run()
    next(b for b in at.button if b.label.startswith("1. Ask")).click().run()
    assert not at.exception
    at.text_input(key="drill_doc_name").input("harbor.txt").run()
    at.text_area(key="drill_text").input("The Harbor Bridge opened in 1999 after a long delay.").run()
    next(b for b in at.button if b.label == "Apply update").click().run()
    assert not at.exception
    assert any("Re-indexed in" in s.value for s in at.success)
    next(b for b in at.button if b.label.startswith("3. Ask")).click().run()
    assert not at.exception
    before, after = at.session_state["drill_before"], at.session_state["drill_after"]
    assert "1932" in before["rag"] and "1999" in after["rag"]  # RAG sees the new version at once
    # The fine-tuned model answers from its weights: it got the adapter and never the documents, before or after
    tuned = [r for batch in engine.batches for r in batch if r.adapter]
    assert before["tuned_label"] == "Fine-tuned" and len(tuned) == 2
    assert all(r.adapter == str(adapter.resolve()) and r.key.endswith("finetuned") for r in tuned)
    prompts = [" ".join(m["content"] for m in r.messages) for r in tuned]
    assert all("Harbor Bridge opened in" not in p and "1999" not in p for p in prompts), prompts
    assert "1999" not in after["tuned"]
    assert any("Retrain" in c.value and "estimate" in c.value for c in at.caption)
    # the update went into a copy: the user's knowledge base still says 1932, and finishing removes the copy
    from core.knowledge import document_chunks, list_knowledge_bases

    assert all("1999" not in c.text for c in document_chunks(workspace, "toy", "harbor.txt"))
    assert "toy-drill-copy" in [kb.name for kb in list_knowledge_bases(workspace)]
    at.button(key="drill_finish").click().run()
    assert not at.exception and [kb.name for kb in list_knowledge_bases(workspace)] == ["toy"]


def test_start_an_evaluation_from_the_page(workspace, toy_kb, fake_embedder, monkeypatch):
    import time

    install_embedder(monkeypatch, fake_embedder)
    install_fake_engine(monkeypatch)  # the runner is real; its engine is a fake registered like any engine
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.selectbox[0].select("toy").run()
    at.radio[0].set_value("Generate from the documents").run()
    assert not at.exception
    start = next(b for b in at.button if b.label == "Start evaluation")
    start.click().run()
    assert not at.exception
    evaluation_id = at.session_state["evaluation_id"]
    job = evaluation.get_job(evaluation_id)
    job.thread.join(30)
    assert evaluation.get_evaluation(workspace, evaluation_id).status == "done"
    at.run()
    assert not at.exception
    assert any("Evaluation done" in s.value for s in at.success)


def test_page_judges_with_ragas_through_a_stub_endpoint(workspace, toy_kb, fake_embedder, monkeypatch):
    import pytest

    from core import judge
    from tests.judge_stub import JudgeStub

    if not judge.ragas_installed():
        pytest.skip("ragas is not installed")
    from core.models import EmbedderSpec

    install_embedder(monkeypatch, fake_embedder)
    eval_id = evaluation.run_evaluation(workspace, FakeRunner(), QUESTIONS, EvaluationSettings(variants=("base", "rag"), min_score=0.05),
                                        kb=toy_kb, embedder=fake_embedder, question_source="toy")
    with JudgeStub("agree") as stub:
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.session_state["embedder_spec"] = EmbedderSpec(fake_embedder.model_id)  # the sidebar's embedding model
        at.run()
        assert any("Not judged yet" in c.value for c in at.caption)
        at.text_input(key="judge_url").input(stub.url).run()
        at.button(key="judge_check").click().run()
        assert not at.exception
        assert any("The judge answers" in s.value for s in at.success)
        at.button(key="judge_start").click().run()
        assert any("Name the judge model" in e.value for e in at.error)  # no model given yet
        at.text_input(key="judge_model").input("stub-judge").run()
        at.button(key="judge_start").click().run()
        assert not at.exception and not at.error
        judge.get_judge_job(eval_id).thread.join(60)
    at.run()
    assert not at.exception
    assert any("Judged" in s.value for s in at.success)
    table = next(d.value for d in at.dataframe if "mean (scored cells)" in d.value)
    faith = table[(table["variant"] == "RAG") & (table["metric"] == "faithfulness")]
    assert faith["mean (scored cells)"].iloc[0] == "1.000"
    assert (table[table["variant"] == "Base"]["mean (scored cells)"] == "n/a").any()  # base has no context: n/a, not 0


def test_scoreboard_examples_and_filters_read_cleanly(workspace, toy_kb, fake_embedder):
    """A training-row question (instruction + passage, several lines) stays one bold line, escaped; the
    reference's '- ' bullets stay text; variants keep the scoreboard's order; the report picker has labels."""
    from core.evaluation import QuestionItem

    questions = [QuestionItem("q1", "Tell me about this text.\n\nThe *Harbor* Bridge opened in 1932." + " It is long." * 40, ("- opened 1932\n- Risks: none",),
                              "harbor.txt", None)] + QUESTIONS[:1]
    eval_id = evaluation.run_evaluation(workspace, FakeRunner(), questions, EvaluationSettings(variants=("base", "rag", "hybrid"), min_score=0.05, out_of_scope=1),
                                        kb=toy_kb, embedder=fake_embedder, question_source="toy")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.multiselect(key="eval_table_variants").value == ["Base", "RAG", "Hybrid"]  # the per-question filter
    bold = [m.value for m in at.markdown if "Tell me about this text" in m.value]
    assert bold and all("\n" not in v and v.startswith("**") and v.endswith("…**") and "\\*Harbor\\*" in v for v in bold)
    assert all(len(v.replace("\\", "")) < 170 for v in bold)  # a passage-long question is cut, not a wall of bold
    per_question = at.dataframe[1].value
    assert not per_question.isin(["None", "nan"]).any().any() and per_question[["F1", "ROUGE-L"]].notna().all().all()
    assert set(per_question.loc[per_question["out of scope"] == True, "F1"]) <= {"n/a"}  # noqa: E712
    assert all(v == "n/a" or len(v.split(".")[1]) == 3 for v in per_question["F1"])
    assert all(v == "n/a" or len(v.split(".")[1]) == 1 for v in per_question["seconds"])
    references = [c.value for c in at.caption if c.value.startswith("Reference:") and "opened 1932" in c.value]
    assert references and all("\n" not in v and "\\- opened 1932" in v for v in references)
    picker = at.selectbox(key="report_id")
    assert any(eval_id in option and "toy" in option for option in picker.options)


def test_run_tab_says_how_many_answers_a_run_makes(workspace, toy_kb):
    """Limit 2 with 3 out-of-scope questions and two variants is 10 answers: said before Start, not discovered in the progress bar."""
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.radio[0].set_value("Generate from the documents").run()
    next(n for n in at.number_input if n.label == "Limit (0 = all)").set_value(2).run()
    at.multiselect[0].set_value(["base", "rag"]).run()
    assert not at.exception
    assert any("= 5, × 2 variants = **10 answers**" in c.value for c in at.caption), [c.value for c in at.caption]


def test_update_drill_preselects_the_newest_adapter(workspace, toy_kb):
    """The drill compares RAG with the fine-tuned model: like the first tab, it starts on the newest adapter."""
    for run in ("run-20260101-000000-aaaa", "run-20260102-000000-bbbb"):
        (workspace.runs / run / "adapter").mkdir(parents=True)
        (workspace.runs / run / "adapter" / "adapter_config.json").write_text("{}")
        record_run(workspace, run)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="drill_adapter").value == "run-20260102-000000-bbbb"


def test_fmt_number_reads_n_a_for_missing_values():
    import math

    import numpy as np

    from ui.common import fmt_number

    assert fmt_number(None) == fmt_number(math.nan) == fmt_number(np.float64("nan")) == "n/a"
    assert fmt_number(0.12345) == "0.123" and fmt_number(np.int64(10), 0) == "10" and fmt_number(2.5, 1) == "2.5"
    assert fmt_number(True) == "True" and fmt_number("run-1") == "run-1"


def test_a_variant_can_answer_from_its_own_engine(workspace, toy_kb, fake_embedder, monkeypatch):
    """Evaluate's 'Engine per variant', like Compare's columns: RAG from a second registered engine, the rest from the
    sidebar's; each answer records the engine that gave it, and each engine saw only its own variant's requests."""
    from tests.fake_engines import EchoEngine

    install_embedder(monkeypatch, fake_embedder)
    team = EchoEngine(model="team-server-model")
    team.name = "team"
    install_fake_engine(monkeypatch, team, kind="team")
    default = install_fake_engine(monkeypatch)  # registered last: the one `auto` (the sidebar's default) opens
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.selectbox[0].select("toy").run()
    at.radio[0].set_value("Generate from the documents").run()
    rag_engine = next(s for s in at.selectbox if s.label == f"{evaluation.VARIANT_LABELS['rag']} engine")
    rag_engine.select("team").run()
    assert not at.exception
    next(b for b in at.button if b.label == "Start evaluation").click().run()
    evaluation_id = at.session_state["evaluation_id"]
    evaluation.get_job(evaluation_id).thread.join(30)
    rows = evaluation.load_results(workspace, evaluation_id)
    by_variant = {}
    for row in rows:
        by_variant.setdefault(row["variant"], set()).add((row.get("engine"), row.get("model")))
    assert by_variant["rag"] == {("team", "team-server-model")}
    assert by_variant["base"] == {("fake", "echo-1")}
    assert all(r.key.endswith("rag") for batch in team.batches for r in batch)
    assert not any(r.key.endswith("rag") for batch in default.batches for r in batch)
