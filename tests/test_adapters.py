"""One rule for which adapters are offered (core/adapters.py): a completed run's. Every page lists the same ones."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.adapters import adapter_path, find_adapters, resolve_adapter
from core.errors import StudioError
from tune_support import record_run, workspace_with_model_config

PAGES = Path(__file__).resolve().parent.parent / "pages"


def _adapter_folder(ws, run_id: str) -> Path:
    folder = ws.runs / run_id / "adapter"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A completed run's adapter, a failed run's adapter folder (killed after the save), a folder with no run record,
    and a completed run whose folder lost its adapter: only the first is an adapter to offer."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path / "ws"))
    ws = workspace_with_model_config(tmp_path / "ws")  # the Fine-tune page reads the base model's facts
    _adapter_folder(ws, "run-done")
    record_run(ws, "run-done")
    _adapter_folder(ws, "run-failed")
    record_run(ws, "run-failed", status="failed")
    _adapter_folder(ws, "stray")
    record_run(ws, "run-empty")
    return ws


def test_only_a_completed_runs_adapter_is_offered(ws):
    assert [info.run_id for info in find_adapters(ws)] == ["run-done"]
    assert resolve_adapter(ws, "run-done") == (ws.runs / "run-done" / "adapter").resolve()
    assert adapter_path(ws, "run-done") == ws.runs / "run-done" / "adapter"
    for run_id in ("run-failed", "stray"):
        with pytest.raises(StudioError, match="Runs with adapters: run-done"):
            resolve_adapter(ws, run_id)
    with pytest.raises(StudioError, match="status failed"):
        adapter_path(ws, "run-failed")
    with pytest.raises(StudioError, match="status completed"):
        adapter_path(ws, "run-empty")
    assert resolve_adapter(ws, None) is None and resolve_adapter(ws, " ") is None  # no adapter chosen
    # an explicit folder is the user's choice, not a listing: it is taken as given
    assert resolve_adapter(ws, str(ws.runs / "stray" / "adapter")) == (ws.runs / "stray" / "adapter").resolve()


def _offered(at, label: str) -> list[list[str]]:
    """The options of every selectbox with this label, each shown as "name" or "name (run id)"; names are run ids here."""
    return [[option.split(" (")[0] for option in box.options] for box in at.selectbox if box.label == label]


def test_compare_and_fine_tune_offer_the_same_adapters(ws):
    compare = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=60).run()
    assert not compare.exception
    fine_tune = AppTest.from_file(str(PAGES / "fine_tune.py"), default_timeout=60).run()
    assert not fine_tune.exception
    assert _offered(compare, "Adapter") == [["run-done"]]
    assert _offered(fine_tune, "Adapter") == [["run-done"], ["run-done"]]  # the rename form and the export form


def test_evaluate_offers_the_same_adapters(ws):
    """Evaluate used to list every adapter folder on disk (failed runs and strays too)."""
    evaluate = AppTest.from_file(str(PAGES / "evaluate.py"), default_timeout=60).run()
    assert not evaluate.exception
    (offered,) = _offered(evaluate, "Adapter (training run)")
    assert [option for option in offered if option.startswith(("run-", "stray"))] == ["run-done"]
