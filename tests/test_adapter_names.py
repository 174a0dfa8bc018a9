"""Adapters have human names: dataset · preset · date from the run, editable, kept with the run, listed by name."""
import json
import subprocess
import sys

import pytest

from core.adapters import adapter_name, default_adapter_name, find_adapters, rename_adapter
from core.errors import StudioError
from core.training import PRESETS
from tests.tune_support import record_run


def _fake_run(ws, run_id="run-20261202-140405-fb9d", preset="demo", **changes):
    from dataclasses import asdict, replace

    lora, training = PRESETS[preset]
    training = replace(training, **changes)
    folder = ws.runs / run_id
    (folder / "adapter").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"run_id": run_id, "dataset_id": "squad-style", "lora": asdict(lora),
                                                    "training": asdict(training), "created_at": "2026-12-02T14:04:05+00:00"}))
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": lora.r, "target_modules": ["q_proj"]}))
    return record_run(ws, run_id)


def test_default_name_is_dataset_preset_and_date(workspace):
    run_id = _fake_run(workspace)
    assert default_adapter_name(workspace, run_id) == "squad-style · demo · 2 Dec 14:04"
    assert [info.label for info in find_adapters(workspace)] == ["squad-style · demo · 2 Dec 14:04"]
    assert find_adapters(workspace)[0].run_id == run_id


def test_runs_of_an_earlier_demo_preset_keep_its_name(workspace):
    earlier = _fake_run(workspace, "run-20261201-100000-aaaa", max_steps=100, learning_rate=1e-3)
    other = _fake_run(workspace, "run-20261201-110000-bbbb", max_steps=77)
    assert default_adapter_name(workspace, earlier).split(" · ")[1] == "demo"
    assert default_adapter_name(workspace, other).split(" · ")[1] == "custom"


def test_rename_is_kept_with_the_run_and_empty_goes_back_to_the_default(workspace):
    run_id = _fake_run(workspace)
    assert rename_adapter(workspace, run_id, "  Support   desk voice ") == "Support desk voice"
    assert json.loads((workspace.runs / run_id / "name.json").read_text()) == {"name": "Support desk voice"}
    assert find_adapters(workspace)[0].label == "Support desk voice"
    assert rename_adapter(workspace, run_id, "") == "squad-style · demo · 2 Dec 14:04"
    with pytest.raises(StudioError, match="at most 80"):
        rename_adapter(workspace, run_id, "x" * 81)
    with pytest.raises(StudioError, match="No run"):
        rename_adapter(workspace, "../escape", "name")
    assert adapter_name(workspace, "no-such-run") == "no-such-run"


def test_cli_renames_and_lists_by_name(workspace):
    run_id = _fake_run(workspace)
    done = subprocess.run([sys.executable, "-m", "core", "--workspace", str(workspace.root), "runs", "rename", run_id, "Q1 filings voice", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"run_id": run_id, "name": "Q1 filings voice"}
