"""The decision report: every section, escaped text, offline plotly; and a Chromium check."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from core import evaluation, report
from core.evaluation import EvaluationSettings, QuestionItem
from tests.test_evaluation import QUESTIONS, FakeRunner, timed
from tests.tune_support import record_run


class EvilRunner(FakeRunner):
    def answer(self, question, variant, hits):
        if variant == "base":
            return timed(variant, "<script>alert('x')</script> & more", 0.1, 0.2, 5)
        return super().answer(question, variant, hits)


@pytest.fixture
def evaluated(workspace, toy_kb, fake_embedder):
    run = workspace.runs / "run7"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    record_run(workspace, "run7")  # a completed run: the only kind whose adapter is offered (core/adapters.py)
    (run / "config.json").write_text('{"lora": {"r": 8, "alpha": 16}, "epochs": 2}')
    (run / "progress.jsonl").write_text("".join(f'{{"event": "step", "step": {i}, "loss": {3 - i * 0.2}, "elapsed": {i * 5}}}\n' for i in range(1, 8)))
    eval_id = evaluation.run_evaluation(
        workspace, EvilRunner(), QUESTIONS, EvaluationSettings(variants=("base", "rag", "finetuned", "hybrid"), min_score=0.05, out_of_scope=1),
        kb=toy_kb, embedder=fake_embedder, adapter="run7", question_source="toy <b>set</b>",
    )
    return workspace, eval_id


def test_report_has_every_section_and_escapes(evaluated, tmp_path):
    workspace, eval_id = evaluated
    decision = {"recommendation": "rag", "label": "RAG <first>", "answers": {"freshness": "daily"}}
    path = report.write_report(workspace, eval_id, tmp_path / "r.html", decision=decision, estimate={"training_minutes": 12.5})
    text = path.read_text()
    for key in report.SECTIONS:
        assert f'<section id="{key}">' in text
    assert "<script>alert('x')</script>" not in text and "&lt;script&gt;" in text
    assert "RAG &lt;first&gt;" in text and "toy &lt;b&gt;set&lt;/b&gt;" in text
    assert text.count("plotly.js v") >= 1 and "cdn.plot.ly" not in text.split("</script>")[0][:500]
    assert "Training loss" in text and "run7" in text
    assert "lexical support" in text.lower()


def test_report_shows_ragas_scores_with_their_nan_counts(evaluated):
    from core import judge
    from tests.judge_stub import JudgeStub

    workspace, eval_id = evaluated
    assert "Not run. RAGAS needs a judge model" in report.build_report(workspace, eval_id)
    if not judge.ragas_installed():
        pytest.skip("ragas is not installed")
    with JudgeStub("agree") as stub:
        judge.judge_evaluation(workspace, eval_id, judge.JudgeSettings(stub.url, "<judge>", metrics=("faithfulness",)))
    section = report.build_report(workspace, eval_id).split('<section id="ragas">')[1].split("</section>")[0]
    assert "&lt;judge&gt;" in section and "<judge>" not in section
    assert "faithfulness" in section and "1.000" in section and "never scored" in section


def test_report_without_decision_says_so(evaluated, tmp_path):
    workspace, eval_id = evaluated
    text = report.build_report(workspace, eval_id)
    assert "No questionnaire answers were attached" in text


def test_cli_report_and_errors(evaluated, tmp_path, capsys):
    from core.cli import main

    workspace, eval_id = evaluated
    out = tmp_path / "cli.html"
    assert main(["--workspace", str(workspace.root), "report", eval_id, "--out", str(out)]) == 0
    assert out.exists()
    assert main(["--workspace", str(workspace.root), "report", "nope"]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.browser
def test_report_renders_in_chromium(evaluated, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    workspace, eval_id = evaluated
    path = report.write_report(workspace, eval_id, tmp_path / "browser.html", decision={"recommendation": "hybrid"})
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(path.as_uri())
        for key, label in report.SECTIONS.items():
            element = driver.find_element(By.ID, key)
            assert label in element.text
        # plotly drew its charts offline (an SVG per figure)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#charts .main-svg")) >= 2
        assert driver.execute_script("return typeof Plotly") == "object"
    finally:
        driver.quit()


def test_report_decision_and_estimate_read_as_sentences(evaluated, tmp_path):
    """Question labels and answer labels, not ids; figures with units; the raw values folded underneath."""
    from core.decision import decide, decision_to_dict, default_answers
    from core.estimate import EstimateInputs, estimate, estimate_to_dict

    workspace, eval_id = evaluated
    decision = decision_to_dict(decide(default_answers()))
    est = estimate_to_dict(estimate(EstimateInputs(params=135e6, train_tokens=200_000, hardware="cpu", docs=300)))
    text = report.write_report(workspace, eval_id, tmp_path / "r.html", decision=decision, estimate=est).read_text()
    assert "Recommended: RAG (confidence" in text
    assert "How often does the knowledge change?" in text and "<td>Monthly</td>" in text  # not knowledge_change / monthly
    assert "LoRA memory</th><td>2.7 GB of 16 GB: fits" in text
    # QLoRA on CPU: bitsandbytes' CPU backend, measured 1.39x LoRA's time (core/estimate/constants.py)
    assert "QLoRA training time</th><td>28 min" in text and "LoRA training time</th><td>20 min" in text
    assert "RAG index</th><td>19.8 MB, 8,182 chunks" in text
    assert "<details><summary" in text and "is_gpu" in text  # everything is still there, folded
