"""AppTest for pages/decide.py (test the page file directly, not through st.navigation)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "decide.py")


@pytest.fixture
def at():
    return AppTest.from_file(PAGE, default_timeout=30).run()


def headline(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("### Recommended:"))


def test_defaults_render_a_recommendation_chart_and_metrics(at):
    assert not at.exception
    assert headline(at).startswith("### Recommended: RAG (confidence ")
    assert len(at.get("plotly_chart")) == 1
    assert [m.label for m in at.metric][:3] == ["RAG", "Fine-tune", "Hybrid"]
    assert any("LoRA memory" == m.label for m in at.metric)
    # the default estimate is SmolLM2 on the CPU, where QLoRA runs (bitsandbytes' CPU backend)
    qlora = next(m for m in at.metric if m.label == "QLoRA memory")
    assert qlora.delta == "fits" and "slower than LoRA" in qlora.help
    training = next(m for m in at.metric if m.label == "LoRA training")
    assert training.delta.startswith("QLoRA ") and training.delta != "QLoRA n/a"
    assert at.info[0].value  # the sensitivity line


def test_answers_change_the_recommendation_then_apply_writes_the_plan(at):
    for key, value in {"style_importance": "critical", "example_count": "over_10k", "knowledge_change": "rarely",
                       "domain_language": "specialised", "ml_experience": "strong"}.items():
        widget = at.select_slider(key=f"decide_q_{key}") if key in ("style_importance", "example_count",
                                                                    "knowledge_change") else at.radio(key=f"decide_q_{key}")
        widget.set_value(value)
    at.radio(key="decide_q_traceability").set_value("no")
    at.selectbox(key="decide_q_compute_budget").set_value("large_gpu")
    at.run()
    assert not at.exception
    assert headline(at).startswith("### Recommended: Fine-tune")
    assert at.session_state["decide_answers"]["style_importance"] == "critical"

    at.button(key="decide_apply").click().run()
    applied = at.session_state["decision_plan"]  # ui.state.AppliedPlan: what the other pages read
    plan = applied.plan
    assert plan.recommendation == "finetune"
    assert plan.lora_preset == "quality"
    assert "finetuned" in plan.compare_variants and "base" in plan.compare_variants
    assert isinstance(plan.chunk_size, int) and isinstance(plan.eval_plan, list)
    assert at.success and "Applied" in at.success[0].value
    assert "Documents" in at.success[0].value.split("Next:")[1]  # says where to go next
    assert applied.markdown.startswith("# Recommended: Fine-tune")
    assert at.session_state["decision"].decision.recommendation == "finetune"  # what the Evaluate report includes


def test_reset_restores_defaults(at):
    at.select_slider(key="decide_q_knowledge_change").set_value("daily").run()
    assert at.session_state["decide_answers"]["knowledge_change"] == "daily"
    next(b for b in at.button if b.label == "Reset answers").click().run()
    assert at.session_state["decide_answers"]["knowledge_change"] == "monthly"
    assert at.select_slider(key="decide_q_knowledge_change").value == "monthly"


def test_estimate_inputs_follow_the_compute_answer_and_a_custom_model(at):
    assert at.selectbox(key="decide_est_hardware").value == "cpu"
    assert at.selectbox(key="decide_est_model").value == "smollm2-135m"  # the embedded model on a CPU
    at.selectbox(key="decide_est_model").set_value("custom").run()
    at.number_input(key="decide_est_custom").set_value(7.0).run()
    assert not at.exception and not at.error
    at.selectbox(key="decide_est_hardware").set_value("t4").run()
    assert any(m.label == "QLoRA memory" and m.value.endswith("GB") for m in at.metric)


def test_estimate_inputs_have_short_labels():
    """The cost panel sits in a narrow column: long labels were cut off."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGE), default_timeout=30).run()
    assert not at.exception
    pages = at.number_input(key="decide_est_pages")
    assert pages.label == "Pages" and "10 per document" in pages.help
    assert at.get("download_button")[0].label == "Download (Markdown)"


def test_compute_answer_sets_the_estimate_hardware_and_decision_md_agrees(at):
    """Walk: "One small GPU" -> the cost tab estimates for a T4 and the exported decision.md says the same."""
    from core.estimate.specs import HARDWARE

    at.selectbox(key="decide_q_compute_budget").set_value("small_gpu").run()
    assert not at.exception
    assert at.selectbox(key="decide_est_hardware").value == "t4"
    assert at.selectbox(key="decide_est_model").value == "phi-3-mini"  # not the 135M CPU demo model
    assert any("from the compute answer “One small GPU" in c.value for c in at.caption)
    shown = next(m for m in at.metric if m.label == "LoRA training")
    at.button(key="decide_apply").click().run()
    markdown = at.session_state["decision_plan"].markdown
    assert f"hardware: {HARDWARE['t4'].label}" in markdown and "CPU (2 cores" not in markdown
    assert f"LoRA {shown.value}," in markdown  # the same figure as the cost tab
    # a hand-picked hardware stays, and decision.md says it differs from the answer
    at.selectbox(key="decide_est_hardware").set_value("a100-80gb").run()
    at.button(key="decide_apply").click().run()
    assert "chosen by hand; the compute answer “One small GPU" in at.session_state["decision_plan"].markdown
    # a new compute answer takes over again
    at.selectbox(key="decide_q_compute_budget").set_value("cpu_only").run()
    assert at.selectbox(key="decide_est_hardware").value == "cpu"
    assert at.selectbox(key="decide_est_model").value == "smollm2-135m"


PHI3_CONFIG = {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
               "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
               "max_position_embeddings": 4096, "tie_word_embeddings": False, "pad_token_id": 32000}


def test_your_model_is_sized_from_its_config_json_alone(workspace, tmp_path):
    """A folder holding only Phi-3-mini's config.json (no weights): the sidebar's model is the estimate's, counted exactly
    by core.estimate.specs.model_from_config, the function behind `estimate --model`."""
    import json

    from core.models import GeneratorSpec

    folder = tmp_path / "phi3-config-only"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(PHI3_CONFIG))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["generator_spec"] = GeneratorSpec(model_id=str(folder))  # the sidebar's model choice
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="decide_est_model").value == "yours"
    assert at.text_input(key="decide_est_yours").value == str(folder)
    assert any("3,821,079,552 parameters, 32 layers, hidden size 3072" in c.value for c in at.caption)
    est = at.session_state["decision"].estimate
    assert est.model.params == 3_821_079_552 and est.model.label == "phi3-config-only (3.8B)"
    assert any(m.label == "LoRA memory" for m in at.metric)
    assert [p.name for p in folder.iterdir()] == ["config.json"]  # nothing was downloaded or written next to it

    # a folder without config.json, then a broken one: a clear message, no estimate, no traceback
    empty = tmp_path / "no-config"
    empty.mkdir()
    at.text_input(key="decide_est_yours").set_value(str(empty)).run()
    assert not at.exception
    shown = at.error[0].value.replace("\\", "")  # the message is markdown with the user's path escaped
    assert f"{empty} has no config.json" in shown and "Custom size" in shown
    assert at.session_state["decision"].estimate is None
    (empty / "config.json").write_text("{not json")
    at.run()  # a failed read is not cached: the next run reads the folder again
    assert not at.exception and "config.json is not valid JSON" in at.error[0].value.replace("\\", "")


def test_your_model_is_offered_when_the_sidebar_keeps_the_embedded_default(workspace, tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps(PHI3_CONFIG))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert at.selectbox(key="decide_est_model").value == "smollm2-135m"  # the catalogue's stand-in stays the default
    at.selectbox(key="decide_est_model").set_value("yours").run()
    assert not at.exception and at.text_input(key="decide_est_yours").value == ""
    assert at.session_state["decision"].estimate is None
    at.text_input(key="decide_est_yours").set_value(str(tmp_path)).run()
    assert not at.exception and not at.error
    assert at.session_state["decision"].estimate.model.params == 3_821_079_552
