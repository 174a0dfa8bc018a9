"""AppTest of the Training data and Fine-tune pages (each page file directly)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import datasets as D
from core import training as T
from tests.conftest import applied_plan
from tune_support import style_rows, workspace_with_model

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path / "ws"))
    return workspace_with_model(tmp_path / "ws")


def test_training_data_page_edits_splits_and_saves(ws):
    at = AppTest.from_file(str(PAGES / "training_data.py"), default_timeout=60)
    at.session_state["tune_rows"] = style_rows(10)
    at.session_state["tune_meta"] = {"kind": "style", "style_rule": "bullets3_risk", "origin": "test"}
    at.run()
    assert not at.exception
    assert any("No knowledge base yet" in info.value for info in at.info)
    assert at.subheader[0].value == "Rows (10)"
    at.text_input[0].set_value("style-page")
    at.button[0].click().run()  # the form's "Split and save"
    assert not at.exception
    assert any("Saved style-page: 8 training rows and 2 held-out rows" in s.value for s in at.success)
    at.slider(key="td_heldout_pct").set_value(30)  # shown as a percentage, not 0.30
    at.text_input[0].set_value("style-30")
    at.button[0].click().run()
    assert any("Saved style-30: 7 training rows and 3 held-out rows" in s.value for s in at.success)
    assert D.dataset_meta(ws, "style-page")["style_rule"] == "bullets3_risk"


def test_fine_tune_page_form_estimate_and_qlora_reason(ws):
    D.save_dataset(ws, "style", style_rows(10), kind="style")
    at = AppTest.from_file(str(PAGES / "fine_tune.py"), default_timeout=90)
    at.session_state["decision_plan"] = applied_plan(lora_preset="quality")
    at.run()
    assert not at.exception
    assert at.radio(key="ft_preset").value == "quality"
    qlora = at.checkbox(key="ft_quality_qlora")
    assert not qlora.disabled and "bitsandbytes" in qlora.help  # QLoRA trains on CPU with the pinned bitsandbytes (tests/test_qlora.py)
    labels = {m.label: m.value for m in at.metric}
    assert int(labels["Trainable parameters"].replace(",", "")) > 0
    assert set(at.multiselect(key="ft_quality_targets").options) >= set(T.model_facts(ws).target_sets["all linear"])
    at.number_input(key="ft_quality_lr").set_value(0.0).run()
    assert any("learning rate must be above 0" in e.value for e in at.error)
    assert at.button(key="ft_start").disabled


def test_fine_tune_page_reconnects_to_a_run_from_the_workspace(ws):
    D.save_dataset(ws, "style", style_rows(10), kind="style")
    with T.open_runs_db(ws) as conn:
        conn.execute("INSERT INTO runs (id, dataset_id, base_model, config, status, final_loss, created_at) "
                     "VALUES ('run-x', 'style', 'embedded:SmolLM2-135M-Instruct', '{}', 'cancelled', 1.1, 'now')")
    (ws.runs / "run-x").mkdir()
    events = [{"event": "step", "step": s, "total": 10, "loss": 2.0 - s / 10, "learning_rate": 1e-3, "tokens_per_s": 150.0,
               "elapsed": 4.0 * s, "eta": 4.0 * (10 - s), "epoch": 0.1 * s} for s in (1, 2, 3)]
    (ws.runs / "run-x" / "progress.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    at = AppTest.from_file(str(PAGES / "fine_tune.py"), default_timeout=90)
    at.run()  # a fresh session: nothing in session_state about the run
    assert not at.exception
    assert any("Run run-x" == h.value for h in at.subheader)
    assert any(b.label == "Resume" for b in at.button)
    assert {m.label: m.value for m in at.metric}["Loss"] == "1.7000"


def test_fine_tune_page_after_start_shows_the_run_and_disables_start(ws):
    """Start reruns the page: the button turns off and the history lists the queued run (it used to stay stale)."""
    D.save_dataset(ws, "style", style_rows(10), kind="style")

    from datetime import datetime, timezone

    from core.training.runs import register_worker_spawner

    started = []
    # The real start_run checks, plans and records the run; only the worker process is a stand-in (this test's own
    # pid, alive, so the run stays queued as a just-launched worker's does).
    register_worker_spawner(lambda workspace, run_id: started.append(run_id) or os.getpid())
    try:
        at = AppTest.from_file(str(PAGES / "fine_tune.py"), default_timeout=90).run()
        assert not at.button(key="ft_start").disabled
        at.button(key="ft_start").click().run()
    finally:
        register_worker_spawner(None)
    assert not at.exception
    assert at.button(key="ft_start").disabled
    assert len(started) == 1 and T.get_run(ws, started[0]).dataset_id == "style"
    history = at.dataframe[0].value
    assert list(history["run"]) == started and list(history["status"]) == ["queued"]
    assert list(history["final loss"]) == ["n/a"] and list(history["adapter MB"]) == ["n/a"]
    assert list(history["created"])[0].startswith(datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    # The plan's figures are context, not changes: no up arrows
    plan = {m.label: m for m in at.metric if m.label in ("Trainable parameters", "Steps", "Estimated time", "Estimated memory")}
    assert len(plan) == 4 and all(m.proto.direction == m.proto.NONE for m in plan.values())


def test_training_data_saved_datasets_table_reads_cleanly(ws):
    D.save_dataset(ws, "qa-rows", style_rows(10, kind="qa"), kind="qa")
    at = AppTest.from_file(str(PAGES / "training_data.py"), default_timeout=60).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.columns)[:3] == ["Dataset", "Kind", "Format"]
    row = table.iloc[0]
    assert row["Dataset"] == "qa-rows" and row["Kind"] == "Question → answer"
    assert row["Style rule"] == "n/a"  # a Q&A set has no style rule: n/a, never None
    assert "T" not in row["Created"] and "+00:00" not in row["Created"]


def test_training_data_page_shows_the_best_row_whole(ws):
    rows = style_rows(10)
    at = AppTest.from_file(str(PAGES / "training_data.py"), default_timeout=60)
    at.session_state["tune_rows"] = rows
    at.session_state["tune_meta"] = {"kind": "style", "style_rule": "bullets3_risk", "origin": "test"}
    at.session_state["td_skipped"] = "3 chunks skipped: 2 cover page, 1 table of contents"
    at.run()
    assert not at.exception
    texts = [t.value for t in at.text]
    assert rows[0]["output"] in texts and rows[0]["input"] in texts  # the first (best) row, whole, not cut to a cell
    assert any("3 chunks skipped: 2 cover page" in c.value for c in at.caption)
    assert any(m.value.startswith("**Row 1**") for m in at.markdown)
